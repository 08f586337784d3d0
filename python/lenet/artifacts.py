"""Reading exported artifacts back: spec + weights, with the manifest's hashes checked first.

An artifact directory (written by ``lenet-export``) holds ``model.torchscript.pt``, ``model.onnx``,
``model.pt2`` (any subset) and ``manifest.json``, whose ``artifacts`` block records every file's
SHA-256 and size. :func:`load_artifact` accepts the directory or any one of the files; whenever a
manifest is present it refuses a file whose bytes differ from what was exported, naming the file,
before the file is parsed.

Every file holds the plain deployment graph (:mod:`lenet.plain`) plus the spec (``lenet.json``)
and the paper's parameters (``lenet.params``). The readers return those parameters as float32
numpy arrays under the PyTorch state-dict names (``c1.weight``, ``s2.coef``, ``c3.weight``,
``output.prototypes`` …), so ``lenet_ext`` and ``lenet.digits`` never need to know which format
they came from, and they check that the graph's weights are exactly what folding those
parameters gives. No reader runs code from the file or imports torch: ONNX is protobuf, and the
TorchScript and ``.pt2`` zip archives are read member by member (their pickles are never opened).

Loading a directory reads ``model.onnx`` when it is there, else ``model.pt2``, else
``model.torchscript.pt``, and checks that the spec inside the file is the manifest's spec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .messages import first_line
from .plain import PARAMS_KEY, decode_params, fold, plain_onnx_ops
from .spec import ArchSpec, SpecError, weight_shapes

SPEC_KEY = "lenet.json"  # TorchScript _extra_files / .pt2 extra_files / ONNX metadata_props key
MANIFEST = "manifest.json"
# format name -> file name inside an artifact directory
FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "pt2": "model.pt2"}
# The INT8 model as a QDQ ONNX graph (lenet-export --precision int8); not a weights source for
# loaders (the float formats are), but listed and hashed in the manifest like them.
INT8_FILE = "model.int8.onnx"
# Which file a directory's weights are read from, first present wins (see module docstring).
DIR_READ_ORDER = ("onnx", "pt2", "torchscript")


class ArtifactError(ValueError):
    """An artifact that is missing, corrupt, modified since export, or inconsistent. The message
    names the file."""


@dataclass
class Artifact:
    path: Path                       # what was asked for (directory or file)
    file: Path                       # the file the weights were read from
    format: str                      # "torchscript" | "onnx" | "pt2"
    spec: ArchSpec
    state_dict: dict[str, np.ndarray]  # float32, PyTorch state-dict names and shapes
    manifest: dict[str, Any] | None


def format_of(path: Path) -> str:
    name = path.name
    for fmt, file_name in FILES.items():
        suffix = file_name[len("model"):]  # ".torchscript.pt", ".onnx", ".pt2"
        if name.endswith(suffix):
            return fmt
    raise ArtifactError(f"{path}: expected an artifact directory or a .torchscript.pt, .onnx "
                        "or .pt2 file")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory}: no {MANIFEST} (not an artifact directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        raise ArtifactError(f"{path}: no 'spec' object in the manifest")
    if not isinstance(manifest.get("artifacts"), dict):
        raise ArtifactError(f"{path}: no 'artifacts' object in the manifest")
    return manifest


def verify_file(manifest: dict[str, Any], directory: Path, name: str) -> None:
    """Refuse a file that the manifest does not list or whose size/SHA-256 differ from it."""
    path = directory / name
    entry = manifest["artifacts"].get(name)
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ArtifactError(f"{path}: not listed in {directory / MANIFEST}; refusing an "
                            "unrecorded file")
    if not path.is_file():
        raise ArtifactError(f"{path}: listed in {MANIFEST} but missing")
    size = path.stat().st_size
    if "bytes" in entry and int(entry["bytes"]) != size:
        raise ArtifactError(f"{path}: modified since export ({size} bytes, {MANIFEST} records "
                            f"{entry['bytes']}: truncated or replaced?)")
    if sha256_file(path) != entry["sha256"]:
        raise ArtifactError(f"{path}: modified since export (its sha256 does not match {MANIFEST})")


def verify_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Check every file the manifest lists; return the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name in manifest["artifacts"]:
        verify_file(manifest, directory, name)
    return manifest


def _spec(text: str | bytes, where: Path) -> ArchSpec:
    try:
        return ArchSpec.from_json(text)
    except SpecError as exc:
        raise ArtifactError(f"{where}: {exc}") from None


@contextlib.contextmanager
def quiet_torch_deprecations():
    """TorchScript and the TorchScript-based ONNX exporter are deprecated upstream but are what
    libtorch C++ and OpenCV DNN consume (see lenet.exporters); silence just those notices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning,
                                message=r".*torch\.jit.*deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r".*(legacy TorchScript-based ONNX export|feature will be removed)")
        yield


# A model file is untrusted input: no member of a zip archive is read past this size.
MAX_MEMBER_BYTES = 64 << 20


def _paper_params(spec: ArchSpec, text: str | bytes | None, path: Path, where: str
                  ) -> dict[str, np.ndarray]:
    if not text:
        raise ArtifactError(f"{path}: no {PARAMS_KEY!r} in the {where} (exported by an older "
                            "lenet-export? re-export the checkpoint)")
    try:
        return decode_params(spec, text)
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def _graph_mismatch(path: Path, name: str) -> ArtifactError:
    return ArtifactError(f"{path}: graph weight {name!r} does not match the paper parameters "
                         f"stored in {PARAMS_KEY!r} (the file was altered after export)")


def read_onnx(path: Path) -> tuple[ArchSpec, dict[str, np.ndarray]]:
    """Spec and paper parameters of a ``.onnx`` file (plain protobuf: nothing in it runs). The
    graph's weights must be exactly the plain form folded from those parameters."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends on damaged files
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if SPEC_KEY not in meta:
        raise ArtifactError(f"{path}: no {SPEC_KEY!r} spec in the ONNX metadata_props")
    spec = _spec(meta[SPEC_KEY], path)
    params = _paper_params(spec, meta.get(PARAMS_KEY), path, "ONNX metadata_props")
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        ops[key] = ops.get(key, 0) + 1
    if ops != plain_onnx_ops(spec):
        raise ArtifactError(f"{path}: the graph is not the plain {spec.arch} graph that "
                            f"lenet-export writes (operators {dict(sorted(ops.items()))})")
    inits = {init.name: init for init in proto.graph.initializer}
    for name, want in _folded(spec, params, path).items():
        if name not in inits:
            raise ArtifactError(f"{path}: the graph has no weight {name!r} (not a plain "
                                "lenet-export graph)")
        try:
            got = numpy_helper.to_array(inits[name])
        except Exception as exc:  # a damaged tensor (e.g. raw_data of the wrong length)
            raise ArtifactError(f"{path}: initializer {name!r} unreadable "
                                f"({type(exc).__name__})") from None
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            raise _graph_mismatch(path, name)
    return spec, params


def _folded(spec: ArchSpec, params: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    # check_weights first: folding NaN or mis-shaped parameters would give a confusing message.
    return fold(spec, check_weights(spec, params, path))


class _Zip:
    """Members of a TorchScript / .pt2 archive, read as bytes (never unpickled). Both formats put
    every member under one top-level folder whose name varies."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ArtifactError(f"{path}: not a readable {kind} file ({type(exc).__name__}: "
                                f"{first_line(exc)})") from None
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise ArtifactError(f"{path}: not a {kind} archive (no single top-level folder)")
        self.root = roots.pop()

    def read(self, member: str, required: bool = True) -> bytes | None:
        name = f"{self.root}/{member}"
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            if required:
                raise ArtifactError(f"{self.path}: no {member!r} in the {self.kind} archive") from None
            return None
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArtifactError(f"{self.path}: {member!r} is {info.file_size:,} bytes, more than "
                                f"a LeNet needs")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise ArtifactError(f"{self.path}: {member!r} unreadable ({type(exc).__name__}: "
                                f"{first_line(exc)})") from None

    def members(self, folder: str) -> list[str]:
        prefix = f"{self.root}/{folder}"
        return [n[len(self.root) + 1:] for n in self.zip.namelist() if n.startswith(prefix)]

    def spec_and_params(self) -> tuple[ArchSpec, dict[str, np.ndarray]]:
        if self.read("byteorder", required=False) not in (None, b"little"):
            raise ArtifactError(f"{self.path}: big-endian archives are not supported")
        text = self.read(f"extra/{SPEC_KEY}", required=False)
        if not text:
            raise ArtifactError(f"{self.path}: no {SPEC_KEY!r} in the {self.kind} extra files")
        spec = _spec(text, self.path)
        params = _paper_params(spec, self.read(f"extra/{PARAMS_KEY}", required=False),
                               self.path, f"{self.kind} extra files")
        return spec, params


def _read_torchscript(path: Path) -> tuple[ArchSpec, dict[str, np.ndarray]]:
    """Spec and paper parameters of a TorchScript archive, read from its extra files; nothing is
    unpickled and no TorchScript is compiled. The archive's tensor storages (raw bytes; which
    weight each one is would need the pickle) must hold every plain-graph weight folded from
    those parameters."""
    archive = _Zip(path, "TorchScript")
    spec, params = archive.spec_and_params()
    storages = {archive.read(m) for m in archive.members("data/")}
    for name, want in _folded(spec, params, path).items():
        if want.tobytes() not in storages:
            raise _graph_mismatch(path, name)
    return spec, params


def _read_pt2(path: Path) -> tuple[ArchSpec, dict[str, np.ndarray]]:
    """Spec and paper parameters of a ``torch.export`` archive, read from its extra files without
    ``torch.export.load`` (which can fall back to unrestricted pickle). Its weights are raw bytes
    named in a JSON config; each must be the plain-graph weight folded from those parameters."""
    archive = _Zip(path, ".pt2")
    spec, params = archive.spec_and_params()
    try:
        config = json.loads(archive.read("data/weights/model_weights_config.json"))["config"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise ArtifactError(f"{path}: the .pt2 weights config is not the expected JSON") from None
    for name, want in _folded(spec, params, path).items():
        entry = config.get(name) if isinstance(config, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
            raise ArtifactError(f"{path}: the graph has no weight {name!r} (not a plain "
                                "lenet-export graph)")
        if entry.get("use_pickle") is not False:
            raise ArtifactError(f"{path}: weight {name!r} is stored as a pickle; refusing it")
        data = archive.read(f"data/weights/{entry['path_name']}")
        if data != want.tobytes():
            raise _graph_mismatch(path, name)
    return spec, params


_READERS = {"onnx": read_onnx, "torchscript": _read_torchscript, "pt2": _read_pt2}


def check_weights(spec: ArchSpec, raw: Any, where: str | os.PathLike) -> dict[str, np.ndarray]:
    """Exactly the spec's state-dict entries (numpy arrays or tensors) as finite float32 arrays,
    or an ArtifactError naming ``where`` and the weight."""
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(spec).items():
        if name not in raw:
            raise ArtifactError(f"{where}: missing weight {name!r} (a {spec.arch} network needs it)")
        value = raw[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        a = np.asarray(value)
        if tuple(a.shape) != shape:
            raise ArtifactError(f"{where}: weight {name!r} has shape {tuple(a.shape)}, "
                                f"expected {shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ArtifactError(f"{where}: weight {name!r} has dtype {a.dtype}, expected float")
        # A private writable copy: onnx hands out read-only views of the protobuf buffer.
        a = np.array(a, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(a).all():
            raise ArtifactError(f"{where}: weight {name!r} contains NaN or Inf")
        out[name] = a
    return out


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Spec and weights from an artifact directory, one ``.torchscript.pt``/``.onnx``/``.pt2``
    file, or the name of pretrained weights the package ships (:mod:`lenet.pretrained`). With a manifest (the directory's, or ``manifest.json`` next to the file), the file is
    hash-checked before it is read and its spec must equal the manifest's."""
    from . import pretrained

    p = pretrained.resolve(path)  # a shipped name such as "lenet5-mnist" is its directory
    if not p.exists():
        from .paths import missing_reason

        if pretrained.looks_like_a_name(path):
            raise ArtifactError(f"{p}: no such file or directory, and {pretrained.unknown(str(path))}")
        reason = missing_reason(p)
        raise ArtifactError(f"{p}: " + ("no such file or directory" if reason == "no such file" else reason))
    manifest: dict[str, Any] | None = None
    if p.is_dir():
        manifest = verify_manifest(p)
        for fmt in DIR_READ_ORDER:
            if FILES[fmt] in manifest["artifacts"]:
                file = p / FILES[fmt]
                break
        else:
            raise ArtifactError(f"{p / MANIFEST}: lists none of {', '.join(FILES.values())}")
    else:
        file = p
        fmt = format_of(p)
        if (p.parent / MANIFEST).is_file():
            manifest = read_manifest(p.parent)
            verify_file(manifest, p.parent, p.name)
    spec, raw = _READERS[fmt](file)
    if manifest is not None:
        manifest_spec = _spec(json.dumps(manifest["spec"]), file.parent / MANIFEST)
        if manifest_spec != spec:
            raise ArtifactError(f"{file}: its spec differs from the one in {MANIFEST}")
    return Artifact(p, file, fmt, spec, check_weights(spec, raw, file), manifest)


def load_module(path: str | os.PathLike):
    """A runnable PyTorch model (``LeNet``, eval mode, CPU) with an artifact's verified weights.
    Rebuilt from the spec rather than deserialized, so every format yields the same module."""
    import torch

    from .models import LeNet

    art = load_artifact(path)
    model = LeNet(art.spec)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in art.state_dict.items()})
    return model.eval()
