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


def _tight(d: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(d > 30)
    return d[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def test_touching_digits_are_split_and_single_ones_are_not(digit_checkpoint, heldout_digits):
    """Two held-out digits written so close that their ink touches are read as two digits; a
    digit alone (wide ones included) is never cut in two."""
    import cv2

    x, y = heldout_digits
    order = np.random.default_rng(0).permutation(len(x))
    clf = load_classifier(digit_checkpoint)
    results = {}
    for split in (0.0, ReaderOptions().split_aspect):
        reader = DigitReader(clf, ReaderOptions(split_aspect=split))
        pairs = singles = 0
        for k in range(60):
            a, b = order[2 * k], order[2 * k + 1]
            da, db = (cv2.resize(_tight(x[i]), (max(2, _tight(x[i]).shape[1] * 50 // _tight(x[i]).shape[0]), 50))
                      for i in (a, b))
            ink = np.zeros((90, da.shape[1] + db.shape[1] + 40), np.float32)
            ink[20:70, 20:20 + da.shape[1]] = da / 255
            x0 = 20 + da.shape[1] - 3  # 3 px of overlap: the strokes meet
            ink[20:70, x0:x0 + db.shape[1]] = np.maximum(ink[20:70, x0:x0 + db.shape[1]], db / 255)
            read = reader.read((255 * (1 - 0.8 * ink)).astype(np.uint8))
            pairs += [n.text for n in read.numbers] == [f"{y[a]}{y[b]}"]
            alone = np.full((90, da.shape[1] + 40), 255, np.uint8)
            alone[20:70, 20:20 + da.shape[1]] = (255 * (1 - 0.8 * da / 255)).astype(np.uint8)
            singles += [n.text for n in reader.read(alone).numbers] == [str(y[a])]
        results[split] = (pairs / 60, singles / 60)
    print("touching pairs / single digits read, without and with splitting:", results)
    (pairs_off, singles_off), (pairs_on, singles_on) = results.values()
    assert pairs_on >= 0.65 and pairs_on > pairs_off + 0.1, results
    assert singles_on >= 0.85 and singles_on == singles_off, results


def test_light_ink_on_a_dark_board_is_read_like_dark_on_light(pages, digit_checkpoint):
    reader = DigitReader(load_classifier(digit_checkpoint))
    page = pages[0]
    normal = [n.text for n in reader.read(page.image).numbers]
    board = [n.text for n in reader.read(255 - page.image).numbers]  # chalk on a blackboard
    assert len(normal) >= 10
    assert sum(a == b for a, b in zip(normal, board)) >= 0.8 * len(normal), (normal, board)
