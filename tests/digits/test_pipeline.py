"""The reader's parts: lighting, MNIST normalization, rejection maths, grouping, one batched call."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lenet.digits.classify import confidences
from lenet.digits.decide import group_numbers
from lenet.digits.group import Digit, lines_of
from lenet.digits.normalize import to_mnist
from lenet.digits.options import LineOptions
from lenet.digits.reader import DigitReader, ReaderOptions
from lenet.digits.segment import SegmentOptions, find_candidates, ink_map, stroke_width, threshold
from lenet.spec import RUBBISH_ENERGY, spec_for


class CountingClassifier:
    """A stand-in model that records its calls and calls everything a confident 7."""

    backend = "test"

    def __init__(self, arch: str = "lenet-relu") -> None:
        self.spec = spec_for(arch)
        self.calls: list[tuple[int, ...]] = []

    def scores(self, crops: np.ndarray) -> np.ndarray:
        self.calls.append(crops.shape)
        s = np.zeros((len(crops), 10), np.float32)
        s[:, 7] = 20.0
        return s


def paper(h: int = 400, w: int = 600, seed: int = 0) -> np.ndarray:
    """Light paper with a strong light gradient and a shadow, and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.45 + 0.5 * xx / w
    light[:, : w // 3] *= 0.7
    img = 230 * light + rng.normal(0, 4, (h, w))
    return img.clip(0, 255).astype(np.uint8)


def draw_digit(img: np.ndarray, digit: np.ndarray, x: int, y: int, height: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(digit > 30)
    d = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    f = height / d.shape[0]
    d = cv2.resize(d, (max(2, round(d.shape[1] * f)), height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    region = img[y:y + height, x:x + d.shape[1]].astype(np.float32)
    img[y:y + height, x:x + d.shape[1]] = (region * (1 - 0.8 * d)).astype(np.uint8)
    return (x, y, d.shape[1], height)


def test_ink_map_removes_lighting_and_shadow():
    img = paper()
    dark = ink_map(img)
    # Blank paper under a 2x light gradient and a sharp shadow edge: nothing looks like ink
    # beyond single noisy pixels (averaged over 5x5, everything is well below min_contrast).
    assert np.percentile(cv2.blur(dark, (5, 5)), 99.9) < 0.15
    count, _, stats, _ = cv2.connectedComponentsWithStats(threshold(dark, SegmentOptions().min_contrast))
    assert count == 1 or stats[1:, cv2.CC_STAT_AREA].max() < 10


@pytest.mark.parametrize("width", [6, 10, 14])
def test_stroke_width_is_measured_under_a_shadow(width):
    """A digit large in a small frame with a shadow over half of it: the stroke width (which
    sizes the lighting estimate) is the strokes', not 0 from a threshold that took the shadow for
    ink. With 0 the lighting estimate was narrower than the strokes and kept their thick parts
    as paper: the digit fell apart in pieces."""
    h = w = 140
    ink = np.zeros((h, w), np.float32)
    cv2.ellipse(ink, (70, 84), (15, 14), 0, 0, 360, 1.0, width, cv2.LINE_AA)    # a 6: its loop
    cv2.ellipse(ink, (85, 76), (30, 34), 0, 180, 265, 1.0, width, cv2.LINE_AA)  # and its stem
    shadow = 0.45 / (1 + np.exp((np.arange(w) - 0.55 * w) / 3))[None, :]     # soft edge, 55 % of it
    lit = 225 * (1 - 0.6 * ink)
    measured = stroke_width(lit * (1 - shadow))
    assert measured == pytest.approx(stroke_width(lit), rel=0.01)
    assert 0.75 * width < measured < 1.1 * width


def test_empty_and_noisy_frames_yield_no_candidates():
    for img in (paper(), np.full((240, 320), 255, np.uint8), np.zeros((240, 320, 3), np.uint8),
                np.random.default_rng(1).integers(0, 256, (240, 320), dtype=np.uint8)):
        reader = DigitReader(CountingClassifier())
        result = reader.read(img)
        assert result.numbers == []


def test_a_blot_is_refused_at_any_tilt_and_bold_strokes_are_kept():
    # (Blots narrower than the ink map's closing, as on a page: a twelfth of the frame.)
    img = np.full((480, 760), 235, np.uint8)
    for k, angle in enumerate((0, 35, 70, 110)):  # smudges: filled ellipses, blurred edge
        cv2.ellipse(img, (60 + 110 * k, 240), (14, 22), angle, 0, 360, 60, -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    cv2.line(img, (500, 270), (520, 210), 40, 9, cv2.LINE_AA)                # a bold slanted 1
    cv2.ellipse(img, (600, 240), (16, 30), 0, 0, 360, 40, 7, cv2.LINE_AA)    # a bold 0
    cv2.ellipse(img, (690, 240), (16, 24), 15, 0, 360, 40, -1, cv2.LINE_AA)  # a thick 0, its loop
    cv2.ellipse(img, (690, 240), (3, 6), 15, 0, 360, 235, -1, cv2.LINE_AA)   # nearly closed
    candidates, _ = find_candidates(img)
    reasons = [c.reason for c in sorted(candidates, key=lambda c: c.box[0])]
    assert reasons == ["solid"] * 4 + [""] * 3


def test_the_parts_of_a_percent_sign_are_one_shape(heldout_fonts):
    # Its circles are too tall to be specks and too far apart to be one digit's broken
    # stroke; read alone they are 0s and the bar a 1 ("40%" read "40010").
    from lenet.digits.kit import fonts

    for name in fonts.HELD_OUT:
        for font in fonts.font_files(name):
            ink = fonts.render_text("40 %", font, 60)
            img = np.full((ink.shape[0] + 40, ink.shape[1] + 40), 235, np.uint8)
            img[20:-20, 20:-20] -= (180 * ink).astype(np.uint8)
            candidates, _ = find_candidates(img)
            last = max(candidates, key=lambda c: c.box[0])
            assert len(candidates) == 3 and last.pieces >= 2 and not last.reason, font
    # Slanted digits of one size whose boxes overlap are not joined: three 1s, not touching.
    img = np.full((200, 300), 235, np.uint8)
    for x in (60, 76, 92):
        cv2.line(img, (x + 22, 80), (x, 120), 40, 4, cv2.LINE_AA)
    assert [c.pieces for c in find_candidates(img)[0]] == [1, 1, 1]


def test_pieces_joined_as_one_sign_are_not_split_as_touching_digits():
    class SureOfHalves(CountingClassifier):
        """A confident 7 for a crop taller than wide (a half of a wide shape), unsure of one
        wider than tall (the whole)."""
        def scores(self, crops):
            s = super().scores(crops)
            rows = np.array([np.ptp(np.nonzero(c.max(axis=1) > 60)[0]) for c in crops])
            s[rows < 15, 7] = 0.5
            return s
    img = np.full((120, 360), 235, np.uint8)
    cv2.line(img, (20, 35), (120, 85), 40, 5)   # two strokes that cross: one blob, as touching digits
    cv2.line(img, (120, 35), (20, 85), 40, 5)
    cv2.line(img, (220, 35), (320, 35), 40, 5)  # a bar, and a shape under it within its columns
    cv2.ellipse(img, (270, 66), (45, 20), 0, 0, 360, 40, 5)
    pieces = sorted((c.box[0], c.pieces) for c in find_candidates(img)[0])
    assert [n for _, n in pieces] == [1, 2]
    result = DigitReader(SureOfHalves(), ReaderOptions(jitter=False, join=False)).read(img)
    assert [len(n.digits) for n in result.numbers] == [2, 1]


def test_mnist_digit_survives_the_round_trip(heldout_digits):
    """A held-out digit drawn large on lit paper comes back as (nearly) the same 28x28 crop."""
    x, _ = heldout_digits
    corr = []
    for digit in x[:40]:
        img = paper(300, 300)
        draw_digit(img, digit, 100, 80, 120)
        cands, _ = find_candidates(img)
        kept = [c for c in cands if not c.reason]
        assert len(kept) == 1, [c.reason for c in cands]
        crop = to_mnist(kept[0].ink).astype(np.float32)
        corr.append(np.corrcoef(crop.ravel(), digit.astype(np.float32).ravel())[0, 1])
    assert np.median(corr) > 0.85, corr


def test_to_mnist_geometry():
    ink = np.zeros((90, 30), np.float32)
    ink[5:85, 10:20] = 1.0  # a tall bar
    crop = to_mnist(ink)
    ys, xs = np.nonzero(crop > 0)
    assert ys.max() - ys.min() + 1 == 20  # the long side is 20 px
    m = cv2.moments(crop.astype(np.float32))
    assert abs(m["m10"] / m["m00"] - 14) <= 1 and abs(m["m01"] / m["m00"] - 14) <= 1
    assert crop.max() == 255  # strokes saturated like MNIST's


def test_rbf_confidence_has_a_rubbish_class():
    spec = spec_for("lenet5")
    j = RUBBISH_ENERGY
    near = -np.array([[1.0, 30, 30, 30, 30, 30, 30, 30, 30, 30]])        # close to prototype 0
    far = -np.array([[j + 8, 40, 40, 40, 40, 40, 40, 40, 40, 40]])     # nearest is still far
    torn = -np.array([[2.0, 2.0, 30, 30, 30, 30, 30, 30, 30, 30]])     # between 0 and 1
    assert confidences(near, spec)[0, 0] > 0.99
    assert confidences(far, spec).max() < 0.01  # a plain softmax would say ~1.0
    assert 0.45 < confidences(torn, spec)[0, 0] < 0.55
    linear = confidences(np.array([[0.0, 5.0] + [0.0] * 8]), spec_for("lenet-relu"))
    assert abs(linear.sum() - 1) < 1e-9 and linear.argmax() == 1


def test_grouping_lines_numbers_and_order():
    def d(v, x, y, h=40):
        return Digit(v, 1.0, (x, y, 25, h))
    # Two lines, the second slightly rotated; numbers split by wide gaps; input order shuffled.
    digits = [d(3, 200, 10), d(1, 10, 12), d(2, 40, 10), d(9, 400, 120), d(8, 20, 100),
              d(7, 50, 104), d(6, 80, 108), d(4, 230, 11)]
    numbers, left_out = group_numbers(digits)
    assert [n.text for n in numbers] == ["12", "34", "876", "9"] and left_out == []
    assert numbers[0].box == (10, 10, 55, 42)


def test_numbers_far_apart_on_a_slanted_row_stay_in_their_row():
    # A page rotated so rows rise to the right (0.1 per pixel), two rows 2 digit heights apart,
    # each with a number far to the right of the rest (a refused mark or a dash between them):
    # too far to chain, and higher on the page than the start of its own row.
    def d(v, x, base):
        return Digit(v, 1.0, (x, round(base - 0.1 * x), 25, 40))
    digits = ([d(v, 10 + 30 * k, 200) for k, v in enumerate((1, 2, 3, 4, 5))] + [d(5, 450, 200), d(6, 480, 200)]
              + [d(v, 10 + 30 * k, 280) for k, v in enumerate((7, 8, 9))] + [d(0, 450, 280)])
    numbers, _ = group_numbers(digits)
    assert [n.text for n in numbers] == ["12345", "56", "789", "0"]
    # Level, and no long number to show a slant: rows still kept apart.
    flat = [Digit(v, 1.0, (x, y, 25, 40)) for v, x, y in ((1, 10, 100), (2, 400, 104), (3, 10, 180), (4, 400, 170))]
    assert [n.text for n in group_numbers(flat)[0]] == ["1", "2", "3", "4"]
    # A table of short numbers on a page tilted 4°, so no group shows the slant: each cell is
    # near in height to a cell of the row below, but rows do not chain into each other.
    table = [Digit(k, 1.0, (x + 28 * k, round(100 + 80 * r + 0.07 * x), 25, 40))
             for r in range(3) for x in range(10, 1110, 220) for k in (1, 2)]
    assert [n.text for n in group_numbers(table)[0]] == ["12"] * 15
    assert [len(line) for line in lines_of(table)] == [10, 10, 10]
    # Big digits and, far to their right at the same height, small ones: two rows, both read.
    sizes = [Digit(v, 1.0, (x, 60, 50, 80)) for v, x in ((1, 10), (2, 70), (3, 130))]
    sizes += [Digit(v, 1.0, (x, 80, 25, 40)) for v, x in ((9, 700), (8, 730))]
    assert [n.text for n in group_numbers(sizes)[0]] == ["123", "98"]


def test_a_refused_digit_keeps_its_number_together():
    def d(v, x, h=40, ok=True, y=10):
        return Digit(v, 0.9 if ok else 0.02, (x, y, 25, h), accepted=ok)
    # 1 2 ? 4: the unsure digit stays in the number, shown as "?", with its guess in the JSON.
    numbers, left_out = group_numbers([d(1, 10), d(2, 40), d(7, 70, ok=False), d(4, 100)])
    assert [n.text for n in numbers] == ["12?4"] and left_out == []
    assert numbers[0].to_json()["digits"][2] == {"digit": None, "guess": 7, "confidence": 0.02,
                                                 "box": [70, 10, 25, 40]}
    # A refused shape at a number's end is not part of it; nor is a small one (a letter's
    # x-height) in the middle, which ends the number instead of joining what is on either side.
    numbers, left_out = group_numbers([d(1, 10), d(2, 40), d(7, 70, ok=False)])
    assert [n.text for n in numbers] == ["12"] and [x.box[0] for x in left_out] == [70]
    numbers, left_out = group_numbers([d(1, 10), d(2, 40), d(7, 70, h=15, ok=False, y=35), d(4, 100)])
    assert [n.text for n in numbers] == ["12", "4"] and [x.box[0] for x in left_out] == [70]
    # A line of refused shapes only is no number at all.
    numbers, left_out = group_numbers([d(1, 10, ok=False), d(2, 40, ok=False)])
    assert numbers == [] and len(left_out) == 2


def test_a_shape_among_read_digits_is_read_at_the_in_number_threshold():
    def d(v, x, conf, h=40, y=10):
        return Digit(v, conf, (x, y, 25, h), accepted=conf >= 0.36)
    in_number = ReaderOptions(min_confidence_in_number=0.15)
    between = ReaderOptions(min_confidence_in_number=0.15, min_confidence_between=0.03)
    line = [d(1, 10, 0.9), d(2, 40, 0.2), d(7, 70, 0.9), d(4, 100, 0.05), d(5, 130, 0.2, h=22, y=28)]
    # Without an in-number threshold: "?" between read digits, trimmed at the end.
    numbers, left_out = group_numbers(line)
    assert [n.text for n in numbers] == ["1?7"] and len(left_out) == 2
    # With one: the unsure 2 is read; the 4 is under it and the small 5 (a letter's x-height)
    # is not digit-sized, so both stay out of the number.
    numbers, left_out = group_numbers(line, in_number)
    assert [n.text for n in numbers] == ["127"] and sorted(x.box[0] for x in left_out) == [100, 130]
    assert line[1].accepted is False  # the caller's shapes are not changed
    # Between two read digits a lower threshold is enough; after the last one it is not (a unit).
    line = [d(1, 10, 0.9), d(2, 40, 0.05), d(7, 70, 0.9), d(4, 100, 0.05), d(5, 130, 0.01, y=12)]
    numbers, left_out = group_numbers(line, between)
    assert [n.text for n in numbers] == ["127"] and sorted(x.box[0] for x in left_out) == [100, 130]
    line[4] = d(5, 130, 0.9)
    numbers, left_out = group_numbers(line, between)
    assert [n.text for n in numbers] == ["12745"] and left_out == []
    numbers, _ = group_numbers(line, in_number)
    assert [n.text for n in numbers] == ["1?7?5"]
    # A shape alone (no read digit in its run) is never rescued.
    numbers, left_out = group_numbers([d(1, 10, 0.9), d(2, 200, 0.2)], in_number)
    assert [n.text for n in numbers] == ["1"] and [x.box[0] for x in left_out] == [200]


def test_a_small_read_shape_is_not_a_digit_of_the_line():
    # "40%": the circles of the % read as confident 0s, but they are half the digits' height.
    def d(v, x, h=40, y=10, w=25):
        return Digit(v, 0.99, (x, y, w, h))
    line = [d(4, 10), d(0, 40), d(0, 70, h=20), d(1, 80, h=38, w=20), d(0, 92, h=20, y=30)]
    numbers, left_out = group_numbers(line)
    assert [n.text for n in numbers] == ["40", "1"]
    assert sorted(x.box[0] for x in left_out) == [70, 92]
    # The height band is the options' (LineOptions.number_height): widened, the circles join.
    wide = ReaderOptions(lines=LineOptions(number_height=(0.4, 1.6)))
    assert [n.text for n in group_numbers(line, wide)[0]] == ["40010"]


def test_video_mode_does_not_read_digits_cut_by_the_frame(heldout_digits):
    x, _ = heldout_digits
    img = paper(300, 700)
    draw_digit(img, x[0], 200, 100, 70)
    draw_digit(img, x[1], 560, 100, 70)
    img = np.ascontiguousarray(img[:, :580])  # the frame's edge cuts the second digit
    whole = DigitReader(CountingClassifier()).read(img)
    video = DigitReader(CountingClassifier(), ReaderOptions(skip_border=True)).read(img)
    assert len(whole.digits) == 2
    assert [d.box[0] for d in video.digits] == [200]
    # What video mode adds is the cut digit, refused for the border (a speck of a held-out digit
    # is refused as "small" either way).
    extra = [r.reason for r in video.rejected]
    for r in whole.rejected:
        extra.remove(r.reason)
    assert extra == ["border"]


def test_one_batched_call_per_frame(heldout_digits):
    x, _ = heldout_digits
    img = paper(300, 900)
    for i in range(6):
        draw_digit(img, x[i], 40 + 130 * i, 100, 70)
    clf = CountingClassifier()
    result = DigitReader(clf).read(img)
    assert clf.calls == [(6 * 9, 28, 28)]  # six candidates x nine re-registrations, one call
    assert [n.text for n in result.numbers] == ["7"] * 6  # six numbers: the gaps are wide


def test_reader_refuses_a_non_digit_model():
    class Fashion(CountingClassifier):
        def __init__(self):
            super().__init__()
            self.spec = spec_for("lenet-relu", ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"))

    with pytest.raises(ValueError, match="not the digits"):
        DigitReader(Fashion())


def test_rubbish_glyphs_use_other_fonts_than_the_page_marks():
    from lenet.glyphs import MARK_FONTS, RUBBISH_FONTS, rubbish_glyphs

    assert not {f & 0xF for f in RUBBISH_FONTS} & set(MARK_FONTS)  # 0xF: without FONT_ITALIC
    glyphs = rubbish_glyphs(20, np.random.default_rng(0))
    assert glyphs.shape == (20, 28, 28) and glyphs.dtype == np.uint8
    assert (glyphs.reshape(20, -1).max(axis=1) == 255).all()


def test_broken_digit_is_joined_and_neighbours_are_not():
    img = np.full((200, 400), 235, np.uint8)
    # A 5 whose top bar came loose (as thin pens and hard thresholds do) ...
    cv2.line(img, (60, 40), (100, 40), 30, 6)
    body = np.array([(58, 50), (56, 95), (75, 92), (92, 102), (95, 120), (85, 135), (65, 138), (52, 130)])
    cv2.polylines(img, [body.astype(np.int32)], False, 30, 6)
    # ... and a 1 and a 7 written close together, but apart.
    cv2.line(img, (200, 40), (200, 140), 30, 6)
    cv2.line(img, (215, 40), (260, 40), 30, 6)
    cv2.line(img, (260, 40), (230, 140), 30, 6)
    cands = [c for c in find_candidates(img)[0] if not c.reason]
    boxes = sorted(c.box for c in cands)
    assert len(boxes) == 3, boxes
    assert boxes[0][1] <= 40 and boxes[0][1] + boxes[0][3] >= 130  # bar and body: one candidate


def test_deskew_straightens_a_slanted_stroke():
    from lenet.digits.normalize import deskew

    crop = np.zeros((28, 28), np.uint8)
    cv2.line(crop, (10, 4), (18, 23), 255, 3)  # leaning right
    straight = deskew(crop)
    xs = [np.nonzero(straight[y])[0].mean() for y in (6, 14, 21)]
    assert max(xs) - min(xs) < 1.5, xs
