"""Fixtures for the digit reader: a lenet5 trained on the mnist-sample TRAIN split only (the pages
are made of the held-out TEST digits), cached across runs in pytest's cache keyed by the recipe and
the model source, and realistic scanned-style pages built from the held-out digits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import lenet.models
from lenet.checkpoint import save_checkpoint
from lenet.data import Batches, Split, mnist_sample_arrays
from lenet.models import build_model

# The lead's measured mnist-sample recipe (tools/accuracy.py): Adam 2e-3, batch 32, cosine,
# distortions; ~98 % on the held-out digits after 30 epochs (~0.7 s an epoch on 2 quiet cores).
RECIPE = {"arch": "lenet5", "epochs": 30, "batch_size": 32, "lr": 2e-3, "seed": 0, "augment": True}


def _source_hash() -> str:
    h = hashlib.sha256(repr(sorted(RECIPE.items())).encode())
    for f in sorted(Path(lenet.models.__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def train_digit_model(path: Path) -> None:
    torch.manual_seed(RECIPE["seed"])
    a = mnist_sample_arrays()
    model = build_model(RECIPE["arch"])
    opt = torch.optim.Adam(model.parameters(), lr=RECIPE["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=RECIPE["epochs"])
    batches = Batches(Split(a["train_x"], a["train_y"]), model.spec, RECIPE["batch_size"],
                      shuffle=True, augment=RECIPE["augment"], seed=RECIPE["seed"])
    for epoch in range(RECIPE["epochs"]):
        batches.set_epoch(epoch)
        model.train()
        for x, y in batches:
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
    folder = Path(request.config.cache.mkdir("lenet-digits-model"))
    path = folder / f"lenet5-{_source_hash()}.pt"
    if not path.exists():
        train_digit_model(path)
    return path


@pytest.fixture(scope="session")
def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    a = mnist_sample_arrays()
    return a["test_x"].numpy(), a["test_y"].numpy()
