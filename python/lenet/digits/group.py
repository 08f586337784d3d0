"""Shapes → lines and runs: lines top to bottom, shapes left to right, a wide gap ends a run.
Pure geometry (relative to the digits' height: lenet.digits.options.LineOptions); which shapes
of a run make a number is lenet.digits.decide's call."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import Box, linked_groups, union
from .options import LineOptions


@dataclass
class Digit:
    digit: int                      # the class read (for a refused one: the best guess)
    confidence: float
    box: Box
    crop: np.ndarray | None = None  # the normalized 28×28 the network saw
    accepted: bool = True           # False: refused as "not a digit" but kept in its number ("?")

    @property
    def char(self) -> str:
        return str(self.digit) if self.accepted else "?"

    def to_json(self) -> dict:
        if not self.accepted:
            return {"digit": None, "guess": self.digit, "confidence": round(self.confidence, 4),
                    "box": list(self.box)}
        return {"digit": self.digit, "confidence": round(self.confidence, 4), "box": list(self.box)}


@dataclass
class Number:
    digits: list[Digit] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(d.char for d in self.digits)

    @property
    def box(self) -> Box:
        return union([d.box for d in self.digits])

    def to_json(self) -> dict:
        return {"text": self.text, "box": list(self.box), "digits": [d.to_json() for d in self.digits]}


def lines_of(digits: list[Digit], options: LineOptions = LineOptions()) -> list[list[Digit]]:
    """Lines top to bottom, each left to right.

    First the connected groups of digits that overlap vertically (chained through neighbours, so
    a slightly rotated line stays one line). Only neighbours within a few digit heights link, so
    two lines cannot be chained together through a long slant of unrelated digits. Then groups
    of one row that a wide space (a refused mark, a long dash) kept apart are put together
    (``_rows``): else the number after the space is read as a line of its own, before or after
    the rest of its row."""
    if not digits:
        return []
    boxes = [d.box for d in digits]

    def same_line(a: Box, b: Box) -> bool:
        overlap = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        return overlap > options.same_line * min(a[3], b[3])

    groups = linked_groups(boxes, lambda b: b[0] + b[2] + options.reach * b[3], same_line)
    height = float(np.median([b[3] for b in boxes]))
    level = _levels(boxes, groups, height, options)
    rows = _rows(boxes, groups, level, height, options)
    lines = [sorted((digits[i] for i in g), key=lambda d: d.box[0] + d.box[2] / 2) for g in rows]
    order = sorted(range(len(rows)), key=lambda r: float(np.median([level[i] for i in rows[r]])))
    return [lines[r] for r in order]


def _levels(boxes: list[Box], groups: list[list[int]], height: float, options: LineOptions) -> list[float]:
    """Each box's centre height with the page's skew taken out (the height its line would have at
    x = 0). The skew is the median slope of the groups long enough to show one (``skew_shapes``
    shapes or more, spanning at least ``skew_span`` digit heights); 0 when none is."""
    cx = np.array([b[0] + b[2] / 2 for b in boxes], float)
    cy = np.array([b[1] + b[3] / 2 for b in boxes], float)
    slopes = [np.polyfit(cx[g], cy[g], 1)[0] for g in groups
              if len(g) >= options.skew_shapes and np.ptp(cx[g]) >= options.skew_span * height]
    skew = float(np.clip(np.median(slopes), -options.max_skew, options.max_skew)) if slopes else 0.0
    return list(cy - skew * cx)


def _rows(boxes: list[Box], groups: list[list[int]], level: list[float], height: float,
          options: LineOptions) -> list[list[int]]:
    """Groups merged into rows, left to right: a group joins the row whose last group ends before
    it starts, at the nearest skew-corrected height (within ``row_level``), with digits of about
    its size (``digit_height``; a line of small print beside big digits is a row of its own).
    Built greedily, so a row never takes in two groups one above the other: on a tilted page
    whose skew is unknown (no group long enough to show it) rows would chain into each other."""
    if len(groups) < 2:
        return groups
    # (level, left, right, digit height) of each group
    spans = [(float(np.median([level[i] for i in g])), min(boxes[i][0] for i in g),
              max(boxes[i][0] + boxes[i][2] for i in g), float(np.median([boxes[i][3] for i in g])))
             for g in groups]
    rows: list[list[int]] = []
    low, high = options.digit_height
    for k in sorted(range(len(groups)), key=lambda k: spans[k][1]):
        lv, left, _, size = spans[k]
        fits = [row for row in rows
                if abs(lv - spans[row[-1]][0]) < options.row_level * height
                and left > spans[row[-1]][2] - options.row_overlap * height
                and low <= size / spans[row[0]][3] <= high]
        if fits:
            min(fits, key=lambda row: abs(lv - spans[row[-1]][0])).append(k)
        else:
            rows.append([k])
    return [[i for k in row for i in groups[k]] for row in rows]


def split_at_gaps(line: list[Digit], gap: float) -> list[list[Digit]]:
    """The runs of a line (left to right) between spaces wider than ``gap`` pixels."""
    runs: list[list[Digit]] = [[line[0]]]
    for prev, d in zip(line, line[1:]):
        space = d.box[0] - (prev.box[0] + prev.box[2])
        if space > gap:
            runs.append([])
        runs[-1].append(d)
    return runs
