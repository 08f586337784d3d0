"""`make reader-fps`: how many 640×480 frames per second the reader keeps up with, as the live
and --video modes run it (find candidates, normalize, one batched engine call, group; frames from a
hand-held view of a held-out page), with and without the jitter averaging. A benchmark, not a
test: the figure depends on the machine and on what else runs on it.

    python tools/reader_fps.py [--model DIR] [--frames 120] [--threads N] [--backend onnxruntime]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


def frames_of_page(count: int, seed: int = 0):
    """``count`` 640×480 views of a held-out page, drifting and turning as a hand-held camera."""
    import cv2
    import numpy as np

    from lenet.digits.kit.synth import heldout_digits, make_page

    x, y = heldout_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    page, _ = make_page(x[order], y[order], rng, size=(720, 960), digit_height=(40, 56), lines=5)
    ph, pw = page.image.shape[:2]
    out = []
    for i in range(count):
        t = i / max(1, count - 1)
        m = cv2.getRotationMatrix2D((pw / 2, ph / 2), 1.5 * np.sin(2 * np.pi * t), 640 / pw)
        m[:, 2] += (6 * np.sin(2 * np.pi * t), 4 * np.cos(2 * np.pi * t))
        out.append(cv2.warpAffine(page.image, m, (640, 480), borderMode=cv2.BORDER_REPLICATE))
    return out


def main(argv: list[str] | None = None) -> int:
    import lenet_ext

    from lenet.digits.classify import BACKENDS, DEFAULT_MODEL, EngineClassifier, load_classifier
    from lenet.digits.reader import DigitReader, ReaderOptions

    p = argparse.ArgumentParser(description="Frames/s of the digit reader on 640x480 video.")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: one per CPU)")
    p.add_argument("--backend", choices=BACKENDS, default="engine",
                   help="engine (default), or the backend that runs a model the engine does not "
                        "(lenet5-wide: onnxruntime)")
    args = p.parse_args(argv)
    frames = frames_of_page(args.frames)
    if args.backend == "engine":
        clf = EngineClassifier(lenet_ext.load(args.model, threads=args.threads))
    else:
        clf = load_classifier(args.model, args.backend)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {clf.backend} "
          f"({clf.spec.arch}), engine ISA {lenet_ext.build_info()['cpu_isa']}, {len(frames)} frames 640x480")
    for jitter in (True, False):
        reader = DigitReader(clf, ReaderOptions.for_model(args.model, jitter=jitter, skip_border=True))
        for f in frames[:5]:  # warm-up
            reader.read(f)
        digits = 0
        t0 = time.perf_counter()
        for f in frames:
            digits += len(reader.read(f).digits)
        dt = time.perf_counter() - t0
        print(f"jitter averaging {'on ' if jitter else 'off'}: {len(frames) / dt:6.1f} frames/s "
              f"({1000 * dt / len(frames):.1f} ms a frame, {digits / len(frames):.0f} digits a frame)")
    # The network alone, without finding and cutting the candidates: 1,000 held-out digits, each
    # with its 9 re-registrations, in one call (median of 5).
    from lenet.digits.kit.synth import heldout_digits

    crops = heldout_digits()[0][:1000]
    reader = DigitReader(clf, ReaderOptions())
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        reader.classify(crops)
        times.append(time.perf_counter() - t0)
    print(f"classifying 1,000 crops (9 re-registrations each): {1000 * sorted(times)[2]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
