"""Triage agents: classify, route, summarise and answer, each with a classical path."""
