"""Ink → a 28×28 crop made the way MNIST's digits were made: one function for the reader's crops
(lenet.digits) and for every glyph training sees (lenet.glyphs, the reader model's data).

MNIST (LeCun et al.): white ink on black; the digit's bounding box scaled, keeping its aspect
ratio, to fit a 20×20 box (anti-aliased, so grey edges); then placed in 28×28 so that its centre
of mass is at the centre. A network trained on that sees anything else as a distortion, so the
reader recreates it exactly. The spec's preprocessing contract (padding, scale, offset) is applied
after this by the engine or the torch backend, never here.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 28
BOX = 20


def ink_to_u8(ink: np.ndarray) -> np.ndarray:
    """Stretch a candidate's ink strength so its strokes are saturated, as MNIST's are: faint
    pencil and dark marker give the same crop."""
    strokes = ink[ink > 0.05]
    if strokes.size == 0:
        return np.zeros(ink.shape, np.uint8)
    top = float(np.percentile(strokes, 90))
    return np.clip(ink / max(top * 0.85, 1e-3) * 255.0, 0, 255).astype(np.uint8)


def deskew(crop: np.ndarray) -> np.ndarray:
    """Remove the slant of a 28×28 crop by its second moments (shear so the principal axis is
    vertical), keeping the centre of mass in place."""
    m = cv2.moments(crop)
    if abs(m["mu02"]) < 1e-2:
        return crop
    skew = m["mu11"] / m["mu02"]
    cy = m["m01"] / m["m00"]
    # Inverse map: dst(x, y) = src(x + skew·(y − cy), y); rows through the centroid do not move.
    a = np.float32([[1, skew, -skew * cy], [0, 1, 0]])
    return cv2.warpAffine(crop, a, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderValue=0)


def to_mnist(ink: np.ndarray, *, deskew_crop: bool = False) -> np.ndarray:
    """uint8 [28, 28] white-on-black crop from ink strength [h, w] in [0, 1]."""
    u8 = ink_to_u8(ink)
    ys, xs = np.nonzero(u8)
    if len(ys) == 0:
        return np.zeros((SIZE, SIZE), np.uint8)
    u8 = u8[ys.min():ys.max() + 1, xs.min():xs.max() + 1]  # MNIST's box is the ink's, not ours
    h, w = u8.shape
    f = BOX / max(h, w)
    nw, nh = max(1, round(w * f)), max(1, round(h * f))
    small = cv2.resize(u8, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((SIZE, SIZE), np.float32)
    x0, y0 = (SIZE - nw) // 2, (SIZE - nh) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = small
    m = cv2.moments(canvas)
    if m["m00"] > 0:
        dx = SIZE / 2 - m["m10"] / m["m00"]
        dy = SIZE / 2 - m["m01"] / m["m00"]
        # MNIST shifts by whole pixels: its centre of mass is at pixel index 14 (measured: 14.0 ± 0.3).
        shift = np.float32([[1, 0, round(dx)], [0, 1, round(dy)]])
        canvas = cv2.warpAffine(canvas, shift, (SIZE, SIZE), flags=cv2.INTER_NEAREST, borderValue=0)
    crop = canvas.clip(0, 255).astype(np.uint8)
    return deskew(crop) if deskew_crop else crop
