"""HTTP calls to the servers the tests started, asked again while a server is busy."""

from __future__ import annotations

import time

import requests

# A server that is busy (Prefect on SQLite answers 503 when its database is locked) or restarting is
# asked again.
BUSY_STATUSES = frozenset({429}) | frozenset(range(500, 600))


RETRY_SECONDS = 120.0


def request(
    method: str, url: str, *, retry_for: float = RETRY_SECONDS, idempotent: bool = True, **options
) -> requests.Response:
    """One HTTP call to a server the tests started, asked again while the server is busy.

    A connection error, 429 or 5xx is retried with backoff (0.5 s doubling to 8 s, or the
    server's Retry-After) for up to `retry_for` s; a read timeout only when the call is
    `idempotent` (a create that timed out may have happened). Any other answer (2xx, 3xx, 4xx) is
    returned as it is; when time runs out, the last busy answer is returned, or the last error
    raised.
    """
    options.setdefault("timeout", 30)
    deadline, delay = time.monotonic() + retry_for, 0.5
    retried = (
        (requests.ConnectionError, requests.Timeout) if idempotent else (requests.ConnectionError,)
    )
    while True:
        try:
            response = requests.request(method, url, **options)
        except retried:
            if time.monotonic() + delay > deadline:
                raise
            wait = delay
        else:
            if response.status_code not in BUSY_STATUSES or time.monotonic() + delay > deadline:
                return response
            wait = _retry_after(response, delay)
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        delay = min(2 * delay, 8.0)


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.1), 8.0)
    except ValueError:  # an HTTP date: keep to the backoff
        return default


def http_json(method: str, url: str, body: dict | None = None, **options) -> dict | list:
    """The JSON answer of one call (`request`, retried while the server is busy); an error status
    fails with HTTPError."""
    response = request(method, url, **({"json": body} if body is not None else {}), **options)
    response.raise_for_status()
    return response.json()
