"""The reader model's training data: strips cut by the reader's own candidate finder, labelled by
the glyph each crop covers; and the font catalogue's error when a package is missing."""

from __future__ import annotations

import numpy as np
import pytest

from lenet.digits.kit import fonts, training_data
from lenet.digits.classify import load_classifier
from lenet.digits.reader import DigitReader


def test_missing_font_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "FONT_ROOT", tmp_path)
    fonts.font_files.cache_clear()
    try:
        with pytest.raises(fonts.FontsMissing, match="apt-get install fonts-klee"):
            fonts.font_files("fonts-klee")
    finally:
        fonts.font_files.cache_clear()


def test_held_out_fonts_are_never_training_fonts():
    training = {p for kind in ("print", "handwriting") for p in fonts.training_packages(kind)}
    held = {p for kind in ("print", "handwriting") for p in fonts.held_out_packages(kind)}
    assert held == set(fonts.HELD_OUT) and not training & held
    assert fonts.held_out_packages("print") and fonts.held_out_packages("handwriting")


def test_strips_are_labelled_by_the_glyph_each_crop_covers(heldout_digits, heldout_fonts, reader_model):
    """Crops come out as the reader makes them (uint8 28×28, labels 0-10), and the labels are
    right: the bundled model agrees with nearly every digit label and refuses most rubbish."""
    for kind in ("print", "handwriting"):
        for name in fonts.training_packages(kind):
            try:
                fonts.font_files(name)
            except fonts.FontsMissing as exc:
                pytest.fail(str(exc))
    x, y = heldout_digits  # any MNIST digits do for this check
    rng = np.random.default_rng(3)
    src = training_data.GlyphSource(x, y, rng)
    parts = [training_data.strip(src, rng) for _ in range(60)]
    crops = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    assert crops.dtype == np.uint8 and crops.shape[1:] == (28, 28) and len(crops) >= 100
    assert set(labels.tolist()) <= set(range(11))
    digits, rubbish = labels != training_data.RUBBISH, labels == training_data.RUBBISH
    assert digits.sum() >= 60 and rubbish.sum() >= 10
    reader = DigitReader(load_classifier(reader_model))
    probs = reader.classify(crops)
    agree = (probs.argmax(axis=1) == labels)[digits].mean()
    refused = (probs.max(axis=1) < 0.5)[rubbish].mean()
    print(f"{len(crops)} crops: model agrees with {agree:.1%} of digit labels, refuses {refused:.1%} of rubbish")
    assert agree >= 0.9, agree
    assert refused >= 0.6, refused


def test_scanner_samples_coarsely_or_binarizes():
    """variety.scanner: a coarse scan loses what is finer than 14-28 px a digit (a 1-px pattern
    on a 60 px digit averages out) but keeps the size; a binarizing scan leaves two levels; a
    digit already smaller than any coarse scan is left alone."""
    from lenet.digits.kit.variety import scanner

    fine = np.indices((120, 90)).sum(axis=0) % 2 * 0.8 + 0.1  # 1-px checkerboard, 0.1 / 0.9
    rng = np.random.default_rng(0)
    for _ in range(10):
        coarse = scanner(fine.astype(np.float32), rng, 60, low_res=1.0, binarize=0.0)
        assert coarse.shape == fine.shape
        assert np.abs(coarse - 0.5).max() < 0.1
        two = scanner(fine.astype(np.float32), rng, 60, low_res=0.0, binarize=1.0)
        assert set(np.unique(two)) == {0.0, 1.0}
        small = scanner(fine.astype(np.float32), rng, 12, low_res=1.0, binarize=0.0)
        assert np.array_equal(small, fine.astype(np.float32))
