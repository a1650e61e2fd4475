"""The `triage` command line: the only code besides tests that imports evals/."""
