"""The page at / in a real headless browser (Debian's Chromium, driven by Playwright): digits
drawn with the mouse, a photographed page uploaded, a bad upload, the webcam (Chromium's fake
camera): what the page shows must be what the server read."""

from __future__ import annotations

import shutil

import pytest

from .conftest import start_server

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


@pytest.fixture(scope="module")
def browser_page():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; "
                    "tools/system_packages.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    served = start_server("lenet5-mnist")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.grant_permissions(["camera"], origin=f"http://{served.address}")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://{served.address}/")
        yield page, served
        browser.close()
    assert not errors, errors  # no script error on the page at any point
    assert served.stop() == 0


def reads(page) -> int:
    return int(page.evaluate("document.body.dataset.reads || '0'"))


def wait_for_read(page, after: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.reads || 0) > {after}", timeout=30000)


def shown_numbers(page) -> list[str]:
    return page.locator("#numbers li").all_inner_texts()


def overlay_pixels(page) -> int:
    """Pixels drawn on the overlay canvas (the boxes)."""
    return page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n;
    }""")


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points`` (in the drawing canvas's own 720x360 coordinates)."""
    box = page.locator("#ink").bounding_box()
    sx, sy = box["width"] / 720, box["height"] / 360
    page.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=10)
    page.mouse.up()


def test_drawn_digits_are_read(browser_page):
    page, _ = browser_page
    before = reads(page)
    stroke(page, [(200, 80), (200, 280)])                   # a 1
    stroke(page, [(300, 90), (400, 90), (330, 280)])        # a 7
    wait_for_read(page, before)
    assert shown_numbers(page) == ["17"]
    assert "1 number read" in page.locator("#status").inner_text()
    assert overlay_pixels(page) > 500
    page.click("#clear")
    assert shown_numbers(page) == [] and overlay_pixels(page) == 0


def test_uploaded_photo_is_read(browser_page, page, tmp_path):
    browser, served = browser_page
    sheet, png, _ = page
    path = tmp_path / "page.png"
    path.write_bytes(png)
    browser.click("#mode-photo")
    before = reads(browser)
    browser.set_input_files("#photo", str(path))
    wait_for_read(browser, before)
    shown = shown_numbers(browser)
    status, doc = served.json("POST", "/v1/read", png, {"Content-Type": "image/png"})
    assert status == 200
    assert shown == [n["text"] for n in doc["items"][0]["numbers"]]  # what the server read, all of it
    assert sum(n.text in shown for n in sheet.numbers) >= len(sheet.numbers) / 2, shown
    # The canvas holds the photo at its own size; the boxes are drawn over it.
    assert browser.evaluate("[document.getElementById('overlay').width, document.getElementById('overlay').height]") == [640, 480]
    assert overlay_pixels(browser) > 1000


def test_a_bad_upload_says_why(browser_page, tmp_path):
    page, _ = browser_page
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    page.click("#mode-photo")
    before = reads(page)
    page.set_input_files("#photo", str(fake))
    wait_for_read(page, before)
    status = page.locator("#status")
    assert "the upload is not a PNG or JPEG image" in status.inner_text()
    assert "error" in status.get_attribute("class")
    assert shown_numbers(page) == []


def test_webcam_frames_are_read(browser_page):
    page, _ = browser_page
    page.click("#mode-camera")
    before = reads(page)
    page.click("#camera-start")
    wait_for_read(page, before + 2)  # frame after frame: three answers at least
    assert "error" not in (page.locator("#status").get_attribute("class") or "")
    assert page.evaluate("document.getElementById('ink').width") > 0
    page.click("#camera-stop")
    assert page.locator("#camera-start").is_enabled()
