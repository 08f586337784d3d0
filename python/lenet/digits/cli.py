"""lenet-digits: read handwritten digits from scanned pages, a video or a webcam.

    lenet-digits scan1.png scan2.jpg --model artifacts/demo --json out.json
    lenet-digits --camera 0 --model artifacts/demo
    lenet-digits --video clip.mp4 --model artifacts/demo --headless --out annotated.mp4 --json out.json

Exit status: 0 all inputs read; 1 some inputs could not be read (each named on stderr, the rest
processed) or a camera stopped; 2 nothing could be processed (bad arguments, model, camera, display).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def build_parser() -> argparse.ArgumentParser:
    from .reader import ReaderOptions

    p = argparse.ArgumentParser(
        prog="lenet-digits",
        description="Read handwritten digits with a LeNet model: scanned pages or photos (IMAGE ...), "
                    "a video file (--video) or a webcam (--camera). Digits are found with OpenCV, "
                    "normalized the way MNIST was made, classified in one batched call per frame "
                    "(lenet_ext engine, or PyTorch if the engine cannot load), and grouped into "
                    "numbers: lines top to bottom, left to right.",
        epilog="Live window keys: q quit, space pause, s save the frame and its JSON (to --save-dir). "
               "A camera that stops delivering frames is retried for 2 s, then the program ends "
               "with a message. Exit status: 0 ok, 1 some inputs unreadable or the camera stopped, "
               "2 nothing processed.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files to read (scans, photos)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", metavar="FILE", help="read a video file")
    src.add_argument("--camera", type=int, metavar="N", help="read camera N (0 = the first webcam)")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="lenet-export artifact directory (or its .onnx/.torchscript.pt/.pt2), "
                        "or a lenet-train checkpoint .pt")
    p.add_argument("--backend", choices=("auto", "engine", "torch"), default="auto",
                   help="auto (default): lenet_ext, PyTorch if it cannot load")
    p.add_argument("--headless", action="store_true",
                   help="no window: write --out and/or --json (images are always read headless)")
    p.add_argument("--out", metavar="PATH",
                   help="annotated output: an image file (one image), a directory (several images), "
                        "or a video file .mp4/.avi (--video/--camera with --headless)")
    p.add_argument("--json", metavar="FILE", help="write the results (every image or frame) as JSON")
    p.add_argument("--min-confidence", type=float, default=ReaderOptions().min_confidence, metavar="P",
                   help="refuse a candidate whose confidence is below P as not a digit (default "
                        "%(default)s). Confidence: softmax for linear heads; for lenet5's RBF head "
                        "the posterior with the MAP criterion's rubbish class, so a shape far from "
                        "every digit prototype scores near 0 (see lenet.digits.classify)")
    p.add_argument("--deskew", action="store_true", help="straighten slanted digits by their moments")
    p.add_argument("--no-jitter", action="store_true",
                   help="classify each crop once, not averaged over 9 small shifts/scalings/rotations")
    p.add_argument("--ink", choices=("auto", "dark", "light"), default="auto",
                   help="dark ink on light paper, light on dark (default: auto)")
    p.add_argument("--gap", type=float, default=ReaderOptions().gap, metavar="F",
                   help="a space wider than F x digit height splits numbers (default %(default)s)")
    p.add_argument("--loop", action="store_true", help="live --video: start again at the end")
    p.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N frames")
    p.add_argument("--save-dir", default=".", metavar="DIR", help="where the s key saves (default .)")
    p.add_argument("--no-crops", action="store_true", help="do not draw the 28x28 crops")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no per-image lines")
    return p


def tqdm_write(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stdout)


def _err(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"lenet-digits: error: {msg}", file=sys.stderr)  # keeps a progress bar intact


def read_image(path: str) -> np.ndarray:
    """Decode an image file; ValueError with a reason a person understands."""
    import cv2

    p = Path(path)
    if not p.exists():
        raise ValueError("no such file")
    if p.is_dir():
        raise ValueError("is a directory, not an image")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        data = np.fromfile(p, np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ValueError("cannot decode: corrupt or not an image")
    return image


def _progress(iterable, total: int | None, desc: str, quiet: bool):
    if quiet:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame" if desc != "images" else "image",
                file=sys.stderr, leave=False)


def run_images(args, reader, model_info) -> int:
    import cv2

    from .render import annotate

    out_dir = None
    if args.out:
        if len(args.images) > 1 or not Path(args.out).suffix.lower() in IMAGE_SUFFIXES:
            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
    items, errors = [], []
    many = len(args.images) > 1
    for path in _progress(args.images, len(args.images), "images", args.quiet or not many):
        try:
            image = read_image(path)
        except ValueError as exc:
            _err(f"{path}: {exc}")
            errors.append({"source": path, "error": str(exc)})
            continue
        result = reader.read(image, path)
        items.append(result.to_json())
        if not args.quiet:
            numbers = " ".join(n.text for n in result.numbers) or "(no digits)"
            tqdm_write(f"{path}: {numbers}")
        if args.out:
            target = out_dir / f"{Path(path).stem}.annotated.png" if out_dir else Path(args.out)
            if not cv2.imwrite(str(target), annotate(image, result, crops=not args.no_crops)):
                _err(f"{target}: cannot write the annotated image")
    _write_json(args.json, model_info, items, errors)
    if not items:
        return 2
    return 1 if errors else 0


def _write_json(path: str | None, model_info: dict, items: list, errors: list) -> None:
    if not path:
        return
    doc = {"model": model_info, "items": items}
    if errors:
        doc["errors"] = errors
    Path(path).write_text(json.dumps(doc, indent=1))


def open_capture(args):
    """(capture, display name, is_camera) or raise ValueError with the reason."""
    import cv2

    if args.video is not None:
        p = Path(args.video)
        if not p.exists():
            raise ValueError(f"{args.video}: no such file")
        if p.is_dir():
            raise ValueError(f"{args.video}: is a directory, not a video")
        if p.stat().st_size == 0:
            raise ValueError(f"{args.video}: empty file (0 bytes)")
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise ValueError(f"{args.video}: cannot open: corrupt or not a video")
        return cap, args.video, False
    if args.camera < 0:
        raise ValueError(f"camera {args.camera}: camera indices start at 0")
    cap = cv2.VideoCapture(args.camera)
    if not cap.isOpened():
        raise ValueError(f"camera {args.camera}: cannot be opened (no such camera, or it is in use)")
    # One buffered frame: what is shown is what the camera sees now, not a second ago.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap, str(args.camera), True


def run_stream_headless(args, reader, model_info, cap, name: str, is_camera: bool) -> int:
    import cv2

    from .live import CAMERA_GRACE_S, read_frame
    from .render import annotate

    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not is_camera else 0
    if args.max_frames:
        total = min(total, args.max_frames) if total > 0 else args.max_frames
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    items = []
    status = 0
    start = time.perf_counter()
    bar = _progress(None, total if total > 0 else None, "frames", args.quiet)
    index = 0
    try:
        while not args.max_frames or index < args.max_frames:
            ok, frame = read_frame(cap, is_camera)
            if not ok:
                if is_camera:
                    _err(f"camera {name}: stopped delivering frames (retried for {CAMERA_GRACE_S:.0f} s)")
                    status = 1
                break
            result = reader.read(frame, f"frame {index}")
            items.append(result.to_json())
            if args.out:
                vis = annotate(frame, result, crops=not args.no_crops)
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if args.out.lower().endswith(".avi") else "mp4v"))
                    writer = cv2.VideoWriter(args.out, fourcc, fps_in if 0 < fps_in < 240 else 25.0,
                                             (vis.shape[1], vis.shape[0]))
                    if not writer.isOpened():
                        _err(f"{args.out}: cannot write a video there (use .mp4 or .avi)")
                        return 2
                writer.write(vis)
            index += 1
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        pass
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        cap.release()
    elapsed = time.perf_counter() - start
    _write_json(args.json, model_info, items, [])
    if index == 0:
        _err(f"{name}: no frame could be read")
        return 2
    if not args.quiet:
        print(f"{name}: {index} frames read, {index / max(elapsed, 1e-9):.1f} frames/s")
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parser_error = None
    if not args.images and args.video is None and args.camera is None:
        parser_error = "nothing to read: give IMAGE files, --video FILE or --camera N"
    elif args.images and (args.video is not None or args.camera is not None):
        parser_error = "give either IMAGE files or --video/--camera, not both"
    elif not 0.0 <= args.min_confidence <= 1.0:
        parser_error = f"--min-confidence must be in [0, 1], got {args.min_confidence}"
    elif args.out and (args.video is not None or args.camera is not None) and not args.headless:
        parser_error = "--out with --video/--camera needs --headless (the live window shows the result)"
    if parser_error:
        _err(parser_error)
        return 2

    from .classify import ModelLoadError, load_classifier
    from .reader import DigitReader, ReaderOptions
    from .segment import SegmentOptions

    try:
        classifier = load_classifier(args.model, args.backend)
    except ModelLoadError as exc:
        _err(str(exc))
        return 2
    jitter = not args.no_jitter
    live = not args.images and not args.headless
    if live and jitter and classifier.backend != "lenet_ext":
        # Nine classifications per candidate cost the engine little (~60 frames/s at 640x480)
        # but make eager PyTorch a slideshow (~3 frames/s): a live window gets one each.
        jitter = False
        print(f"lenet-digits: note: {classifier.backend} backend, not lenet_ext: "
              "classifying each crop once for speed", file=sys.stderr)
    options = ReaderOptions(min_confidence=args.min_confidence, deskew=args.deskew,
                            jitter=jitter, gap=args.gap, segment=SegmentOptions(ink=args.ink))
    try:
        reader = DigitReader(classifier, options)
    except ValueError as exc:
        _err(f"{args.model}: {exc}")
        return 2
    model_info = {"path": os.fspath(args.model), "arch": classifier.spec.arch, "backend": classifier.backend}

    if args.images:
        return run_images(args, reader, model_info)

    if not args.headless:
        from .live import DisplayError, check_display

        try:
            check_display()
        except DisplayError as exc:
            _err(str(exc))
            return 2
    try:
        cap, name, is_camera = open_capture(args)
    except ValueError as exc:
        _err(str(exc))
        return 2
    if args.headless:
        return run_stream_headless(args, reader, model_info, cap, name, is_camera)

    from .live import run_live

    items: list = []
    try:
        status = run_live(cap, reader, name=name, is_camera=is_camera, loop=args.loop,
                          save_dir=Path(args.save_dir), model=model_info,
                          on_frame=(lambda r: items.append(r.to_json())) if args.json else None,
                          max_frames=args.max_frames, crops=not args.no_crops)
    finally:
        cap.release()
    _write_json(args.json, model_info, items, [])
    return status


if __name__ == "__main__":
    sys.exit(main())
