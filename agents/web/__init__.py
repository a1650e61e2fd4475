"""The HTTP layer around the engine: routes, auth, API errors, console, metrics, batching, the desk, Slack."""
