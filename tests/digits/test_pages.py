"""Reading realistic pages: held-out MNIST digits as multi-digit numbers on lit, noisy, blurred,
rotated, perspective-warped paper, with non-digit marks (letters, smudges, dashes) to reject."""

from __future__ import annotations

import numpy as np
import pytest

from lenet.digits.classify import load_classifier
from lenet.digits.reader import DigitReader, ReaderOptions

from .pages import Score, make_pages, score_page

PAGES = 8
MIN_DIGIT_ACCURACY = 0.95
MIN_NUMBER_ACCURACY = 0.85
# Marks read as a digit: at most this fraction. The letters on the pages are ones the training's
# rubbish class never saw (see conftest.RUBBISH_LETTERS), so this measures generalization.
MAX_MARK_RATE = 0.15
MAX_STRAY_DIGITS = 5  # digits found where there is neither a digit nor a mark, over all pages


@pytest.fixture(scope="module")
def pages(heldout_digits):
    x, y = heldout_digits
    return make_pages(x, y, PAGES, seed=0, lines=9)


@pytest.mark.parametrize("backend", ["engine", "torch"])
def test_backends_agree(backend, digit_checkpoint, heldout_digits):
    x, _ = heldout_digits
    reference = load_classifier(digit_checkpoint, "torch").scores(x[:64])
    clf = load_classifier(digit_checkpoint, backend)
    assert clf.backend == ("lenet_ext" if backend == "engine" else "torch")
    np.testing.assert_allclose(clf.scores(x[:64]), reference, rtol=1e-3, atol=1e-3)


def test_pages_are_read(pages, digit_checkpoint):
    reader = DigitReader(load_classifier(digit_checkpoint), ReaderOptions())
    total = Score()
    for i, page in enumerate(pages):
        total.add(score_page(page, reader.read(page.image, f"page {i}"), f"page {i}"))
    report = f"{PAGES} pages, backend {reader.classifier.backend}: {total.summary()}"
    print(report)
    detail = report + "\n" + "\n".join(total.errors)
    assert total.digits >= 400 and total.numbers >= 100 and total.marks >= 20, detail
    assert total.digit_accuracy >= MIN_DIGIT_ACCURACY, detail
    assert total.number_accuracy >= MIN_NUMBER_ACCURACY, detail
    assert total.mark_rate <= MAX_MARK_RATE, detail
    assert total.stray_digits <= MAX_STRAY_DIGITS, detail
