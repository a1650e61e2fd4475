"""The ticket store: SQL tables, records, review and feedback, migrations."""
