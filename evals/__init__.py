"""Offline evaluation: data sets, metrics, runners and reports for every backend."""
