"""From a photo or scan to digit candidates: flatten the light, threshold, find ink blobs.

Works on dark ink on light paper (the usual case) and, with ``ink="light"``, on light ink on a dark
board; ``"auto"`` decides from the page's median brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class SegmentOptions:
    ink: str = "auto"              # "dark" (on light paper), "light" (on a dark board) or "auto"
    min_contrast: float = 0.18     # ink must be at least this much darker than the paper around it
    min_height: int = 10           # px: smaller blobs cannot be read anyway
    max_height_frac: float = 0.6   # of the image height: bigger is a shadow edge or a hand, not ink
    speck_frac: float = 0.15       # a blob whose height is below this x the median height is a speck
    min_height_rel: float = 0.4    # blobs shorter than this x the median digit height are dropped
    max_height_rel: float = 2.5
    max_aspect: float = 2.5        # w/h: wider is a dash, an underline or several digits touching
    max_fill: float = 0.85         # ink fraction of the box, for blobs not narrow: above is a smudge
    min_fill: float = 0.04


@dataclass
class Candidate:
    box: Box
    ink: np.ndarray       # float32 [h, w] ink strength in [0, 1] inside the box (other blobs zeroed)
    fill: float           # ink pixels / box area
    reason: str = ""      # why it was refused before classification ("" = kept)


def ink_map(image: np.ndarray, ink: str = "auto") -> np.ndarray:
    """Ink darkness in [0, 1] per pixel, independent of the lighting.

    The paper's brightness is estimated by a morphological closing (a grey-level max filter then
    min filter wider than any stroke, so strokes vanish and slow light changes and shadows stay),
    and each pixel is divided by it: what remains is the ink's reflectance relative to the paper
    right around it, which a single global threshold can then separate."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = gray.astype(np.float32)
    if ink == "auto":
        ink = "light" if np.median(gray) < 100 else "dark"
    if ink == "light":
        gray = 255.0 - gray
    h, w = gray.shape
    # The background estimate works at a quarter resolution: light changes slowly, and the
    # closing's cost grows with the kernel.
    scale = 4 if min(h, w) >= 200 else 1
    small = cv2.resize(gray, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(small.shape) // 12) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    paper = cv2.GaussianBlur(paper, (0, 0), 1.0)  # only the closing's blockiness: shadow edges stay sharp
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    darkness = 1.0 - gray / np.maximum(paper, 1.0)
    return np.clip(darkness, 0.0, 1.0)


def threshold(darkness: np.ndarray, min_contrast: float) -> np.ndarray:
    """Binary ink mask: Otsu on the flattened image, never below ``min_contrast`` so that an empty
    page's noise is not split into "ink" and "paper"."""
    u8 = (darkness * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(otsu / 255.0, min_contrast)
    return (darkness > level).astype(np.uint8)


def _merge_fragments(boxes: list[list[int]], labels_of: list[list[int]]) -> None:
    """Join the pieces of one broken digit (a 5's detached bar, a 7's loose stroke): pieces that
    share most of their columns and nearly touch vertically. Two neighbouring digits share few
    columns, and the digits of two lines are far apart vertically, so neither is merged."""
    changed = True
    while changed:
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                xi, yi, wi, hi = boxes[i]
                xj, yj, wj, hj = boxes[j]
                overlap_x = min(xi + wi, xj + wj) - max(xi, xj)
                gap_y = max(yi, yj) - min(yi + hi, yj + hj)
                if gap_y > 0.25 * max(hi, hj):
                    continue
                y0, y1 = min(yi, yj), max(yi + hi, yj + hj)
                x0, x1 = min(xi, xj), max(xi + wi, xj + wj)
                if min(hi, hj) < 0.5 * max(hi, hj):
                    # A small piece (a 5's bar, a 4's tail): it need only reach over the big one.
                    if overlap_x < 0.3 * (wi if hi < hj else wj):
                        continue
                elif overlap_x < 0.6 * min(wi, wj) or (y1 - y0) > 1.3 * max(hi, hj):
                    # Two big pieces: one digit only if they share most columns, and not two
                    # digits stacked.
                    continue
                boxes[i] = [x0, y0, x1 - x0, y1 - y0]
                labels_of[i] += labels_of[j]
                del boxes[j], labels_of[j]
                changed = True
                break
            if changed:
                break


def find_candidates(image: np.ndarray, opts: SegmentOptions = SegmentOptions()
                    ) -> tuple[list[Candidate], np.ndarray]:
    """Candidates (kept and refused by shape) and the ink darkness map they were cut from."""
    darkness = ink_map(image, opts.ink)
    binary = threshold(darkness, opts.min_contrast)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return [], darkness
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    big = heights[heights >= opts.min_height]
    ref = float(np.median(big)) if len(big) else float(opts.min_height)
    # Specks (noise, dust, JPEG ringing) go first; they would only disturb the merge.
    keep = [i for i in range(1, count)
            if stats[i, cv2.CC_STAT_HEIGHT] >= max(3, opts.speck_frac * ref)
            or stats[i, cv2.CC_STAT_WIDTH] >= max(3, opts.speck_frac * ref)]
    boxes = [list(map(int, stats[i, :4])) for i in keep]
    labels_of = [[i] for i in keep]
    _merge_fragments(boxes, labels_of)

    tall = [b[3] for b in boxes if b[3] >= opts.min_height]
    median_h = float(np.median(tall)) if tall else float(opts.min_height)
    img_h = image.shape[0]
    out: list[Candidate] = []
    for (x, y, w, h), ids in zip(boxes, labels_of):
        mask = np.isin(labels[y:y + h, x:x + w], ids)
        fill = float(mask.mean())
        reason = ""
        if h < opts.min_height or h < opts.min_height_rel * median_h:
            if max(w, h) < opts.min_height:
                continue  # too small to mention
            reason = "small"
        elif h > opts.max_height_frac * img_h or h > opts.max_height_rel * median_h:
            reason = "large"
        elif w > opts.max_aspect * h:
            reason = "wide"
        elif w > 0.35 * h and fill > opts.max_fill:
            reason = "solid"
        elif fill < opts.min_fill:
            reason = "sparse"
        # Keep the soft, anti-aliased edge of the strokes (as MNIST has), but only of this blob.
        soft = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
        out.append(Candidate((x, y, w, h), darkness[y:y + h, x:x + w] * soft, fill, reason))
    return out, darkness
