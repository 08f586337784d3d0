"""One-line messages: the tools report a failure in one line that names the file and the cause,
and an exception's text is often several lines (torch and protobuf add context below)."""

from __future__ import annotations


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of ``exc``'s message, or ``default`` when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else default
