"""The reader model's training data: digits and non-digits photographed, found and cropped exactly
as the reader finds and crops them at run time.

Every example starts as a short strip of writing: 3-6 glyphs in a row, each a digit (a training
font's, print or handwriting, or an MNIST digit: the training split's for training, the first
half of the test split's for validation) or a shape that is not a digit (a letter
unlike any digit, punctuation, a smudge, a line, a ruled-paper corner, a digit fragment, two
digits touching, a digit cut by the strip's edge), changed by a pen (``variety.pen``), sometimes
sampled coarsely or binarized (``variety.scanner``) and photographed (``variety.camera``). The strip then goes through the reader's own
``candidate_crops``; each kept candidate becomes an example labelled by the glyph it covers
(a digit 0-9, or 10 = rubbish for everything else, including pieces and merges the candidate
finder made). So the network is trained on the 28×28 images it will see, segmentation quirks
included.

    python -m lenet.digits.kit.training_data --out build/reader-data   (make reader-model runs it)

Writes ``reader-data.npz``: ``train_x/train_y`` (labels 0-10), ``test_x/test_y`` (digits only:
the checkpoint's test accuracy) and ``val_x/val_y/val_source`` (digits and rubbish from other
seeds and MNIST writers the training never saw: the rejection thresholds are chosen on them). Fonts held out (``fonts.HELD_OUT``) are never
used here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lenet.digits.normalize import candidate_crops
from lenet.glyphs import RUBBISH_LETTERS

from . import fonts
from .variety import camera, pen, scanner

RUBBISH = 10
SOURCES = ("mnist", "print", "handwriting", "rubbish")
# Real handwriting varies far more than any font: a little over half the digits are MNIST writers'
# digits, the rest fonts (print a little less than handwriting). 55 % with 48,000 strips read
# every kind of held-out page better than 50 % with 24,000 (docs/reader.md).
MNIST_SHARE = 0.55
PRINT_OF_FONTS = 0.45
# How far ``pen`` moves an MNIST digit from its writer's hand (fonts get the full 1.0). A trial
# with 0.8 (and more strips) read more MNIST digits but fewer printed ones, and more marks.
MNIST_PEN = 0.5
DATA_FILE = "reader-data.npz"
# Strips per part (train / validation) and how a strip's digits are drawn. About 5 crops a strip.
DEFAULT_STRIPS = {"train": 9000, "val": 1200}


@dataclass
class Item:
    ink: np.ndarray   # float32 [h, w]
    label: int        # digit, or RUBBISH
    source: int       # index into SOURCES


def _fit(ink: np.ndarray, height: int) -> np.ndarray:
    f = height / ink.shape[0]
    return cv2.resize(ink, (max(2, round(ink.shape[1] * f)), height), interpolation=cv2.INTER_AREA
                      if f < 1 else cv2.INTER_CUBIC).clip(0, 1)


class GlyphSource:
    """Draws digits and rubbish for one part of the data (fonts and MNIST digits fixed)."""

    def __init__(self, mnist_x: np.ndarray, mnist_y: np.ndarray, rng: np.random.Generator) -> None:
        self.rng = rng
        self.mnist_x, self.mnist_y = mnist_x, mnist_y
        self.fonts = {kind: [f for p in fonts.training_packages(kind) for f in fonts.font_files(p)]
                      for kind in ("print", "handwriting")}
        # Handwriting packages have few files; weigh packages, not files, so no one font dominates.
        self.by_package = {kind: [fonts.font_files(p) for p in fonts.training_packages(kind)]
                           for kind in ("print", "handwriting")}

    def font(self, kind: str) -> str:
        files = self.by_package[kind][self.rng.integers(len(self.by_package[kind]))]
        return files[self.rng.integers(len(files))]

    def font_digit(self, kind: str, height: int, digit: int | None = None) -> Item:
        d = int(self.rng.integers(10)) if digit is None else digit
        size = int(self.rng.integers(40, 90))
        ink = fonts.render_text(str(d), self.font(kind), size, stroke=int(self.rng.random() < 0.15))
        return Item(_fit(pen(ink, self.rng), height), d, SOURCES.index(kind))

    def mnist_digit(self, height: int) -> Item:
        i = int(self.rng.integers(len(self.mnist_x)))
        d = self.mnist_x[i].astype(np.float32) / 255.0
        ys, xs = np.nonzero(d > 0.1)
        d = np.pad(d[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 2)
        d = _fit(d, height + 4)
        return Item(pen(d, self.rng, strength=MNIST_PEN), int(self.mnist_y[i]), 0)

    def digit(self, height: int) -> Item:
        r = self.rng.random()
        if r < MNIST_SHARE:
            return self.mnist_digit(height)
        print_share = (1 - MNIST_SHARE) * PRINT_OF_FONTS
        return self.font_digit("print" if r < MNIST_SHARE + print_share else "handwriting", height)

    def rubbish(self, height: int) -> Item:
        """A shape that is not a digit. Thin upright shapes are drawn again: a stroke that stands
        up straight is a 1, and the rubbish class must not teach the network otherwise."""
        while True:
            item = self._rubbish(height)
            ys, xs = np.nonzero(item.ink > 0.3)
            if len(ys) and (xs.max() - xs.min() + 1) >= 0.4 * (ys.max() - ys.min() + 1):
                return item

    def _rubbish(self, height: int) -> Item:
        rng = self.rng
        kind = rng.choice(["letter", "letter", "letter", "letter", "smudge", "line", "ruled",
                           "fragment", "fragment", "pair", "pair"])
        if kind == "letter":
            ch = RUBBISH_LETTERS[rng.integers(len(RUBBISH_LETTERS))]
            ink = fonts.render_text(ch, self.font("print" if rng.random() < 0.5 else "handwriting"),
                                    int(rng.integers(40, 90)))
            ink = pen(ink, rng)
            if ch.islower() and ch not in "dfhk":  # x-height letters are shorter than digits
                height = int(height * rng.uniform(0.55, 0.8))
            return Item(_fit(ink, max(8, height)), RUBBISH, 3)
        if kind == "smudge":
            w = int(height * rng.uniform(0.4, 1.6))
            h = int(height * rng.uniform(0.4, 1.0))
            ink = np.zeros((h + 8, w + 8), np.float32)
            cv2.ellipse(ink, ((w + 8) // 2, (h + 8) // 2), (max(2, w // 2), max(2, h // 2)),
                        float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
            ink = cv2.GaussianBlur(ink, (0, 0), max(1.0, height * rng.uniform(0.03, 0.12)))
            return Item(ink * rng.uniform(0.5, 1.0), RUBBISH, 3)
        if kind in ("line", "ruled"):
            size = int(height * rng.uniform(0.6, 1.2))
            ink = np.zeros((size + 10, size + 10), np.float32)
            t = max(1, int(height * rng.uniform(0.03, 0.12)))
            if kind == "line":  # a stroke, a tick or a slash, well off upright (that would be a 1)
                a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
                while abs(a[0] - b[0]) < 0.7 * abs(a[1] - b[1]) or abs(a - b).max() < 4:
                    a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
                cv2.line(ink, (int(a[0]) + 5, int(a[1]) + 5), (int(b[0]) + 5, int(b[1]) + 5), 1.0, t, cv2.LINE_AA)
            else:  # where a ruled line meets a margin line: a cross or a line with a stub above
                # (no corner hanging down from a bar: that is how many people write a 7)
                cx, cy = (int(v) + 5 for v in rng.uniform(0.2 * size, 0.8 * size, 2))
                cv2.line(ink, (0, cy), (size + 9, cy), 1.0, t, cv2.LINE_AA)
                cv2.line(ink, (cx, 0), (cx, size + 9 if rng.random() < 0.5 else cy), 1.0, t, cv2.LINE_AA)
            if ink.max() == 0:
                ink[5:8, 5:size] = 1.0
            return Item(ink, RUBBISH, 3)
        if kind == "fragment":
            # The left or right part of a digit, as a broken stroke leaves it: a "(" or a "c".
            # (Not its top or bottom: the top of a 9 or the bottom of a 6 is a fine 0. A thin
            # upright part is a 1 and is drawn again by rubbish().)
            item = self.digit(height)
            w = item.ink.shape[1]
            f = rng.uniform(0.3, 0.5)
            part = item.ink[:, :max(2, int(w * f))] if rng.random() < 0.5 else item.ink[:, int(w * (1 - f)):]
            return Item(part, RUBBISH, 3)
        # Two digits written so close that their ink touches: one blob, not one digit.
        a, b = self.digit(height), self.digit(height)
        ha, hb = a.ink.shape[0], b.ink.shape[0]
        h = max(ha, hb)
        overlap = int(rng.integers(1, max(2, min(a.ink.shape[1], b.ink.shape[1]) // 5)))
        ink = np.zeros((h, a.ink.shape[1] + b.ink.shape[1] - overlap), np.float32)
        ink[h - ha:, :a.ink.shape[1]] = a.ink
        x0 = a.ink.shape[1] - overlap
        np.maximum(ink[h - hb:, x0:], b.ink, out=ink[h - hb:, x0:])
        return Item(ink, RUBBISH, 3)


def strip(src: GlyphSource, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photographed strip through the reader's candidate finding: crops, labels, sources."""
    height = int(rng.integers(22, 66))
    count = int(rng.integers(3, 7))
    items = [src.rubbish(height) if rng.random() < 0.3 else src.digit(height) for _ in range(count)]
    margin = height
    width = margin * 2 + sum(it.ink.shape[1] for it in items) + int(height * 0.5) * count
    ink = np.zeros((int(height * 2.2), width), np.float32)
    boxes, x = [], margin
    for it in items:
        h, w = it.ink.shape
        y = (ink.shape[0] - h) // 2 + int(rng.integers(-height // 10, height // 10 + 1))
        y = max(0, min(y, ink.shape[0] - h))
        region = ink[y:y + h, x:x + w]
        np.maximum(region, it.ink[:region.shape[0], :region.shape[1]], out=region)
        ys, xs = np.nonzero(it.ink > 0.1)
        boxes.append((x + xs.min(), y + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
                     if len(ys) else (x, y, w, h))
        x += w + int(height * rng.uniform(0.2, 0.7))
    labels = [it.label for it in items]
    k = 0 if rng.random() < 0.5 else len(items) - 1
    if rng.random() < 0.25 and boxes[k][2] >= 0.6 * boxes[k][3]:
        # Cut the strip through its first or last glyph: a digit cut by the frame is rubbish.
        bx, _, bw, _ = boxes[k]
        # At most 40 % of it stays in the strip: more of a cut 8 is a 3, a good digit to read.
        keep = rng.uniform(0.25, 0.4)
        cut = bx + int(bw * (1 - keep if k == 0 else keep))
        if k == 0:
            ink = ink[:, cut:]
            boxes = [(b[0] - cut, *b[1:]) for b in boxes]
        else:
            ink = ink[:, :cut]
        labels[k] = RUBBISH
    image = camera(scanner(ink, rng, height), rng)
    _, kept, crops = candidate_crops(image)
    out_y, out_s, use = [], [], []
    for i, c in enumerate(kept):
        label = _label(c.box, boxes, labels)
        if label is None:
            continue
        use.append(i)
        out_y.append(label)
        k = _cover(c.box, boxes)[0]
        out_s.append(items[k[0]].source if label != RUBBISH else 3)
    return crops[use], np.array(out_y, np.int64), np.array(out_s, np.int8)


def _cover(cand, boxes) -> tuple[list[int], list[float], list[float]]:
    """Glyphs a candidate covers a good part of (≥ 30 % of the glyph's box), with the fraction of
    each glyph covered and the fraction of the candidate that is that glyph."""
    idx, coverage, purity = [], [], []
    for k, b in enumerate(boxes):
        iw = max(0, min(cand[0] + cand[2], b[0] + b[2]) - max(cand[0], b[0]))
        ih = max(0, min(cand[1] + cand[3], b[1] + b[3]) - max(cand[1], b[1]))
        inter = iw * ih
        if inter >= 0.3 * b[2] * b[3]:
            idx.append(k)
            coverage.append(inter / max(1, b[2] * b[3]))
            purity.append(inter / max(1, cand[2] * cand[3]))
    return idx, coverage, purity


def _label(cand, boxes, labels) -> int | None:
    """A candidate's label: the glyph's when it is that glyph (most of it, little else); rubbish
    when it merges several glyphs or is all or part of a rubbish glyph; None (not used) when it is
    only part of a digit or nothing drawn, which is neither clearly a digit nor clearly not one."""
    idx, coverage, purity = _cover(cand, boxes)
    if len(idx) >= 2:
        return RUBBISH
    if not idx:
        return None
    k = idx[0]
    if labels[k] == RUBBISH:
        # Most of the shape, not one piece of it: the pieces of two digits that were meant to
        # touch but do not are two good digits.
        return RUBBISH if coverage[0] >= 0.6 else None
    return labels[k] if coverage[0] >= 0.7 and purity[0] >= 0.75 else None


def _make_part(args: tuple[int, int, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seed, strips, mx, my = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    src = GlyphSource(mx, my, rng)
    xs, ys, ss = [], [], []
    for _ in range(strips):
        x, y, s = strip(src, rng)
        xs.append(x), ys.append(y), ss.append(s)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


def build(strips: dict[str, int], seed: int = 0, workers: int = 2) -> dict[str, np.ndarray]:
    """The dataset as arrays (see the module docstring)."""
    from multiprocessing import get_context

    from lenet.data import mnist_digits

    # Training strips draw MNIST's 60,000 training digits; validation strips (where the reader's
    # thresholds are chosen) the first half of its test split: writers the model never saw.
    writers = {"train": mnist_digits("train"), "val": mnist_digits("select")}
    jobs = []
    for part, n in strips.items():
        chunks = max(1, workers * 4)
        base = seed * 1000 + (0 if part == "train" else 500)
        mx, my = writers[part]
        jobs += [(part, (base + k, n // chunks + (k < n % chunks), mx, my)) for k in range(chunks)]
    with get_context("fork").Pool(workers) as pool:
        results = pool.map(_make_part, [j for _, j in jobs])
    out: dict[str, np.ndarray] = {}
    for part in strips:
        got = [r for (p, _), r in zip(jobs, results) if p == part]
        x, y, s = (np.concatenate([g[i] for g in got]) for i in range(3))
        out[f"{part}_x"], out[f"{part}_y"], out[f"{part}_source"] = x, y, s
    # The checkpoint's "test accuracy": the validation digits (rubbish has no digit to get right).
    digits = out["val_y"] != RUBBISH
    out["test_x"], out["test_y"] = out["val_x"][digits], out["val_y"][digits]
    return out


def describe(data: dict[str, np.ndarray]) -> dict:
    """Counts per part and source, for the recipe's record."""
    d = {}
    for part in ("train", "val"):
        s = data[f"{part}_source"]
        d[part] = {name: int((s == i).sum()) for i, name in enumerate(SOURCES)}
    return d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lenet.digits.kit.training_data",
                                description="Render the reader model's training data (cached).")
    p.add_argument("--out", default="build/reader-data", help="output directory")
    p.add_argument("--train-strips", type=int, default=DEFAULT_STRIPS["train"])
    p.add_argument("--val-strips", type=int, default=DEFAULT_STRIPS["val"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    try:
        for kind in ("print", "handwriting"):
            for name in fonts.training_packages(kind):
                fonts.font_files(name)
    except fonts.FontsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = build({"train": args.train_strips, "val": args.val_strips}, args.seed, args.workers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{DATA_FILE}.tmp.npz"
    np.savez_compressed(tmp, **data)
    os.replace(tmp, out / DATA_FILE)
    info = {"strips": {"train": args.train_strips, "val": args.val_strips}, "seed": args.seed,
            "crops": describe(data), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "reader-data.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
