"""Possible new categories: clusters of the tickets every topic field abstains on, and how fast they grow."""
