"""Pretrained weights shipped in the package (lenet.pretrained), by name, from every entry point:
PyTorch (build_model(weights=)), the engine (lenet_ext.load) and lenet-export. Their recorded test
error is checked against a fresh measurement on the 10,000 MNIST test digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lenet_ext
from lenet import pretrained
from lenet.artifacts import ArtifactError
from lenet.data import load_dataset, preprocess
from lenet.models import build_model

from .test_mnist import needs_mnist

NAME = "lenet5-mnist"


def test_the_package_ships_lenet5_mnist_with_its_record():
    assert NAME in pretrained.names()
    manifest = json.loads((pretrained.resolve(NAME) / "manifest.json").read_text())
    record = manifest["pretrained"]
    assert record["recipe"]["dataset"] == "mnist" and record["recipe"]["arch"] == "lenet5"
    assert record["seed"] == 0 and len(record["seeds"]) == 3
    errors = [seed["test_error"] for seed in record["seeds"]]
    assert record["test_error_mean"] == pytest.approx(sum(errors) / 3, abs=1e-6)
    assert record["test_error"] == errors[0]
    assert max(errors) <= 0.008  # the paper's 0.8 % with distortions; the README has the 3 seeds
    assert list(manifest["artifacts"]) == ["model.onnx"]


@needs_mnist
def test_recorded_test_error_is_what_the_weights_do():
    model = build_model("lenet5", weights="mnist")
    assert not model.training and sum(p.numel() for p in model.parameters() if p.requires_grad) == 60000
    test = load_dataset("mnist").test
    with torch.no_grad():
        pred = torch.cat([model(preprocess(test.images[i:i + 2000], model.spec)).argmax(1)
                          for i in range(0, 10000, 2000)])
    error = float((pred != test.labels).float().mean())
    recorded = json.loads((pretrained.resolve(NAME) / "manifest.json").read_text())["pretrained"]["test_error"]
    assert error == pytest.approx(recorded, abs=1e-4)
    engine = lenet_ext.load(NAME, threads=1)
    labels, _ = engine.predict(test.images.numpy())
    assert (labels != pred.numpy()).sum() <= 2  # float32 kernels vs PyTorch: ties at most


def test_engine_and_pytorch_agree_by_name():
    model = build_model("lenet5", weights="mnist")
    x = np.random.default_rng(3).integers(0, 256, (17, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        ref = model(preprocess(torch.from_numpy(x), model.spec)).numpy()
    scores = lenet_ext.load(NAME, threads=1).scores(x)
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-3)


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(ValueError, match=f"no pretrained weights named 'lenet5-cifar'.*{NAME}"):
        build_model("lenet5", weights="cifar")
    with pytest.raises(ArtifactError, match=f"no such file or directory, and no pretrained weights named 'lenet5-nope'.*{NAME}"):
        lenet_ext.load("lenet5-nope")


def test_a_path_that_exists_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path(NAME).mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        lenet_ext.load(NAME)


def _export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "lenet-export"), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_lenet_export_takes_the_name(tmp_path):
    proc = _export(NAME, "--out", tmp_path / "art")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"model.onnx", "model.torchscript.pt", "model.pt2"}
    recipe = json.loads((pretrained.resolve(NAME) / "manifest.json").read_text())["pretrained"]["recipe"]
    assert manifest["source"]["dataset"] == "mnist" and manifest["source"]["epoch"] == recipe["epochs"]
    a = lenet_ext.load(tmp_path / "art" / "model.pt2", threads=1)
    x = np.random.default_rng(4).integers(0, 256, (9, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(a.scores(x), lenet_ext.load(NAME, threads=1).scores(x))


def test_lenet_export_unknown_name_is_one_line(tmp_path):
    proc = _export("lenet5-nope", "--out", tmp_path / "art")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"no pretrained weights named 'lenet5-nope'; this installation ships: {NAME}" in proc.stderr
    assert not (tmp_path / "art").exists()


def test_lenet_export_says_when_a_folder_shadows_the_name(tmp_path):
    """`lenet-export lenet5-mnist --out lenet5-mnist`, run twice: the second time the folder is
    there; the error says why the shipped weights were not used."""
    (tmp_path / NAME).mkdir()
    proc = subprocess.run([str(Path(sys.executable).parent / "lenet-export"), NAME, "--out", "art"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "a folder here has the name of the shipped pretrained weights" in proc.stderr
    assert not (tmp_path / "art").exists()
