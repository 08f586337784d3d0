"""Full MNIST (--dataset mnist): the offline copy that make data assembles into data/, and the
files a user may have damaged: each refused with the file and what is wrong, before a run
directory exists."""

from __future__ import annotations

import shutil
import struct

import pytest

from lenet.data import DEFAULT_DATA_DIR, MNIST_SHA256, DataError, check_idx_file, load_dataset
from lenet.train import main as train_main

RAW = DEFAULT_DATA_DIR / "MNIST" / "raw"
HAVE_MNIST = all((RAW / name).is_file() for name in MNIST_SHA256)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"full MNIST is not in {RAW} (make data "
                                 "puts it there from the offline copy; online, torchvision downloads it)")


@needs_mnist
def test_full_mnist_is_the_original():
    data = load_dataset("mnist")
    assert tuple(data.train.images.shape) == (60000, 28, 28) and tuple(data.test.images.shape) == (10000, 28, 28)
    # The published counts per label, and the first labels (MNIST's README).
    assert data.train.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert data.test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(data.train.labels[0]) == 5 and int(data.test.labels[0]) == 7


def _damaged(tmp_path, how: str):
    """A data dir whose test images are damaged in one way (the other files are the originals
    where present, else well-formed stand-ins of the right size)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_SHA256:
        if HAVE_MNIST:
            shutil.copy(RAW / name, raw / name)
    target = raw / "t10k-images-idx3-ubyte"
    good = struct.pack(">IIII", 2051, 10000, 28, 28)
    if how == "truncated":
        target.write_bytes(good + bytes(28 * 28 * 10))
    elif how == "not idx":
        target.write_bytes(b"<html>404 Not Found</html>" + bytes(64))
    elif how == "wrong shape":
        target.write_bytes(struct.pack(">IIII", 2051, 10000, 32, 32) + bytes(32 * 32 * 10000))
    else:  # "altered": the right size and header, other pixels
        target.write_bytes(good + bytes(28 * 28 * 10000))
    return raw.parent.parent, target


CASES = [("truncated", "truncated (7,856 bytes, expected 7,840,016)"),
         ("not idx", "not an IDX file of images"),
         ("wrong shape", "holds shape (10000, 32, 32), expected (10000, 28, 28)"),
         ("altered", "corrupt (its SHA-256 differs from the original MNIST file's)")]


@pytest.mark.parametrize("how, needle", CASES)
def test_damaged_file_is_named(tmp_path, how, needle):
    _, target = _damaged(tmp_path, how)
    with pytest.raises(DataError) as err:
        check_idx_file(target, MNIST_SHA256[target.name])
    assert str(target) in str(err.value) and needle in str(err.value)
    assert "delete it to download it again" in str(err.value)


@pytest.mark.parametrize("how, needle", CASES[:1] + CASES[3:])
def test_lenet_train_refuses_damaged_mnist_and_writes_nothing(tmp_path, how, needle):
    data_dir, target = _damaged(tmp_path, how)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        train_main(["--dataset", "mnist", "--data-dir", str(data_dir), "--out", str(run), "--quiet"])
    message = str(exc.value.code)
    assert message.startswith("lenet-train: ") and str(target) in message and needle in message
    assert not run.exists()
