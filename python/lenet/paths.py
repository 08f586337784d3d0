"""The files a command reads and writes: why an input cannot be opened, whether an output can be
written (checked before the long work starts), and atomic writes that never leave half a file.

Every command-line tool uses these, so "no output may replace an input", "a symlink loop is named
as such" and "a full disk names the file" are written once. Torch-free: lenet-digits and
lenet-bench import it without loading PyTorch.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message names it."""


def missing_reason(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be opened: a plain "no such file" unless a symlink is to blame."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        if os.path.islink(path):
            return f"broken symlink (points to {os.readlink(path)}, which does not exist)"
        if exc.errno == errno.EACCES:
            return "permission denied"
        if exc.errno == errno.ENOTDIR:
            return "no such file (a parent is not a directory)"
        return "no such file"
    return "exists"


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file (hard links, symlinks and ``./x`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return Path(a).resolve() == Path(b).resolve()


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                      what: str = "output") -> Path:
    """Refuse, before any work, an output file that would replace an input, is a directory, sits
    in a missing or read-only directory, or exists read-only. Returns it as a Path."""
    p = Path(path)
    for source in inputs:
        if same_file(p, source):
            raise OutputError(f"{what} {p} is also an input ({source}); refusing to overwrite it")
    if p.is_dir():
        raise OutputError(f"{what} {p} is a directory; give a file name")
    parent = p.parent
    if not parent.exists():
        raise OutputError(f"{what} {p}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{what} {p}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {p}: directory {parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{what} {p} exists and is not writable")
    return p


def check_output_dir(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse an output directory that is a file or cannot be created or written (it may not
    exist yet: then the nearest existing parent must be a writable directory)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what} {p} exists and is not a directory")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {p}: cannot create it, {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {p}: {probe} is not writable")
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a mix: temp
    file in the same directory, fsync, rename, fsync the directory. On failure (a full disk) the
    temp file is removed, the old file is untouched and the OSError propagates."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output(path: str | os.PathLike, data: bytes | str, what: str = "output") -> None:
    """:func:`atomic_write_bytes` with any OSError turned into an OutputError naming the file."""
    try:
        atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc} "
                          "(nothing was written there)") from None
