"""The reader's tunable numbers, each named once, with its unit and why.

Lengths and heights are relative to the text (the median digit height of a line or a frame), not
pixels, so one setting reads a small scan and a camera frame alike. The thresholds that come from
data (``THRESHOLDS``) are chosen on the reader model's validation crops by tools/reader_model.py
and read from its manifest (:meth:`ReaderOptions.for_model`): the defaults here serve models that
record none. How the thresholds are used is :mod:`lenet.digits.decide`; the segmentation's own
numbers are :class:`lenet.digits.segment.SegmentOptions` (the reader model's training crops are
cut with them, so they live with the code that hashes into its data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .classify import reader_settings
from .segment import SegmentOptions

# The confidence thresholds a model's manifest records (tools/reader_model.py chooses them).
THRESHOLDS = ("min_confidence", "min_confidence_in_number", "min_confidence_between")


@dataclass(frozen=True)
class LineOptions:
    """How shapes make lines and numbers (lenet.digits.group; heights also in lenet.digits.decide).
    Unit: the median height of the digits read on the line, unless a field says otherwise."""

    # Two shapes are on one line when their vertical overlap exceeds this × the shorter one.
    same_line: float = 0.4
    # Only shapes this close in x (from a shape's right edge) chain a line: two lines must not
    # link through a long slant of unrelated shapes. Unit: that shape's own height.
    reach: float = 4.0
    # A group shows the page's slant when it has this many shapes or more ...
    skew_shapes: int = 3
    # ... spanning at least this much in x (unit: the frame's median shape height).
    skew_span: float = 3.0
    # A steeper slope (dy/dx) is no page's tilt: the skew estimate is clipped to ±this.
    max_skew: float = 0.3
    # Groups whose skew-corrected heights differ by less than this are one row (lines of writing
    # are more than 1.5 digit heights apart). Unit: the frame's median shape height.
    row_level: float = 0.5
    # A group joins a row only if it starts after the row's last group ends, less this much
    # (neighbouring digits' boxes overlap a little). Unit: the frame's median shape height.
    row_overlap: float = 0.25
    # A shape is part of a number only with a height in this band: below, the dot of a decimal
    # point, the circles of a "%" (perfect 0s once normalized), a small letter; above, a
    # bracket, a smudge, a hand.
    number_height: tuple[float, float] = (0.6, 1.6)
    # Heights in this band are a digit's: a group of shapes of other sizes is a row of its own
    # (small print beside big digits), and only a shape of this height is read at the lower
    # in-number thresholds (a digit the network is unsure of, not a letter after a number).
    digit_height: tuple[float, float] = (0.75, 1.35)


@dataclass(frozen=True)
class PieceOptions:
    """Reading one blob as two touching digits, and two pieces as one broken digit (the reader
    classifies both readings in its one batched call; lenet.digits.decide chooses)."""

    # A split or joined reading must also be a surer digit than this (probability): a coin toss
    # between two readings is no reason to change what the candidate finder saw.
    sure: float = 0.5
    # The cut between touching digits is looked for in the blob's middle: past width // this on
    # each side (the ink is thinnest where two digits meet, not at a digit's own edge).
    cut_margin: int = 4
    # Rows of a cut half whose ink is weaker than this (ink strength, 0-1) at its top and bottom
    # are the soft edge of the other half's strokes, not the digit: trimmed off its box.
    cut_ink: float = 0.05
    # Two pieces of one broken digit nearly touch: at most this far apart in x (unit: the
    # frame's median candidate height) ...
    join_reach: float = 0.1
    # ... and in y (unit: the height of the two together).
    join_gap: float = 0.1


@dataclass(frozen=True)
class ReaderOptions:
    """What lenet-digits' flags set (same names: --min-confidence sets ``min_confidence``), and
    the finer settings of each stage in ``segment``, ``lines`` and ``pieces``."""

    # Below: "not a digit" (confidence: lenet.digits.classify). From the model's manifest.
    min_confidence: float = 0.1
    # A refused shape among read digits, at their height, is read at this (None: never; it stays
    # "?" between read digits). From the model's manifest.
    min_confidence_in_number: float | None = None
    # ... and one between two read digits of its number at this (None: never). From the manifest.
    min_confidence_between: float | None = None
    # MNIST itself is not deskewed, so a model trained on it is not either.
    deskew: bool = False
    # Average over small re-registrations (lenet.digits.normalize.jitters).
    jitter: bool = True
    # Blobs wider than this × their height are also tried as two touching digits (0: never).
    split_aspect: float = 1.1
    # Nearby pieces that together are digit-shaped are also tried as one.
    join: bool = True
    # A space wider than this × the line's digit height ends a number.
    gap: float = 0.6
    # Video/camera: a shape touching the frame's edge may be a cut digit (a cut 8 looks like a 3).
    skip_border: bool = False
    # Pixels from the frame's edge within which a shape touches it.
    border: int = 1
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    lines: LineOptions = field(default_factory=LineOptions)
    pieces: PieceOptions = field(default_factory=PieceOptions)

    @classmethod
    def for_model(cls, path: str | os.PathLike, **overrides) -> "ReaderOptions":
        """Options with the thresholds a model's manifest records (chosen on its validation data,
        tools/reader_model.py), else the defaults; ``overrides`` that are None are ignored."""
        settings = reader_settings(path)
        values = {name: settings[name] for name in THRESHOLDS
                  if isinstance(settings.get(name), (int, float))}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
