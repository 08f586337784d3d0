"""``POST /v1/read``: an uploaded photo or scan read by the digit reader, answered with the same
document as ``lenet-digits --json`` (lenet.digits.app.cli builds both).

The upload is the body itself (``Content-Type: image/png`` or ``image/jpeg``; what a browser's
``fetch(url, {body: blob})`` and ``curl --data-binary @scan.jpg`` send) or the first file of a
``multipart/form-data`` form (``curl -F image=@scan.jpg``), parsed in memory: no upload is written
to disk. Before anything is decoded the bytes must be a PNG or a JPEG and the header's width x
height within the reader's pixel limit, so a small file that claims 20,000 x 20,000 pixels costs
nothing. Reading runs in a few worker threads (OpenCV and the engine release the GIL); more
requests than that wait in a short queue, and past it are answered 503."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import ServeError, bad_input, busy

SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def image_from_upload(body: bytes, content_type: str) -> tuple[bytes, str]:
    """(the image's bytes, its name for the document's "source") from the request body."""
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return _first_file(body, content_type)
    return body, "upload"


def _first_file(body: bytes, content_type: str) -> tuple[bytes, str]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise bad_input("the multipart/form-data body could not be parsed (boundary missing or wrong)")
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            return part.get_payload(decode=True) or b"", Path(part.get_filename() or "upload").name
    raise bad_input("the form holds no file; send the image as a file field (curl -F image=@scan.jpg)")


def check_image(data: bytes) -> None:
    """A PNG or JPEG within the reader's size limit, judged from its first bytes and header."""
    from lenet.digits.app.cli import check_image_size

    if not data:
        raise bad_input("the upload is empty (0 bytes)")
    if not any(data.startswith(sig) for sig in SIGNATURES):
        raise ServeError(415, "the upload is not a PNG or JPEG image")
    try:
        check_image_size(io.BytesIO(data))
    except ValueError as exc:
        raise ServeError(413, f"image {exc}") from None


class PageReader:
    """The digit reader behind /v1/read: its model loaded once, reads in ``workers`` threads."""

    def __init__(self, model: str | None = None, workers: int = 2, max_waiting: int = 8) -> None:
        from lenet.digits.classify import DEFAULT_MODEL, load_classifier
        from lenet.digits.app.cli import describe_model
        from lenet.digits.options import ReaderOptions
        from lenet.digits.reader import DigitReader

        path = model or str(DEFAULT_MODEL)
        classifier = load_classifier(path, "engine")
        self.reader = DigitReader(classifier, ReaderOptions.for_model(path))
        self.model_info = describe_model(path, classifier)
        self.max_active = workers + max_waiting
        self.active = 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="reader")

    async def read(self, data: bytes, source: str) -> dict:
        from lenet.digits.app.cli import results_document

        check_image(data)
        if self.active >= self.max_active:
            raise busy(f"{self.active} images are being read or waiting; retry shortly")
        self.active += 1
        try:
            item = await asyncio.get_running_loop().run_in_executor(self._pool, self._read, data, source)
        finally:
            self.active -= 1
        return results_document(self.model_info, [item], [])

    def _read(self, data: bytes, source: str) -> dict:
        from lenet.digits.app.cli import decode_image

        try:
            image = decode_image(np.frombuffer(data, np.uint8))
        except ValueError as exc:
            raise bad_input(f"{source}: {exc}") from None
        return self.reader.read(image, source).to_json()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
