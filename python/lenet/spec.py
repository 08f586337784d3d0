"""The architecture spec: one JSON object that describes a network completely (docs/ARCHITECTURE.md).

It travels with every checkpoint and artifact, so every part (training, export, the engine, the
digit reader) rebuilds the same network and applies the same preprocessing from it.

Preprocessing contract: a raw uint8 image (white ink on black, as MNIST) becomes model input by
padding ``pad`` background pixels on each side (28×28 → ``input_size``) and mapping every pixel
``p`` to ``offset + scale * p / 255``. For ``lenet5`` this is the paper's −0.1 background and
1.175 ink.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

ARCHS = ("lenet5", "lenet-d2l", "lenet-relu", "lenet5-wide")
ACTIVATIONS = ("scaled_tanh", "sigmoid", "relu")
POOLINGS = ("trainable", "avg", "max")
C3_TABLES = ("lecun", "full")
HEADS = ("rbf", "linear")
INKS = ("white_on_black", "black_on_white")

DIGIT_NAMES = tuple(str(d) for d in range(10))
# The constant energy j of the RBF head's MAP criterion (LeCun et al. 1998, eq. 9): the rubbish
# class that training pushes non-digits towards (lecun_map_loss) and the reader's confidence uses.
RUBBISH_ENERGY = 10.0
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# The size every dataset here is stored at; `pad` brings it to the model's input size.
RAW_SIZE = 28

# C3 connection table (LeCun et al. 1998, Table I): output map -> the S2 maps it reads. Here, not
# in lenet.models, so that torch-free readers (lenet.artifacts for ONNX, lenet_ext) share it.
LECUN_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def c3_slot_positions(table: tuple[tuple[int, ...], ...] = LECUN_C3_TABLE
                      ) -> tuple[tuple[int, int], ...]:
    """(output map, input map) of every C3 weight slot, in slot order: where the table's sparse
    ``c3.weight[slot]`` kernels sit in the dense ``[16, 6, 5, 5]`` kernel (zeros elsewhere). The
    one home of that mapping: the training module, the export's plain graph and the engine's
    loader all take it from here."""
    return tuple((out, i) for out, inputs in enumerate(table) for i in inputs)


# What an arch name fixes (see ArchSpec.validate); spec_for has the full specs.
ARCH_FAMILY: dict[str, dict[str, Any]] = {
    "lenet5": {"activation": "scaled_tanh", "input_size": 32, "c1_padding": 0},
    "lenet-d2l": {"activation": "sigmoid", "input_size": 28, "c1_padding": 2},
    "lenet-relu": {"activation": "relu", "input_size": 28, "c1_padding": 2},
    # LeNet-5 with twice the maps: LeCun's Table I connects 6 maps to 16, so C3 is full here.
    "lenet5-wide": {"activation": "scaled_tanh", "input_size": 32, "c1_padding": 0, "c3_table": "full"},
}

# Layer widths (C1 maps, C3 maps, C5 units) by arch; F6 stays 84 (the RBF prototypes are 7×12).
LENET_WIDTHS = (6, 16, 120)
ARCH_WIDTHS: dict[str, tuple[int, int, int]] = {"lenet5-wide": (12, 32, 240)}
# The archs the C++ engine (lenet_ext) runs: its kernels are written for LeNet-5's layer sizes.
ENGINE_ARCHS = tuple(a for a in ARCHS if a not in ARCH_WIDTHS)


def layer_widths(spec: "ArchSpec") -> tuple[int, int, int]:
    """(C1 maps, C3 maps, C5 units) of the network ``spec`` describes."""
    return ARCH_WIDTHS.get(spec.arch, LENET_WIDTHS)


class SpecError(ValueError):
    """A spec that names something the toolkit does not know, or is inconsistent."""


@dataclass(frozen=True)
class Preprocessing:
    ink: str = "white_on_black"
    pad: int = 0
    scale: float = 1.0
    offset: float = 0.0

    def normalize(self, pixel: float) -> float:
        """Model input value of one raw uint8 pixel value (0..255)."""
        ink = pixel / 255.0 if self.ink == "white_on_black" else 1.0 - pixel / 255.0
        return self.offset + self.scale * ink


@dataclass(frozen=True)
class ArchSpec:
    arch: str
    input_size: int
    c1_padding: int
    activation: str
    pooling: str
    c3_table: str
    head: str
    num_classes: int = 10
    class_names: tuple[str, ...] = DIGIT_NAMES
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        # Types first: a spec read from a file is untrusted, and a float size or a NaN scale would
        # otherwise reach the kernels (a NaN scale gives every image the same scores).
        for name, value in (("input_size", self.input_size), ("c1_padding", self.c1_padding),
                            ("num_classes", self.num_classes),
                            ("preprocessing.pad", self.preprocessing.pad)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{name} must be an integer, got {value!r}")
        for name, value in (("preprocessing.scale", self.preprocessing.scale),
                            ("preprocessing.offset", self.preprocessing.offset)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpecError(f"{name} must be a finite number, got {value!r}")
        if self.preprocessing.scale == 0:
            raise SpecError("preprocessing.scale is 0: every image would become the same input")
        for name, value, allowed in (
            ("arch", self.arch, ARCHS),
            ("activation", self.activation, ACTIVATIONS),
            ("pooling", self.pooling, POOLINGS),
            ("c3_table", self.c3_table, C3_TABLES),
            ("head", self.head, HEADS),
            ("preprocessing.ink", self.preprocessing.ink, INKS),
        ):
            if value not in allowed:
                raise SpecError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        if self.input_size not in (28, 32):
            raise SpecError(f"input_size must be 28 or 32, got {self.input_size}")
        if self.input_size + 2 * self.c1_padding != 32:
            raise SpecError("input_size + 2*c1_padding must be 32 so C1 yields 28x28 maps "
                            f"(got input_size={self.input_size}, c1_padding={self.c1_padding})")
        if RAW_SIZE + 2 * self.preprocessing.pad != self.input_size:
            raise SpecError(f"preprocessing.pad={self.preprocessing.pad} does not bring "
                            f"{RAW_SIZE}x{RAW_SIZE} images to input_size={self.input_size}")
        if self.head == "rbf" and self.num_classes != 10:
            raise SpecError("the RBF head has 10 fixed digit prototypes; num_classes must be 10")
        if self.num_classes < 2:
            raise SpecError(f"num_classes must be at least 2, got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise SpecError(f"{len(self.class_names)} class_names for {self.num_classes} classes")
        if not all(isinstance(n, str) and n for n in self.class_names):
            raise SpecError("class_names must be non-empty strings")
        if len(set(self.class_names)) != len(self.class_names):
            dup = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            raise SpecError(f"duplicate class name(s): {', '.join(map(repr, dup))}")
        # The arch name fixes the nonlinearity and the input geometry (pooling, C3 table and head
        # are per-spec options the engine supports for every arch it runs; lenet5-wide's C3 must
        # be full): a spec that says lenet-relu over lenet5's scaled tanh would label one network
        # as another.
        family = ARCH_FAMILY[self.arch]
        for name in family:
            if getattr(self, name) != family[name]:
                raise SpecError(f"{self.arch} has {name}={family[name]!r}, but the spec says "
                                f"{getattr(self, name)!r}")

    def with_classes(self, class_names: tuple[str, ...] | list[str]) -> "ArchSpec":
        names = tuple(class_names)
        return replace(self, class_names=names, num_classes=len(names))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        if not isinstance(d, dict):
            raise SpecError(f"a spec must be a JSON object, got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"unknown spec field(s): {', '.join(sorted(unknown))}")
        missing = known - set(d)
        if missing:
            raise SpecError(f"spec is missing field(s): {', '.join(sorted(missing))}")
        pre = d["preprocessing"]
        if not isinstance(pre, dict) or set(pre) != set(Preprocessing.__dataclass_fields__):
            raise SpecError(f"bad preprocessing block: {pre!r}")
        if not isinstance(d["class_names"], (list, tuple)):
            raise SpecError(f"class_names must be a list, got {d['class_names']!r}")
        try:
            return cls(**{**d, "class_names": tuple(d["class_names"]),
                          "preprocessing": Preprocessing(**pre)})
        except TypeError as exc:
            raise SpecError(f"bad spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "ArchSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None
        except UnicodeDecodeError as exc:  # bytes from a file: json.loads decodes them itself
            raise SpecError(f"spec is not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None


def spec_for(arch: str, class_names: tuple[str, ...] | list[str] = DIGIT_NAMES) -> ArchSpec:
    """The spec of a named architecture (the `--arch` names; README, lenet-train)."""
    if arch in ("lenet5", "lenet5-wide"):
        # LeCun et al. 1998: 32x32 input, background -0.1 and ink 1.175.
        spec = ArchSpec(arch, 32, 0, "scaled_tanh", "trainable", ARCH_FAMILY[arch].get("c3_table", "lecun"), "rbf",
                        preprocessing=Preprocessing("white_on_black", 2, 1.275, -0.1))
    elif arch == "lenet-d2l":
        # d2l.ai "LeNet": 28x28 ToTensor() input in [0, 1], C1 padding 2, sigmoid, avg-pool.
        spec = ArchSpec(arch, 28, 2, "sigmoid", "avg", "full", "linear",
                        preprocessing=Preprocessing("white_on_black", 0, 1.0, 0.0))
    elif arch == "lenet-relu":
        # The common modern variant; input standardized with the MNIST mean/std.
        mean, std = 0.1307, 0.3081
        spec = ArchSpec(arch, 28, 2, "relu", "max", "full", "linear",
                        preprocessing=Preprocessing("white_on_black", 0, 1.0 / std, -mean / std))
    else:
        raise SpecError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if tuple(class_names) != spec.class_names:
        if spec.head == "rbf" and len(class_names) != 10:
            raise SpecError(f"{arch} has a 10-class RBF head; got {len(class_names)} classes")
        spec = spec.with_classes(class_names)
    return spec


def weight_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of the network a spec describes, without building it (torch-free
    readers check artifacts against this; a test checks it against ``LeNet(spec).state_dict()``)."""
    c1, c3, c5 = layer_widths(spec)
    shapes: dict[str, tuple[int, ...]] = {"c1.weight": (c1, 1, 5, 5), "c1.bias": (c1,)}
    if spec.pooling == "trainable":
        shapes.update({"s2.coef": (c1,), "s2.bias": (c1,)})
    if spec.c3_table == "lecun":
        shapes["c3.weight"] = (sum(len(t) for t in LECUN_C3_TABLE), 5, 5)
    else:
        shapes["c3.weight"] = (c3, c1, 5, 5)
    shapes["c3.bias"] = (c3,)
    if spec.pooling == "trainable":
        shapes.update({"s4.coef": (c3,), "s4.bias": (c3,)})
    shapes.update({"c5.weight": (c5, c3, 5, 5), "c5.bias": (c5,),
                   "f6.weight": (84, c5), "f6.bias": (84,)})
    if spec.head == "rbf":
        shapes["output.prototypes"] = (10, 84)
    else:
        shapes.update({"output.weight": (spec.num_classes, 84), "output.bias": (spec.num_classes,)})
    return shapes
