"""lenet_ext on artifacts written by the real lenet-export (every format, every arch)."""

from __future__ import annotations

import numpy as np
import pytest

import lenet_ext
from lenet import export

from .conftest import assert_scores_close, make_model, normalize, reference_scores


@pytest.fixture(scope="module")
def exported(tmp_path_factory, arch):
    from lenet.checkpoint import save_checkpoint

    model = make_model(arch, seed=11)
    d = tmp_path_factory.mktemp(f"exported-{arch}")
    save_checkpoint(d / "best.pt", {"spec": model.spec.to_dict(), "model": model.state_dict(),
                                     "epoch": 1})
    rc = export.main([str(d / "best.pt"), "--out", str(d / "art"), "--no-verify"])
    assert rc == 0
    return model, d / "art"


@pytest.mark.parametrize("target", ["", "model.onnx", "model.torchscript.pt", "model.pt2"])
def test_every_format(exported, target):
    model, art = exported
    path = art / target if target else art
    assert path.exists(), f"lenet-export wrote no {target}"
    x = np.random.default_rng(2).integers(0, 256, (37, 28, 28), dtype=np.uint8)
    engine = lenet_ext.load(path)
    assert engine.spec == model.spec
    assert_scores_close(engine.scores(x), reference_scores(model, normalize(x, model.spec)))
