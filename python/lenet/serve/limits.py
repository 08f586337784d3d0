"""How much the server takes in: request bodies read with a size limit and a deadline, compressed
bodies inflated with the same limit, and an admission budget over everything being handled.

Memory is bounded by the budget: the bodies of admitted requests (counted at their declared or
maximum size) never add up past ``max_bytes``, nor the requests past ``max_requests``; beyond
that a request is answered 503 with Retry-After at once instead of being read. A client that
sends half a body and stops gets a 408 after ``body_timeout_s``; one that hangs up is let go."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from .errors import ServeError, bad_input, busy


@dataclass
class BodyLimits:
    max_bytes: int              # one request's body, after inflating
    timeout_s: float = 30.0     # to receive the whole body


class Admission:
    """Requests being handled and the body bytes they may hold, each under a ceiling. Requests
    are counted at the door (the ASGI middleware, before any routing, so turning one away costs
    little when there are many); bytes once the route knows what the body may occupy."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0

    def full(self) -> ServeError | None:
        """The 503 to answer a new request with, or None when there is room for it."""
        if self.requests >= self.max_requests:
            return busy(f"the server is handling {self.requests} requests, its limit; retry shortly")
        return None

    @contextlib.contextmanager
    def request(self):
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1

    @contextlib.contextmanager
    def hold(self, nbytes: int):
        if self.bytes + nbytes > self.max_bytes:
            raise busy(f"the server holds {self.bytes // 2**20} MiB of request bodies, its limit "
                       f"is {self.max_bytes // 2**20} MiB; retry shortly")
        self.bytes += nbytes
        try:
            yield
        finally:
            self.bytes -= nbytes


def declared_length(request: Request, limits: BodyLimits) -> int | None:
    """Content-Length, checked against the limit before a byte is read (None when chunked)."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise bad_input(f"Content-Length must be a number of bytes, got {value!r}")
    n = int(value)
    if n > limits.max_bytes:
        raise ServeError(413, f"the body is {n} bytes; the limit is {limits.max_bytes}")
    return n


async def read_body(request: Request, limits: BodyLimits) -> bytes | bytearray:
    """The whole body, inflated when Content-Encoding is gzip or deflate. A body whose length is
    declared (Content-Length, not compressed) is read straight into one buffer of that size:
    no list of chunks joined afterwards, so a 1 MB tensor is copied once on its way in, and the
    arrays decoded from it are views of that buffer."""
    declared = declared_length(request, limits)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    identity = encoding in ("", "identity")

    async def receive_into(buffer: bytearray) -> bytearray:
        view, size = memoryview(buffer), 0
        async for chunk in request.stream():
            end = size + len(chunk)
            if end > len(buffer):  # the HTTP layer enforces Content-Length; never write past it
                raise bad_input(f"the body is longer than its Content-Length ({len(buffer)} bytes)")
            view[size:end] = chunk
            size = end
        if size != len(buffer):
            raise bad_input(f"the body has {size} bytes, its Content-Length says {len(buffer)}")
        return buffer

    async def receive_chunks() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_bytes:
                raise ServeError(413, f"the body is over the limit of {limits.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    receive = receive_into(bytearray(declared)) if identity and declared is not None else receive_chunks()
    try:
        body = await asyncio.wait_for(receive, limits.timeout_s)
    except asyncio.TimeoutError:
        raise ServeError(408, f"the body did not arrive within {limits.timeout_s:g} s") from None
    except ClientDisconnect:
        raise ServeError(400, "the client hung up before sending the whole body") from None
    if identity:
        return body
    if encoding not in ("gzip", "deflate"):
        raise ServeError(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    return inflate(body, encoding, limits.max_bytes)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or zlib body inflated, refusing more than ``limit`` bytes of output (a small body
    can inflate to gigabytes)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # 32: a gzip or a zlib header, either
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise bad_input(f"the body is not valid {encoding} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ServeError(413, f"the body inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise bad_input(f"the {encoding} body is cut short")
    return out
