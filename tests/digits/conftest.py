"""Fixtures for the digit reader: a lenet5 trained on the mnist-sample TRAIN split only (the test
pages are made of the held-out TEST digits), with LeCun's rubbish class of non-digit glyphs
(lenet.digits.synth.rubbish_glyphs), cached across runs in pytest's cache keyed by the recipe and
the code it depends on; and the held-out digits."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

import lenet.models
from lenet.checkpoint import save_checkpoint
from lenet.data import Batches, Split, distort, mnist_sample_arrays, preprocess
from lenet.digits.normalize import ink_to_u8, to_mnist
from lenet.digits import synth
from lenet.digits.synth import RUBBISH_LETTERS, rubbish_glyphs
from lenet.models import build_model

# The lead's measured mnist-sample recipe (tools/accuracy.py): Adam 2e-3, batch 32, cosine,
# distortions; ~98 % on the held-out digits after 30-40 epochs (~0.7 s an epoch on 2 quiet cores).
RECIPE = {"arch": "lenet5", "epochs": 40, "batch_size": 32, "lr": 2e-3, "seed": 0, "augment": True,
          "rubbish": 2000}


def _source_hash() -> str:
    h = hashlib.sha256(repr(sorted(RECIPE.items())).encode())
    h.update(RUBBISH_LETTERS.encode())
    for f in sorted(Path(lenet.models.__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    for fn in (to_mnist, ink_to_u8, rubbish_glyphs):  # the rubbish class's glyphs are made by these
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:16]


def train_digit_model(path: Path) -> None:
    torch.manual_seed(RECIPE["seed"])
    a = mnist_sample_arrays()
    model = build_model(RECIPE["arch"])
    opt = torch.optim.Adam(model.parameters(), lr=RECIPE["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=RECIPE["epochs"])
    batches = Batches(Split(a["train_x"], a["train_y"]), model.spec, RECIPE["batch_size"],
                      shuffle=True, augment=RECIPE["augment"], seed=RECIPE["seed"])
    rubbish = torch.from_numpy(rubbish_glyphs(RECIPE["rubbish"], np.random.default_rng(RECIPE["seed"])))
    gen = torch.Generator().manual_seed(RECIPE["seed"])
    per_batch = max(1, RECIPE["batch_size"] // 8)
    for epoch in range(RECIPE["epochs"]):
        batches.set_epoch(epoch)
        model.train()
        for x, y in batches:
            if len(rubbish):
                idx = torch.randint(len(rubbish), (per_batch,), generator=gen)
                ink = distort(rubbish[idx].unsqueeze(1).float() / 255.0, gen)
                x = torch.cat([x, preprocess(ink, model.spec)])
                y = torch.cat([y, torch.full((per_batch,), 10, dtype=y.dtype)])
            opt.zero_grad(set_to_none=True)
            model.loss(model(x), y).backward()
            opt.step()
        sched.step()
    model.eval()
    save_checkpoint(path, {"spec": model.spec.to_dict(), "model": model.state_dict(), "metrics": [],
                           "epoch": RECIPE["epochs"]})


@pytest.fixture(scope="session")
def digit_checkpoint(request: pytest.FixtureRequest) -> Path:
    """Path of a trained lenet5 checkpoint (trained once, then reused from pytest's cache)."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        folder = Path(cache.mkdir("lenet-digits-model"))
    else:
        folder = request.getfixturevalue("tmp_path_factory").mktemp("lenet-digits-model")
    path = folder / f"lenet5-{_source_hash()}.pt"
    if not path.exists():
        train_digit_model(path)
    return path


@pytest.fixture(scope="session")
def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mnist-sample TEST split, never seen by digit_checkpoint's training."""
    return synth.heldout_digits()
