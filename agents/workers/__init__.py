"""Queued triage on Celery: the app from settings, intake's queue, the worker's tasks and per-process runtime."""
