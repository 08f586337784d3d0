"""Digits → numbers: lines top to bottom, digits left to right, a wide gap ends a number."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]


@dataclass
class Digit:
    digit: int
    confidence: float
    box: Box
    crop: np.ndarray | None = None  # the normalized 28×28 the network saw

    def to_json(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4), "box": list(self.box)}


@dataclass
class Number:
    digits: list[Digit] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    @property
    def box(self) -> Box:
        return union([d.box for d in self.digits])

    def to_json(self) -> dict:
        return {"text": self.text, "box": list(self.box), "digits": [d.to_json() for d in self.digits]}


def union(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def _same_line(a: Box, b: Box) -> bool:
    overlap = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return overlap > 0.4 * min(a[3], b[3])


def lines_of(digits: list[Digit]) -> list[list[Digit]]:
    """Lines as the connected groups of digits that overlap vertically (chained through
    neighbours, so a slightly rotated line stays one line), top to bottom, each left to right."""
    n = len(digits)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(n), key=lambda i: digits[i].box[0])
    for ai, i in enumerate(order):
        for k in order[ai + 1:]:
            # Only neighbours within a few digit heights link, so two lines cannot be chained
            # together through a long slant of unrelated digits.
            if digits[k].box[0] - (digits[i].box[0] + digits[i].box[2]) > 4 * digits[i].box[3]:
                break
            if _same_line(digits[i].box, digits[k].box):
                parent[find(k)] = find(i)
    groups: dict[int, list[Digit]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(digits[i])
    lines = [sorted(g, key=lambda d: d.box[0] + d.box[2] / 2) for g in groups.values()]
    return sorted(lines, key=lambda g: float(np.median([d.box[1] + d.box[3] / 2 for d in g])))


def group_numbers(digits: list[Digit], gap: float = 0.6) -> list[Number]:
    """Numbers in reading order. Within a line a number ends where the space to the next digit is
    more than ``gap`` × the line's median digit height."""
    numbers: list[Number] = []
    for line in lines_of(digits):
        height = float(np.median([d.box[3] for d in line]))
        current = Number([line[0]])
        for prev, d in zip(line, line[1:]):
            space = d.box[0] - (prev.box[0] + prev.box[2])
            if space > gap * height:
                numbers.append(current)
                current = Number([])
            current.digits.append(d)
        numbers.append(current)
    return numbers
