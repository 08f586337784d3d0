"""The live window: a camera or a video file, read frame by frame, with what was read drawn on it.

Keys: q (or Esc) quit, space pause/resume, s save the frame (raw and annotated PNG) and its JSON.
A camera that stops delivering frames is retried for ``CAMERA_GRACE_S`` seconds (USB cameras drop
a frame now and then), then the window closes with a message and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from lenet.digits.reader import DigitReader, FrameResult
from lenet.digits.render import annotate

WINDOW = "lenet-digits"
CAMERA_GRACE_S = 2.0
HELP = "q quit  space pause  s save"


class DisplayError(RuntimeError):
    """No way to open a window: no display, or an OpenCV built without a GUI."""


def check_display() -> None:
    gui = next((line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
                if line.strip().startswith("GUI:")), "")
    if gui.upper() == "NONE":
        raise DisplayError("this OpenCV has no GUI (opencv-python-headless is installed): "
                           "pip install opencv-python, or use --headless --out FILE")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("no display (DISPLAY is not set): use --headless --out FILE, "
                           "or run under a desktop or xvfb-run")


def read_frame(cap: cv2.VideoCapture, is_camera: bool) -> tuple[bool, np.ndarray | None]:
    """The next frame. A camera that fails is retried for CAMERA_GRACE_S seconds first."""
    ok, frame = cap.read()
    if is_camera and (not ok or frame is None):
        deadline = time.monotonic() + CAMERA_GRACE_S
        while time.monotonic() < deadline and (not ok or frame is None):
            time.sleep(0.05)
            ok, frame = cap.read()
    return bool(ok) and frame is not None, frame


def _qt_fonts() -> None:
    """opencv-python's Qt looks for fonts in its own (empty) folder and complains on every start;
    point it at the system's fonts when the user has not chosen."""
    if "QT_QPA_FONTDIR" in os.environ:
        return
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts"):
        if Path(folder).is_dir():
            os.environ["QT_QPA_FONTDIR"] = folder
            return


@dataclass
class LiveStats:
    frames: int = 0            # frames read and shown
    saved: list[str] = field(default_factory=list)


def _save(save_dir: Path, stem: str, frame: np.ndarray, vis: np.ndarray, item: dict,
          model: dict) -> list[str]:
    save_dir.mkdir(parents=True, exist_ok=True)
    base = save_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{item['source'].replace(' ', '')}"
    paths = [f"{base}.png", f"{base}-annotated.png", f"{base}.json"]
    cv2.imwrite(paths[0], frame)
    cv2.imwrite(paths[1], vis)
    Path(paths[2]).write_text(json.dumps({"model": model, "items": [item]}, indent=1))
    return paths


def run_live(cap: cv2.VideoCapture, reader: DigitReader, *, name: str, is_camera: bool,
             loop: bool = False, save_dir: Path = Path("."), model: dict | None = None,
             on_frame: Callable[[FrameResult], None] | None = None, max_frames: int = 0,
             crops: bool = True) -> int:
    """Show the window until q, the end of a video (unless ``loop``), or a camera failure.
    Returns the exit status."""
    _qt_fonts()
    # GUI_NORMAL: no Qt toolbar (its zoom/pan buttons would cover the status bar).
    cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    stats = LiveStats()
    video_fps = cap.get(cv2.CAP_PROP_FPS) if not is_camera else 0.0
    frame_period = 1.0 / video_fps if 0 < video_fps < 240 else 0.0
    paused = False
    fps = 0.0
    frame = vis = None
    result: FrameResult | None = None
    status = 0
    index = 0
    last = time.perf_counter()
    stem = Path(name).stem if not is_camera else f"camera{name}"
    try:
        while True:
            if not paused:
                ok, new = read_frame(cap, is_camera)
                if not ok:
                    if is_camera:
                        print(f"lenet-digits: error: camera {name}: stopped delivering frames "
                              f"(retried for {CAMERA_GRACE_S:.0f} s)", file=sys.stderr)
                        status = 1
                        break
                    if loop and stats.frames:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        index = 0
                        continue
                    else:
                        print(f"{name}: end of video after {stats.frames} frames")
                        break
                frame = new
                result = reader.read(frame, f"frame {index}")
                index += 1
                stats.frames += 1
                if on_frame is not None:
                    on_frame(result)
                now = time.perf_counter()
                dt = now - last
                last = now
                fps = 1.0 / dt if fps == 0.0 else 0.9 * fps + 0.1 / max(dt, 1e-6)
                vis = annotate(frame, result, fps=fps, status=HELP, crops=crops)
            else:
                vis_paused = vis.copy()
                cv2.putText(vis_paused, "PAUSED", (10, vis.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX,
                            1.0, (0, 0, 255), 2, cv2.LINE_AA)
            cv2.imshow(WINDOW, vis_paused if paused else vis)
            wait_ms = 30 if paused else 1
            if not paused and frame_period:
                # A video plays no faster than it was recorded.
                wait_ms = max(1, int(1000 * (frame_period - (time.perf_counter() - last))))
            key = cv2.waitKey(wait_ms) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord(" "):
                paused = not paused
            elif key == ord("s") and result is not None:
                paths = _save(save_dir, stem, frame, vis, result.to_json(), model or {})
                stats.saved += paths
                print(f"saved {paths[0]} and {paths[2]}")
            if max_frames and stats.frames >= max_frames:
                break
            if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                break  # the window was closed with the mouse
    except KeyboardInterrupt:
        pass
    finally:
        cv2.destroyAllWindows()
        cv2.waitKey(1)
    print(f"{name}: {stats.frames} frames shown")
    return status
