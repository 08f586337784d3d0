"""Reading held-out pages with the bundled reader model: digits in fonts its training never saw
and held-out MNIST test digits, photographed (uneven light, shadow, perspective, blur, noise, JPEG,
blue and black ink, ruled paper) with non-digit marks to refuse. A smaller set than
`make reader-eval` (tools/reader_eval.py, other seeds), with limits a little under its targets,
so that a regression fails CI."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from lenet.digits.kit import evaluate
from lenet.digits.classify import load_classifier, reader_settings
from lenet.digits.reader import DigitReader, ReaderOptions

PAGES = 3  # of each kind
# kind: (digits read, numbers read exactly), a little under what the bundled model reads on these
# pages (handwriting 99.4 % / 98.1 %, print 99.4 % / 100 %, MNIST 97.6 % / 93.9 %; marks 2 of 62).
# The full evaluation (tools/reader_eval.py, docs/reader.md) has 10-30x more pages and the targets;
# raise these with the model and the reader.
LIMITS = {"handwriting": (0.96, 0.95), "print": (0.97, 0.96), "mnist": (0.96, 0.9)}
MAX_MARK_RATE = 0.06  # over all pages; the target is 1 in 20 on the full evaluation


@pytest.fixture(scope="module")
def reader(reader_model):
    return DigitReader(load_classifier(reader_model), ReaderOptions.for_model(reader_model))


@pytest.fixture(scope="module")
def pages(heldout_digits, heldout_fonts):
    return {kind: evaluate.make_pages(kind, PAGES, seed=7 + i, mnist=heldout_digits)
            for i, kind in enumerate(evaluate.KINDS)}


@pytest.mark.parametrize("backend", ["engine", "onnxruntime", "torch"])
def test_backends_agree(backend, reader_model, heldout_digits):
    x, _ = heldout_digits
    reference = load_classifier(reader_model, "torch").scores(x[:64])
    clf = load_classifier(reader_model, backend)
    assert clf.backend == ("lenet_ext" if backend == "engine" else backend)
    np.testing.assert_allclose(clf.scores(x[:64]), reference, rtol=1e-3, atol=1e-3)


def test_pages_are_read(pages, reader):
    marks = marks_read = 0
    failures = []
    for kind, kind_pages in pages.items():
        total = evaluate.Score()
        for i, page in enumerate(kind_pages):
            total.add(evaluate.score_page(page, reader.read(page.image), f"{kind} {i}"))
        print(f"{kind}: {total.summary()}")
        assert total.digits >= 120 and total.numbers >= 30 and total.marks >= 6, total.summary()
        min_digits, min_numbers = LIMITS[kind]
        if total.digit_accuracy < min_digits or total.number_accuracy < min_numbers:
            failures.append(f"{kind}: {total.summary()}\n" + "\n".join(total.errors))
        marks += total.marks
        marks_read += total.marks_read
    assert not failures, "\n".join(failures)
    assert marks_read <= MAX_MARK_RATE * marks, f"{marks_read} of {marks} marks read as digits"


def _tight(d: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(d > 30)
    return d[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _at_height(d: np.ndarray, height: int) -> np.ndarray:
    """A digit's ink box scaled to ``height`` px, its aspect kept."""
    d = _tight(d)
    return cv2.resize(d, (max(2, d.shape[1] * height // d.shape[0]), height))


def test_touching_digits_are_split_and_single_ones_are_not(reader_model, heldout_digits):
    """Two held-out digits written so close that their ink touches are read as two digits; a
    digit alone (wide ones included) is never cut in two."""
    x, y = heldout_digits
    order = np.random.default_rng(0).permutation(len(x))
    clf = load_classifier(reader_model)
    threshold = reader_settings(reader_model)["min_confidence"]
    results = {}
    for split in (0.0, ReaderOptions().split_aspect):
        reader = DigitReader(clf, ReaderOptions(split_aspect=split, min_confidence=threshold))
        pairs = singles = 0
        for k in range(60):
            a, b = order[2 * k], order[2 * k + 1]
            da, db = (_at_height(x[i], 50) for i in (a, b))
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


def test_a_digit_broken_in_two_is_read_whole(reader_model, heldout_digits):
    """Rows of three held-out digits whose middle one has a gap through its waist (a stroke the
    pen or the threshold broke): its two pieces are read as one digit, and rows of whole digits
    read the same with and without trying the joins."""
    x, y = heldout_digits
    order = np.random.default_rng(1).permutation(len(x))
    clf = load_classifier(reader_model)
    options = ReaderOptions.for_model(reader_model)
    results = {}
    for join in (False, True):
        reader = DigitReader(clf, replace(options, join=join))
        broken = whole = 0
        for k in range(50):
            idx = order[3 * k:3 * k + 3]
            digits = [_at_height(x[i], 50) for i in idx]
            truth = "".join(str(y[i]) for i in idx)
            for cut in (False, True):
                ink = np.zeros((90, sum(d.shape[1] + 12 for d in digits) + 40), np.float32)
                x0 = 20
                for n, d in enumerate(digits):
                    d = d.astype(np.float32) / 255
                    if cut and n == 1:
                        d = d.copy()
                        d[23:27] = 0
                    ink[20:70, x0:x0 + d.shape[1]] = d
                    x0 += d.shape[1] + 12
                read = [n.text for n in reader.read((255 * (1 - 0.8 * ink)).astype(np.uint8)).numbers]
                if cut:
                    broken += read == [truth]
                else:
                    whole += read == [truth]
        results[join] = (broken / 50, whole / 50)
    print("rows with a broken digit / whole rows read, without and with joining:", results)
    (broken_off, whole_off), (broken_on, whole_on) = results.values()
    assert broken_on >= 0.6 and broken_on > broken_off + 0.2, results
    assert whole_on >= 0.85 and abs(whole_on - whole_off) <= 0.02, results


def test_light_ink_on_a_dark_board_is_read_like_dark_on_light(pages, reader):
    page = pages["mnist"][0]
    normal = [n.text for n in reader.read(page.image).numbers]
    board = [n.text for n in reader.read(255 - page.image).numbers]  # chalk on a blackboard
    assert len(normal) >= 10
    assert sum(a == b for a, b in zip(normal, board)) >= 0.8 * len(normal), (normal, board)


def test_pages_of_every_heldout_digit_write_each_once(heldout_digits):
    """make_pages(count=None), as `make reader-eval` reads the MNIST pages: the pages go on until
    every digit it is given is written, each on one page only (here the first 300)."""
    x, y = heldout_digits
    pages = evaluate.make_pages("mnist", None, seed=5, mnist=(x[:300], y[:300]))
    written = [d.digit for page in pages for number in page.numbers for d in number.digits]
    assert len(pages) >= 5 and len(written) == 300
    assert np.array_equal(np.bincount(written, minlength=10), np.bincount(y[:300], minlength=10))
    with pytest.raises(ValueError, match="MNIST pages only"):
        evaluate.make_pages("print", None)


def test_a_model_the_engine_does_not_run_is_read_by_onnx_runtime(tmp_path, pages, heldout_digits):
    """lenet5-wide (twice LeNet-5's maps; lenet_ext refuses it by name): the reader falls back to
    ONNX Runtime, whose scores are PyTorch's, and reads a page without the engine."""
    from ..support import make_model, run_export, write_checkpoint

    ckpt = write_checkpoint(make_model("lenet5-wide"), tmp_path / "wide.pt")
    rc, _, err = run_export(ckpt, "--out", tmp_path / "art", "--formats", "onnx", "--no-verify")
    assert rc == 0, err
    clf = load_classifier(tmp_path / "art")
    assert clf.backend == "onnxruntime" and clf.spec.arch == "lenet5-wide"
    x, _ = heldout_digits
    reference = load_classifier(tmp_path / "art", "torch").scores(x[:64])
    np.testing.assert_allclose(clf.scores(x[:64]), reference, rtol=1e-3, atol=1e-3)
    result = DigitReader(clf, ReaderOptions()).read(pages["mnist"][0].image)
    assert len(result.numbers) + len(result.rejected) >= 10  # every candidate was classified


def test_isolated_digits_are_scored_right_refused_wrong_and_by_best_guess(reader, heldout_digits):
    """evaluate.Isolated on real readings of isolated photos, checked against the reader's own
    output: a refused digit's best guess still counts for best_guess_right, never for right."""
    x, y = heldout_digits
    rng = np.random.default_rng(0)
    isolated, strict = evaluate.Isolated(), evaluate.Isolated()
    refusing = DigitReader(reader.classifier, replace(reader.options, min_confidence=0.9999,
                                                      min_confidence_in_number=0.9999,
                                                      min_confidence_between=0.9999))
    for i in range(40):
        photo = evaluate.isolated_photo(x[i], rng)
        isolated.add(int(y[i]), reader.read(photo))
        strict.add(int(y[i]), refusing.read(photo))
    rates, strict_rates = isolated.rates(), strict.rates()
    assert rates["digits"] == 40 and rates["right"] + rates["refused"] + rates["wrong"] == pytest.approx(1)
    assert rates["right"] >= 0.9 and rates["best_guess_right"] >= rates["right"] - 0.05
    # Refusing (nearly) everything leaves the best guesses as they were.
    assert strict_rates["refused"] > rates["refused"] and strict_rates["right"] < rates["right"]
    assert strict_rates["best_guess_right"] == pytest.approx(rates["best_guess_right"], abs=0.05)
