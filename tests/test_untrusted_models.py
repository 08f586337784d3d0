"""A model file is untrusted: no loader may run code from it, whatever it holds.

The crafted ``.pt2`` and ``.torchscript.pt`` files here carry a pickle whose unpickling would create a marker directory
(a stand-in for any payload). ``torch.export.load`` unpickles an archive's ``sample_inputs``, and
when its restricted reader refuses the entry it retries with an unrestricted one, so with it these
files would run their payload. Every loader of the product is tried: ``lenet.artifacts``,
``lenet_ext.load`` and ``lenet-digits --model``, on the lone file and inside an artifact directory
whose manifest lists only that file (a hostile sender can write matching hashes).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import lenet_ext
from lenet.artifacts import ArtifactError, FILES, MANIFEST, file_entry, load_artifact, load_module
from lenet.exporters import write_pt2
from lenet.plain import fold

from .support import make_model


class RunsCode:
    """Unpickling this calls os.mkdir(marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes]) -> None:
    """Copy a zip, replacing members by their path below the archive's top folder."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            rest = info.filename.partition("/")[2]
            zout.writestr(info, replace.get(rest, zin.read(info)))


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    write_pt2(make_model("lenet5", seed=3), path)
    return path


def crafted(kind: str, good: Path, out: Path, marker: Path) -> Path:
    # torch.save's zip format, which torch.load (what torch.export.load uses) accepts.
    buf = io.BytesIO()
    torch.save(RunsCode(marker), buf)
    payload = buf.getvalue()
    if kind == "sample_inputs":  # the entry torch.export.load falls back on
        rewrite_zip(good, out, {"data/sample_inputs/model.pt": payload})
    elif kind == "pickled_weight":  # a weight marked as pickled, holding the payload
        with zipfile.ZipFile(good) as z:
            root = z.namelist()[0].partition("/")[0]
            config = json.loads(z.read(f"{root}/data/weights/model_weights_config.json"))
        entry = config["config"]["conv1.weight"]  # a weight of the plain graph
        entry["use_pickle"] = True
        rewrite_zip(good, out, {
            "data/weights/model_weights_config.json": json.dumps(config).encode(),
            "data/weights/" + entry["path_name"]: payload})
    elif kind == "constants":
        rewrite_zip(good, out, {"data/constants/tensor_0": payload,
                                "data/constants/model_constants_config.json": payload})
    return out


KINDS = ["sample_inputs", "pickled_weight", "constants"]
LOADS_FINE = {"sample_inputs", "constants"}  # payload ignored; the weights are intact


def as_artifact_dir(file: Path, directory: Path) -> Path:
    """An artifact directory whose manifest lists only ``file`` with its true hashes."""
    directory.mkdir()
    target = directory / FILES["pt2"]
    target.write_bytes(file.read_bytes())
    spec = json.loads(zipfile.ZipFile(target).read(
        next(n for n in zipfile.ZipFile(target).namelist() if n.endswith("/extra/lenet.json"))))
    (directory / MANIFEST).write_text(json.dumps(
        {"spec": spec, "artifacts": {FILES["pt2"]: file_entry(target)}}))
    return directory


@pytest.mark.parametrize("where", ["file", "directory"])
@pytest.mark.parametrize("kind", KINDS)
def test_crafted_pt2_runs_no_code(tmp_path, good_pt2, kind, where):
    marker = tmp_path / "pwned"
    path = crafted(kind, good_pt2, tmp_path / "model.pt2", marker)
    if where == "directory":
        path = as_artifact_dir(path, tmp_path / "art")
    loaders = {"load_artifact": load_artifact, "load_module": load_module,
               "lenet_ext.load": lenet_ext.load}
    for name, load in loaders.items():
        if kind in LOADS_FINE:
            load(path)
        else:
            with pytest.raises(ArtifactError, match=r"model\.pt2.*pickle"):
                load(path)
        assert not marker.exists(), f"{name} ran code from a crafted .pt2 ({kind})"


def test_crafted_pt2_weights_equal_the_real_ones(tmp_path, good_pt2):
    """Reading the archive ourselves gives exactly the weights torch.export saved."""
    art = load_artifact(crafted("sample_inputs", good_pt2, tmp_path / "model.pt2",
                                tmp_path / "pwned"))
    model = make_model("lenet5", seed=3)
    for name, value in model.state_dict().items():
        if name in art.state_dict:
            np.testing.assert_array_equal(art.state_dict[name], value.numpy(), err_msg=name)
    assert set(art.state_dict) == {k for k in model.state_dict() if "gather" not in k
                                   and "index" not in k} & set(art.state_dict)


@pytest.mark.parametrize("kind", KINDS)
def test_lenet_digits_runs_no_code_from_its_model(tmp_path, good_pt2, kind):
    marker = tmp_path / "pwned"
    model = crafted(kind, good_pt2, tmp_path / "model.pt2", marker)
    page = tmp_path / "page.png"
    cv2.imwrite(str(page), np.full((64, 64), 255, np.uint8))
    proc = subprocess.run([sys.executable, "-m", "lenet.digits.app.cli", str(page), "--model",
                           str(model), "--headless", "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=300)
    assert not marker.exists(), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    if kind in LOADS_FINE:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0 and "model.pt2" in proc.stderr, proc.stderr


def test_damaged_pt2_archives_are_named(tmp_path, good_pt2):
    data = good_pt2.read_bytes()
    for i, bad in enumerate([data[: len(data) // 3], b"PK\x03\x04" + bytes(100), b""]):
        path = tmp_path / f"bad{i}.pt2"
        path.write_bytes(bad)
        with pytest.raises(ArtifactError, match=str(path.name)):
            load_artifact(path)


# --- TorchScript: read as a zip; data.pkl (and every other pickle) is never opened ---------------

@pytest.fixture(scope="module")
def good_torchscript(tmp_path_factory) -> Path:
    from lenet.exporters import write_torchscript

    path = tmp_path_factory.mktemp("ts") / "model.torchscript.pt"
    write_torchscript(make_model("lenet5", seed=4), path)
    return path


@pytest.mark.parametrize("member", ["data.pkl", "constants.pkl", "traced_inputs.pkl"])
def test_crafted_torchscript_runs_no_code(tmp_path, good_torchscript, member):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.torchscript.pt"
    rewrite_zip(good_torchscript, path, {member: pickle.dumps(RunsCode(marker), protocol=2)})
    for load in (load_artifact, load_module, lenet_ext.load):
        load(path)  # never read: spec and parameters come from the extra files
        assert not marker.exists()


def test_torchscript_weights_equal_torch_jit_load(good_torchscript):
    from lenet.artifacts import quiet_torch_deprecations

    with quiet_torch_deprecations():
        ref = torch.jit.load(str(good_torchscript)).state_dict()
    art = load_artifact(good_torchscript)
    plain = fold(art.spec, art.state_dict)  # the graph holds the paper parameters folded
    assert set(plain) == set(ref)
    for name, value in plain.items():
        np.testing.assert_array_equal(value, ref[name].numpy(), err_msg=name)
