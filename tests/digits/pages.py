"""Scoring a reading of a synthetic page against its truth (pages come from lenet.digits.synth)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lenet.digits.reader import FrameResult
from lenet.digits.synth import Page, make_page


def _center_in(a, b) -> bool:
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def same_place(truth, found) -> bool:
    """The found box is the truth's: they overlap well, or (thin digits such as a 1, whose
    rotated truth box is wider than the ink) each one's centre lies in the other."""
    return iou(truth, found) > 0.3 or (_center_in(truth, found) and _center_in(found, truth))


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Score:
    digits: int = 0
    digits_right: int = 0
    numbers: int = 0
    numbers_right: int = 0
    marks: int = 0
    marks_read: int = 0         # marks that came out as (part of) a digit
    stray_digits: int = 0       # accepted digits that are neither a true digit nor a mark
    errors: list[str] = field(default_factory=list)

    def add(self, other: "Score") -> None:
        for name in ("digits", "digits_right", "numbers", "numbers_right", "marks", "marks_read",
                     "stray_digits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors

    @property
    def digit_accuracy(self) -> float:
        return self.digits_right / max(1, self.digits)

    @property
    def number_accuracy(self) -> float:
        return self.numbers_right / max(1, self.numbers)

    @property
    def mark_rate(self) -> float:
        return self.marks_read / max(1, self.marks)

    def summary(self) -> str:
        return (f"digits {self.digits_right}/{self.digits} = {self.digit_accuracy:.1%}, "
                f"numbers {self.numbers_right}/{self.numbers} = {self.number_accuracy:.1%}, "
                f"marks read as digits {self.marks_read}/{self.marks} = {self.mark_rate:.1%}, "
                f"stray digits {self.stray_digits}")


def score_page(page: Page, result: FrameResult, name: str = "page") -> Score:
    s = Score()
    found = result.digits
    used = set()
    for n in page.numbers:
        s.numbers += 1
        s.digits += len(n.digits)
        for d in n.digits:
            near = [i for i in range(len(found)) if same_place(d.box, found[i].box)]
            best = max(near, key=lambda i: iou(d.box, found[i].box), default=None)
            if best is not None:
                used.add(best)
                if found[best].digit == d.digit:
                    s.digits_right += 1
                else:
                    s.errors.append(f"{name}: {d.digit} read as {found[best].digit} at {d.box}")
            else:
                s.errors.append(f"{name}: {d.digit} at {d.box} not read")
        match = [m for m in result.numbers if iou(n.box, m.box) > 0.5]
        if any(m.text == n.text for m in match):
            s.numbers_right += 1
        else:
            s.errors.append(f"{name}: number {n.text} read as {[m.text for m in match]}")
    for mark in page.marks:
        s.marks += 1
        hits = [i for i, f in enumerate(found) if iou(mark, f.box) > 0.2]
        if hits:
            s.marks_read += 1
            used.update(hits)
            s.errors.append(f"{name}: mark at {mark} read as {[found[i].digit for i in hits]}")
    s.stray_digits = len(found) - len(used)
    return s


def make_pages(digits: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, **kw) -> list[Page]:
    """``count`` pages that between them use each held-out digit at most once."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    digits, labels = digits[order], labels[order]
    pages, start = [], 0
    for _ in range(count):
        page, used = make_page(digits[start:], labels[start:], rng, **kw)
        pages.append(page)
        start += used
    return pages


def make_clip(path, page: Page, frames: int = 24, size: tuple[int, int] = (640, 480), fps: float = 12.0) -> None:
    """A short video of ``page`` as a hand-held camera sees it: the view drifts and turns a little
    from frame to frame. Written with OpenCV's mp4v codec."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    ph, pw = page.image.shape[:2]
    for i in range(frames):
        t = i / max(1, frames - 1)
        m = cv2.getRotationMatrix2D((pw / 2, ph / 2), 1.5 * np.sin(2 * np.pi * t), w / pw)
        m[:, 2] += (6 * np.sin(2 * np.pi * t), 4 * np.cos(2 * np.pi * t))
        writer.write(cv2.warpAffine(page.image, m, size, borderMode=cv2.BORDER_REPLICATE))
    writer.release()
