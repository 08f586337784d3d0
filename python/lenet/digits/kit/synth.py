"""Photographed pages of numbers, for demos, tests and the reader's evaluation.

Digits (real MNIST digits, by default the last 5,000 of MNIST's test split, or
ink maps of digits in any font) are placed as multi-digit numbers in lines on paper, plain or
ruled, with a few non-digit marks (letters, smudges, dashes) that a reader must reject, then
photographed badly: black or blue ink, paper texture, uneven lighting and a soft shadow, slight
rotation and perspective, blur, sensor noise and JPEG. The truth (numbers, digit boxes and mark
boxes, in the final image's coordinates) comes with the page.

    python -m lenet.digits.kit.synth --out page.png [--truth page.json] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lenet.digits.boxes import Box
from lenet.glyphs import MARK_FONTS, MARK_LETTERS, hershey_ink

@dataclass
class TruthDigit:
    digit: int
    box: Box


@dataclass
class TruthNumber:
    text: str
    box: Box
    digits: list[TruthDigit] = field(default_factory=list)


@dataclass
class Page:
    image: np.ndarray  # BGR uint8
    numbers: list[TruthNumber]
    marks: list[Box]

    def truth_dict(self) -> dict:
        return {"numbers": [asdict(n) for n in self.numbers], "marks": [list(m) for m in self.marks]}


def _tight(ink: np.ndarray) -> np.ndarray:
    """Float ink in [0, 1] (from uint8 0-255 or float) cropped to where it is."""
    ink = ink.astype(np.float32) / 255.0 if ink.dtype == np.uint8 else ink.astype(np.float32)
    ys, xs = np.nonzero(ink > 0.12)
    return ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _letter(ch: str, height: int, rng: np.random.Generator, font_files: list[str] | None) -> np.ndarray:
    """A letter as an ink map in [0, 1], about ``height`` px tall: in one of ``font_files``, or
    (None) in an OpenCV Hershey font that the rubbish class never uses."""
    if font_files:
        from .fonts import render_text

        ink = render_text(ch, font_files[int(rng.integers(len(font_files)))], 72)
    else:
        ink = hershey_ink(ch, int(rng.choice(MARK_FONTS)), int(rng.integers(5, 9)), scale=3.0)
    ink = _tight(ink)
    f = height / ink.shape[0]
    return cv2.resize(ink, (max(1, round(ink.shape[1] * f)), height), interpolation=cv2.INTER_AREA)


def _smudge(height: int, rng: np.random.Generator) -> np.ndarray:
    w = int(height * rng.uniform(0.8, 1.6))
    canvas = np.zeros((height, w), np.float32)
    cv2.ellipse(canvas, (w // 2, height // 2), (int(w * 0.4), int(height * 0.35)), float(rng.uniform(0, 180)),
                0, 360, 1.0, -1, cv2.LINE_AA)
    canvas = cv2.GaussianBlur(canvas, (0, 0), height * 0.08)
    return canvas * rng.uniform(0.5, 0.9)


def _dash(height: int, rng: np.random.Generator) -> np.ndarray:
    w = int(height * rng.uniform(1.5, 3.0))
    t = max(3, int(height * 0.1))
    canvas = np.zeros((t * 3, w), np.float32)
    cv2.line(canvas, (t, t + int(rng.integers(-t // 2, t // 2 + 1))), (w - t, t), 1.0, t, cv2.LINE_AA)
    return canvas


def _mark(height: int, rng: np.random.Generator, font_files: list[str] | None) -> np.ndarray:
    kind = rng.choice(["letter", "letter", "letter", "smudge", "dash"])
    if kind == "letter":
        return _letter(str(rng.choice(list(MARK_LETTERS))), height, rng, font_files)
    return _smudge(height, rng) if kind == "smudge" else _dash(height, rng)


def _paste(ink: np.ndarray, patch: np.ndarray, x: int, y: int) -> Box:
    h, w = patch.shape
    region = ink[y:y + h, x:x + w]
    np.maximum(region, patch[:region.shape[0], :region.shape[1]], out=region)
    return (x, y, w, h)


def _warp_box(box: Box, m: np.ndarray) -> Box:
    x, y, w, h = box
    pts = np.array([[[x, y]], [[x + w, y]], [[x, y + h]], [[x + w, y + h]]], np.float32)
    q = cv2.perspectiveTransform(pts, m).reshape(-1, 2)
    x0, y0 = np.floor(q.min(0)).astype(int)
    x1, y1 = np.ceil(q.max(0)).astype(int)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


@dataclass(frozen=True)
class PageStyle:
    """How the page is written and photographed (the defaults: the tests' and the demo's pages)."""
    ink: str = "black"                       # "black" or "blue"
    ruled: bool = False                      # faint ruled lines under each line of writing
    perspective: float = 0.025               # each corner moved by up to this × the page size
    jpeg: tuple[int, int] = (70, 92)         # JPEG quality range
    mark_fonts: tuple[str, ...] | None = None  # font files for the letter marks (None: Hershey)
    unit_marks: float = 0.0                  # share of numbers followed, at digit spacing, by a letter


def make_page(digits, labels: np.ndarray, rng: np.random.Generator, *,
              size: tuple[int, int] = (1100, 850), digit_height: tuple[int, int] = (44, 60),
              lines: int = 7, marks: int = 4, distort: bool = True,
              style: PageStyle = PageStyle()) -> tuple[Page, int]:
    """One page from ``digits`` (uint8 [K,28,28] white ink on black, or a sequence of float ink
    maps in [0, 1] of any size; used in order).

    Returns the page and how many digits it used, so the caller can hand the rest to the next page
    and every digit appears at most once."""
    height, width = size
    ink = np.zeros(size, np.float32)
    numbers: list[TruthNumber] = []
    mark_boxes: list[Box] = []
    used = 0
    margin = 50
    y = margin
    marks_left = marks
    rules: list[int] = []  # y of the ruled lines, under each line of writing
    mark_fonts = list(style.mark_fonts) if style.mark_fonts else None
    for line in range(lines):
        h = int(rng.integers(*digit_height))
        if y + 1.6 * h > height - margin:
            break
        rules.append(y + h + max(3, int(0.18 * h)))
        x = margin + int(rng.integers(0, h))
        while True:
            if marks_left and rng.random() < 0.25:
                patch = _mark(h, rng, mark_fonts)
                if x + patch.shape[1] > width - margin:
                    break
                dy = (h - patch.shape[0]) // 2
                mark_boxes.append(_paste(ink, patch, x, y + max(0, dy)))
                marks_left -= 1
                x += patch.shape[1] + int(h * rng.uniform(1.3, 2.2))
                continue
            n = int(rng.integers(2, 6))
            patches = []
            for _ in range(n):
                if used >= len(digits):
                    break
                d = _tight(digits[used])
                dh = int(h * rng.uniform(0.9, 1.05))
                f = dh / d.shape[0]
                patches.append((int(labels[used]), cv2.resize(d, (max(2, round(d.shape[1] * f)), dh),
                                                               interpolation=cv2.INTER_CUBIC).clip(0, 1)))
                used += 1
            if not patches:
                break
            gaps = [int(h * rng.uniform(0.08, 0.3)) for _ in patches]
            total = sum(p.shape[1] for _, p in patches) + sum(gaps[:-1])
            if x + total > width - margin:
                used -= len(patches)  # give them to the next line
                break
            number = TruthNumber("", (0, 0, 0, 0))
            for (label, p), gap in zip(patches, gaps):
                dy = int(rng.integers(-h // 12, h // 12 + 1)) + (h - p.shape[0]) // 2
                number.digits.append(TruthDigit(label, _paste(ink, p, x, y + max(0, dy))))
                x += p.shape[1] + gap
            number.text = "".join(str(d.digit) for d in number.digits)
            numbers.append(number)
            if style.unit_marks and rng.random() < style.unit_marks:
                # A unit or a letter written right after the number ("12 kg", "40 %"): as close
                # as the number's own digits, so the reader must refuse it inside the number.
                patch = _letter(str(rng.choice(list(MARK_LETTERS))), int(h * rng.uniform(0.6, 1.0)), rng,
                                mark_fonts)
                if x + patch.shape[1] <= width - margin:
                    mark_boxes.append(_paste(ink, patch, x, y + h - patch.shape[0]))
                    x += patch.shape[1]
            x += int(h * rng.uniform(1.4, 2.6))
        y += int(h * rng.uniform(1.7, 2.3))

    if distort:
        image, m = _photograph(ink, rng, style, rules)
    else:
        image = np.repeat((255 * (1 - 0.85 * ink)).astype(np.uint8)[..., None], 3, axis=2)
        m = np.eye(3)
    for number in numbers:
        for d in number.digits:
            d.box = _warp_box(d.box, m)
        xs = [d.box[0] for d in number.digits] + [d.box[0] + d.box[2] for d in number.digits]
        ys = [d.box[1] for d in number.digits] + [d.box[1] + d.box[3] for d in number.digits]
        number.box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    mark_boxes = [_warp_box(b, m) for b in mark_boxes]
    return Page(image, numbers, mark_boxes), used


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _photograph(ink: np.ndarray, rng: np.random.Generator, style: PageStyle = PageStyle(),
                rules: list[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Ink on textured paper under uneven light, seen slightly rotated and in perspective."""
    from .variety import INKS

    h, w = ink.shape
    paper = 0.9 + 0.03 * _smooth_field(ink.shape, rng, 12) + 0.015 * rng.standard_normal(ink.shape).astype(np.float32)
    paper = np.repeat(paper[..., None], 3, axis=2)
    for y in rules:  # printed ruling: thin, pale blue-grey, under the ink
        cv2.line(paper, (0, y), (w, y), (0.62, 0.72, 0.78), 2, cv2.LINE_AA)
    strength = rng.uniform(0.7, 0.9)
    absorb = 1.0 - np.array(INKS[style.ink], np.float32)
    reflect = paper * (1 - strength * ink[..., None] * absorb[None, None, :])
    # Light: a gradient across the page, a vignette, and a soft shadow over part of it.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))
    light = 1.0 - rng.uniform(0.25, 0.45) * (grad + 0.5)
    light *= 1.0 - 0.25 * (((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5)
    shadow = np.zeros(ink.shape, np.float32)
    pts = np.array([[rng.uniform(0, w), 0], [w, rng.uniform(0, h)], [w, h],
                    [rng.uniform(0, w), h]], np.int32)
    cv2.fillConvexPoly(shadow, pts, 1.0)
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(15, 40))
    light *= 1.0 - rng.uniform(0.25, 0.4) * shadow
    tint = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.93, 1.0), 1.0], np.float32)  # warm light, BGR
    image = reflect * light[..., None] * tint[None, None, :] * 255.0
    # Slight rotation and perspective: each corner moved by up to style.perspective of the page.
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), 1.0)
    p = style.perspective
    dst = cv2.transform(src[None], rot)[0] + rng.uniform(-p, p, (4, 2)).astype(np.float32) * [w, h]
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    image = cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.2))
    image += rng.normal(0, rng.uniform(3, 7), image.shape).astype(np.float32)
    image = image.clip(0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*style.jpeg))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR), m


def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The last 5,000 MNIST test digits, as numpy arrays: writers that neither the reader model's
    training (MNIST's training split) nor the choice of its thresholds (the first 5,000) saw.
    Needs full MNIST (./data or $LENET_DATA_DIR; make data, or torchvision's download)."""
    from lenet.data import mnist_digits

    return mnist_digits("report")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lenet.digits.kit.synth",
                                description="Write a scanned-style page of handwritten numbers made of "
                                            "held-out MNIST digits (and non-digit marks).")
    p.add_argument("--out", required=True, help="image file to write (e.g. page.png)")
    p.add_argument("--truth", help="also write the numbers and boxes on the page as JSON")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--marks", type=int, default=4, help="non-digit marks on the page (default 4)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    from lenet.data import DataError

    try:
        x, y = heldout_digits()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    order = rng.permutation(len(x))
    page, _ = make_page(x[order], y[order], rng, marks=args.marks)
    if not cv2.imwrite(args.out, page.image):
        print(f"error: {args.out}: cannot write image", file=sys.stderr)
        return 1
    if args.truth:
        Path(args.truth).write_text(json.dumps(page.truth_dict(), indent=1))
    print(f"{args.out}: {len(page.numbers)} numbers: {' '.join(n.text for n in page.numbers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
