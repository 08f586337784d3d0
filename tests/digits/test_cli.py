"""lenet-digits end to end: images, bad inputs, a video headless, a camera that does not exist."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from lenet.digits.app.cli import main
from lenet.digits.kit.synth import make_page

from .pages import make_clip


@pytest.fixture(scope="module")
def small_page(heldout_digits):
    x, y = heldout_digits
    rng = np.random.default_rng(7)
    order = rng.permutation(len(x))  # the split is stored class by class
    page, _ = make_page(x[order], y[order], rng, size=(480, 640), digit_height=(40, 50), lines=4, marks=1)
    return page


def check_item_format(item: dict) -> None:
    """The `lenet-digits --json` item format (README, lenet-digits): a refused digit-sized shape
    inside a number is "?" in its text, with "digit": null and its best "guess"."""
    assert set(item) >= {"source", "numbers", "rejected"}
    for n in item["numbers"]:
        assert isinstance(n["text"], str) and all(c.isdigit() or c == "?" for c in n["text"])
        assert n["text"][0] != "?" and n["text"][-1] != "?"
        assert len(n["box"]) == 4 and len(n["digits"]) == len(n["text"])
        for c, d in zip(n["text"], n["digits"]):
            assert 0 <= d["confidence"] <= 1 and len(d["box"]) == 4
            if c == "?":
                assert d["digit"] is None and 0 <= d["guess"] <= 9
            else:
                assert d["digit"] == int(c)
    for r in item["rejected"]:
        assert len(r["box"]) == 4 and "confidence" in r


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--min-confidence" in out and "--camera" in out and "--headless" in out


def test_images_with_bad_ones_among_them(tmp_path, capsys, small_page, reader_model):
    good = tmp_path / "scan1.png"
    cv2.imwrite(str(good), small_page.image)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(500))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    out_json, out_dir = tmp_path / "out.json", tmp_path / "annotated"
    rc = main([str(good), str(corrupt), str(empty), str(missing), "--model", str(reader_model),
               "--json", str(out_json), "--out", str(out_dir), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1  # some inputs unreadable, the rest processed
    assert f"{corrupt}: cannot decode" in err
    assert f"{empty}: empty file" in err
    assert f"{missing}: no such file" in err
    doc = json.loads(out_json.read_text())
    assert doc["model"]["arch"] == "lenet5"
    assert [i["source"] for i in doc["items"]] == [str(good)]
    assert {e["source"] for e in doc["errors"]} == {str(corrupt), str(empty), str(missing)}
    item = doc["items"][0]
    check_item_format(item)
    truth = [n.text for n in small_page.numbers]
    read = [n["text"] for n in item["numbers"]]
    # Accuracy is measured in test_pages; here: the CLI reads the page, not just anything.
    assert sum(t in read for t in truth) >= len(truth) / 2, (truth, read)
    annotated = cv2.imread(str(out_dir / "scan1.annotated.png"))
    assert annotated is not None and annotated.shape[1] == small_page.image.shape[1]


def test_nothing_readable_exits_2(tmp_path, capsys, reader_model):
    rc = main([str(tmp_path / "nope.png"), "--model", str(reader_model)])
    assert rc == 2
    assert "nope.png: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["missing-dir", "garbage.pt"])
def test_bad_model_named(tmp_path, capsys, model):
    path = tmp_path / model
    if model.endswith(".pt"):
        path.write_bytes(b"not a checkpoint")
    rc = main([str(tmp_path / "x.png"), "--model", str(path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(path) in err and "\n" == err[-1] and err.count("\n") == 1


def test_camera_that_does_not_exist(capsys, reader_model):
    rc = main(["--camera", "97", "--model", str(reader_model), "--headless", "--max-frames", "3"])
    assert rc == 2
    assert "camera 97: cannot be opened" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--min-confidence", "--min-confidence-in-number", "--min-confidence-between"])
def test_confidence_out_of_range(capsys, reader_model, option):
    rc = main(["page.png", "--model", str(reader_model), option, "1.5"])
    assert rc == 2
    assert f"{option} must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_reader_options_come_from_the_manifest(tmp_path):
    from lenet.digits.reader import ReaderOptions

    (tmp_path / "manifest.json").write_text(
        '{"reader": {"min_confidence": 0.4, "min_confidence_in_number": 0.12, "min_confidence_between": 0.02}}')
    assert ReaderOptions.for_model(tmp_path).min_confidence_in_number == 0.12
    options = ReaderOptions.for_model(tmp_path, min_confidence=0.3, min_confidence_in_number=None)
    assert (options.min_confidence, options.min_confidence_in_number, options.min_confidence_between) == (0.3, 0.12, 0.02)
    assert ReaderOptions.for_model(tmp_path / "elsewhere") == ReaderOptions()


def test_flags_set_the_reader_options_of_the_same_name(reader_model):
    """A flag not given leaves its option to the manifest or the dataclass (no second default in
    the CLI); a flag given sets the attribute of its name."""
    from dataclasses import replace

    from lenet.digits.app.cli import build_parser, reader_options
    from lenet.digits.reader import ReaderOptions

    def options(*flags):
        return reader_options(build_parser().parse_args(["page.png", "--model", str(reader_model), *flags]))

    manifest = ReaderOptions.for_model(reader_model)
    assert options() == manifest
    given = options("--gap", "0.8", "--no-jitter", "--deskew", "--ink", "light", "--min-confidence-between", "0.1")
    assert given == replace(manifest, gap=0.8, jitter=False, deskew=True, min_confidence_between=0.1,
                            segment=replace(manifest.segment, ink="light"))
    video = reader_options(build_parser().parse_args(["--camera", "0", "--model", str(reader_model)]))
    assert video == replace(manifest, skip_border=True)


def test_live_without_a_display(monkeypatch, capsys, reader_model, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = main(["--video", str(tmp_path / "clip.mp4"), "--model", str(reader_model)])
    assert rc == 2
    assert "--headless" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"this is not a video" * 50])
def test_bad_video(tmp_path, capsys, reader_model, content):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(content)
    rc = main(["--video", str(clip), "--model", str(reader_model), "--headless", "--quiet"])
    assert rc == 2
    assert str(clip) in capsys.readouterr().err


def test_video_headless(tmp_path, capsys, small_page, reader_model):
    clip, out, out_json = tmp_path / "clip.mp4", tmp_path / "annotated.mp4", tmp_path / "frames.json"
    make_clip(clip, small_page, frames=12)
    rc = main(["--video", str(clip), "--model", str(reader_model), "--headless", "--out", str(out),
               "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "12 frames read" in captured.out
    doc = json.loads(out_json.read_text())
    assert [i["source"] for i in doc["items"]] == [f"frame {k}" for k in range(12)]
    for item in doc["items"]:
        check_item_format(item)
    truth = {n.text for n in small_page.numbers}
    hits = [len(truth & {n["text"] for n in item["numbers"]}) for item in doc["items"]]
    # Accuracy is measured in test_pages; here: every frame is read, not just anything (a third
    # of these numbers has 5 MNIST digits, all of which must be right).
    assert min(hits) >= 2 and np.mean(hits) >= len(truth) / 3, (truth, hits)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = cap.read()
    assert ok and frame.shape[1] == 640 and frame.shape[0] > 480  # the status bar is on top


class DyingCamera:
    """A camera that delivers ``frames`` frames and then nothing (unplugged)."""

    def __init__(self, image: np.ndarray, frames: int) -> None:
        self.image, self.left, self.reads_after_death = image, frames, 0

    def read(self):
        if self.left > 0:
            self.left -= 1
            return True, self.image.copy()
        self.reads_after_death += 1
        return False, None

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_camera_that_stops_delivering(monkeypatch, tmp_path, capsys, small_page, reader_model):
    import lenet.digits.app.live as live
    from lenet.digits.classify import load_classifier
    from lenet.digits.app.cli import build_parser, run_stream_headless
    from lenet.digits.reader import DigitReader

    monkeypatch.setattr(live, "CAMERA_GRACE_S", 0.3)
    out_json = tmp_path / "cam.json"
    args = build_parser().parse_args(["--camera", "0", "--model", "m", "--headless", "--quiet",
                                      "--json", str(out_json)])
    camera = DyingCamera(small_page.image, 3)
    reader = DigitReader(load_classifier(reader_model))
    rc = run_stream_headless(args, reader, {}, camera, "0", True)
    assert rc == 1
    assert "camera 0: stopped delivering frames (retried" in capsys.readouterr().err
    assert camera.reads_after_death > 1  # it was retried, not given up at the first failure
    assert len(json.loads(out_json.read_text())["items"]) == 3


def test_bundled_model_reads_a_page_without_torch(tmp_path, small_page, reader_model):
    """`lenet-digits page.png` with no --model: the bundled model, served by lenet_ext, and
    torch never imported (a fresh process, so nothing else in the test run imported it first)."""
    import subprocess
    import sys

    page, out_json = tmp_path / "page.png", tmp_path / "out.json"
    cv2.imwrite(str(page), small_page.image)
    code = ("import sys; from lenet.digits.app.cli import main; rc = main(sys.argv[1:]); "
            "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, str(page), "--quiet", "--json", str(out_json)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "torch imported: False"
    doc = json.loads(out_json.read_text())
    assert doc["model"]["path"] == str(reader_model) and doc["model"]["backend"] == "lenet_ext"
    truth = [n.text for n in small_page.numbers]
    read = [n["text"] for n in doc["items"][0]["numbers"]]
    assert sum(t in read for t in truth) >= len(truth) / 2, (truth, read)  # accuracy: test_pages
