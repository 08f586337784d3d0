import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lenet.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from lenet.train import main

from ..support import kill_then_resume

BIN = Path(sys.executable).parent


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lenet-train"), "--quiet", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_short_training_run_learns(tmp_path):
    out = tmp_path / "run"
    r = run_train("--arch", "lenet5", "--epochs", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert metrics[-1]["test_acc"] > 0.6           # chance is 0.1
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "images_per_s"} <= set(metrics[0])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test accuracy:" in r.stdout
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 3 and {"optimizer", "scheduler", "rng", "metrics"} <= set(state)
    model, _ = load_model(out / "best.pt")
    assert model.spec.arch == "lenet5"
    assert not list(out.glob(".*.tmp"))             # no temp files left behind


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    common = ["--arch", "lenet-relu", "--epochs", "3", "--batch-size", "16", "--augment", "--seed", "7"]
    r = kill_then_resume(common, tmp_path, ready="metrics.jsonl", settle=0.4)  # well into epoch 2
    assert r.epochs_logged == 1, "the kill should land in epoch 2"
    assert r.after_kill["epoch"] == 1   # intact after the kill
    assert r.resumed.returncode == 0, r.resumed.stderr
    a = load_checkpoint(r.reference / "last.pt")
    b = load_checkpoint(r.killed / "last.pt")
    for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert [m[k] for m in a["metrics"]] == [m[k] for m in b["metrics"]], k
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), name


def test_resume_without_a_run_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no .*last.pt to resume from"):
        main(["--out", str(tmp_path / "none"), "--resume", "--quiet"])


def test_bad_arguments_exit_nonzero():
    r = run_train("--epochs", "0", "--out", "x")
    assert r.returncode == 2 and "--epochs must be at least 1" in r.stderr


def _good_checkpoint(path: Path) -> None:
    from lenet.models import build_model
    model = build_model("lenet5")
    save_checkpoint(path, {"spec": model.spec.to_dict(), "model": model.state_dict(), "metrics": [], "epoch": 0})


def test_checkpoint_errors_name_the_file(tmp_path):
    good = tmp_path / "good.pt"
    _good_checkpoint(good)
    load_model(good)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: truncated or corrupt"):
        load_checkpoint(truncated)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pt: truncated or corrupt"):
        load_checkpoint(garbage)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: checkpoint file is empty"):
        load_checkpoint(empty)

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not a lenet checkpoint"):
        load_checkpoint(foreign)

    flipped = tmp_path / "flipped.pt"
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"flipped\.pt: .*corrupt"):
        load_checkpoint(flipped)

    with pytest.raises(CheckpointError, match=r"missing\.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lenet-checkpoint", "spec": {}, "model": _RunsCode()}, evil)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load: loading it would run code .*system"):
        load_checkpoint(evil)


def test_nan_weights_are_refused(tmp_path):
    from lenet.models import build_model
    model = build_model("lenet5")
    with torch.no_grad():
        model.f6.weight[0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, {"spec": model.spec.to_dict(), "model": model.state_dict(), "metrics": [], "epoch": 1})
    with pytest.raises(CheckpointError, match=r"nan\.pt: non-finite .*f6\.weight"):
        load_model(path)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    _good_checkpoint(path)
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        _good_checkpoint(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(worker), "--arch", "lenet5", "--epochs", "2", "--device", "cpu", "--quiet",
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stderr
    r0 = torch.load(out / "rank0.weights", weights_only=True)
    r1 = torch.load(out / "rank1.weights", weights_only=True)
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and metrics[-1]["test_acc"] > 0.3
    # rank 0 wrote the checkpoint and it holds the weights both ranks agree on
    ckpt = load_checkpoint(out / "last.pt")
    for name in r0:
        assert torch.equal(ckpt["model"][name], r0[name]), name


def test_unwritable_run_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_train("--epochs", "1", "--out", str(blocker / "run"))
    assert r.returncode == 1 and "cannot create run directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_rubbish_class_needs_the_rbf_head():
    r = run_train("--arch", "lenet-relu", "--rubbish", "100", "--out", "x")
    assert r.returncode == 2 and "--rubbish needs the RBF head" in r.stderr


def test_mirroring_is_refused_for_digits():
    r = run_train("--dataset", "mnist-sample", "--flip", "--out", "x")
    assert r.returncode == 2 and "--flip mirrors images" in r.stderr and "mnist-sample" in r.stderr


@pytest.mark.slow
def test_best_is_chosen_on_the_validation_slice_never_on_the_test_split(tmp_path):
    """--validation N: best.pt is the epoch that reads the N held-out training images best;
    without it best.pt is the last epoch, whatever the test split says."""
    out = tmp_path / "val"
    r = run_train("--arch", "lenet-relu", "--epochs", "3", "--validation", "500", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "3,500 train / 500 validation / 1,000 test" in r.stderr
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(metrics, key=lambda m: m["val_acc"])["epoch"]  # first of the ties, as training
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == best_epoch
    assert best["best_accuracy"] == max(m["val_acc"] for m in metrics)

    plain = tmp_path / "plain"
    assert run_train("--arch", "lenet-relu", "--epochs", "2", "--out", str(plain)).returncode == 0
    assert load_checkpoint(plain / "best.pt")["epoch"] == 2
    assert load_checkpoint(plain / "best.pt")["best_accuracy"] is None


def test_best_is_the_best_validation_epoch_not_the_last_nor_the_best_test():
    from lenet.train import choose_best

    metrics = [{"val_acc": 0.90, "test_acc": 0.80}, {"val_acc": 0.95, "test_acc": 0.85},
               {"val_acc": 0.95, "test_acc": 0.99}, {"val_acc": 0.93, "test_acc": 0.90}]
    best, chosen = -1.0, []
    for m in metrics:
        is_best, best = choose_best(m, best)
        chosen.append(is_best)
    assert chosen == [True, True, False, False] and best == 0.95  # epoch 2: first of the equals
    assert choose_best({"test_acc": 0.99}, -1.0) == (True, -1.0)  # no slice: every epoch, the last


@pytest.mark.slow
def test_resume_with_another_validation_slice_is_refused(tmp_path):
    out = tmp_path / "run"
    assert run_train("--arch", "lenet-relu", "--epochs", "1", "--validation", "300", "--out", str(out)).returncode == 0
    r = run_train("--arch", "lenet-relu", "--epochs", "2", "--resume", "--out", str(out))
    assert r.returncode != 0 and "was trained with --validation 300" in r.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def test_hold_out_is_fixed_disjoint_and_the_same_for_every_seed():
    from lenet.data import hold_out, mnist_sample_arrays, Split

    a = mnist_sample_arrays()
    split = Split(a["train_x"], a["train_y"])
    train, val = hold_out(split, 300)
    again, val2 = hold_out(split, 300)
    assert len(train.labels) == 3700 and len(val.labels) == 300
    assert torch.equal(val.images, val2.images) and torch.equal(train.labels, again.labels)
    seen = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in seen for x in val.images)


@pytest.mark.parametrize("count", ["-1", "4000"])
def test_bad_validation_sizes_are_refused(tmp_path, count):
    r = run_train("--validation", count, "--out", str(tmp_path / "run"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "validation" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["0", "-2", "2000"])
def test_bad_thread_counts_are_refused(tmp_path, value):
    r = run_train("--threads", value, "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "--threads must be in 1..1024" in r.stderr
    assert not (tmp_path / "run").exists()


def test_threads_sets_what_pytorch_computes_with(tmp_path):
    r = subprocess.run([sys.executable, "-c", (
        "import sys, torch; from lenet.train import main; "
        "rc = main(['--arch', 'lenet-relu', '--epochs', '1', '--threads', '1', '--quiet', '--out', sys.argv[1]]); "
        "print('threads', torch.get_num_threads()); sys.exit(rc)"), str(tmp_path / "run")],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stderr
    assert "threads 1" in r.stdout
