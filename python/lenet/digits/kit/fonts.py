"""The fonts the reader model is trained and evaluated on: Debian font packages, found on disk.

Print fonts stand for labels, meters and forms; handwriting and script fonts for pens and markers.
Whole packages are held out of training (``HELD_OUT``) and used only by the evaluation pages
(``tools/reader_eval.py``, ``tests/digits``), so the reader is measured on styles it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FONT_ROOT = Path("/usr/share/fonts")


@dataclass(frozen=True)
class FontPackage:
    package: str           # the Debian package that installs it
    kind: str              # "print" or "handwriting"
    patterns: tuple[str, ...]  # file name globs under FONT_ROOT


PACKAGES = (
    FontPackage("fonts-dejavu-core", "print", ("**/dejavu/DejaVuSans.ttf", "**/dejavu/DejaVuSans-Bold.ttf",
                                               "**/dejavu/DejaVuSerif.ttf", "**/dejavu/DejaVuSerif-Bold.ttf",
                                               "**/dejavu/DejaVuSansMono.ttf", "**/dejavu/DejaVuSansMono-Bold.ttf")),
    FontPackage("fonts-urw-base35", "print", ("opentype/urw-base35/*.otf",)),
    FontPackage("fonts-freefont-ttf", "print", ("truetype/freefont/Free*.ttf",)),
    FontPackage("fonts-noto-core", "print", ("truetype/noto/NotoSans-*.ttf", "truetype/noto/NotoSerif-*.ttf",
                                             "truetype/noto/NotoSerifDisplay-*.ttf")),
    FontPackage("fonts-liberation", "print", ("truetype/liberation/Liberation*.ttf",)),
    FontPackage("fonts-comic-neue", "handwriting", ("opentype/comic-neue/*.otf",)),
    FontPackage("fonts-dancingscript", "handwriting", ("opentype/dancingscript/*.otf",)),
    FontPackage("fonts-kaushanscript", "handwriting", ("opentype/kaushanscript/*.otf",)),
    FontPackage("fonts-ecolier-court", "handwriting", ("truetype/ecolier-court/*.ttf",)),
    FontPackage("fonts-klee", "handwriting", ("truetype/klee/*.ttf",)),
    FontPackage("fonts-joscelyn", "handwriting", ("opentype/joscelyn/*.otf",)),
    FontPackage("fonts-havana", "handwriting", ("opentype/havana/*.otf",)),
)

# Held out of training, whole packages, one print and two handwriting styles: Liberation's
# sans/serif/mono (designs of their own, metric-compatible with Arial/Times/Courier), Klee One
# (a neat pen hand) and Kaushan Script (a brush marker).
HELD_OUT = ("fonts-liberation", "fonts-klee", "fonts-kaushanscript")

# URW's symbol and dingbat fonts have no digits of their own.
_NOT_DIGITS = ("StandardSymbolsPS", "D050000L", "Z003")


class FontsMissing(RuntimeError):
    """A font package that is not installed; the message names the Debian package."""


def package(name: str) -> FontPackage:
    for p in PACKAGES:
        if p.package == name:
            return p
    raise KeyError(name)


@lru_cache(maxsize=None)
def font_files(name: str) -> tuple[str, ...]:
    """The font files of one package, sorted; FontsMissing names the package when it has none."""
    files = sorted({str(f) for pattern in package(name).patterns for f in FONT_ROOT.glob(pattern)
                    if not any(s in f.name for s in _NOT_DIGITS)})
    if not files:
        raise FontsMissing(f"no fonts of {name} under {FONT_ROOT}: sudo apt-get install {name}")
    return tuple(files)


def training_packages(kind: str) -> list[str]:
    return [p.package for p in PACKAGES if p.kind == kind and p.package not in HELD_OUT]


def held_out_packages(kind: str) -> list[str]:
    return [p.package for p in PACKAGES if p.kind == kind and p.package in HELD_OUT]


@lru_cache(maxsize=256)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def render_text(text: str, path: str, size: int = 64, stroke: int = 0) -> np.ndarray:
    """Ink strength float32 [h, w] in [0, 1] of ``text`` in the font file ``path`` at ``size`` px,
    cropped to the ink (a margin of 2 px). ``stroke`` > 0 thickens the strokes (a wider pen)."""
    from PIL import Image, ImageDraw

    font = _font(path, size)
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    pad = 4 + stroke
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=font, fill=255, stroke_width=stroke,
                             stroke_fill=255)
    ink = np.asarray(img, np.float32) / 255.0
    ys, xs = np.nonzero(ink > 0.1)
    if len(ys) == 0:
        return np.zeros((1, 1), np.float32)
    return np.pad(ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 2)
