"""The digit reader: image → candidates → MNIST-style crops → one batched classification →
rejection → numbers. Used by the CLI in every mode, and by the tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classify import Classifier, confidences
from .group import Box, Digit, Number, group_numbers
from .normalize import jitters, to_mnist
from .segment import SegmentOptions, find_candidates


@dataclass(frozen=True)
class ReaderOptions:
    min_confidence: float = 0.1   # below: "not a digit" (see classify.py for what it means)
    deskew: bool = False          # MNIST itself is not deskewed, so a model trained on it isn't either
    jitter: bool = True           # average over small re-registrations (normalize.jitters)
    split_aspect: float = 1.1     # blobs wider than this × height are also tried as two digits (0: never)
    gap: float = 0.6              # a space wider than this × digit height ends a number
    segment: SegmentOptions = field(default_factory=SegmentOptions)


@dataclass
class Rejected:
    box: Box
    reason: str                     # "confidence" or a shape reason from segment.py
    confidence: float | None = None  # the best class's confidence, when it was classified
    guess: int | None = None
    crop: np.ndarray | None = None

    def to_json(self) -> dict:
        d: dict = {"box": list(self.box),
                   "confidence": None if self.confidence is None else round(self.confidence, 4),
                   "reason": self.reason}
        if self.guess is not None:
            d["guess"] = self.guess
        return d


@dataclass
class FrameResult:
    source: str
    numbers: list[Number]
    rejected: list[Rejected]
    size: tuple[int, int]  # width, height of the image read

    @property
    def digits(self) -> list[Digit]:
        return [d for n in self.numbers for d in n.digits]

    def to_json(self) -> dict:
        return {"source": self.source, "numbers": [n.to_json() for n in self.numbers],
                "rejected": [r.to_json() for r in self.rejected]}


class DigitReader:
    def __init__(self, classifier: Classifier, options: ReaderOptions = ReaderOptions()) -> None:
        if classifier.spec.num_classes != 10 or tuple(classifier.spec.class_names) != tuple(map(str, range(10))):
            raise ValueError(f"the model classifies {', '.join(classifier.spec.class_names[:4])}…, "
                             "not the digits 0-9; lenet-digits needs a digit model")
        self.classifier = classifier
        self.options = options

    def _classify(self, inks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Crops [N,28,28] and averaged class probabilities [N,C] — one batched call."""
        crops = np.stack([to_mnist(ink, deskew_crop=self.options.deskew) for ink in inks])
        batch = np.concatenate([jitters(c) for c in crops]) if self.options.jitter else crops
        probs = confidences(self.classifier.scores(batch), self.classifier.spec)
        return crops, probs.reshape(len(crops), -1, probs.shape[-1]).mean(axis=1)

    def read(self, image: np.ndarray, source: str = "") -> FrameResult:
        if image is None or image.size == 0 or image.ndim not in (2, 3):
            raise ValueError("empty image")
        h, w = image.shape[:2]
        candidates, _ = find_candidates(image, self.options.segment)
        rejected = [Rejected(c.box, c.reason) for c in candidates if c.reason]
        kept = [c for c in candidates if not c.reason]
        digits: list[Digit] = []
        if not kept:
            return FrameResult(source, [], rejected, (w, h))
        # Every candidate, plus both halves of each wide one, every re-registration: one call.
        inks = [c.ink for c in kept]
        halves: dict[int, tuple[int, Split, Split]] = {}
        for i, c in enumerate(kept):
            split = split_wide(c.box, c.ink, self.options.split_aspect) if self.options.split_aspect else None
            if split is not None:
                halves[i] = (len(inks), *split)
                inks += [split[0].ink, split[1].ink]
        crops, probs = self._classify(inks)
        best = probs.argmax(axis=1)
        conf = probs[np.arange(len(probs)), best]
        for i, c in enumerate(kept):
            parts = [(c.box, i)]
            if i in halves:
                k, left, right = halves[i]
                # Two digits touching, not one wide digit, only if each half is a more confident
                # digit than the whole: a wide 2 or a 0 stays whole.
                if min(conf[k], conf[k + 1]) > max(conf[i], self.options.min_confidence, 0.5):
                    parts = [(left.box, k), (right.box, k + 1)]
            for box, j in parts:
                if conf[j] >= self.options.min_confidence:
                    digits.append(Digit(int(best[j]), float(conf[j]), box, crops[j]))
                else:
                    rejected.append(Rejected(box, "confidence", float(conf[j]), int(best[j]), crops[j]))
        numbers = group_numbers(digits, self.options.gap) if digits else []
        return FrameResult(source, numbers, rejected, (w, h))


@dataclass
class Split:
    box: Box
    ink: np.ndarray


def split_wide(box: Box, ink: np.ndarray, aspect: float) -> tuple[Split, Split] | None:
    """Where two digits touch, the ink is thinnest: cut a blob wider than ``aspect`` × its height
    at the column of least ink in its middle half. Whether the cut is kept is the classifier's
    call (see DigitReader.read)."""
    x, y, w, h = box
    if w <= aspect * h:
        return None
    columns = ink.sum(axis=0)
    lo, hi = w // 4, w - w // 4
    if hi - lo < 2:
        return None
    cut = lo + int(np.argmin(columns[lo:hi]))
    out = []
    for x0, x1 in ((0, cut), (cut, w)):
        part = ink[:, x0:x1]
        rows = np.nonzero(part.max(axis=1) > 0.05)[0]
        if len(rows) == 0 or x1 - x0 < 2:
            return None
        part = part[rows[0]:rows[-1] + 1]
        out.append(Split((x + x0, y + int(rows[0]), x1 - x0, part.shape[0]), part))
    return out[0], out[1]
