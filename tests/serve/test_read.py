"""POST /v1/read: an uploaded page answered with what `lenet-digits --json` writes for it, and
uploads that must be refused (4xx in the protocol's format, never a 500 or a hang)."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import pytest

from lenet.digits.app.cli import main as digits_main


def test_same_document_as_lenet_digits_json(server, page, tmp_path):
    sheet, png, _ = page
    (tmp_path / "page.png").write_bytes(png)
    assert digits_main([str(tmp_path / "page.png"), "--json", str(tmp_path / "out.json"), "--quiet"]) == 0
    expected = json.loads((tmp_path / "out.json").read_text())

    status, doc = server.json("POST", "/v1/read", png, {"Content-Type": "image/png"})
    assert status == 200, doc
    assert doc["model"] == expected["model"]
    item, want = doc["items"][0], expected["items"][0]
    assert item["source"] == "upload"
    assert item["numbers"] == want["numbers"] and item["rejected"] == want["rejected"]
    read = [n["text"] for n in item["numbers"]]
    assert sum(n.text in read for n in sheet.numbers) >= len(sheet.numbers) / 2, read


def test_multipart_form_and_jpeg(server, page):
    _, _, jpeg = page
    boundary = "lenet-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan 1.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    status, doc = server.json("POST", "/v1/read", body,
                              {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, doc
    assert doc["items"][0]["source"] == "scan 1.jpg" and doc["items"][0]["numbers"]


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header says width x height: what a decompression bomb looks like
    before it is decoded."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (8, 8), 255).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


@pytest.mark.parametrize("body, content_type, status, message", [
    (png_claiming(20000, 20000), "image/png", 413, "too large to read (over 179 megapixels, the limit is 50)"),
    (png_claiming(9000, 9000), "image/png", 413, "too large to read (9000x9000 pixels, the limit is 50 megapixels)"),
    (b"just some text, not a picture", "text/plain", 415, "not a PNG or JPEG image"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png", 400, "cannot decode"),
    (b"", "image/png", 400, "the upload is empty"),
    (b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nplain\r\n--x--\r\n",
     "multipart/form-data; boundary=x", 400, "the form holds no file"),
])
def test_bad_uploads(server, body, content_type, status, message):
    start = time.perf_counter()
    got, doc = server.json("POST", "/v1/read", body, {"Content-Type": content_type})
    assert (got, list(doc)) == (status, ["error"]), doc
    assert message in doc["error"]
    assert time.perf_counter() - start < 5  # refused from the header, not after decoding


def test_truncated_jpeg_is_refused(server, page):
    _, _, jpeg = page
    status, doc = server.json("POST", "/v1/read", jpeg[: len(jpeg) * 2 // 3], {"Content-Type": "image/jpeg"})
    assert status == 400, doc
    assert "refused rather than read in part" in doc["error"] or "cannot decode" in doc["error"], doc
