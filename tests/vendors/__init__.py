"""Loopback servers that speak the documented subset of each helpdesk vendor's API, for connector tests."""
