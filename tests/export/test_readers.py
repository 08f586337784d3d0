"""The artifact readers: paper parameters recovered exactly from every format, without torch and
without running anything from the file; a graph whose weights were altered is refused."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from lenet.artifacts import FILES, ArtifactError, load_artifact
from lenet.plain import PARAMS_KEY, decode_params, encode_params, fold

FORMATS = list(FILES)


@pytest.fixture()
def loose_files(exported, tmp_path) -> tuple[torch.nn.Module, Path]:
    """The exported files without their manifest, so the readers (not the hash check) are what
    meets a tampered file."""
    model, _, out, _ = exported
    for name in FILES.values():
        shutil.copy(out / name, tmp_path / name)
    return model, tmp_path


def test_params_round_trip_exactly(exported):
    model, *_ = exported
    params = {k: v.numpy() for k, v in model.state_dict().items()}
    back = decode_params(model.spec, encode_params(model.spec, params))
    assert set(back) == set(params)
    for name, value in params.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)
    with pytest.raises(ValueError, match="holds"):
        decode_params(model.spec, base64.b64encode(b"\0" * 12))
    with pytest.raises(ValueError, match="not base64"):
        decode_params(model.spec, "not base64 at all!")


def test_readers_need_no_torch_and_run_no_code(loose_files):
    """Every format is read in a process that has not imported torch and must not import it
    (torch.jit.load / torch.export.load would compile or unpickle the file's contents)."""
    model, d = loose_files
    script = (
        "import sys, json\n"
        "from lenet.artifacts import load_artifact\n"
        f"for name in {list(FILES.values())!r}:\n"
        f"    art = load_artifact({str(d)!r} + '/' + name)\n"
        "    assert len(art.state_dict) > 0\n"
        "assert 'torch' not in sys.modules, 'a reader imported torch'\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def rewrite_zip(path: Path, change) -> None:
    """Rewrite a zip archive with ``change(member name, bytes) -> bytes`` applied to each member."""
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in members:
            z.writestr(info, change(info.filename, data))


@pytest.mark.parametrize("fmt", FORMATS)
def test_altered_graph_weight_is_refused(loose_files, fmt):
    model, d = loose_files
    path = d / FILES[fmt]
    target = fold(model.spec, {k: v.numpy() for k, v in model.state_dict().items()})["conv1.bias"]
    if fmt == "onnx":
        proto = onnx.load(str(path))
        for init in proto.graph.initializer:
            if init.name == "conv1.bias":
                init.CopyFrom(numpy_helper.from_array(target + 0.5, init.name))
        onnx.save(proto, str(path))
    else:
        hits = []

        def change(name: str, data: bytes) -> bytes:
            if data == target.tobytes():
                hits.append(name)
                return (target + 0.5).tobytes()
            return data
        rewrite_zip(path, change)
        assert len(hits) == 1, hits
    with pytest.raises(ArtifactError, match=r"conv1\.bias.*does not match"):
        load_artifact(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_altered_or_missing_params_are_refused(loose_files, fmt):
    model, d = loose_files
    path = d / FILES[fmt]
    params = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    params["f6.bias"] += 0.25
    forged = encode_params(model.spec, params)
    if fmt == "onnx":
        proto = onnx.load(str(path))
        for p in proto.metadata_props:
            if p.key == PARAMS_KEY:
                p.value = forged
        onnx.save(proto, str(path))
    else:
        rewrite_zip(path, lambda name, data: forged.encode() if name.endswith(
            f"/extra/{PARAMS_KEY}") else data)
    with pytest.raises(ArtifactError, match=r"fc6\.bias.*does not match"):
        load_artifact(path)
    # Without the parameters there is nothing to recover them from: a clear refusal.
    if fmt == "onnx":
        proto = onnx.load(str(path))
        keep = [p for p in proto.metadata_props if p.key != PARAMS_KEY]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)
        onnx.save(proto, str(path))
    else:
        with zipfile.ZipFile(path) as z:
            members = [(i, z.read(i)) for i in z.infolist() if not i.filename.endswith(PARAMS_KEY)]
        with zipfile.ZipFile(path, "w") as z:
            for info, data in members:
                z.writestr(info, data)
    with pytest.raises(ArtifactError, match=f"no '{PARAMS_KEY}'"):
        load_artifact(path)


def test_pt2_weight_stored_as_pickle_is_refused(loose_files):
    _, d = loose_files
    path = d / "model.pt2"

    def change(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["conv1.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        return data
    rewrite_zip(path, change)
    with pytest.raises(ArtifactError, match="pickle"):
        load_artifact(path)


def test_onnx_graph_other_than_the_plain_form_is_refused(loose_files):
    """Weights intact, one operator changed (Tanh → Sigmoid): not the graph the spec describes."""
    _, d = loose_files
    path = d / "model.onnx"
    proto = onnx.load(str(path))
    act = next(n for n in proto.graph.node if n.op_type in ("Tanh", "Sigmoid", "Relu"))
    act.op_type = "Sigmoid" if act.op_type != "Sigmoid" else "Tanh"
    onnx.save(proto, str(path))
    with pytest.raises(ArtifactError, match="not the plain"):
        load_artifact(path)
