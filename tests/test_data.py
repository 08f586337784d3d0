import pytest
import torch

from lenet.data import Batches, DataError, load_dataset, mnist_sample_arrays, preprocess
from lenet.spec import spec_for


def test_mnist_sample_split_is_fixed_and_balanced():
    a = mnist_sample_arrays()
    assert a["train_x"].shape == (4000, 28, 28) and a["test_x"].shape == (1000, 28, 28)
    assert a["train_x"].dtype == torch.uint8
    assert a["train_y"].bincount().tolist() == [400] * 10
    assert a["test_y"].bincount().tolist() == [100] * 10
    b = mnist_sample_arrays()
    assert torch.equal(a["test_x"], b["test_x"])
    # train and test share no image
    train = {bytes(x.numpy()) for x in a["train_x"]}
    assert not any(bytes(x.numpy()) in train for x in a["test_x"])


def test_preprocess_applies_the_contract():
    img = torch.zeros(2, 28, 28, dtype=torch.uint8)
    img[:, 10, 10] = 255
    x = preprocess(img, spec_for("lenet5"))
    assert x.shape == (2, 1, 32, 32)
    assert float(x[0, 0, 0, 0]) == pytest.approx(-0.1)          # padded background
    assert float(x[0, 0, 12, 12]) == pytest.approx(1.175)       # ink, shifted by the pad
    d2l = preprocess(img, spec_for("lenet-d2l"))
    assert d2l.shape == (2, 1, 28, 28) and float(d2l.max()) == 1.0 and float(d2l.min()) == 0.0


def test_batches_cover_the_split_and_repeat_per_epoch():
    a = mnist_sample_arrays()
    from lenet.data import Split
    split = Split(a["test_x"], a["test_y"])
    b = Batches(split, spec_for("lenet5"), 64, shuffle=True, seed=3)
    b.set_epoch(2)
    first = torch.cat([y for _, y in b])
    b.set_epoch(2)
    again = torch.cat([y for _, y in b])
    b.set_epoch(3)
    other = torch.cat([y for _, y in b])
    assert len(first) == 1000 and torch.equal(first, again) and not torch.equal(first, other)
    assert first.bincount().tolist() == [100] * 10


def test_distortions_are_small_and_deterministic():
    a = mnist_sample_arrays()
    from lenet.data import Split
    split = Split(a["test_x"][:128], a["test_y"][:128])
    b = Batches(split, spec_for("lenet5"), 128, augment=True, seed=1)
    x1 = next(iter(b))[0]
    x2 = next(iter(b))[0]
    plain = preprocess(split.images, spec_for("lenet5"))
    torch.testing.assert_close(x1, x2)
    assert not torch.equal(x1, plain)
    # ink mass is roughly preserved (a distortion, not a different image)
    ratio = (x1 + 0.1).sum((1, 2, 3)) / (plain + 0.1).sum((1, 2, 3))
    assert float(ratio.min()) > 0.7 and float(ratio.max()) < 1.3


def test_offline_mnist_names_where_it_looked(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
    monkeypatch.setattr(tvd.MNIST, "download", offline)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg and "mnist-sample" in msg


def test_mirroring_flips_about_half_the_batch_and_repeats_per_epoch():
    a = mnist_sample_arrays()
    from lenet.data import Split
    split = Split(a["test_x"][:256], a["test_y"][:256])
    b = Batches(split, spec_for("lenet-relu"), 256, flip=True, seed=2)
    x1, x2 = next(iter(b))[0], next(iter(b))[0]
    plain = preprocess(split.images, spec_for("lenet-relu"))
    torch.testing.assert_close(x1, x2)
    mirrored = (x1 == plain.flip(-1)).flatten(1).all(1)
    unchanged = (x1 == plain).flatten(1).all(1)
    assert bool((mirrored | unchanged).all())          # each image is itself or its mirror
    assert 80 < int((mirrored & ~unchanged).sum()) < 176  # about half, not none or all
