"""The digit reader: image → candidates → MNIST-style crops → one batched classification →
the decision (lenet.digits.decide) → numbers. Used by lenet-digits in every mode, and by the tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import decide
from .boxes import Box, union
from .classify import Classifier, confidences
from .group import Digit, Number
from .normalize import candidate_crops, jitters, to_mnist
# ReaderOptions and THRESHOLDS were defined here before lenet.digits.options: still importable from here.
from .options import THRESHOLDS, PieceOptions, ReaderOptions  # noqa: F401
from .segment import Candidate


@dataclass
class Rejected:
    box: Box
    reason: str                     # "confidence", "height" (for its line: decide.py) or a shape reason from segment.py
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
        candidates, kept, crops = candidate_crops(image, self.options.segment, self.options.deskew)
        rejected = [Rejected(c.box, c.reason) for c in candidates if c.reason]
        if self.options.skip_border and kept:
            # A digit cut by the frame's edge looks like another digit (a cut 8 is a 3): not read.
            inside = [not _touches_border(c.box, w, h, self.options.border) for c in kept]
            rejected += [Rejected(c.box, "border") for c, ok in zip(kept, inside) if not ok]
            kept = [c for c, ok in zip(kept, inside) if ok]
            crops = crops[np.array(inside, bool)]
        if not kept:
            return FrameResult(source, [], rejected, (w, h))
        # Every candidate, both halves of each wide one and the union of each pair that may be one
        # broken digit, every re-registration: one call.
        extra = []
        halves: dict[int, tuple[int, Split, Split]] = {}
        for i, c in enumerate(kept):
            # Only one blob can be two digits whose ink touches; pieces were joined as one sign.
            touching = self.options.split_aspect and c.pieces == 1
            split = (split_wide(c.box, c.ink, self.options.split_aspect, self.options.pieces)
                     if touching else None)
            if split is not None:
                halves[i] = (len(kept) + len(extra), *split)
                extra += [to_mnist(part.ink, deskew_crop=self.options.deskew) for part in split]
        pairs = join_pairs(kept, self.options) if self.options.join else []
        first_pair = len(kept) + len(extra)
        extra += [to_mnist(joined.ink, deskew_crop=self.options.deskew) for _, _, joined in pairs]
        if extra:
            crops = np.concatenate([crops, np.stack(extra)])
        probs = self.classify(crops)
        best = probs.argmax(axis=1)
        conf = probs[np.arange(len(probs)), best]
        joined, used = decide.choose_joins([(i, j, s.box) for i, j, s in pairs], conf, first_pair, kept,
                                           self.options)
        shapes: list[Digit] = []
        for i, c in enumerate(kept):
            if i in used and i not in joined:
                continue  # the second piece of a joined pair
            parts = [joined[i]] if i in joined else [(c.box, i)]
            if i in halves and i not in joined:
                k, left, right = halves[i]
                if decide.keep_split(conf[i], conf[k], conf[k + 1], self.options):
                    parts = [(left.box, k), (right.box, k + 1)]
            for box, j in parts:
                shapes.append(Digit(int(best[j]), float(conf[j]), box, crops[j],
                                    accepted=decide.accepted(conf[j], self.options)))
        numbers, left_out = decide.group_numbers(shapes, self.options)
        # Left out of the numbers: refused shapes, and read ones of the wrong height for their line.
        rejected += [Rejected(d.box, "height" if d.accepted else "confidence", d.confidence, d.digit, d.crop)
                     for d in left_out]
        return FrameResult(source, numbers, rejected, (w, h))


def _touches_border(box: Box, width: int, height: int, border: int) -> bool:
    x, y, w, h = box
    return x <= border or y <= border or x + w >= width - border or y + h >= height - border


@dataclass
class Split:
    box: Box
    ink: np.ndarray


def join_pairs(kept: list[Candidate], options: ReaderOptions = ReaderOptions()
               ) -> list[tuple[int, int, Split]]:
    """Neighbouring candidates that may be the pieces of one digit whose stroke broke where the
    candidate finder could not tell them from two digits (a 9's loop open at one side, a 3 cut at
    its waist): together they are no wider than tall and about a digit high, and they nearly
    touch. Returns (i, j, their union). Whether a pair is joined is the classifier's call
    (lenet.digits.decide.choose_joins); two digits side by side make a union wider than tall and
    are not tried."""
    if len(kept) < 2:
        return []
    boxes = [c.box for c in kept]
    height = float(np.median([b[3] for b in boxes]))
    order = sorted(range(len(kept)), key=lambda i: boxes[i][0])
    pairs = []
    for pos, i in enumerate(order):
        xi, yi, wi, hi = boxes[i]
        for j in order[pos + 1:]:
            xj, yj, wj, hj = boxes[j]
            if xj > xi + wi + options.pieces.join_reach * height:
                break
            u = union([boxes[i], boxes[j]])
            gap_y = max(yi, yj) - min(yi + hi, yj + hj)
            if (u[2] > u[3] or u[3] > options.lines.number_height[1] * height
                    or gap_y > options.pieces.join_gap * u[3]):
                continue
            ink = np.zeros((u[3], u[2]), np.float32)
            for c in (kept[i], kept[j]):
                x, y, w, h = c.box
                region = ink[y - u[1]:y - u[1] + h, x - u[0]:x - u[0] + w]
                np.maximum(region, c.ink, out=region)
            pairs.append((i, j, Split(u, ink)))
    return pairs


def split_wide(box: Box, ink: np.ndarray, aspect: float, pieces: PieceOptions = PieceOptions()
               ) -> tuple[Split, Split] | None:
    """Where two digits touch, the ink is thinnest: cut a blob wider than ``aspect`` × its height
    at the column of least ink in its middle (``pieces.cut_margin``). Whether the cut is kept is
    the classifier's call (lenet.digits.decide.keep_split)."""
    x, y, w, h = box
    if w <= aspect * h:
        return None
    columns = ink.sum(axis=0)
    lo, hi = w // pieces.cut_margin, w - w // pieces.cut_margin
    if hi - lo < 2:
        return None
    cut = lo + int(np.argmin(columns[lo:hi]))
    out = []
    for x0, x1 in ((0, cut), (cut, w)):
        part = ink[:, x0:x1]
        rows = np.nonzero(part.max(axis=1) > pieces.cut_ink)[0]
        if len(rows) == 0 or x1 - x0 < 2:
            return None
        part = part[rows[0]:rows[-1] + 1]
        out.append(Split((x + x0, y + int(rows[0]), x1 - x0, part.shape[0]), part))
    return out[0], out[1]
