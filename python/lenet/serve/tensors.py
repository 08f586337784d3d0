"""Tensors in and out of the Open Inference Protocol's REST form: JSON arrays, or raw bytes after
the JSON under Triton's binary tensor data extension.

With the extension, a request body is the JSON header (its length in the
``Inference-Header-Content-Length`` HTTP header) followed by each binary input's bytes, in the
order of ``inputs``; each such input says how many bytes are its own in
``parameters.binary_data_size``. Responses do the same for outputs asked for with
``parameters.binary_data``. Bytes are the tensor's elements in row-major order, little-endian.
``tritonclient`` uses this form by default: without it, its ``infer`` fails against a server.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import bad_input

HEADER_LENGTH = "Inference-Header-Content-Length"

# The protocol's datatype names and the numpy types with the same bytes (little-endian).
DATATYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}


def element_count(name: str, shape: Sequence[int]) -> int:
    if any(d < 0 for d in shape):
        raise bad_input(f"input {name!r}: shape {list(shape)} has a negative dimension")
    return math.prod(shape)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """(the JSON header, the binary part after it). ``header_length`` is the HTTP header's value,
    None when the request is all JSON."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        n = int(header_length)
    except ValueError:
        raise bad_input(f"{HEADER_LENGTH} must be a number of bytes, got {header_length!r}") from None
    if not 0 < n <= len(body):
        raise bad_input(f"{HEADER_LENGTH} is {n}, but the body has {len(body)} bytes")
    return body[:n], memoryview(body)[n:]


def binary_parts(inputs: Sequence[Any], binary: memoryview) -> list[memoryview | None]:
    """Each input's bytes (None for one given as JSON ``data``), cut from ``binary`` in order; the
    sizes must add up to exactly the binary part's length."""
    parts: list[memoryview | None] = []
    offset = 0
    for item in inputs:
        size = (item.parameters or {}).get("binary_data_size")
        if size is None:
            parts.append(None)
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad_input(f"input {item.name!r}: binary_data_size must be a byte count, got {size!r}")
        if offset + size > len(binary):
            raise bad_input(f"input {item.name!r}: binary_data_size {size} runs past the end of the "
                            f"body ({len(binary) - offset} bytes left)")
        parts.append(binary[offset:offset + size])
        offset += size
    if offset != len(binary):
        raise bad_input(f"{len(binary) - offset} bytes after the JSON header belong to no input "
                        "(binary_data_size of the inputs does not add up)")
    return parts


def decode(name: str, datatype: str, shape: Sequence[int], data: Any, raw: memoryview | None) -> np.ndarray:
    """One input tensor as a numpy array of ``shape``, from its bytes or its JSON ``data``."""
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise bad_input(f"input {name!r}: datatype {datatype!r} is not a numeric type of the "
                        f"protocol ({', '.join(DATATYPES)})")
    count = element_count(name, shape)
    if raw is not None:
        if data is not None:
            raise bad_input(f"input {name!r}: has both binary_data_size and JSON data")
        if len(raw) != count * dtype.itemsize:
            raise bad_input(f"input {name!r}: {len(raw)} bytes of binary data for shape {list(shape)} "
                            f"{datatype} ({count * dtype.itemsize} bytes expected)")
        return np.frombuffer(raw, dtype).reshape(shape)
    if data is None:
        raise bad_input(f"input {name!r}: no data (give \"data\" or binary_data_size)")
    try:
        values = np.array(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise bad_input(f"input {name!r}: data must be an array of numbers ({datatype}), nested "
                        "like the shape or flat") from None
    if values.size != count:
        raise bad_input(f"input {name!r}: {values.size} values in data for shape {list(shape)} "
                        f"({count} expected)")
    return values.reshape(shape)


def datatype_of(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype == dtype:
            return name
    raise TypeError(f"no protocol datatype for {array.dtype}")


def encode(outputs: Sequence[tuple[str, np.ndarray, bool]]) -> tuple[list[dict], list[bytes]]:
    """Output tensors (name, array, binary?) as the response's ``outputs`` entries and the binary
    chunks that follow the JSON header, in the same order."""
    entries, chunks = [], []
    for name, array, binary in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if binary:
            raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    return entries, chunks
