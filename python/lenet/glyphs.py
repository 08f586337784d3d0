"""Shapes that are not digits, shared by training (``lenet-train --rubbish``, the reader model's
data) and the reader's test pages, so training never has to import the reader.

LeCun et al.'s rubbish class: non-digit glyphs trained towards the MAP criterion's constant energy
j (target index 10 = the extra logit −j in ``lecun_map_loss``), so that the reader's confidence
P(digit) = e^{−y}/(e^{−j} + Σ e^{−y_k}) can say "not a digit". A network trained on digits alone
maps many letters confidently onto a digit prototype (H, K, M, W onto the 4, R onto the 8), which
no threshold can undo. Letters a person could read as a digit (O, D, I, l, J, S, Z, B, G, b, g, q,
T, z, ?, !) are left out: a reader cannot be blamed for reading an "S" as a 5.
"""

from __future__ import annotations

import cv2
import numpy as np

RUBBISH_LETTERS = "ACEFHKLMNPRUVWXYacdefhkmnprtuvwxy#%&@+=<>$"

# Marks on the test pages: letters drawn with fonts that ``rubbish_glyphs`` never uses.
MARK_LETTERS = "HKMNWXRkmwx#%&@"
MARK_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
              cv2.FONT_HERSHEY_COMPLEX)
RUBBISH_FONTS = (cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL,
                 cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_HERSHEY_PLAIN | cv2.FONT_ITALIC,
                 cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC)


def hershey_ink(ch: str, font: int, thickness: int, scale: float = 2.0) -> np.ndarray:
    """Ink strength float32 [h, w] in [0, 1] of one character in an OpenCV Hershey font."""
    (w, h), base = cv2.getTextSize(ch, font, scale, thickness)
    canvas = np.zeros((h + base + 2 * thickness + 10, w + 2 * thickness + 10), np.uint8)
    cv2.putText(canvas, ch, (thickness + 5, h + thickness + 5), font, scale, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def rubbish_glyphs(count: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [count, 28, 28] non-digit glyphs (white on black) made like the reader's crops
    (MNIST's 20×20 box, centre of mass at the centre), for ``lenet-train --rubbish``."""
    from .mnist_crop import to_mnist

    out = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        ch = RUBBISH_LETTERS[rng.integers(len(RUBBISH_LETTERS))]
        font = int(RUBBISH_FONTS[rng.integers(len(RUBBISH_FONTS))])
        out[i] = to_mnist(hershey_ink(ch, font, int(rng.integers(2, 6))))
    return out
