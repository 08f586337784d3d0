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
UINT8_SIDE = 28      # raw pixel images of this side are accepted besides the model's input size
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

    @property
    def pixel_sides(self) -> list[int]:
        """Sides of the raw UINT8 images taken: 28 (MNIST's) and the model's input size."""
        return sorted({UINT8_SIDE, self.size})

    def metadata(self) -> dict[str, Any]:
        s, p = self.size, self.spec.preprocessing
        return {
            "name": self.name, "versions": [VERSION], "platform": "lenet_ext",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, 1, s, s]}],
            "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, self.spec.num_classes]},
                        {"name": "classes", "datatype": "INT64", "shape": [-1]}],
            # Not in the protocol's metadata, but what a client needs to make the input and read
            # the output: every datatype and shape the input accepts (the protocol's field holds
            # one), how pixels become input values, class names.
            "parameters": {"arch": self.spec.arch, "flat_input_shape": [-1, s * s],
                           "accepted_inputs": self.accepted_inputs(),
                           "class_names": list(self.spec.class_names),
                           "preprocessing": {"ink": p.ink, "pad": p.pad, "scale": p.scale,
                                             "offset": p.offset}},
        }

    def accepted_inputs(self) -> list[dict[str, Any]]:
        """The forms of the input tensor this model takes: normalized FP32 (4-D or flat), or raw
        UINT8 pixels that the engine normalizes itself (the spec's preprocessing: padding a 28x28
        image to the input size, then offset + scale * ink)."""
        s = self.size
        forms = [{"datatype": "FP32", "shape": [-1, 1, s, s]}, {"datatype": "FP32", "shape": [-1, s * s]}]
        for side in self.pixel_sides:
            forms += [{"datatype": "UINT8", "shape": [-1, side, side]},
                      {"datatype": "UINT8", "shape": [-1, 1, side, side]}]
        return forms

    def engine_input(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> np.ndarray:
        """The request's one input as the engine takes it: float32 [N,1,S,S], or the raw uint8
        pixels [N,H,W] as sent; a 400 naming what is wrong with it otherwise (name, datatype,
        shape, NaN or infinite values)."""
        if list(inputs) != [INPUT_NAME]:
            raise bad_input(f"model {self.name!r} takes one input named {INPUT_NAME!r}, got "
                            f"{', '.join(map(repr, inputs))}")
        x = inputs[INPUT_NAME]
        datatype = datatypes[INPUT_NAME]
        if datatype == "UINT8":
            return self._pixels(x)
        if datatype != "FP32":
            raise bad_input(f"input {INPUT_NAME!r}: datatype {datatype} is not accepted; "
                            "send FP32 (normalized) or UINT8 (raw pixels)")
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

    def _pixels(self, x: np.ndarray) -> np.ndarray:
        """UINT8 [N,H,W] or [N,1,H,W], H = W = 28 or the input size, as [N,H,W]."""
        sides = self.pixel_sides
        if x.ndim == 4 and x.shape[1] == 1:
            x = x.reshape(x.shape[0], x.shape[2], x.shape[3])
        if not (x.ndim == 3 and x.shape[1] == x.shape[2] and x.shape[1] in sides):
            shapes = " or ".join(f"[N, {h}, {h}]" for h in sides)
            raise bad_input(f"input {INPUT_NAME!r}: UINT8 shape {list(x.shape)} is not accepted by "
                            f"model {self.name!r}; send raw pixels {shapes} (a channel axis of 1 "
                            "may follow N)")
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
