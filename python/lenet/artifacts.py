"""Reading exported artifacts back: spec + weights, with the manifest's hashes checked first.

An artifact directory (written by ``lenet-export``) holds ``model.torchscript.pt``, ``model.onnx``,
``model.pt2`` (any subset) and ``manifest.json``, whose ``artifacts`` block records every file's
SHA-256 and size. :func:`load_artifact` accepts the directory or any one of the files; whenever a
manifest is present it refuses a file whose bytes differ from what was exported, naming the file,
before the file is parsed. Weights come back as float32 numpy arrays under the PyTorch state-dict
names (``c1.weight``, ``s2.coef``, ``c3.weight``, ``output.prototypes`` …), so ``lenet_ext`` and
``lenet.digits`` never need to know which format they came from.

Loading a directory reads the weights from ``model.onnx`` when it is there (plain protobuf, no code
runs), else ``model.pt2``, else ``model.torchscript.pt``, and checks that the spec inside the file
is the manifest's spec. No reader runs code from the file: ONNX is protobuf, a ``.pt2`` is read as
a zip of JSON and raw tensors (never through ``torch.export.load``), and a TorchScript file as a
zip whose ``data.pkl`` is unpickled into plain arrays by a reader that knows five names (never
through ``torch.jit.load``, which runs the file's TorchScript code). None of them imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .spec import ArchSpec, SpecError, weight_shapes

SPEC_KEY = "lenet.json"  # TorchScript _extra_files / .pt2 extra_files / ONNX metadata_props key
MANIFEST = "manifest.json"
# format name -> file name inside an artifact directory
FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "pt2": "model.pt2"}
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


def read_onnx(path: Path) -> tuple[ArchSpec, dict[str, np.ndarray]]:
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
    arrays: dict[str, np.ndarray] = {}
    for init in proto.graph.initializer:
        try:
            arrays[init.name] = numpy_helper.to_array(init)
        except Exception as exc:  # a damaged tensor (e.g. raw_data of the wrong length)
            raise ArtifactError(f"{path}: initializer {init.name!r} unreadable "
                                f"({type(exc).__name__})") from None
    return spec, arrays


# Storage types a TorchScript archive's data.pkl may name, as numpy dtypes.
_TS_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _ScriptObject:
    """What a ``__torch__.*`` module in data.pkl becomes: its attributes, nothing callable."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a module's state is not a dict")
        self.__dict__.update(state)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    count = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
    if offset < 0 or any(s < 0 for s in stride) or offset + count > storage.size:
        raise pickle.UnpicklingError("a tensor reaches outside its storage")
    if int(np.prod(size, dtype=np.float64)) > 1 << 28:  # stride-0 views could claim any size
        raise pickle.UnpicklingError(f"a tensor of shape {size} is larger than any LeNet's")
    view = np.lib.stride_tricks.as_strided(storage[offset:], size,
                                           tuple(s * storage.itemsize for s in stride))
    return np.array(view)


def _read_torchscript(path: Path) -> tuple[ArchSpec, dict[str, Any]]:
    """Spec and weights straight from the TorchScript zip archive: ``extra/lenet.json`` and the
    module tree in ``data.pkl``, unpickled by a reader that knows exactly five names (module
    objects, the tensor rebuild call, storage types, OrderedDict) and maps each to inert data.

    ``torch.jit.load`` is never called: it compiles the archive's code and runs the modules'
    ``__setstate__`` methods, i.e. code from the file."""
    zf, members = _zip_members(path)
    with zf:
        spec = _spec(_zip_read(zf, members, f"extra/{SPEC_KEY}", path, 1 << 20), path)
        if members.get("byteorder") and _zip_read(zf, members, "byteorder", path, 16) != b"little":
            raise ArtifactError(f"{path}: big-endian archives are not supported")

        class Reader(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module.startswith("__torch__"):
                    return _ScriptObject
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if module == "torch" and name in _TS_STORAGES:
                    return _TS_STORAGES[name]
                if (module, name) == ("collections", "OrderedDict"):
                    return dict
                raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

            def persistent_load(self, pid: Any) -> np.ndarray:
                if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                        and pid[1] in _TS_STORAGES.values()):
                    raise pickle.UnpicklingError("unknown persistent id")
                _, dtype, key, _, numel = pid
                raw = _zip_read(zf, members, f"data/{key}", path)
                numel = int(numel)
                if len(raw) < numel * np.dtype(dtype).itemsize:
                    raise pickle.UnpicklingError(f"storage {key} is truncated")
                return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"), numel)

        data = _zip_read(zf, members, "data.pkl", path, 1 << 24)
        try:
            root = Reader(io.BytesIO(data)).load()
        except ArtifactError:
            raise
        except Exception as exc:  # UnpicklingError, and whatever a damaged stream raises
            raise ArtifactError(f"{path}: not a readable TorchScript file "
                                f"({type(exc).__name__}: {exc})") from None
    if not isinstance(root, _ScriptObject):
        raise ArtifactError(f"{path}: data.pkl does not hold a module")
    weights: dict[str, np.ndarray] = {}
    todo = [("", root)]
    while todo:
        prefix, obj = todo.pop()
        for name, value in vars(obj).items():
            if isinstance(value, np.ndarray):
                weights[prefix + name] = value
            elif isinstance(value, _ScriptObject) and len(prefix) < 1000:
                todo.append((f"{prefix}{name}.", value))
    return spec, weights


# torch.export's tensor-metadata dtype codes (torch/_export/serde/schema.py ScalarType) that a
# weight may have; anything else is refused.
_PT2_DTYPES = {6: np.float16, 7: np.float32, 8: np.float64}


def _zip_members(path: Path) -> tuple[Any, dict[str, str]]:
    """An open archive and its members keyed by path below the single top-level folder that
    ``torch.jit.save`` / ``torch.export.save`` put everything in."""
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable zip archive ({exc})") from None
    members: dict[str, str] = {}
    for name in zf.namelist():
        _, sep, rest = name.partition("/")
        if sep and rest:
            members[rest] = name
    return zf, members


def _zip_read(zf: Any, members: dict[str, str], key: str, path: Path, limit: int = 1 << 30) -> bytes:
    if key not in members:
        raise ArtifactError(f"{path}: no {key!r} in the archive")
    info = zf.getinfo(members[key])
    if info.file_size > limit:
        raise ArtifactError(f"{path}: {key!r} is {info.file_size} bytes, more than a LeNet needs")
    try:
        return zf.read(members[key])
    except Exception as exc:  # BadZipFile (CRC), zlib errors, truncation
        raise ArtifactError(f"{path}: {key!r} unreadable ({type(exc).__name__}: {exc})") from None


def _read_pt2(path: Path) -> tuple[ArchSpec, dict[str, Any]]:
    """Spec and weights straight from the ``.pt2`` zip archive: its ``extra/lenet.json`` and the
    raw little-endian tensors that ``data/weights/model_weights_config.json`` describes.

    ``torch.export.load`` is never called: it unpickles the archive's ``sample_inputs`` (and
    pickled weights) and, when its restricted reader refuses an entry, retries with an
    unrestricted one, which runs whatever code a crafted file holds. Here nothing is unpickled: a
    weight stored as a pickle is refused."""
    zf, members = _zip_members(path)
    with zf:
        spec = _spec(_zip_read(zf, members, f"extra/{SPEC_KEY}", path, 1 << 20), path)
        if members.get("byteorder") and _zip_read(zf, members, "byteorder", path, 16) != b"little":
            raise ArtifactError(f"{path}: big-endian archives are not supported")
        try:
            config = json.loads(_zip_read(zf, members, "data/weights/model_weights_config.json",
                                          path, 1 << 24))["config"]
            if not isinstance(config, dict):
                raise TypeError("config is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: weights config unreadable ({exc})") from None
        weights: dict[str, np.ndarray] = {}
        for name, entry in config.items():
            try:
                meta = entry["tensor_meta"]
                if entry.get("use_pickle"):
                    raise ArtifactError(f"{path}: weight {name!r} is stored as a pickle; "
                                        "refusing to unpickle it")
                dtype = _PT2_DTYPES.get(meta["dtype"])
                if dtype is None:
                    raise ArtifactError(f"{path}: weight {name!r} has unsupported dtype code "
                                        f"{meta['dtype']}")
                shape = tuple(int(d["as_int"]) for d in meta["sizes"])
                file = "data/weights/" + str(entry["path_name"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ArtifactError(f"{path}: weights config entry {name!r} malformed "
                                    f"({type(exc).__name__}: {exc})") from None
            raw = _zip_read(zf, members, file, path)
            count = int(np.prod(shape, dtype=np.int64))
            if len(raw) < count * np.dtype(dtype).itemsize:
                raise ArtifactError(f"{path}: weight {name!r} holds {len(raw)} bytes, "
                                    f"too few for shape {shape}")
            # Exported tensors are contiguous; the engine checks shapes against the spec next.
            weights[name] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"),
                                          count=count).reshape(shape)
    return spec, weights


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
    """Spec and weights from an artifact directory or one ``.torchscript.pt``/``.onnx``/``.pt2``
    file. With a manifest (the directory's, or ``manifest.json`` next to the file), the file is
    hash-checked before it is read and its spec must equal the manifest's."""
    p = Path(path)
    if not p.exists():
        from .paths import missing_reason

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

