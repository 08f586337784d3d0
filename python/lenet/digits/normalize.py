"""The reader's crops: candidates cut from an image and normalized as MNIST is (lenet.mnist_crop,
shared with training), and the small re-registrations the reader averages over."""

from __future__ import annotations

import cv2
import numpy as np

from lenet.mnist_crop import BOX, SIZE, deskew, ink_to_u8, to_mnist

from .segment import Candidate, SegmentOptions, find_candidates

__all__ = ["BOX", "SIZE", "candidate_crops", "deskew", "ink_to_u8", "jitters", "to_mnist"]

# The re-registrations the reader averages over. Not options: the model's thresholds were chosen on
# confidences averaged over exactly these (tools/reader_model.py), so they go with the model.
JITTER_SHIFT = 1             # px in the 28×28 crop, each way in x and y: a pixel of threshold or blur
JITTER_SCALES = (0.9, 1.1)   # × size: how tight a box the candidate finder drew
JITTER_ANGLES = (-8, 8)      # degrees: the page's tilt and the writer's slant within one sheet


def candidate_crops(image: np.ndarray, segment: SegmentOptions = SegmentOptions(), deskew_crop: bool = False
                    ) -> tuple[list[Candidate], list[Candidate], np.ndarray]:
    """All candidates (with shape refusals), the kept ones, and their 28×28 crops (uint8
    [len(kept), 28, 28]). The reader's one way from an image to what the network sees: the
    reader model's training data is made by this function too (lenet.digits.kit.training_data)."""
    candidates, _ = find_candidates(image, segment)
    kept = [c for c in candidates if not c.reason]
    crops = [to_mnist(c.ink, deskew_crop=deskew_crop) for c in kept]
    return candidates, kept, np.stack(crops) if crops else np.zeros((0, SIZE, SIZE), np.uint8)


def jitters(crop: np.ndarray) -> np.ndarray:
    """uint8 [9, 28, 28]: the crop and 8 small re-registrations of it (shifts, scalings and
    rotations: ``JITTER_*``). Where exactly a digit's box and centre of mass fall depends on a
    pixel of threshold or blur; averaging the network's probabilities over these small changes
    marginalizes that uncertainty out. A real digit keeps its class under them; a mark that only
    happens to sit near a prototype usually does not, so the average also rejects better."""
    out = [crop]
    s = JITTER_SHIFT
    for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s)):
        out.append(cv2.warpAffine(crop, np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE)))
    c = (SIZE / 2, SIZE / 2)
    for angle, scale in [(0, f) for f in JITTER_SCALES] + [(a, 1.0) for a in JITTER_ANGLES]:
        out.append(cv2.warpAffine(crop, cv2.getRotationMatrix2D(c, angle, scale), (SIZE, SIZE),
                                  flags=cv2.INTER_LINEAR))
    return np.stack(out)
