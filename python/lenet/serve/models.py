"""The models a server holds: each artifact loaded once at start into an engine, under a name, with
the protocol's view of it (metadata, the input it takes, the outputs it gives).

Nothing here runs on a request's say-so: the set of models is fixed when the server starts (no
endpoint loads a model or names a path)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import bad_input

INPUT_NAME = "input"
VERSION = "1"
# A name that is safe in a URL path and reads as a name, e.g. lenet5-mnist, demo, digits_v2.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ModelSetupError(ValueError):
    """An ARTIFACT argument that cannot be served; the message names it."""


@dataclass
class ServedModel:
    name: str
    source: str          # the ARTIFACT argument it came from
    engine: Any          # lenet_ext.Engine

    @property
    def spec(self):
        return self.engine.spec

    @property
    def size(self) -> int:
        return self.spec.input_size

    def metadata(self) -> dict[str, Any]:
        s, p = self.size, self.spec.preprocessing
        return {
            "name": self.name, "versions": [VERSION], "platform": "lenet_ext",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, 1, s, s]}],
            "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, self.spec.num_classes]},
                        {"name": "classes", "datatype": "INT64", "shape": [-1]}],
            # Not in the protocol's metadata, but what a client needs to make the input and read
            # the output: the flat form accepted too, how pixels become input values, class names.
            "parameters": {"arch": self.spec.arch, "flat_input_shape": [-1, s * s],
                           "class_names": list(self.spec.class_names),
                           "preprocessing": {"ink": p.ink, "pad": p.pad, "scale": p.scale,
                                             "offset": p.offset}},
        }

    def engine_input(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> np.ndarray:
        """The request's one input as the engine's float32 [N,1,S,S]; a 400 naming what is wrong
        with it otherwise (name, datatype, shape, NaN or infinite values)."""
        if list(inputs) != [INPUT_NAME]:
            raise bad_input(f"model {self.name!r} takes one input named {INPUT_NAME!r}, got "
                            f"{', '.join(map(repr, inputs))}")
        x = inputs[INPUT_NAME]
        if datatypes[INPUT_NAME] != "FP32":
            raise bad_input(f"input {INPUT_NAME!r}: datatype {datatypes[INPUT_NAME]} is not accepted; "
                            "send FP32")
        s = self.size
        if x.ndim == 2 and x.shape[1] == s * s:
            x = x.reshape(-1, 1, s, s)
        elif not (x.ndim == 4 and x.shape[1:] == (1, s, s)):
            raise bad_input(f"input {INPUT_NAME!r}: shape {list(x.shape)} is not accepted by model "
                            f"{self.name!r}; send [N, 1, {s}, {s}] or [N, {s * s}]")
        finite = np.isfinite(x)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
            raise bad_input(f"input {INPUT_NAME!r}: NaN or infinite values in {len(bad_rows)} of "
                            f"{len(x)} images (the first is image {bad_rows[0]})")
        return x

    def outputs(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        return {"scores": scores, "classes": scores.argmax(axis=1).astype(np.int64)}


def name_and_path(argument: str) -> tuple[str, str]:
    """``NAME=PATH`` gives the model a name; otherwise it is the pretrained name itself, the
    artifact directory's name, or for a single file its directory's (``art/model.onnx``: art)."""
    from lenet import pretrained

    head, sep, tail = argument.partition("=")
    if sep and NAME.fullmatch(head) and not os.path.exists(argument):
        return head, tail
    p = Path(argument)
    if not p.exists() and pretrained.looks_like_a_name(argument):
        return argument, argument
    resolved = p.resolve()
    name = resolved.parent.name if resolved.is_file() else resolved.name
    return name, argument


def load_models(arguments: list[str], threads: int | None = None) -> dict[str, ServedModel]:
    """Every ARTIFACT argument loaded into an engine, by name. Raises ModelSetupError naming the
    argument that cannot be served (missing, damaged, a name used twice, a name unfit for a URL)."""
    import lenet_ext

    models: dict[str, ServedModel] = {}
    for argument in arguments:
        name, path = name_and_path(argument)
        if not NAME.fullmatch(name):
            raise ModelSetupError(f"{argument}: {name!r} cannot be a model name in a URL; "
                                  "name it with NAME=PATH (letters, digits, _ . -)")
        if name in models:
            raise ModelSetupError(f"{argument}: the name {name!r} is already taken by "
                                  f"{models[name].source}; name one of them with NAME=PATH")
        try:
            engine = lenet_ext.load(path, threads=threads)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelSetupError(f"{argument}: cannot load it ({exc})") from None
        models[name] = ServedModel(name, argument, engine)
    return models
