"""The one error type every part of the server raises, and the body the protocol gives it.

The Open Inference Protocol answers every failure with ``{"error": "<message>"}`` and a status
that says whose fault it was: 400 bad input, 404 unknown model, 503 not ready or too busy. Other
4xx codes are used where HTTP has a more precise one (408, 413, 415)."""

from __future__ import annotations


class ServeError(Exception):
    """A request that cannot be answered: ``status`` and a message naming the problem.
    ``retry_after`` (seconds) goes out as the Retry-After header of a 503."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict:
        return {"error": self.message}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def bad_input(message: str) -> ServeError:
    return ServeError(400, message)


def busy(message: str) -> ServeError:
    """Too much work queued: the client should come back shortly rather than wait here."""
    return ServeError(503, message, retry_after=1)
