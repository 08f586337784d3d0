"""The live window for real: lenet-digits on a virtual X display (Xvfb), a video file standing in
for the camera. The window must open, frames must advance, a screenshot must show boxes and
digits, s must save the frame and its JSON, and q must end the program cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lenet.digits.render import DIGIT, NUMBER
from lenet.digits.kit.synth import make_page

from .pages import make_clip

TOOLS = ("Xvfb", "xdotool", "xwd")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"{', '.join(missing)} not installed (apt-get install xvfb xdotool x11-apps; "
                          "make test installs them)")


def read_xwd(data: bytes) -> np.ndarray:
    """BGR image from an `xwd` dump of a 24/32-bit TrueColor screen."""
    header = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel = int(header[7]), int(header[11])
    bytes_per_line, ncolors = int(header[12]), int(header[19])
    step = bits_per_pixel // 8
    assert step in (3, 4), f"unexpected xwd pixel size {bits_per_pixel}"
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data[start:start + height * bytes_per_line], np.uint8).reshape(height, bytes_per_line)
    pixels = rows[:, :width * step].reshape(height, width, step)
    return pixels[:, :, :3] if byte_order == 0 else pixels[:, :, step - 1:step - 4:-1]


@pytest.fixture
def xdisplay():
    """A private Xvfb server; yields its DISPLAY string."""
    for n in range(140, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            break
    display = f":{n}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Ready when a client gets an answer, not when its socket appears: a full-suite run once saw
    # the socket but a refused first connection, and the program under test aborted.
    deadline = time.monotonic() + 15
    env = {**os.environ, "DISPLAY": display}
    while not (Path(f"/tmp/.X11-unix/X{n}").exists()
               and subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True,
                                  timeout=10).returncode == 0):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"Xvfb {display} did not start")
        time.sleep(0.1)
    try:
        yield display
    finally:
        server.terminate()
        server.wait(10)


def x(cmd: list[str], env: dict, timeout: float = 20) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=True).stdout


def wait_for_window(proc: subprocess.Popen, env: dict, timeout: float = 180) -> str:
    """The window id once lenet-digits has opened its window (start-up imports torch and loads the
    model, which takes long on a busy machine); fails with the program's output if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"lenet-digits exited with {proc.returncode} before its window opened:\n{out}\n{err}")
        found = subprocess.run(["xdotool", "search", "--name", "^lenet-digits$"], env=env,
                               capture_output=True, text=True, timeout=20).stdout.split()
        if found:
            return found[0]
        time.sleep(0.3)
    pytest.fail(f"no lenet-digits window within {timeout:.0f} s")


def screenshot(env: dict) -> np.ndarray:
    return read_xwd(subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True,
                                   timeout=20, check=True).stdout)


def color_pixels(img: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img.astype(int) - np.array(bgr)).max(axis=2) < tol).sum())


def test_live_window_under_xvfb(xdisplay, tmp_path, heldout_digits, reader_model):
    xs, ys = heldout_digits
    rng = np.random.default_rng(3)
    order = rng.permutation(len(xs))  # the split is stored class by class
    page, _ = make_page(xs[order], ys[order], rng, size=(480, 640), digit_height=(40, 50), lines=4, marks=1)
    clip = tmp_path / "clip.mp4"
    make_clip(clip, page, frames=24)
    env = {**os.environ, "DISPLAY": xdisplay}
    env.pop("WAYLAND_DISPLAY", None)
    save_dir = tmp_path / "saved"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenet.digits.app.cli", "--video", str(clip), "--loop", "--model",
         str(reader_model), "--save-dir", str(save_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The window opens ...
        window = wait_for_window(proc, env)
        # Qt maps a small window first and sizes it to the picture at the first frame.
        deadline = time.monotonic() + 60
        while True:
            geometry = x(["xdotool", "getwindowgeometry", "--shell", window], env)
            geo = dict(line.split("=") for line in geometry.split())
            wx, wy, ww, wh = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            if (ww >= 640 and wh >= 480) or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert ww >= 640 and wh >= 480, f"window is {ww}x{wh}, not the 640x480 frame and its status bar"
        time.sleep(2.0)
        first = screenshot(env)[wy:wy + wh, wx:wx + ww]
        time.sleep(1.5)
        second = screenshot(env)[wy:wy + wh, wx:wx + ww]
        # ... frames advance (the view drifts, so two moments differ) ...
        assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.5
        # ... and the boxes, digits and numbers are drawn in the window.
        assert color_pixels(second, DIGIT) > 300, "no digit boxes on screen"
        assert color_pixels(second, NUMBER) > 300, "no number boxes on screen"
        # Keys go through the X server's input path (XTEST) to the focused window, as a person's.
        x(["xdotool", "mousemove", "--window", window, "20", "20"], env)
        x(["xdotool", "windowfocus", "--sync", window], env)
        x(["xdotool", "key", "s"], env)
        deadline = time.monotonic() + 20
        while not list(save_dir.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        saved = list(save_dir.glob("*.json"))
        assert saved, "s did not save the frame"
        doc = json.loads(saved[0].read_text())
        assert doc["items"][0]["numbers"], "the saved frame's JSON has no numbers"
        assert list(save_dir.glob("*-annotated.png")) and len(list(save_dir.glob("*.png"))) == 2
        # Space pauses: the picture stops changing.
        x(["xdotool", "key", "space"], env)
        deadline = time.monotonic() + 15  # the key is handled after the frame being read
        still = False
        previous = screenshot(env)[wy:wy + wh, wx:wx + ww]
        while not still and time.monotonic() < deadline:
            time.sleep(0.8)
            current = screenshot(env)[wy:wy + wh, wx:wx + ww]
            still, previous = np.array_equal(previous, current), current
        assert still, "the window kept changing after space (pause)"
        x(["xdotool", "key", "q"], env)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.returncode is None or not proc.stdout.closed:
            proc.communicate()  # reap it and close its pipes, however the test went
    assert proc.returncode == 0, err
    shown = int(out.strip().splitlines()[-1].split(": ")[1].split()[0])
    assert shown >= 5, out
