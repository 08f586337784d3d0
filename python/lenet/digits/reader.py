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

    def read(self, image: np.ndarray, source: str = "") -> FrameResult:
        if image is None or image.size == 0 or image.ndim not in (2, 3):
            raise ValueError("empty image")
        h, w = image.shape[:2]
        candidates, _ = find_candidates(image, self.options.segment)
        rejected = [Rejected(c.box, c.reason) for c in candidates if c.reason]
        kept = [c for c in candidates if not c.reason]
        digits: list[Digit] = []
        if kept:
            crops = np.stack([to_mnist(c.ink, deskew_crop=self.options.deskew) for c in kept])
            batch = np.concatenate([jitters(c) for c in crops]) if self.options.jitter else crops
            # One batched call for the whole frame (every candidate, every re-registration).
            probs = confidences(self.classifier.scores(batch), self.classifier.spec)
            probs = probs.reshape(len(crops), -1, probs.shape[-1]).mean(axis=1)
            best = probs.argmax(axis=1)
            for c, crop, label, p in zip(kept, crops, best, probs):
                conf = float(p[label])
                if conf >= self.options.min_confidence:
                    digits.append(Digit(int(label), conf, c.box, crop))
                else:
                    rejected.append(Rejected(c.box, "confidence", conf, int(label), crop))
        numbers = group_numbers(digits, self.options.gap) if digits else []
        return FrameResult(source, numbers, rejected, (w, h))
