"""Fixtures for the digit reader: the reader model that ships with the package (made by
`make reader-model`, tools/reader_model.py; its training never saw the held-out fonts or the
MNIST writers that the test pages are made of), and the held-out MNIST digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lenet.digits.kit import fonts, synth
from lenet.digits.classify import DEFAULT_MODEL


@pytest.fixture(scope="session")
def reader_model() -> Path:
    """The bundled reader model's directory (model.onnx + manifest.json)."""
    if not (DEFAULT_MODEL / "manifest.json").is_file():
        pytest.fail(f"the bundled reader model is missing from {DEFAULT_MODEL}: run make reader-model")
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The last 5,000 MNIST test digits: writers the reader model's training and thresholds never
    saw. Full MNIST is data, not code: where it cannot be had (offline, no make data), skip."""
    from lenet.data import DataError

    try:
        return synth.heldout_digits()
    except DataError as exc:
        pytest.skip(f"full MNIST is not available ({exc})")


@pytest.fixture(scope="session")
def heldout_fonts() -> None:
    """The held-out font packages must be installed (make test installs them): a missing one fails
    the test and names the Debian package, rather than skipping and testing nothing."""
    try:
        for name in fonts.HELD_OUT:
            fonts.font_files(name)
    except fonts.FontsMissing as exc:
        pytest.fail(str(exc))
