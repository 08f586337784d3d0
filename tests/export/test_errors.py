"""Bad input, tampering, --formats/--opset, and the all-or-nothing publish of lenet-export."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import lenet.exporters
from lenet.artifacts import ArtifactError, load_artifact
from lenet.checkpoint import FORMAT

from .conftest import make_model, run_export, write_checkpoint


def assert_one_line_error(rc, stderr: str, *needles: str) -> None:
    assert rc == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lenet-export: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def no_leftovers(parent: Path) -> bool:
    return not any(p.name.startswith(".") for p in parent.iterdir())


# --- bad checkpoints ----------------------------------------------------------------------------

class RunsCode:
    """Unpickling this would call os.mkdir: a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def bad_checkpoint(kind: str, tmp_path: Path, good: Path) -> Path:
    path = tmp_path / f"{kind}.pt"
    if kind == "missing":
        return path
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":  # a damaged zip header
        path.write_bytes(b"XXXX" + good.read_bytes()[4:])
    elif kind == "garbage":  # not a checkpoint at all (torch.load reads it as a legacy pickle)
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "unknown-arch":
        model = make_model("lenet-relu")
        spec = {**model.spec.to_dict(), "arch": "lenet7"}
        torch.save({"format": FORMAT, "spec": spec, "model": model.state_dict()}, path)
    elif kind == "nan-weights":
        model = make_model("lenet5")
        with torch.no_grad():
            model.f6.weight[3, 4] = float("nan")
        write_checkpoint(model, path)
    elif kind == "runs-code":
        model = make_model("lenet-relu")
        torch.save({"format": FORMAT, "spec": model.spec.to_dict(), "model": model.state_dict(),
                    "payload": RunsCode(tmp_path / "pwned")}, path)
    return path


@pytest.mark.parametrize("kind, needle", [
    ("missing", "no such checkpoint"),
    ("truncated", "truncated or corrupt"),
    ("corrupt", "truncated or corrupt"),
    ("garbage", ""),
    ("empty", "empty"),
    ("unknown-arch", "unknown arch 'lenet7'"),
    ("nan-weights", "f6.weight"),
    ("runs-code", "refused"),
])
def test_bad_checkpoint_gives_one_line(tmp_path, relu_checkpoint, kind, needle):
    path = bad_checkpoint(kind, tmp_path, relu_checkpoint[1])
    out = tmp_path / "art"
    rc, _, err = run_export(path, "--out", out)
    assert_one_line_error(rc, err, str(path), needle)
    assert not out.exists()
    assert not (tmp_path / "pwned").exists()  # the pickled call never ran


def test_bad_checkpoint_from_the_command_line(tmp_path, relu_checkpoint):
    """The real console entry point: exit status 1, one line on stderr, no traceback."""
    path = bad_checkpoint("runs-code", tmp_path, relu_checkpoint[1])
    proc = subprocess.run([sys.executable, "-m", "lenet.export", str(path), "--out",
                           str(tmp_path / "art")], capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, str(path), "refused")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "art").exists()


# --- bad output directories ---------------------------------------------------------------------

def test_output_is_a_file(tmp_path, relu_checkpoint):
    out = tmp_path / "art"
    out.write_text("not a directory")
    rc, _, err = run_export(relu_checkpoint[1], "--out", out)
    assert_one_line_error(rc, err, str(out), "not a directory")
    assert out.read_text() == "not a directory"


def test_output_under_a_file(tmp_path, relu_checkpoint):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "art"
    rc, _, err = run_export(relu_checkpoint[1], "--out", out)
    assert_one_line_error(rc, err, str(out), "not a directory")


def _as_a_user() -> None:
    """In a child about to exec: give up root's power to ignore file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a read-only directory is read-only to it too.
    Dropped from the bounding set, they are gone from the program it execs."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH (linux/capability.h)
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_output_not_writable(tmp_path, relu_checkpoint):
    """The real permission error, also when the suite runs as root (CI does)."""
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    probe = subprocess.run([sys.executable, "-c", f"open({str(parent / 'probe')!r}, 'w')"],
                           capture_output=True, preexec_fn=_as_a_user)
    if probe.returncode == 0:  # a container that hands root the override in every set
        parent.chmod(0o755)
        pytest.skip("this machine lets the child write into a read-only folder even without "
                    "CAP_DAC_OVERRIDE in its bounding set")
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "lenet-export"), str(relu_checkpoint[1]),
                               "--out", str(parent / "art")],
                              capture_output=True, text=True, timeout=300, preexec_fn=_as_a_user)
    finally:
        parent.chmod(0o755)
    assert_one_line_error(proc.returncode, proc.stderr, str(parent / "art"), "not writable")
    assert list(parent.iterdir()) == []


def test_bad_arguments_are_usage_errors(tmp_path, relu_checkpoint):
    for args in (["--formats", "onnx,bogus"], ["--opset", "99"]):
        rc, _, err = run_export(relu_checkpoint[1], "--out", tmp_path / "art", *args)
        assert rc == 2 and "Traceback" not in err, err
    assert not (tmp_path / "art").exists()


# --- all or nothing -----------------------------------------------------------------------------

def test_failed_export_leaves_nothing(tmp_path, relu_checkpoint, monkeypatch):
    def boom(model, path):
        path.write_bytes(b"half a file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setitem(lenet.exporters.WRITERS, "pt2", boom)
    rc, _, err = run_export(relu_checkpoint[1], "--out", tmp_path / "art")
    assert_one_line_error(rc, err, "pt2 export failed", "exporter crashed")
    assert not (tmp_path / "art").exists() and no_leftovers(tmp_path)


def test_parity_failure_names_the_format_and_leaves_nothing(tmp_path, relu_checkpoint, monkeypatch):
    """An ONNX file whose numbers are off (a perturbed bias) must not be published."""
    original = lenet.exporters.WRITERS["onnx"]

    def skewed(model, path, opset):
        original(model, path, opset)
        proto = onnx.load(str(path))
        for init in proto.graph.initializer:
            if init.name == "out.bias":
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
        onnx.save(proto, str(path))

    monkeypatch.setitem(lenet.exporters.WRITERS, "onnx", skewed)
    existing = tmp_path / "art"
    existing.mkdir()
    (existing / "bench.json").write_text("{}")
    rc, out, err = run_export(relu_checkpoint[1], "--out", existing, "--formats", "onnx")
    assert_one_line_error(rc, err, "onnxruntime (onnx)", "max relative error")
    assert "FAIL" in out  # the table is still shown
    assert sorted(p.name for p in existing.iterdir()) == ["bench.json"]


def test_formats_opset_and_reexport_in_place(tmp_path, relu_checkpoint):
    _, ckpt = relu_checkpoint
    out = tmp_path / "art"
    rc, _, err = run_export(ckpt, "--out", out, "--formats", "onnx", "--opset", "13")
    assert rc == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["artifacts"]) == {"model.onnx"} and m["onnx"]["opset"] == 13
    assert set(m["parity"]["runtimes"]) == {"eager", "onnxruntime", "opencv-dnn"}
    assert onnx.load(str(out / "model.onnx")).opset_import[0].version == 13
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode

    # Re-export into the existing dir: other files stay, formats not exported any more go.
    (out / "bench.json").write_text("{}")
    rc, _, err = run_export(ckpt, "--out", out, "--formats", "pt2,torchscript", "--no-verify")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "bench.json", "manifest.json", "model.pt2", "model.torchscript.pt"]
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["artifacts"]) == {"model.pt2", "model.torchscript.pt"}
    assert m["parity"] == {"skipped": True, "reason": "--no-verify"} and m["onnx"] is None
    assert load_artifact(out).format == "pt2"


# --- tampering ----------------------------------------------------------------------------------

@pytest.fixture()
def artifact_copy(tmp_path_factory, relu_checkpoint, tmp_path) -> Path:
    cache = tmp_path_factory.getbasetemp() / "relu-art"
    if not cache.exists():
        rc, _, err = run_export(relu_checkpoint[1], "--out", cache, "--no-verify")
        assert rc == 0, err
    return Path(shutil.copytree(cache, tmp_path / "art"))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.onnx", "model.torchscript.pt", "model.pt2"])
@pytest.mark.parametrize("how", ["flip", "append"])
def test_modified_artifact_is_refused_by_name(artifact_copy, name, how):
    path = artifact_copy / name
    if how == "flip":
        flip_byte(path)
    else:
        with open(path, "ab") as f:
            f.write(b"\0")
    for target in (artifact_copy, path):
        with pytest.raises(ArtifactError, match="modified since export") as info:
            load_artifact(target)
        assert str(path) in str(info.value)


def test_unlisted_file_is_refused(artifact_copy):
    shutil.copy(artifact_copy / "model.onnx", artifact_copy / "other.onnx")
    with pytest.raises(ArtifactError, match="not listed"):
        load_artifact(artifact_copy / "other.onnx")


def test_manifest_spec_must_match_the_file(artifact_copy):
    path = artifact_copy / "manifest.json"
    m = json.loads(path.read_text())
    m["spec"]["class_names"] = list("abcdefghij")
    path.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="spec differs"):
        load_artifact(artifact_copy)


def test_loader_errors_name_the_file(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        load_artifact(tmp_path / "nothing.onnx")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="weights.bin"):
        load_artifact(tmp_path / "weights.bin")
    for name in ("model.onnx", "model.torchscript.pt", "model.pt2"):  # no manifest: parsed, fails
        (tmp_path / name).write_bytes(b"garbage, not a model")
        with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
            load_artifact(tmp_path / name)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path / "dir")
    (tmp_path / "dir" / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(tmp_path / "dir")


@pytest.mark.parametrize("name", ["model.onnx", "model.torchscript.pt", "model.pt2"])
def test_truncated_files_without_manifest_raise_artifact_error(artifact_copy, name):
    """No manifest to catch it first: the parsers' own failures still come out as ArtifactError
    naming the file, wherever the file is cut."""
    (artifact_copy / "manifest.json").unlink()
    data = (artifact_copy / name).read_bytes()
    for cut in (0.02, 0.3, 0.6, 0.9, 0.999):
        path = artifact_copy / f"cut{int(cut * 1000)}.{name}"  # e.g. cut300.model.onnx
        path.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(ArtifactError) as info:
            load_artifact(path)
        assert str(path) in str(info.value)
