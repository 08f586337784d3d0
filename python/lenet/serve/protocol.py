"""The Open Inference Protocol's inference request and response (REST): the request's schema,
reading a body into tensors, and writing the response body with the chosen outputs.

The schema is checked by pydantic; a body that fails it is a 400 whose message names the field
(the protocol's error format, not FastAPI's 422 ``{"detail": ...}``). Tensor payloads stay
``Any`` in the schema and are converted by :mod:`.tensors` straight to numpy, so a large JSON
array is not validated element by element twice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, StrictInt, ValidationError

from . import tensors
from .errors import bad_input


class RequestInput(BaseModel):
    name: str
    shape: list[StrictInt]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def schema_message(exc: ValidationError) -> str:
    """The first schema violation in words: where it is and what is wrong."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid inference request: {where + ': ' if where else ''}{first['msg']}{more}"


@dataclass
class ParsedRequest:
    request: InferenceRequest
    inputs: dict[str, np.ndarray]   # by name, in the request's order


def parse(body: bytes, header_length: str | None) -> ParsedRequest:
    """A request body (JSON, or JSON + binary tensors) as its schema and its input arrays."""
    header, binary = tensors.split_body(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise bad_input(schema_message(exc)) from None
    names = [item.name for item in request.inputs]
    if len(set(names)) != len(names):
        raise bad_input(f"inputs: the same name appears twice ({', '.join(names)})")
    parts = tensors.binary_parts(request.inputs, binary)
    arrays = {item.name: tensors.decode(item.name, item.datatype, item.shape, item.data, raw)
              for item, raw in zip(request.inputs, parts)}
    return ParsedRequest(request, arrays)


def _flag(parameters: dict[str, Any] | None, key: str, default: bool) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise bad_input(f"parameter {key} must be true or false, got {value!r}")
    return value


def output_plan(request: InferenceRequest, names: list[str]) -> list[tuple[str, bool]]:
    """The outputs the request asks for (all when it names none), each with whether it goes as
    binary data: its own ``binary_data`` parameter, else the request's ``binary_data_output``.
    Checked before any inference runs."""
    binary_default = _flag(request.parameters, "binary_data_output", False)
    if request.outputs is None:
        return [(name, binary_default) for name in names]
    plan = []
    for out in request.outputs:
        if out.name not in names:
            raise bad_input(f"unknown output {out.name!r}; this model has: {', '.join(names)}")
        if (out.parameters or {}).get("classification"):
            raise bad_input(f"output {out.name!r}: the classification parameter is not supported; "
                            f"the model's outputs are {', '.join(names)}")
        plan.append((out.name, _flag(out.parameters, "binary_data", binary_default)))
    return plan


def response_body(model_name: str, model_version: str, request: InferenceRequest,
                  plan: list[tuple[str, bool]], arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The response body and its content headers: JSON alone, or the JSON header followed by the
    binary outputs with its length in ``Inference-Header-Content-Length``."""
    entries, chunks = tensors.encode([(name, arrays[name], binary) for name, binary in plan])
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *chunks]), {"Content-Type": "application/octet-stream",
                                         tensors.HEADER_LENGTH: str(len(header))}
