"""The digit reader: image → candidates → MNIST-style crops → one batched classification →
rejection → numbers. Used by the CLI in every mode, and by the tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classify import Classifier, confidences, reader_settings
from .boxes import Box
from .group import Digit, Number, group_numbers
from .normalize import jitters, to_mnist
from .segment import Candidate, SegmentOptions, find_candidates


@dataclass(frozen=True)
class ReaderOptions:
    min_confidence: float = 0.1   # below: "not a digit" (see classify.py for what it means)
    min_confidence_in_number: float | None = None  # refused shapes among read digits: see group.py
    deskew: bool = False          # MNIST itself is not deskewed, so a model trained on it isn't either
    jitter: bool = True           # average over small re-registrations (normalize.jitters)
    split_aspect: float = 1.1     # blobs wider than this × height are also tried as two digits (0: never)
    gap: float = 0.6              # a space wider than this × digit height ends a number
    skip_border: bool = False     # video/camera: a shape touching the frame's edge may be a cut digit
    segment: SegmentOptions = field(default_factory=SegmentOptions)

    @classmethod
    def for_model(cls, path, **overrides) -> "ReaderOptions":
        """Options with the thresholds a model's manifest records (chosen on its validation data,
        tools/reader_model.py), else the defaults; ``overrides`` that are None are ignored."""
        settings = reader_settings(path)
        values = {name: settings[name] for name in ("min_confidence", "min_confidence_in_number")
                  if isinstance(settings.get(name), (int, float))}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Rejected:
    box: Box
    reason: str                     # "confidence", "height" (for its line: group.py) or a shape reason from segment.py
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
        """The digits read (not the refused shapes kept in numbers as "?")."""
        return [d for n in self.numbers for d in n.digits if d.accepted]

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

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities [N,C] of crops [N,28,28], averaged over re-registrations: one batched call."""
        batch = np.concatenate([jitters(c) for c in crops]) if self.options.jitter else crops
        probs = confidences(self.classifier.scores(batch), self.classifier.spec)
        return probs.reshape(len(crops), -1, probs.shape[-1]).mean(axis=1)

    def read(self, image: np.ndarray, source: str = "") -> FrameResult:
        if image is None or image.size == 0 or image.ndim not in (2, 3):
            raise ValueError("empty image")
        h, w = image.shape[:2]
        candidates, kept, crops = candidate_crops(image, self.options)
        rejected = [Rejected(c.box, c.reason) for c in candidates if c.reason]
        if self.options.skip_border and kept:
            # A digit cut by the frame's edge looks like another digit (a cut 8 is a 3): not read.
            inside = [not _touches_border(c.box, w, h) for c in kept]
            rejected += [Rejected(c.box, "border") for c, ok in zip(kept, inside) if not ok]
            kept = [c for c, ok in zip(kept, inside) if ok]
            crops = crops[np.array(inside, bool)]
        if not kept:
            return FrameResult(source, [], rejected, (w, h))
        # Every candidate, plus both halves of each wide one, every re-registration: one call.
        extra = []
        halves: dict[int, tuple[int, Split, Split]] = {}
        for i, c in enumerate(kept):
            split = split_wide(c.box, c.ink, self.options.split_aspect) if self.options.split_aspect else None
            if split is not None:
                halves[i] = (len(kept) + len(extra), *split)
                extra += [to_mnist(part.ink, deskew_crop=self.options.deskew) for part in split]
        if extra:
            crops = np.concatenate([crops, np.stack(extra)])
        probs = self.classify(crops)
        best = probs.argmax(axis=1)
        conf = probs[np.arange(len(probs)), best]
        shapes: list[Digit] = []
        for i, c in enumerate(kept):
            parts = [(c.box, i)]
            if i in halves:
                k, left, right = halves[i]
                # Two digits touching, not one wide digit, only if each half is a more confident
                # digit than the whole: a wide 2 or a 0 stays whole.
                if min(conf[k], conf[k + 1]) > max(conf[i], self.options.min_confidence, 0.5):
                    parts = [(left.box, k), (right.box, k + 1)]
            for box, j in parts:
                shapes.append(Digit(int(best[j]), float(conf[j]), box, crops[j],
                                    accepted=bool(conf[j] >= self.options.min_confidence)))
        numbers, left_out = group_numbers(shapes, self.options.gap, self.options.min_confidence_in_number)
        # Left out of the numbers: refused shapes, and read ones of the wrong height for their line.
        rejected += [Rejected(d.box, "height" if d.accepted else "confidence", d.confidence, d.digit, d.crop)
                     for d in left_out]
        return FrameResult(source, numbers, rejected, (w, h))


def _touches_border(box: Box, width: int, height: int) -> bool:
    x, y, w, h = box
    return x <= 1 or y <= 1 or x + w >= width - 1 or y + h >= height - 1


def candidate_crops(image: np.ndarray, options: ReaderOptions = ReaderOptions()
                    ) -> tuple[list[Candidate], list[Candidate], np.ndarray]:
    """All candidates (with shape refusals), the kept ones, and their 28×28 crops (uint8
    [len(kept), 28, 28]). The reader's one way from an image to what the network sees: the
    reader model's training data is made by this function too (lenet.digits.training_data)."""
    candidates, _ = find_candidates(image, options.segment)
    kept = [c for c in candidates if not c.reason]
    crops = [to_mnist(c.ink, deskew_crop=options.deskew) for c in kept]
    return candidates, kept, np.stack(crops) if crops else np.zeros((0, 28, 28), np.uint8)


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
