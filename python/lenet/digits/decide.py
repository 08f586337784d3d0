"""Which shapes are digits: the one place that decides, for every shape the classifier saw,
whether it is read as a digit, kept in its number as a refused digit ("?"), or left out as a mark;
and which reading of a blob counts (whole, cut in two, joined with a neighbour).

The rules, in the order the reader applies them (every number is a field of
:class:`~lenet.digits.options.ReaderOptions`; the thresholds come from the model's manifest):

1. A shape is a digit when its confidence reaches ``min_confidence``; below, it is refused.
2. A blob is two touching digits when each half is a surer digit than the whole, than
   ``min_confidence`` and than a coin toss (``pieces.sure``): a wide 2 or a 0 stays whole.
3. Two pieces are one broken digit when together they are a sure digit and either surer than each
   piece alone (two good digits side by side stay two) or too short to be digits of their line
   (the top and bottom of an 8 are two fine 0s, but half as tall as the digits around them).
4. Shapes make lines, and a wide space ends a run of them (lenet.digits.group). In a run with a
   read digit, a refused shape of digit height (``lines.digit_height``) is read after all at
   ``min_confidence_in_number``: inside a number a shape is most likely a digit.
5. A shape of the wrong height for its line (``lines.number_height``), read or refused, is a mark:
   it is not part of a number and ends it.
6. Refused shapes at a number's ends are marks (a letter or a unit follows a number). Between two
   read digits a digit-height one is read at ``min_confidence_between`` (lower: a letter does not
   sit inside a number); else it stays in its number as "?", so that a digit the network is
   unsure of does not split the number in two.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .boxes import Box
from .group import Digit, Number, lines_of, split_at_gaps
from .options import ReaderOptions
from .segment import Candidate


def accepted(confidence: float, options: ReaderOptions) -> bool:
    """Rule 1: read as a digit, or refused (then rules 4-6 say whether it is a "?" or a mark)."""
    return bool(confidence >= options.min_confidence)


def keep_split(whole: float, left: float, right: float, options: ReaderOptions) -> bool:
    """Rule 2, from the confidences of the whole blob and of its two halves."""
    return min(left, right) > max(whole, options.min_confidence, options.pieces.sure)


def choose_joins(pairs: list[tuple[int, int, Box]], conf: np.ndarray, first: int, kept: list[Candidate],
                 options: ReaderOptions) -> tuple[dict[int, tuple[Box, int]], set[int]]:
    """Rule 3: which pairs of pieces (i, j, the box of both) become one digit, surest first
    (``conf[first + n]`` is pair n's confidence as one): {first piece: (the pair's box, its crop's
    index)}, and every piece used."""
    joined: dict[int, tuple[Box, int]] = {}
    used: set[int] = set()
    for n in sorted(range(len(pairs)), key=lambda n: -conf[first + n]):
        i, j, box = pairs[n]
        k = first + n
        short = max(kept[i].box[3], kept[j].box[3]) < options.lines.number_height[0] * box[3]
        if (i in used or j in used or conf[k] < max(options.min_confidence, options.pieces.sure)
                or not (short or conf[k] > max(conf[i], conf[j]))):
            continue
        used |= {i, j}
        joined[i] = (box, k)
    return joined, used


def group_numbers(shapes: list[Digit], options: ReaderOptions = ReaderOptions()
                  ) -> tuple[list[Number], list[Digit]]:
    """Rules 4-6: numbers in reading order, and the shapes left out of them (marks, and refused
    shapes that are in no number). ``shapes`` are not changed: a refused shape read after all is
    a copy."""
    numbers: list[Number] = []
    left_out: list[Digit] = []
    low, high = options.lines.number_height
    for line in lines_of(shapes, options.lines):
        read = [d.box[3] for d in line if d.accepted]
        if not read:
            left_out += line
            continue
        height = float(np.median(read))
        for run in split_at_gaps(line, options.gap * height):
            if options.min_confidence_in_number is not None and any(d.accepted for d in run):
                run = [_read(d) if _rescued(d, height, options.min_confidence_in_number, options) else d
                       for d in run]
            current: list[Digit] = []
            for d in run:
                if not low * height <= d.box[3] <= high * height:
                    numbers += _trimmed(current, left_out, height, options)
                    left_out.append(d)
                    current = []
                else:
                    current.append(d)
            numbers += _trimmed(current, left_out, height, options)
    return numbers, left_out


def _read(d: Digit) -> Digit:
    return replace(d, accepted=True)


def _rescued(d: Digit, height: float, threshold: float, options: ReaderOptions) -> bool:
    low, high = options.lines.digit_height
    return not d.accepted and d.confidence >= threshold and low * height <= d.box[3] <= high * height


def _trimmed(run: list[Digit], left_out: list[Digit], height: float, options: ReaderOptions) -> list[Number]:
    """Rule 6: the run without refused shapes at its ends (those go to ``left_out``), those
    between read digits read at the ``min_confidence_between`` threshold; [] if none is read."""
    first = next((i for i, d in enumerate(run) if d.accepted), None)
    if first is None:
        left_out += run
        return []
    last = max(i for i, d in enumerate(run) if d.accepted)
    left_out += run[:first] + run[last + 1:]
    inside = run[first:last + 1]
    between = options.min_confidence_between
    if between is not None:
        inside = [_read(d) if _rescued(d, height, between, options) else d for d in inside]
    return [Number(inside)]
