"""Test material made from synthetic pages (lenet.digits.kit.synth): a short hand-held video of a page."""

from __future__ import annotations

import numpy as np

from lenet.digits.kit.synth import Page


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
