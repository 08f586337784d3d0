"""Fixtures for the digit reader: a lenet5 trained on the mnist-sample TRAIN split only (the pages
are made of the held-out TEST digits), cached across runs in pytest's cache keyed by the recipe and
the model source, and realistic scanned-style pages built from the held-out digits."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import lenet.models
from lenet.checkpoint import save_checkpoint
from lenet.data import Batches, Split, distort, mnist_sample_arrays, preprocess
from lenet.digits.normalize import ink_to_u8, to_mnist
from lenet.digits.synth import MARK_FONTS
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
    for fn in (to_mnist, ink_to_u8):  # the glyphs of the rubbish class are made with these
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:16]


# LeCun et al.'s rubbish class: non-digit glyphs trained towards the MAP criterion's constant
# energy j (target index 10 = the extra logit -j in lecun_map_loss), so that the reader's
# confidence P(digit) = e^{-y}/(e^{-j} + sum e^{-y_k}) can say "not a digit". A network trained on
# digits alone maps many letters confidently onto a digit prototype (H, K, M, W onto the 4, R onto
# the 8), which no threshold can undo. The glyphs here are drawn in fonts that the test pages'
# marks never use (lenet.digits.synth.MARK_FONTS), so the pages measure rejection of renderings
# the model has not seen; letters a person could read as a digit are left out.
RUBBISH_LETTERS = "ACDEFHJKLMNPRUVWXYacdefhkmnprtuvwxy#%&@+=<>$"
RUBBISH_FONTS = (cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL,
                 cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_HERSHEY_PLAIN | cv2.FONT_ITALIC,
                 cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC)


def rubbish_glyphs(count: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [count, 28, 28] non-digit glyphs made like the reader's crops (lenet.digits.normalize)."""
    assert not {f & 0xF for f in RUBBISH_FONTS} & set(MARK_FONTS)
    out = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        ch = RUBBISH_LETTERS[rng.integers(len(RUBBISH_LETTERS))]
        font = int(RUBBISH_FONTS[rng.integers(len(RUBBISH_FONTS))])
        thick = int(rng.integers(2, 6))
        (w, h), base = cv2.getTextSize(ch, font, 2.0, thick)
        canvas = np.zeros((h + base + 20, w + 20), np.uint8)
        cv2.putText(canvas, ch, (10, h + 10), font, 2.0, 255, thick, cv2.LINE_AA)
        out[i] = to_mnist(canvas.astype(np.float32) / 255.0)
    return out


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
    folder = Path(request.config.cache.mkdir("lenet-digits-model"))
    path = folder / f"lenet5-{_source_hash()}.pt"
    if not path.exists():
        train_digit_model(path)
    return path


@pytest.fixture(scope="session")
def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    a = mnist_sample_arrays()
    return a["test_x"].numpy(), a["test_y"].numpy()
