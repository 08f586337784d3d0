"""From a photo or scan to digit candidates: flatten the light, threshold, find ink blobs.

Works on dark ink on light paper (the usual case) and, with ``ink="light"``, on light ink on a dark
board; ``"auto"`` decides from the page's median brightness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .boxes import Box, linked_groups, union


@dataclass(frozen=True)
class LightOptions:
    """Reading the frame's light: the paper's brightness (a grey closing wider than the strokes,
    divided out: ink_map), the stroke width that sizes it, and which way the ink goes."""

    closing_parts: int = 12        # the closing is min(h, w) / this wide: wider than a page's strokes
    closing_strokes: float = 3     # ... or this many stroke widths, when the writing is large in the frame
    shadow_parts: float = 2        # a "stroke" wider than min(h, w) / this is a shadow, not writing
    work_scale: int = 4            # the closing runs at 1/this resolution (light changes slowly; its cost
                                   # grows with the kernel) ...
    work_min: int = 200            # px: ... in frames at least this big on their short side
    smooth: float = 1.0            # px (Gaussian sigma, reduced resolution): the closing's blockiness only;
                                   # shadow edges stay sharp
    stroke_px: int = 64            # px: the stroke width is measured with the light divided out by a blur
                                   # computed at this short side (a full-size blur that wide costs more
                                   # than the rest of the frame's work) ...
    stroke_blur_parts: float = 6   # ... a blur of min(h, w) / this (slow light changes only)
    stroke_max_ink: float = 0.25   # of the frame: more "ink" is a shadow or a dark scene: no width
    polarity_px: int = 400         # px: which way the ink goes is judged on the frame at this long side
    polarity_parts: int = 3        # against a median min(h, w) / this wide (writing large in the frame
                                   # stays a minority) ...
    polarity_max_kernel: int = 99  # px: ... at most this wide
    polarity_contrast: int = 30    # grey levels from that median: clearly darker or lighter


@dataclass(frozen=True)
class MarginOptions:
    """A flat margin of one colour around the picture (a photographed page on a white canvas),
    cut off before the light is read (flat_margin): brighter than the paper, it would spread into
    the estimate and make the paper along it look like a band of ink."""

    flat_tol: float = 3.0        # grey levels from the corners' colour: still the margin
    flat_share: float = 0.99     # a row or column this much flat (of its pixels) is margin
    min_picture: int = 32        # px: a smaller picture inside a margin is none
    edge_inset: int = 4          # px inside the picture's edges where they are tested for flatness:
                                 # past a JPEG block's ringing along the edge
    max_flat_edge: float = 0.1   # of those edge pixels: more flat ones, and the margin is the page's
                                 # own paper that ink touches here and there
    paper_inset: int = 8         # px: the picture's paper is read this far inside (a JPEG block)
    min_step: float = 20         # grey levels between margin and paper: less, the margin is the paper
    max_ringing: int = 8         # px: each edge moves inward past margin-like lines at most one JPEG block


@dataclass(frozen=True)
class BlotOptions:
    """A blot or a smudge: ink that fills its own convex outline with no hole (_is_blot). The
    threshold itself is SegmentOptions.max_solidity."""

    min_box_fill: float = 0.35   # ink / box below which no shape is a blot: an oval or a rectangle at
                                 # least 0.35 as wide as long fills more at any tilt (most digits stop here)
    min_pixels: int = 8          # ink pixels: fewer make no outline to measure
    min_width: float = 0.35      # width / length of its outline: narrower is a stroke (a thick 1), no blot
    min_hole: float = 0.03       # of its ink: a hole this big is a digit's loop (a thick 0 or 8 nearly
                                 # closed); noise and JPEG leave pinholes of at most 1 % in a smudge
    min_height: float = 2        # × min_height: below, a bold digit's loops fill in and it cannot be
                                 # told from a blot, so small shapes are not tested


@dataclass(frozen=True)
class FragmentOptions:
    """Blobs joined as the pieces of one broken digit or sign (a 5's loose bar, a 7's stroke, the
    three parts of a %: _joinable). Heights and gaps in the taller piece's height."""

    max_gap: float = 0.25        # pieces further apart vertically are not one digit
    shorter: float = 0.7         # a piece under this × the other's height is clearly shorter, and then ...
    inside: float = 0.4          # ... with this much of its box within the other's, part of the same sign
                                 # (the circles of a % have about 0.6 of their bar)
    small: float = 0.5           # a piece under this × the other's height is small, and then ...
    small_overlap: float = 0.3   # ... joins when this much of its width shares columns with the big one
    big_overlap: float = 0.6     # two big pieces: one digit if they share this much of the narrower's
                                 # columns ...
    big_span: float = 1.3        # ... and are together at most this × the taller high (else stacked digits)


@dataclass(frozen=True)
class SegmentOptions:
    ink: str = "auto"              # "dark" (on light paper), "light" (on a dark board) or "auto"
    min_contrast: float = 0.18     # ink must be at least this much darker than the paper around it
    min_height: int = 10           # px: smaller blobs cannot be read anyway
    max_height_frac: float = 0.6   # of the image height: bigger is a shadow edge or a hand, not ink
    speck_frac: float = 0.15       # a blob whose height is below this x the median height is a speck
    min_height_rel: float = 0.4    # blobs shorter than this x the median digit height are dropped
    max_height_rel: float = 2.5    # ... and taller than this x the median: a hand, a frame, a bracket
    max_aspect: float = 2.5        # w/h: wider is a dash, an underline or several digits touching
    max_solidity: float = 0.9      # ink fraction of its own outline (convex hull), for blobs not
                                   # narrow: above is a blot or a smudge (every digit has a hole or a bend)
    min_fill: float = 0.04         # ink / box below this: a loose scribble or a thin frame, no digit
    max_ink_frac: float = 0.3      # of the whole frame: above, there is no page with writing in view
    speck_px: int = 3              # px: a blob smaller than this both ways is a speck whatever the median
    soft_edge: int = 1             # px of anti-aliased edge kept around a blob's strokes, as MNIST has
    light: LightOptions = field(default_factory=LightOptions)
    margin: MarginOptions = field(default_factory=MarginOptions)
    blot: BlotOptions = field(default_factory=BlotOptions)
    fragments: FragmentOptions = field(default_factory=FragmentOptions)


@dataclass
class Candidate:
    box: Box
    ink: np.ndarray       # float32 [h, w] ink strength in [0, 1] inside the box (other blobs zeroed)
    fill: float           # ink pixels / box area
    reason: str = ""      # why it was refused before classification ("" = kept)
    pieces: int = 1       # connected blobs joined into it (_merge_fragments)


def ink_map(image: np.ndarray, ink: str = "auto", opts: SegmentOptions = SegmentOptions()) -> np.ndarray:
    """Ink darkness in [0, 1] per pixel, independent of the lighting.

    The paper's brightness is estimated by a morphological closing (a grey-level max filter then
    min filter wider than any stroke, so strokes vanish and slow light changes and shadows stay),
    and each pixel is divided by it: what remains is the ink's reflectance relative to the paper
    right around it, which a single global threshold can then separate. ``ink`` as
    SegmentOptions.ink; ``opts``: its light and margin settings."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = gray.astype(np.float32)
    light = opts.light
    inside = flat_margin(gray, opts.margin)
    if inside is not None:
        top, bottom, left, right = inside
        darkness = np.zeros_like(gray)
        darkness[top:bottom, left:right] = ink_map(gray[top:bottom, left:right], ink, opts)
        return darkness
    if ink == "auto":
        ink = ink_polarity(gray, light)
    if ink == "light":
        gray = 255.0 - gray
    h, w = gray.shape
    # The closing must be wider than the strokes (else it keeps them as "paper").
    size = min(h, w) / light.closing_parts
    strokes = light.closing_strokes * stroke_width(gray, light)
    if size < strokes < min(h, w) / light.shadow_parts:
        size = strokes
    scale = light.work_scale if min(h, w) >= light.work_min else 1
    small = cv2.resize(gray, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    k = max(3, int(size / scale) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    paper = cv2.GaussianBlur(paper, (0, 0), light.smooth)
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    darkness = 1.0 - gray / np.maximum(paper, 1.0)
    return np.clip(darkness, 0.0, 1.0)


def flat_margin(gray: np.ndarray, opts: MarginOptions = MarginOptions()) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the picture inside a margin of one flat colour that is not
    the picture's own paper (a photographed page on a white canvas), or None. Such a margin must be
    cut off before the lighting is estimated: being brighter than the paper, it would spread into
    the estimate and make the paper along it look like a band of ink (read as 1s, and swallowing
    the digits near it)."""
    h, w = gray.shape
    corner = float(np.median([gray[0, 0], gray[0, -1], gray[-1, 0], gray[-1, -1]]))
    flat = np.abs(gray - corner) <= opts.flat_tol
    rows = np.flatnonzero(flat.mean(axis=1) < opts.flat_share)
    cols = np.flatnonzero(flat.mean(axis=0) < opts.flat_share)
    if len(rows) == 0 or len(cols) == 0:
        return None  # all one colour
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (top, bottom, left, right) == (0, h, 0, w) or min(bottom - top, right - left) < opts.min_picture:
        return None
    # A picture on a canvas meets the margin along straight edges, not flat anywhere along them.
    # Ink on a clean white page only touches its own bounding box here and there: that page's
    # white is the paper itself, not a margin (cutting to the ink would leave no paper at all).
    e = opts.edge_inset
    edges = np.concatenate([flat[top + e, left:right], flat[bottom - 1 - e, left:right],
                            flat[top:bottom, left + e], flat[top:bottom, right - 1 - e]])
    if edges.mean() > opts.max_flat_edge:
        return None
    p = opts.paper_inset
    inner = gray[top + p:bottom - p, left + p:right - p]
    rim = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    paper = float(np.median(rim))
    if abs(paper - corner) < opts.min_step:
        return None  # the margin is the paper itself (a clean scan): nothing to cut
    return _trim_ringing(gray, (top, bottom, left, right), corner, paper, opts.max_ringing)


def _trim_ringing(gray: np.ndarray, box: tuple[int, int, int, int], margin: float, paper: float,
                  most: int) -> tuple[int, int, int, int]:
    """Move each edge of the picture inward past lines that still look like the margin: JPEG rings
    along a sharp edge, so the margin's last pixels are not flat and the flat test stops a pixel or
    two outside the picture. A line of margin left inside made a band of "ink" along that edge (a
    candidate on a framed JPEG page). At most ``most`` px per edge."""
    edges = list(box)  # top, bottom, left, right

    def outer_line(side: int) -> np.ndarray:
        top, bottom, left, right = edges
        return (gray[top, left:right], gray[bottom - 1, left:right],
                gray[top:bottom, left], gray[top:bottom, right - 1])[side]

    for side, inward in enumerate((1, -1, 1, -1)):
        for _ in range(most):
            level = float(np.median(outer_line(side)))
            if abs(level - margin) >= abs(level - paper):
                break
            edges[side] += inward
    top, bottom, left, right = edges
    return top, bottom, left, right


def ink_polarity(gray: np.ndarray, light: LightOptions = LightOptions()) -> str:
    """"dark" (ink darker than the paper) or "light" (chalk on a board). Writing is the thin
    minority that stands out from its surroundings: count the pixels clearly darker and clearly
    lighter than a local median, and the ink is on the side with more of them. (The global
    brightness cannot decide: a shadowed page can be darker than a lit board.)"""
    h, w = gray.shape
    f = min(1.0, light.polarity_px / max(h, w))
    small = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    small = small.clip(0, 255).astype(np.uint8)
    k = max(3, min(min(small.shape) // light.polarity_parts, light.polarity_max_kernel) | 1)
    diff = small.astype(np.int16) - cv2.medianBlur(small, k).astype(np.int16)
    c = light.polarity_contrast
    darker, lighter = int((diff < -c).sum()), int((diff > c).sum())
    return "light" if lighter > darker else "dark"


def stroke_width(gray: np.ndarray, opts: LightOptions = LightOptions()) -> float:
    """Typical stroke width in pixels from a rough global threshold: a stroke of length L and
    width W has area L·W and an outline of about 2·L pixels, so W ≈ 2·area / outline.

    The threshold is taken on the image divided by a heavy blur of itself, which takes away the
    slow light changes: on the raw image a light gradient or a shadow across a digit held close to
    the camera was the darker "ink" Otsu chose, the estimate was 0, the closing stayed narrower
    than the strokes and kept their thick parts as paper, and the digit fell apart in pieces
    (3 % of isolated MNIST test digits on a small photo)."""
    h, w = gray.shape
    f = min(1.0, opts.stroke_px / min(h, w))
    small = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, min(small.shape) / opts.stroke_blur_parts))
    light = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    u8 = (gray / np.maximum(light, 1.0) * 200.0).clip(0, 255).astype(np.uint8)
    _, ink = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    area = int(ink.sum())
    if area == 0 or area > opts.stroke_max_ink * ink.size:
        return 0.0
    outline = area - int(cv2.erode(ink, np.ones((3, 3), np.uint8)).sum())
    return 2.0 * area / max(outline, 1)


def threshold(darkness: np.ndarray, min_contrast: float) -> np.ndarray:
    """Binary ink mask: Otsu on the flattened image, never below ``min_contrast`` so that an empty
    page's noise is not split into "ink" and "paper"."""
    u8 = (darkness * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(otsu / 255.0, min_contrast)
    return (darkness > level).astype(np.uint8)


def _is_blot(mask: np.ndarray, max_solidity: float, opts: BlotOptions = BlotOptions()) -> bool:
    """Ink that fills its own convex outline, has no hole and is not a narrow stroke (a thick
    straight 1 is convex too): a smudge or a blot, whatever its tilt. A fill of the box misses
    these: an ellipse fills only π/4 of its box, less when tilted."""
    ink = float(mask.sum())
    if ink < opts.min_box_fill * mask.size:
        # (The thinnest rectangle at 45° fills 0.38 of its box; an ellipse 0.49.)
        return False
    mask = mask.astype(np.uint8)
    points = cv2.findNonZero(mask)
    if points is None or len(points) < opts.min_pixels:
        return False
    hull = cv2.convexHull(points)
    (_, _), (a, b), _ = cv2.minAreaRect(hull)
    if min(a, b) < opts.min_width * max(a, b):
        return False
    outline = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(outline, hull, 1)
    if ink <= max_solidity * float(outline.sum()):
        return False
    contours, nesting = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    holes = [cv2.contourArea(c) for c, n in zip(contours, nesting[0]) if n[3] >= 0]
    return max(holes, default=0.0) < opts.min_hole * ink


def _joinable(a: list[int], b: list[int], opts: FragmentOptions = FragmentOptions()) -> bool:
    """Are blobs a and b pieces of one broken digit (a 5's detached bar, a 7's loose stroke)?
    Pieces share columns and nearly touch vertically. Two neighbouring digits share few columns,
    and the digits of two lines are far apart vertically, so neither is joined."""
    xa, ya, wa, ha = a
    xb, yb, wb, hb = b
    overlap_x = min(xa + wa, xb + wb) - max(xa, xb)
    gap_y = max(ya, yb) - min(ya + ha, yb + hb)
    if gap_y > opts.max_gap * max(ha, hb):
        return False
    inside = overlap_x * (min(ya + ha, yb + hb) - max(ya, yb))
    if min(ha, hb) < opts.shorter * max(ha, hb) and inside >= opts.inside * min(wa * ha, wb * hb):
        # A clearly shorter piece largely within the other's box: part of the same sign, not a
        # neighbour. Neighbours of one size can overlap that much when slanted and are left to
        # the rules below.
        return True
    if min(ha, hb) < opts.small * max(ha, hb):
        # A small piece need only reach over the big one.
        return overlap_x >= opts.small_overlap * (wa if ha < hb else wb)
    # Two big pieces: one digit only if they share most columns and are not stacked digits.
    span = max(ya + ha, yb + hb) - min(ya, yb)
    return overlap_x >= opts.big_overlap * min(wa, wb) and span <= opts.big_span * max(ha, hb)


def _merge_fragments(boxes: list[list[int]], labels_of: list[list[int]],
                     opts: FragmentOptions = FragmentOptions()) -> None:
    """Join the pieces of broken digits in place: pieces are linked when they share columns
    (so only boxes that start left of a box's right edge need comparing)."""
    groups = linked_groups(boxes, lambda b: b[0] + b[2] - 1, lambda a, b: _joinable(a, b, opts))
    labels_of[:] = [[lab for i in members for lab in labels_of[i]] for members in groups]
    boxes[:] = [list(union([boxes[i] for i in members])) for members in groups]


def find_candidates(image: np.ndarray, opts: SegmentOptions = SegmentOptions()
                    ) -> tuple[list[Candidate], np.ndarray]:
    """Candidates (kept and refused by shape) and the ink darkness map they were cut from."""
    darkness = ink_map(image, opts.ink, opts)
    binary = threshold(darkness, opts.min_contrast)
    if binary.mean() > opts.max_ink_frac:
        # Writing covers a small part of a page; "ink" everywhere is texture or sensor noise
        # (or a scene that is not a page), where any blob would be a chance shape. The frame is
        # refused as a whole, visibly (a rejected candidate), not answered with "no digits".
        h, w = binary.shape
        return [Candidate((0, 0, w, h), np.zeros((0, 0), np.float32), float(binary.mean()),
                          "too-much-ink")], darkness
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return [], darkness
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    big = heights[heights >= opts.min_height]
    ref = float(np.median(big)) if len(big) else float(opts.min_height)
    # Specks (noise, dust, JPEG ringing) go first; they would only disturb the merge.
    keep = [i for i in range(1, count)
            if stats[i, cv2.CC_STAT_HEIGHT] >= max(opts.speck_px, opts.speck_frac * ref)
            or stats[i, cv2.CC_STAT_WIDTH] >= max(opts.speck_px, opts.speck_frac * ref)]
    boxes = [list(map(int, stats[i, :4])) for i in keep]
    labels_of = [[i] for i in keep]
    _merge_fragments(boxes, labels_of, opts.fragments)

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
        elif h >= opts.blot.min_height * opts.min_height and _is_blot(mask, opts.max_solidity, opts.blot):
            reason = "solid"
        elif fill < opts.min_fill:
            reason = "sparse"
        # Keep the soft, anti-aliased edge of the strokes (as MNIST has), but only of this blob.
        edge = 2 * opts.soft_edge + 1
        soft = cv2.dilate(mask.astype(np.uint8), np.ones((edge, edge), np.uint8)).astype(np.float32)
        out.append(Candidate((x, y, w, h), darkness[y:y + h, x:x + w] * soft, fill, reason, len(ids)))
    return out, darkness
