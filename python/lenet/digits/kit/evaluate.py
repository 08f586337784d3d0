"""Held-out pages and how a reading of them is scored (tools/reader_eval.py and tests/digits).

Three kinds of page, none of which the reader model was trained on:

* ``handwriting``: digits in the held-out handwriting fonts (``fonts.HELD_OUT``), each changed by
  a pen (``variety.pen``) so no two are the same;
* ``print``: digits in the held-out print fonts, lightly changed;
* ``mnist``: the last 5,000 MNIST test digits (``synth.heldout_digits``: writers that neither the
  model's training nor the choice of its thresholds saw; each digit used once).

And isolated digits (:func:`isolated_photo`, :class:`Isolated`): each held-out MNIST digit alone
on a small photographed piece of paper, read by the whole reader (candidates, crop, model,
thresholds), scored right, refused or wrong.

Every page is photographed (``synth.make_page``): uneven light and shadow, perspective up to 5 %,
blur, noise, JPEG 60-80, black or blue ink, ruled or plain paper, and marks that are not digits
(letters in the held-out fonts, smudges, dashes; and letters or symbols right after a fifth of the
numbers, at the spacing of the number's digits, as units are written).

Scores: *digits read* = 1 − (edit distance between the page's digits in reading order and the
digits read, "?" counting as a wrong digit) / digits; *numbers read exactly* = numbers whose box
is found (IoU > 0.5) with the same text; *marks read as digits* = marks where a digit was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lenet.digits.reader import FrameResult

from . import fonts
from .synth import Page, PageStyle, make_page
from .variety import camera, pen

KINDS = ("handwriting", "print", "mnist")
# Share of numbers followed by a letter or symbol at digit spacing, as units are ("12 kg", "40 %"):
# the marks a reader is most tempted to read as one more digit of the number.
UNIT_MARKS = 0.2


def _font_digits(kind: str, count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    files = [f for p in fonts.held_out_packages(kind) for f in fonts.font_files(p)]
    labels = rng.integers(0, 10, count)
    strength = 0.6 if kind == "handwriting" else 0.25
    # One font for a run of 5 digits, as a number is written or printed in one style.
    run_font = [files[int(rng.integers(len(files)))] for _ in range(count // 5 + 1)]
    inks = [pen(fonts.render_text(str(d), run_font[i // 5], 72), rng, strength=strength)
            for i, d in enumerate(labels)]
    return inks, labels


def make_pages(kind: str, count: int | None, seed: int = 0, *, mnist: tuple[np.ndarray, np.ndarray] | None = None,
               lines: int = 7, unit_marks: float = UNIT_MARKS, held_out_marks: bool = True) -> list[Page]:
    """``count`` held-out pages of one kind (``mnist`` needs the held-out digits: x, y; with
    ``count=None``, as many pages as it takes to write every one of them once). Letter marks are
    drawn in the held-out fonts, or with ``held_out_marks=False`` in OpenCV's Hershey fonts
    (pages that choose something, which must not see the evaluation's fonts)."""
    if count is None and kind != "mnist":
        raise ValueError(f"{kind}: count=None (every digit) is for the MNIST pages only")
    rng = np.random.default_rng(seed)
    mark_fonts = tuple(f for p in fonts.HELD_OUT for f in fonts.font_files(p)) if held_out_marks else None
    if kind == "mnist":
        x, y = mnist
        order = rng.permutation(len(x))
        digits, labels = x[order], y[order]
    else:
        digits, labels = _font_digits(kind, count * 110, rng)
    pages, start = [], 0
    while (len(pages) < count) if count is not None else (start < len(digits)):
        style = PageStyle(ink="blue" if rng.random() < 0.4 else "black", ruled=bool(rng.random() < 0.5),
                          perspective=0.05, jpeg=(60, 81), mark_fonts=mark_fonts,
                          unit_marks=unit_marks)
        page, used = make_page(digits[start:], labels[start:], rng, lines=lines, style=style)
        if used == 0:
            raise ValueError(f"{kind}: only {start} digits for {count} pages")
        pages.append(page)
        start += used
    return pages


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def iou(a, b) -> float:
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Score:
    digits: int = 0
    digit_errors: int = 0       # edit distance in reading order
    numbers: int = 0
    numbers_right: int = 0
    marks: int = 0
    marks_read: int = 0         # marks where a digit was read
    errors: list[str] = field(default_factory=list)

    def add(self, other: "Score") -> None:
        for name in ("digits", "digit_errors", "numbers", "numbers_right", "marks", "marks_read"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors

    @property
    def digit_accuracy(self) -> float:
        return max(0.0, 1.0 - self.digit_errors / max(1, self.digits))

    @property
    def number_accuracy(self) -> float:
        return self.numbers_right / max(1, self.numbers)

    @property
    def mark_rate(self) -> float:
        return self.marks_read / max(1, self.marks)

    def summary(self) -> str:
        return (f"digits {self.digit_accuracy:.1%} of {self.digits} (edit distance {self.digit_errors}), "
                f"numbers {self.numbers_right}/{self.numbers} = {self.number_accuracy:.1%}, "
                f"marks read as digits {self.marks_read}/{self.marks}")


def score_page(page: Page, result: FrameResult, name: str = "page") -> Score:
    s = Score()
    truth = "".join(n.text for n in page.numbers)
    read = "".join(n.text for n in result.numbers)
    s.digits = len(truth)
    s.digit_errors = edit_distance(truth, read)
    for n in page.numbers:
        s.numbers += 1
        match = [m for m in result.numbers if iou(n.box, m.box) > 0.5]
        if any(m.text == n.text for m in match):
            s.numbers_right += 1
        else:
            s.errors.append(f"{name}: number {n.text} at {n.box} read as {[m.text for m in match]}")
    found = result.digits
    for mark in page.marks:
        s.marks += 1
        hits = [f for f in found if iou(mark, f.box) > 0.2]
        if hits:
            s.marks_read += 1
            s.errors.append(f"{name}: mark at {mark} read as {[f.digit for f in hits]}")
    return s


def isolated_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit (uint8 28x28, white on black) alone on paper: 24-64 px tall, a margin of
    about its height around it, photographed (``variety.camera``: light, blur, noise, JPEG)."""
    ink = digit.astype(np.float32) / 255.0
    ys, xs = np.nonzero(ink > 0.1)
    ink = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    height = int(rng.integers(24, 65))
    f = height / ink.shape[0]
    import cv2

    ink = cv2.resize(ink, (max(2, round(ink.shape[1] * f)), height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    margin = int(height * rng.uniform(0.8, 1.5))
    canvas = np.pad(ink, ((margin, margin), (margin + height // 2, margin + height // 2)))
    return camera(canvas, rng, jpeg=(60, 95))


@dataclass
class Isolated:
    """Isolated digits read: right (one digit, the true one), refused (no digit read), wrong; and,
    of those found as one shape, how often the network's best guess is the true digit (what a
    perfect threshold could read: the rest is the network's, not the threshold's)."""
    right: int = 0
    refused: int = 0
    wrong: int = 0
    one_shape: int = 0
    guess_right: int = 0

    def add(self, truth: int, result: FrameResult) -> None:
        read = [d.digit for d in result.digits]
        if not read:
            self.refused += 1
        elif read == [truth]:
            self.right += 1
        else:
            self.wrong += 1
        # Every classified shape, read or refused, with its best class.
        guesses = ([d.digit for n in result.numbers for d in n.digits]
                   + [r.guess for r in result.rejected if r.guess is not None])
        if len(guesses) == 1:
            self.one_shape += 1
            self.guess_right += guesses[0] == truth

    @property
    def count(self) -> int:
        return self.right + self.refused + self.wrong

    def rates(self) -> dict:
        n = max(1, self.count)
        return {"digits": self.count, "right": round(self.right / n, 4), "refused": round(self.refused / n, 4),
                "wrong": round(self.wrong / n, 4), "one_shape": self.one_shape,
                "best_guess_right": round(self.guess_right / max(1, self.one_shape), 4)}
