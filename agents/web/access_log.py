"""Keeps API keys out of uvicorn's access log: credentials in a request's query string are logged as ***."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
MASK = "***"
# query parameters that carry a credential, whatever the service accepts: a client may send them anyway
SECRET_PARAMS = ("api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token", "secret", "password")
_PARAM = re.compile(
    r"(?P<name>(?:^|[?&;])(?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)
_KEY = re.compile(r"tri(?:_|%5f)[0-9a-f]+(?:_|%5f)[A-Za-z0-9_%-]+", re.IGNORECASE)  # our keys, anywhere in the URL


def redact_url(path: str) -> str:
    """`path?query` with the values of credential parameters, and anything shaped like one of our keys, masked."""
    path = _KEY.sub(MASK, path)
    return _PARAM.sub(lambda m: m.group("name") + MASK, path) if "=" in path else path


class RedactKeys(logging.Filter):
    """A filter for the `uvicorn.access` logger; its records carry (client, method, full_path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_url(args[2]), args[3], args[4])
        return True


def redact_access_log(logger: logging.Logger | None = None) -> RedactKeys:
    """Install the filter once on the access logger (uvicorn has configured logging before it builds the app)."""
    target = logger or logging.getLogger(ACCESS_LOGGER)
    for existing in target.filters:
        if isinstance(existing, RedactKeys):
            return existing
    installed = RedactKeys()
    target.addFilter(installed)
    return installed
