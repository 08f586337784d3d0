"""lenet-digits: read printed and handwritten digits from scanned pages, a video or a webcam.

    lenet-digits scan1.png scan2.jpg --json out.json        (the bundled reader model)
    lenet-digits --camera 0
    lenet-digits --video clip.mp4 --model artifacts/demo --headless --out annotated.mp4 --json out.json

Exit status: 0 all inputs read; 1 some inputs could not be read (each named on stderr, the rest
processed) or a camera stopped; 2 nothing could be processed (bad arguments, model, camera, display).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from lenet.paths import OutputError, check_output_dir, check_output_file, missing_reason, same_file, write_output

if TYPE_CHECKING:
    from lenet.digits.options import ReaderOptions

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# Larger images are refused, not read: finding digits costs time and memory in proportion to the
# pixels (a 20000x20000 page took minutes and 7.6 GB), and a 600 dpi A4 scan is 35 megapixels.
MAX_MEGAPIXELS = 50
# Decoder messages that mean the file is damaged (libjpeg, libpng, libtiff, OpenCV); other
# messages (e.g. libpng's "known incorrect sRGB profile") are passed through to stderr.
CORRUPTION_WORDS = ("corrupt", "premature end", "truncat", "error", "invalid", "bad ", "crc")


# The flags that set a ReaderOptions attribute of the same name (dest). Their argparse default is
# None, "not given": the value then comes from the model's manifest or the dataclass, never from
# a second copy of the default here.
READER_FLAGS = ("min_confidence", "min_confidence_in_number", "min_confidence_between", "deskew", "jitter",
                "gap")


def build_parser() -> argparse.ArgumentParser:
    from lenet.digits.classify import BACKENDS
    from lenet.digits.options import ReaderOptions
    from lenet.digits.segment import SegmentOptions

    defaults, segment = ReaderOptions(), SegmentOptions()

    p = argparse.ArgumentParser(
        prog="lenet-digits",
        description="Read printed and handwritten digits with a LeNet model: scanned pages or photos (IMAGE ...), "
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
    p.add_argument("--model", metavar="PATH",
                   help="lenet-export artifact directory (or its .onnx/.torchscript.pt/.pt2), "
                        "or a lenet-train checkpoint .pt (default: the reader model bundled with "
                        "the package, trained on MNIST and print and handwriting fonts)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto (default): lenet_ext, else ONNX Runtime (a model the engine does not "
                        "run: lenet5-wide), else PyTorch")
    p.add_argument("--headless", action="store_true",
                   help="no window: write --out and/or --json (images are always read headless)")
    p.add_argument("--out", metavar="PATH",
                   help="annotated output: an image file (one image), a directory (several images), "
                        "or a video file .mp4/.avi (--video/--camera with --headless)")
    p.add_argument("--json", metavar="FILE", help="write the results (every image or frame) as JSON")
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="refuse a candidate whose confidence is below P as not a digit (default: "
                        "the threshold recorded in the model's manifest, chosen on validation "
                        f"data; {defaults.min_confidence} for models without one). Confidence: softmax for linear heads; for lenet5's RBF head "
                        "the posterior with the MAP criterion's rubbish class, so a shape far from "
                        "every digit prototype scores near 0 (see lenet.digits.classify)")
    p.add_argument("--min-confidence-in-number", type=float, default=None, metavar="P",
                   help="a shape refused by --min-confidence but sitting among read digits, at their "
                        "height, is read if its confidence is at least P (default: the manifest's, "
                        "chosen on validation data; none for models without one: such shapes stay "
                        "'?' in their number)")
    p.add_argument("--min-confidence-between", type=float, default=None, metavar="P",
                   help="... and one lying between two read digits of a number, at their height, "
                        "if its confidence is at least P (a letter or a unit follows a number; it "
                        "does not sit inside one). Default: the manifest's, as above")
    p.add_argument("--deskew", action="store_true", default=None,
                   help="straighten slanted digits by their moments")
    p.add_argument("--no-jitter", action="store_false", dest="jitter", default=None,
                   help="classify each crop once, not averaged over 9 small shifts/scalings/rotations")
    p.add_argument("--ink", choices=("auto", "dark", "light"), default=None,
                   help=f"dark ink on light paper, light on dark (default: {segment.ink})")
    p.add_argument("--gap", type=float, default=None, metavar="F",
                   help=f"a space wider than F x digit height splits numbers (default {defaults.gap})")
    p.add_argument("--loop", action="store_true", help="live --video: start again at the end")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
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


# File descriptor 2 is one per process: two threads that swapped it at once (lenet-serve decodes
# uploads in worker threads) would each restore the other's capture file as stderr.
_DECODER_MESSAGES_LOCK = threading.Lock()


@contextlib.contextmanager
def decoder_messages():
    """Collect what the image libraries print on file descriptor 2 while decoding: libjpeg only
    *warns* about damaged data ("Corrupt JPEG data: premature end of data segment") and OpenCV then
    returns the partly garbled page, so the warning is the only sign that the page is wrong."""
    lines: list[str] = []
    with _DECODER_MESSAGES_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                lines += capture.read().decode(errors="replace").splitlines()


def too_large(width: int, height: int) -> ValueError:
    return ValueError(f"too large to read ({width}x{height} pixels, the limit is {MAX_MEGAPIXELS} "
                      "megapixels): scale it down first (digits 30 to 100 px tall read best)")


def check_image_size(path: Path | BinaryIO) -> None:
    """Refuse a huge image from its header, before decoding it (``path``: a file, or the bytes of
    one as a binary stream). Pillow reads the header; a format it does not know is checked after
    decoding (OpenCV's own limit is 2^30 pixels)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: the size check is ours
        try:
            with Image.open(path) as im:
                width, height = im.size
        except Image.DecompressionBombError:  # past Pillow's own limit (~179 MP): huge
            raise ValueError(f"too large to read (over {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} "
                             f"megapixels, the limit is {MAX_MEGAPIXELS}): scale it down first") from None
        except Exception:  # noqa: BLE001 - unknown to Pillow: OpenCV may still read it
            return
    if width * height > MAX_MEGAPIXELS * 1e6:
        raise too_large(width, height)


def read_image(path: str) -> np.ndarray:
    """Decode an image file; ValueError with a reason a person understands."""
    p = Path(path)
    if not p.exists():
        raise ValueError(missing_reason(p))
    if p.is_dir():
        raise ValueError("is a directory, not an image")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    check_image_size(p)
    try:
        data = np.fromfile(p, np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror})") from None
    return decode_image(data)


def decode_image(data: np.ndarray) -> np.ndarray:
    """Decode an image file's bytes (uint8 array) to BGR; ValueError with a reason a person
    understands. The size is checked from the header first (check_image_size) by the caller."""
    import cv2

    with decoder_messages() as messages:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    damage = [m for m in messages if any(w in m.lower() for w in CORRUPTION_WORDS)]
    for line in messages:
        if line not in damage:
            print(line, file=sys.stderr)
    if image is None or image.size == 0:
        raise ValueError("cannot decode: corrupt or not an image" + (f" ({damage[0].strip()})" if damage else ""))
    if damage:
        raise ValueError(f"corrupt image, refused rather than read in part ({damage[0].strip()})")
    if image.shape[0] * image.shape[1] > MAX_MEGAPIXELS * 1e6:  # a format Pillow did not know
        raise too_large(image.shape[1], image.shape[0])
    return image


def _progress(iterable, total: int | None, desc: str, quiet: bool):
    if quiet:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame" if desc != "images" else "image",
                file=sys.stderr, leave=False)


def run_images(args, reader, model_info) -> int:
    import cv2

    from lenet.digits.render import annotate

    out_dir = None
    if args.out and out_is_dir(args):
        out_dir = Path(args.out)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _err(f"--out {out_dir}: cannot create it ({exc.strerror or exc})")
            return 2
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
            ok, png = cv2.imencode(Path(target).suffix or ".png",
                                   annotate(image, result, crops=not args.no_crops))
            try:
                if not ok:
                    raise OutputError(f"cannot encode the annotated image as {target}")
                write_output(target, png.tobytes(), "annotated image")
            except OutputError as exc:
                _err(str(exc))
                errors.append({"source": path, "error": str(exc)})
    if not _write_json(args.json, model_info, items, errors):
        return 2 if not items else 1
    if not items:
        return 2
    return 1 if errors else 0


def out_is_dir(args) -> bool:
    """--out with images: a directory for several images or a name without an image suffix."""
    return len(args.images) > 1 or Path(args.out).suffix.lower() not in IMAGE_SUFFIXES


def check_outputs(args) -> None:
    """Refuse, before the model loads and anything is read, an output that would replace an input
    (an image, the video, the model) or cannot be written. Raises OutputError."""
    inputs = [*args.images, *([args.video] if args.video is not None else []), args.model]
    if args.json:
        check_output_file(args.json, inputs, "--json")
    if args.out and args.images and out_is_dir(args):
        out_dir = check_output_dir(args.out, "--out")
        targets = [out_dir / f"{Path(p).stem}.annotated.png" for p in args.images]
        for target, source in zip(targets, args.images):
            if targets.count(target) > 1:
                raise OutputError(f"--out {out_dir}: several inputs named {Path(source).stem}.* "
                                  f"would all be written to {target}")
            if out_dir.is_dir():
                check_output_file(target, inputs, "--out")
    elif args.out:
        check_output_file(args.out, inputs, "--out")
    if args.json and args.out and same_file(args.json, args.out):
        raise OutputError(f"--json and --out are the same file ({args.out})")
    if args.save_dir != "." and args.images == [] and not args.headless:
        check_output_dir(args.save_dir, "--save-dir")


def results_document(model_info: dict, items: list, errors: list) -> dict:
    """The --json document: the model, one item per image or frame read, and the inputs that
    could not be read (only when there are some). lenet-serve's /v1/read answers the same."""
    doc = {"model": model_info, "items": items}
    if errors:
        doc["errors"] = errors
    return doc


def describe_model(path: str | os.PathLike, classifier) -> dict:
    """The document's "model": where it came from, its architecture and the backend running it."""
    return {"path": os.fspath(path), "arch": classifier.spec.arch, "backend": classifier.backend}


def _write_json(path: str | None, model_info: dict, items: list, errors: list) -> bool:
    """Write the results (atomically: a full disk leaves no half file); False after an error."""
    if not path:
        return True
    try:
        write_output(path, json.dumps(results_document(model_info, items, errors), indent=1), "--json")
    except OutputError as exc:
        _err(str(exc))
        return False
    return True


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
    from lenet.digits.render import annotate

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
    if not _write_json(args.json, model_info, items, []):
        status = 1
    if index == 0:
        _err(f"{name}: no frame could be read")
        return 2
    if not args.quiet:
        print(f"{name}: {index} frames read, {index / max(elapsed, 1e-9):.1f} frames/s")
    return status


def reader_options(args) -> ReaderOptions:
    """The reader's options for ``args``: each flag given sets its attribute, the rest come from
    the model's manifest (the thresholds) or ReaderOptions' defaults. Video and camera frames
    skip shapes cut by the frame's edge; a page's edge is its paper's."""
    from lenet.digits.options import ReaderOptions

    options = ReaderOptions.for_model(args.model, **{n: getattr(args, n) for n in READER_FLAGS},
                                      skip_border=not args.images)
    if args.ink is not None:
        options = replace(options, segment=replace(options.segment, ink=args.ink))
    return options


def main(argv: list[str] | None = None) -> int:
    from lenet.digits.options import THRESHOLDS

    args = build_parser().parse_args(argv)
    parser_error = None
    if not args.images and args.video is None and args.camera is None:
        parser_error = "nothing to read: give IMAGE files, --video FILE or --camera N"
    elif args.images and (args.video is not None or args.camera is not None):
        parser_error = "give either IMAGE files or --video/--camera, not both"
    elif bad := [n for n in THRESHOLDS if getattr(args, n) is not None and not 0.0 <= getattr(args, n) <= 1.0]:
        parser_error = f"--{bad[0].replace('_', '-')} must be in [0, 1], got {getattr(args, bad[0])}"
    elif args.out and (args.video is not None or args.camera is not None) and not args.headless:
        parser_error = "--out with --video/--camera needs --headless (the live window shows the result)"
    elif args.gap is not None and not (math.isfinite(args.gap) and args.gap > 0):
        parser_error = f"--gap must be a positive number (x digit height), got {args.gap}"
    elif args.max_frames is not None and args.max_frames < 1:
        parser_error = f"--max-frames must be at least 1, got {args.max_frames}"
    if parser_error:
        _err(parser_error)
        return 2
    from lenet.digits.classify import DEFAULT_MODEL

    if args.model is None:  # the bundled model (an input like any other: never an output)
        if not (DEFAULT_MODEL / "manifest.json").is_file():
            _err(f"the bundled reader model is missing from {DEFAULT_MODEL} (make reader-model "
                 "makes it); pass --model PATH")
            return 2
        args.model = str(DEFAULT_MODEL)
    try:
        check_outputs(args)
    except OutputError as exc:
        _err(str(exc))
        return 2

    from lenet.digits.classify import ModelLoadError, load_classifier
    from lenet.digits.reader import DigitReader

    try:
        classifier = load_classifier(args.model, args.backend)
    except ModelLoadError as exc:
        _err(str(exc))
        return 2
    options = reader_options(args)
    live = not args.images and not args.headless
    if live and options.jitter and classifier.backend != "lenet_ext":
        # Nine classifications per candidate cost the engine little (~60 frames/s at 640x480)
        # but make eager PyTorch a slideshow (~3 frames/s): a live window gets one each.
        options = replace(options, jitter=False)
        print(f"lenet-digits: note: {classifier.backend} backend, not lenet_ext: "
              "classifying each crop once for speed", file=sys.stderr)
    try:
        reader = DigitReader(classifier, options)
    except ValueError as exc:
        _err(f"{args.model}: {exc}")
        return 2
    model_info = describe_model(args.model, classifier)

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
                          max_frames=args.max_frames or 0, crops=not args.no_crops)
    finally:
        cap.release()
    if not _write_json(args.json, model_info, items, []):
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
