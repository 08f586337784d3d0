"""Digits → numbers: lines top to bottom, digits left to right, a wide gap ends a number."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .boxes import Box, linked_groups, union


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


def _same_line(a: Box, b: Box) -> bool:
    overlap = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return overlap > 0.4 * min(a[3], b[3])


def lines_of(digits: list[Digit]) -> list[list[Digit]]:
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
    groups = linked_groups(boxes, lambda b: b[0] + b[2] + 4 * b[3], _same_line)
    height = float(np.median([b[3] for b in boxes]))
    level = _levels(boxes, groups, height)
    rows = _rows(boxes, groups, level, height)
    lines = [sorted((digits[i] for i in g), key=lambda d: d.box[0] + d.box[2] / 2) for g in rows]
    order = sorted(range(len(rows)), key=lambda r: float(np.median([level[i] for i in rows[r]])))
    return [lines[r] for r in order]


# Groups whose skew-corrected heights differ by less than this × the digit height are one row
# (lines of writing are more than 1.5 digit heights apart).
ROW_LEVEL = 0.5


def _levels(boxes: list[Box], groups: list[list[int]], height: float) -> list[float]:
    """Each box's centre height with the page's skew taken out (the height its line would have at
    x = 0). The skew is the median slope of the groups long enough to show one (three digits
    or more, spanning at least three digit heights); 0 when none is."""
    cx = np.array([b[0] + b[2] / 2 for b in boxes], float)
    cy = np.array([b[1] + b[3] / 2 for b in boxes], float)
    slopes = [np.polyfit(cx[g], cy[g], 1)[0] for g in groups
              if len(g) >= 3 and np.ptp(cx[g]) >= 3 * height]
    skew = float(np.clip(np.median(slopes), -0.3, 0.3)) if slopes else 0.0
    return list(cy - skew * cx)


def _rows(boxes: list[Box], groups: list[list[int]], level: list[float], height: float) -> list[list[int]]:
    """Groups merged into rows, left to right: a group joins the row whose last group ends before
    it starts, at the nearest skew-corrected height (within ``ROW_LEVEL``), with digits of about
    its size (``DIGIT_HEIGHT``; a line of small print beside big digits is a row of its own).
    Built greedily, so a row never takes in two groups one above the other: on a tilted page
    whose skew is unknown (no group long enough to show it) rows would chain into each other."""
    if len(groups) < 2:
        return groups
    # (level, left, right, digit height) of each group
    spans = [(float(np.median([level[i] for i in g])), min(boxes[i][0] for i in g),
              max(boxes[i][0] + boxes[i][2] for i in g), float(np.median([boxes[i][3] for i in g])))
             for g in groups]
    rows: list[list[int]] = []
    for k in sorted(range(len(groups)), key=lambda k: spans[k][1]):
        lv, left, _, size = spans[k]
        fits = [row for row in rows
                if abs(lv - spans[row[-1]][0]) < ROW_LEVEL * height
                and left > spans[row[-1]][2] - 0.25 * height
                and DIGIT_HEIGHT[0] <= size / spans[row[0]][3] <= DIGIT_HEIGHT[1]]
        if fits:
            min(fits, key=lambda row: abs(lv - spans[row[-1]][0])).append(k)
        else:
            rows.append([k])
    return [[i for k in row for i in groups[k]] for row in rows]


# A shape belongs to a number only if its height is within these bounds × the line's median digit
# height. Below: the dot of a decimal point, a piece of a symbol (the circles of a "%", which are
# perfect 0s once normalized to 28×28), a small letter. Above: a bracket, a smudge, a hand.
NUMBER_HEIGHT = (0.6, 1.6)
# A shape refused by the page's threshold but sitting among read digits is read after all when
# its confidence reaches the in-number threshold and it is this close to their height: a digit
# the network is unsure of, not a letter after a number.
DIGIT_HEIGHT = (0.75, 1.35)


def group_numbers(digits: list[Digit], gap: float = 0.6, in_number: float | None = None,
                  between: float | None = None) -> tuple[list[Number], list[Digit]]:
    """Numbers in reading order, and the shapes left out of them.

    Within a line a number ends where the space to the next digit is more than ``gap`` × the
    line's median digit height. A shape of the wrong height for the line (``NUMBER_HEIGHT``), read
    or refused, is not part of a number and ends it. A refused shape (``accepted=False``) among
    read digits is read after all when its confidence is at least ``in_number`` (None: never) and
    it is digit-sized (``DIGIT_HEIGHT``): inside a number a shape is most likely a digit. Between
    two read digits of its number it is more likely still (a letter or a unit follows a number;
    it does not sit inside one), so there ``between`` (lower) is enough. Else it stays in its
    number as "?" when it lies between two read digits (a digit the network is unsure of must
    not split a number in two); at a number's ends it is not part of the number."""
    numbers: list[Number] = []
    left_out: list[Digit] = []
    for line in lines_of(digits):
        read = [d.box[3] for d in line if d.accepted]
        if not read:
            left_out += line
            continue
        height = float(np.median(read))
        runs: list[list[Digit]] = [[line[0]]]
        for prev, d in zip(line, line[1:]):
            space = d.box[0] - (prev.box[0] + prev.box[2])
            if space > gap * height:
                runs.append([])
            runs[-1].append(d)
        for run in runs:
            if in_number is not None and any(d.accepted for d in run):
                run = [replace(d, accepted=True) if _rescued(d, height, in_number) else d for d in run]
            current: list[Digit] = []
            for d in run:
                if not NUMBER_HEIGHT[0] * height <= d.box[3] <= NUMBER_HEIGHT[1] * height:
                    numbers += _trimmed(current, left_out, height, between)
                    left_out.append(d)
                    current = []
                else:
                    current.append(d)
            numbers += _trimmed(current, left_out, height, between)
    return numbers, left_out


def _rescued(d: Digit, height: float, threshold: float) -> bool:
    return (not d.accepted and d.confidence >= threshold
            and DIGIT_HEIGHT[0] * height <= d.box[3] <= DIGIT_HEIGHT[1] * height)


def _trimmed(run: list[Digit], left_out: list[Digit], height: float, between: float | None
             ) -> list[Number]:
    """The run without refused shapes at its ends (those go to ``left_out``), those between read
    digits read at the ``between`` threshold; [] if none is read."""
    first = next((i for i, d in enumerate(run) if d.accepted), None)
    if first is None:
        left_out += run
        return []
    last = max(i for i, d in enumerate(run) if d.accepted)
    left_out += run[:first] + run[last + 1:]
    inside = run[first:last + 1]
    if between is not None:
        inside = [replace(d, accepted=True) if _rescued(d, height, between) else d for d in inside]
    return [Number(inside)]
