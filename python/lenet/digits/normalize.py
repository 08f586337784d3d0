"""The reader's crops: MNIST's normalization (lenet.mnist_crop, shared with training) and the
small re-registrations the reader averages over."""

from __future__ import annotations

import cv2
import numpy as np

from lenet.mnist_crop import BOX, SIZE, deskew, ink_to_u8, to_mnist

__all__ = ["BOX", "SIZE", "deskew", "ink_to_u8", "jitters", "to_mnist"]


def jitters(crop: np.ndarray) -> np.ndarray:
    """uint8 [9, 28, 28]: the crop and 8 small re-registrations of it (±1 px shifts, ±10 % scale,
    ±8° rotation). Where exactly a digit's box and centre of mass fall depends on a pixel of
    threshold or blur; averaging the network's probabilities over these small changes
    marginalizes that uncertainty out. A real digit keeps its class under them; a mark that only
    happens to sit near a prototype usually does not, so the average also rejects better."""
    out = [crop]
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        out.append(cv2.warpAffine(crop, np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE)))
    c = (SIZE / 2, SIZE / 2)
    for angle, scale in ((0, 0.9), (0, 1.1), (-8, 1.0), (8, 1.0)):
        out.append(cv2.warpAffine(crop, cv2.getRotationMatrix2D(c, angle, scale), (SIZE, SIZE),
                                  flags=cv2.INTER_LINEAR))
    return np.stack(out)
