"""Classifiers for the reader: one batched call per frame, and a confidence that can say "no".

A classifier is anything with ``spec`` (the model's :class:`~lenet.spec.ArchSpec`), ``backend``
(a name for the user) and ``scores(crops)``: uint8 ``[N, 28, 28]`` raw crops in the spec's ink
polarity → float32 ``[N, classes]``, larger = more likely. Backends, first that works wins:

* ``engine``: ``lenet_ext`` (the C++ engine; applies the spec's preprocessing itself), from an
  artifact directory / ``.onnx`` / ``.torchscript.pt`` / ``.pt2``, or from a checkpoint's weights;
* ``onnxruntime``: the artifact's verified ``model.onnx`` in ONNX Runtime, with the spec's
  preprocessing in numpy: what reads, without torch, a network the engine does not run (its
  kernels are written for LeNet-5's layer sizes; ``lenet5-wide`` has twice the maps);
* ``torch``: the PyTorch model, from an artifact (``lenet.artifacts.load_module``) or a checkpoint
  (``lenet.checkpoint.load_model``), with the spec's preprocessing from ``lenet.data.preprocess``.

Confidence and rejection
------------------------
Linear heads: the softmax of the scores; its maximum is the confidence.

RBF head (``lenet5``): the scores are minus the distances y_i from F6's output to the ten fixed
prototypes. A softmax over −y_i alone is very peaky and says nothing about how *far* the input is
from every digit: a letter far from all prototypes can still be "99 % a 4". The model was trained
with the paper's MAP criterion, E = y_D + log(e^{−j} + Σ_i e^{−y_i}), which is the negative log of
the posterior of a model that has an 11th, "rubbish" class of constant energy j. We use exactly
that posterior:  P(i) = e^{−y_i} / (e^{−j} + Σ_k e^{−y_k}).  An input far from every prototype
(y_min ≫ j) gets a confidence near 0, one between two prototypes about ½, and a clear digit near 1
— distance and margin in one number, with the same j the training used.

The reader averages these probabilities over nine small re-registrations of each crop
(:func:`lenet.digits.normalize.jitters`, all in the frame's one batched call) and refuses a
candidate whose averaged best probability is below ``--min-confidence``. A network trained on
digits alone has no notion of "not a digit": it maps some letters (H, K, M, W → 4; R → 8)
confidently onto a prototype, and no threshold can undo that; the bundled reader model is trained
with a rubbish class (target index 10 of ``lecun_map_loss``: letters, punctuation, smudges, lines,
touching digit pairs, border-cut digits; :mod:`lenet.digits.kit.training_data`), which is what lets
the confidence refuse them. Its default threshold is chosen on validation crops (digits vs
rubbish, tools/reader_model.py) and stored in the model's manifest (:func:`reader_settings`),
with the two error rates it gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lenet.messages import first_line
from lenet.quant import model_input  # the spec's preprocessing in numpy (no torch)
from lenet.spec import RUBBISH_ENERGY, ArchSpec

BACKENDS = ("auto", "engine", "onnxruntime", "torch")

# The reader model that ships with the package (made by `make reader-model`, tools/reader_model.py).
DEFAULT_MODEL = Path(__file__).resolve().with_name("model")


def reader_settings(path: str | os.PathLike) -> dict:
    """The reader settings an artifact directory's manifest records ("reader": the default
    min_confidence chosen on validation data, the recipe, the figures); {} when none."""
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        return dict(json.loads(manifest.read_text()).get("reader") or {})
    except (OSError, ValueError, AttributeError):
        return {}  # an unreadable manifest is reported by the loader itself


class ModelLoadError(RuntimeError):
    """A --model path that cannot be loaded by any backend; the message names the path."""


class Classifier(Protocol):
    spec: ArchSpec
    backend: str

    def scores(self, crops: np.ndarray) -> np.ndarray: ...


def confidences(scores: np.ndarray, spec: ArchSpec, j: float | None = None) -> np.ndarray:
    """Per-class probabilities [N, classes] (rows sum to ≤ 1; the rest is "not a digit")."""
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        return s.reshape(0, spec.num_classes)
    if spec.head == "rbf":
        if j is None:
            j = RUBBISH_ENERGY
        logits = np.concatenate([s, np.full((len(s), 1), -j)], axis=1)
    else:
        logits = s
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p[:, :spec.num_classes]


class EngineClassifier:
    backend = "lenet_ext"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.spec = engine.spec

    def scores(self, crops: np.ndarray) -> np.ndarray:
        return np.asarray(self.engine.scores(_polarity(crops, self.spec)), np.float32)


class OnnxRuntimeClassifier:
    backend = "onnxruntime"

    def __init__(self, session: Any, spec: ArchSpec) -> None:
        self.session, self.spec = session, spec

    def scores(self, crops: np.ndarray) -> np.ndarray:
        x = model_input(self.spec, _polarity(crops, self.spec))
        return np.asarray(self.session.run(["scores"], {"input": x})[0], np.float32)


class TorchClassifier:
    backend = "torch"

    def __init__(self, model: Any) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()
        self.spec = model.spec

    def scores(self, crops: np.ndarray) -> np.ndarray:
        from lenet.data import preprocess

        crops = _polarity(crops, self.spec)
        with self.torch.inference_mode():
            x = preprocess(self.torch.from_numpy(np.ascontiguousarray(crops)), self.spec)
            return self.model(x).numpy().astype(np.float32)


def _polarity(crops: np.ndarray, spec: ArchSpec) -> np.ndarray:
    """The reader makes white-on-black crops; a model whose raw inputs are black on white gets
    them inverted, as its preprocessing contract says."""
    return 255 - crops if spec.preprocessing.ink == "black_on_white" else crops


def _is_checkpoint(p: Path) -> bool:
    return p.is_file() and p.suffix == ".pt" and not p.name.endswith(".torchscript.pt")


def _engine(p: Path) -> EngineClassifier:
    import lenet_ext

    if _is_checkpoint(p):
        from lenet.checkpoint import load_checkpoint

        state = load_checkpoint(p)
        return EngineClassifier(lenet_ext.from_state_dict(state["spec"], state["model"]))
    return EngineClassifier(lenet_ext.load(p))


def _onnxruntime(p: Path) -> OnnxRuntimeClassifier:
    import onnxruntime as ort

    from lenet.artifacts import FILES, load_artifact

    if _is_checkpoint(p):
        raise ValueError("a training checkpoint has no ONNX graph (lenet-export makes one)")
    if p.is_dir():
        p = p / FILES["onnx"]  # hash-checked against the directory's manifest by load_artifact
    art = load_artifact(p)  # the graph must be the plain one folded from the stored parameters
    if art.format != "onnx":
        raise ValueError(f"{p}: ONNX Runtime runs a .onnx file, not {art.format}")
    session = ort.InferenceSession(str(art.file), providers=["CPUExecutionProvider"])
    return OnnxRuntimeClassifier(session, art.spec)


def _torch(p: Path) -> TorchClassifier:
    if _is_checkpoint(p):
        from lenet.checkpoint import load_model

        return TorchClassifier(load_model(p)[0])
    from lenet.artifacts import load_module

    return TorchClassifier(load_module(p))


def load_classifier(path: str | os.PathLike, backend: str = "auto") -> Classifier:
    """A classifier for ``path`` (artifact directory, ``.onnx``/``.torchscript.pt``/``.pt2``, or a
    training checkpoint ``.pt``). ``backend``: ``auto`` (the engine, else ONNX Runtime, else
    torch), ``engine``, ``onnxruntime``, ``torch``. Raises :class:`ModelLoadError` naming the path
    and each backend's reason."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such model file or directory")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected {', '.join(BACKENDS)}")
    reasons = []
    if backend in ("auto", "engine"):
        try:
            return _engine(p)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next backend
            reasons.append(f"lenet_ext: {first_line(exc, type(exc).__name__)}")
    if backend in ("auto", "onnxruntime"):
        try:
            return _onnxruntime(p)
        except Exception as exc:  # noqa: BLE001
            reasons.append(f"onnxruntime: {first_line(exc, type(exc).__name__)}")
    if backend in ("auto", "torch"):
        try:
            return _torch(p)
        except Exception as exc:  # noqa: BLE001
            reasons.append(f"torch: {first_line(exc, type(exc).__name__)}")
    raise ModelLoadError(f"{p}: cannot load the model ({'; '.join(reasons)})")
