"""What real pens and cameras do to a glyph, for the reader model's training strips.

``pen`` changes an ink map the way writers differ: stroke width (ballpoint to marker), slant,
rotation, aspect, and elastic wobble (Simard et al. 2003). ``camera`` puts ink on paper and
photographs it: ink colour (black or blue), contrast (a faint pencil or a grey marker on grey
paper), uneven light, blur, sensor noise and JPEG. ``scanner`` does what old scans and small
forms do before that: writing sampled at 14-28 px a digit and scaled up again, or binarized.
"""

from __future__ import annotations

import cv2
import numpy as np


def _elastic(ink: np.ndarray, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """Displace every pixel by a smooth random field of about ``alpha`` px."""
    h, w = ink.shape
    sigma = max(h, w) / 8
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    norm = max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    dx, dy = dx * alpha / norm, dy * alpha / norm
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(ink, xx + dx, yy + dy, cv2.INTER_LINEAR, borderValue=0)


def pen(ink: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0) -> np.ndarray:
    """A glyph's ink map [h, w] in [0, 1] as another hand or pen would have drawn it."""
    h = ink.shape[0]
    # Stroke width: thin to thick relative to the glyph, by eroding or dilating the ink.
    change = rng.uniform(-0.05, 0.07) * h * strength
    k = int(round(abs(change)))
    if k >= 1:
        ink = np.pad(ink, k + 1)
        if change > 0:
            ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        else:
            # A thinner pen, not a fainter one: erode only as far as keeps half of the ink.
            mass = float(ink.sum())
            for kk in range(k, 0, -1):
                thinned = cv2.erode(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kk + 1, 2 * kk + 1)))
                if thinned.sum() >= 0.5 * mass:
                    ink = thinned
                    break
    ink = np.pad(ink, int(0.3 * max(ink.shape)))
    ph, pw = ink.shape
    c = (pw / 2, ph / 2)
    angle = rng.uniform(-10, 10) * strength
    shear = rng.uniform(-0.35, 0.35) * strength          # slant, both ways
    aspect = np.exp(rng.uniform(-0.25, 0.25) * strength)  # narrow to wide writing
    m = cv2.getRotationMatrix2D(c, angle, 1.0)
    a = np.array([[aspect, shear, 0], [0, 1, 0]], np.float32)
    a[:, 2] = np.array(c) - a[:, :2] @ np.array(c)
    m = np.vstack([m, [0, 0, 1]]) @ np.vstack([a, [0, 0, 1]])
    ink = cv2.warpAffine(ink, m[:2].astype(np.float32), (pw, ph), flags=cv2.INTER_LINEAR, borderValue=0)
    if rng.random() < 0.5:
        ink = _elastic(ink, rng, rng.uniform(0.5, 2.0) * h / 28 * strength)
    ys, xs = np.nonzero(ink > 0.1)
    if len(ys) == 0:
        return np.zeros((1, 1), np.float32)
    return np.pad(ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 2).clip(0, 1)


def scanner(ink: np.ndarray, rng: np.random.Generator, glyph_height: int, *, low_res: float = 0.2,
            binarize: float = 0.15) -> np.ndarray:
    """``ink`` [h, w] (digits ``glyph_height`` px tall) as a low-resolution or binarizing scanner
    leaves it: with probability ``low_res`` sampled down to 14-28 px a digit and scaled back up
    (smoothly or in blocks), with probability ``binarize`` cut at one grey level. Readers meet
    digits from 16×16 and 32×32 collections scaled up, and binarized strokes: a model that saw only
    smooth, well-sampled ink refuses them."""
    h, w = ink.shape
    if rng.random() < low_res:
        f = float(rng.uniform(14, 28)) / glyph_height
        if f < 1:
            small = cv2.resize(ink, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            up = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
            ink = cv2.resize(small, (w, h), interpolation=up)
    if rng.random() < binarize:
        ink = (ink > rng.uniform(0.3, 0.6)).astype(np.float32)
    return ink


INKS = {"black": (0.15, 0.15, 0.15), "blue": (0.7, 0.3, 0.1)}  # BGR reflectance of each ink


def camera(ink: np.ndarray, rng: np.random.Generator, *, ink_colour: str | None = None,
           contrast: tuple[float, float] = (0.45, 0.9), jpeg: tuple[int, int] = (45, 95)) -> np.ndarray:
    """BGR uint8 photo of ``ink`` (an ink map the size of the photo) on paper."""
    h, w = ink.shape
    colour = ink_colour or ("blue" if rng.random() < 0.35 else "black")
    absorb = 1.0 - np.array(INKS[colour], np.float32)  # how much of each channel the ink takes away
    strength = rng.uniform(*contrast)
    paper = rng.uniform(0.75, 0.97) + 0.02 * rng.standard_normal((h, w)).astype(np.float32)
    reflect = paper[..., None] * (1.0 - strength * ink[..., None] * absorb[None, None, :])
    # Uneven light: a gradient in a random direction, sometimes a soft shadow edge.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, 2 * np.pi)
    grad = np.cos(t) * (xx / w - 0.5) + np.sin(t) * (yy / h - 0.5)
    light = 1.0 - rng.uniform(0.0, 0.5) * (grad + 0.5)
    if rng.random() < 0.3:
        edge = np.cos(t + 1) * (xx - w * rng.uniform(0.2, 0.8)) + np.sin(t + 1) * (yy - h * rng.uniform(0.2, 0.8))
        # The exponent clipped: past 80 the shadow's share is 0 in float32 either way, and numpy 1.x
        # keeps edge float32, whose exp overflows (a RuntimeWarning) from about 88.
        light *= 1.0 - rng.uniform(0.2, 0.45) / (1.0 + np.exp(np.minimum(-edge / rng.uniform(2, 12), 80.0)))
    image = reflect * light[..., None] * 255.0
    blur = rng.uniform(0.0, 1.4)
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    image += rng.normal(0, rng.uniform(1, 8), image.shape).astype(np.float32)
    image = image.clip(0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*jpeg))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR)
