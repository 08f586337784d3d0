"""Drawing what was read onto the image: boxes, digits, confidences, the numbers, and the
normalized 28×28 crops next to their boxes (what the network actually saw)."""

from __future__ import annotations

import cv2
import numpy as np

from .reader import FrameResult

DIGIT = (0, 200, 0)       # BGR: accepted digit
NUMBER = (255, 120, 0)    # number box
REJECT = (0, 0, 230)      # classified, refused as "not a digit"
SHAPE = (150, 150, 150)   # refused by shape before classification
PANEL = (40, 40, 40)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int],
          thick: int = 1) -> None:
    """Text with a dark outline so it reads on paper and on shadows alike."""
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, color, thick, cv2.LINE_AA)


def _inset(img: np.ndarray, crop: np.ndarray, x: int, y: int, size: int, color: tuple[int, int, int]) -> None:
    """The 28×28 crop, enlarged with visible pixels, framed, at (x, y) clipped to the image."""
    tile = cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST)
    tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    x0, y0 = max(0, min(x, w - size)), max(0, min(y, h - size))
    if size > w or size > h:
        return
    img[y0:y0 + size, x0:x0 + size] = tile
    cv2.rectangle(img, (x0, y0), (x0 + size - 1, y0 + size - 1), color, 1)


def annotate(image: np.ndarray, result: FrameResult, *, fps: float | None = None,
             status: str = "", crops: bool = True) -> np.ndarray:
    """A copy of ``image`` (BGR or grey) with the reading drawn on it and a status bar on top."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = out.shape[:2]
    scale = max(0.4, min(1.2, min(h, w) / 900))
    thick = 1 if scale < 0.8 else 2
    for r in result.rejected:
        x, y, bw, bh = r.box
        if r.reason != "confidence":
            cv2.rectangle(out, (x, y), (x + bw, y + bh), SHAPE, 1)
            continue
        cv2.rectangle(out, (x, y), (x + bw, y + bh), REJECT, thick)
        _text(out, f"? {r.confidence:.0%}", (x, max(12, y - 4)), max(0.4, scale * 0.55), REJECT, 1)
        if crops and r.crop is not None:
            _inset(out, r.crop, x, y + bh + 3, int(np.clip(bh * 0.6, 28, 56)), REJECT)
    for n in result.numbers:
        x, y, bw, bh = n.box
        cv2.rectangle(out, (x - 4, y - 4), (x + bw + 4, y + bh + 4), NUMBER, thick)
        for d in n.digits:
            dx, dy, dw, dh = d.box
            color = DIGIT if d.accepted else REJECT  # a refused shape kept in its number: "?"
            label = f"{d.digit} {d.confidence:.0%}" if d.accepted else f"? {d.confidence:.0%}"
            cv2.rectangle(out, (dx, dy), (dx + dw, dy + dh), color, thick)
            _text(out, label, (dx, max(12, dy - 6)), max(0.4, scale * 0.55), color, 1)
            if crops and d.crop is not None:
                _inset(out, d.crop, dx, dy + dh + 6, int(np.clip(dh * 0.6, 28, 56)), color)
    # Status bar: the numbers read (in reading order), FPS and whatever the caller adds.
    bar = int(30 * scale) + 10
    panel = np.full((bar, w, 3), PANEL, np.uint8)
    read = " ".join(n.text for n in result.numbers) or "(no digits)"
    parts = [f"read: {read}"]
    if fps is not None:
        parts.append(f"{fps:.1f} FPS")
    if status:
        parts.append(status)
    _text(panel, "  |  ".join(parts), (8, bar - 10), max(0.45, scale * 0.7), (255, 255, 255), thick)
    return np.vstack([panel, out])
