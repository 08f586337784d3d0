"""lenet-train: train a LeNet-family network; CUDA when present, CPU otherwise, torchrun-ready.

Writes RUN/last.pt (every epoch), RUN/best.pt, RUN/metrics.jsonl and RUN/curves.png. best.pt is
the epoch with the best accuracy on a validation slice of the training images (``--validation N``),
or the last epoch without one: the test split is reported, never used to choose. ``--resume`` continues from RUN/last.pt; an epoch interrupted by a crash or a
kill is redone from its start, and because an epoch's batches and distortions depend only on
(seed, epoch), the resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from . import __version__
from .checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint, save_checkpoint
from .data import DATASETS, Batches, DataError, Dataset, Split, distort, hold_out, load_dataset, preprocess
from .models import LeNet, build_model, count_parameters
from .spec import ARCHS, ArchSpec, spec_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lenet-train",
        description="Train a LeNet-family network. Writes OUT/last.pt, OUT/best.pt, "
                    "OUT/metrics.jsonl and OUT/curves.png. Runs unchanged under "
                    "`torchrun --nproc-per-node N` (DistributedDataParallel).")
    p.add_argument("--arch", choices=ARCHS, default="lenet5",
                   help="lenet5 = LeCun et al. 1998 as published (default); lenet-d2l; lenet-relu")
    p.add_argument("--dataset", choices=DATASETS, default="mnist-sample",
                   help="mnist-sample (offline, 4,000 train / 1,000 test, default), mnist, fashion-mnist")
    p.add_argument("--data-dir", default=None, help="where torchvision datasets live (default ./data or $LENET_DATA_DIR)")
    p.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    p.add_argument("--batch-size", type=int, default=32, help="per-process batch size (default 32)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="default adam")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-3 adam, 0.01 sgd)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine",
                   help="LR schedule over the epochs (default cosine; step = ×0.1 at 50%% and 75%%)")
    p.add_argument("--augment", action="store_true",
                   help="small random affine distortions of the training images (the paper's 0.8%% route)")
    p.add_argument("--flip", action="store_true",
                   help="mirror a random half of each training batch left-right (for fashion-mnist; "
                        "digits are not mirror-symmetric, so not for mnist)")
    p.add_argument("--rubbish", type=int, default=0, metavar="N",
                   help="lenet5 only: add N synthetic non-digit glyphs (letters, lenet.glyphs) "
                        "as the paper's rubbish class, so the RBF distances learn to reject what is "
                        "not a digit (lenet-digits uses this); default 0")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="set N training images aside (a fixed slice) and write best.pt at the epoch "
                        "that reads them best; default 0: best.pt is the last epoch (the test split "
                        "is never used to choose)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, order and distortions (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = CUDA when present, else CPU")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 autocast; CUDA only)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads PyTorch computes with (default: its own choice, one per core). "
                        "On a machine that other work shares, 1 is often much faster: two threads "
                        "that wait for each other ran LeNet-5 at 85 images/s against 1,099 on one")
    p.add_argument("--out", required=True, help="run directory")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    again.add_argument("--force", action="store_true",
                       help="start over in an OUT that already holds a run, replacing its files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.lr is None:
        args.lr = 2e-3 if args.optimizer == "adam" else 0.01
    for name, value in (("--lr", args.lr), ("--momentum", args.momentum),
                        ("--weight-decay", args.weight_decay)):
        if not math.isfinite(value):
            p.error(f"{name} must be a finite number, got {value}")
    if args.lr <= 0:
        p.error(f"--lr must be positive, got {args.lr}")
    if args.momentum < 0 or args.weight_decay < 0:
        p.error("--momentum and --weight-decay must not be negative")
    if args.flip and args.dataset != "fashion-mnist":
        p.error(f"--flip mirrors images, which turns digits into non-digits: use it with "
                f"--dataset fashion-mnist, not {args.dataset}")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        p.error(f"--threads must be in 1..1024, got {args.threads}")
    if args.validation < 0:
        p.error(f"--validation must be at least 0, got {args.validation}")
    if args.rubbish < 0:
        p.error(f"--rubbish must be at least 0, got {args.rubbish}")
    rbf = spec_for(args.arch).head == "rbf"
    if args.dataset == "reader" and not rbf:
        p.error("--dataset reader has a rubbish class (label 10) that needs the RBF head of lenet5 "
                "or lenet5-wide")
    if args.rubbish and not rbf:
        p.error("--rubbish needs the RBF head's rubbish class: use it with --arch lenet5 or lenet5-wide")
    return args


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> tuple[Dist, torch.device]:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is a single process."""
    d = Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
             int(os.environ.get("LOCAL_RANK", 0)))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("lenet-train: --device cuda asked for, but no CUDA device is available")
    device = torch.device("cuda", d.local_rank % max(torch.cuda.device_count(), 1)) if use_cuda else torch.device("cpu")
    if d.enabled:
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return d, device


def make_optimizer(args: argparse.Namespace, model: torch.nn.Module):
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                              weight_decay=args.weight_decay)
    if args.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    elif args.schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[max(1, args.epochs // 2), max(1, args.epochs * 3 // 4)], gamma=0.1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(
        np.frombuffer(json.dumps(_np_state()).encode(), dtype=np.uint8).copy()),
        "python": torch.tensor(list(json.dumps(random.getstate()).encode()), dtype=torch.uint8)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = json.loads(bytes(state["numpy"].tolist()).decode())
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    py = json.loads(bytes(state["python"].tolist()).decode())
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def add_rubbish(x: torch.Tensor, y: torch.Tensor, glyphs: torch.Tensor, spec: ArchSpec,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Append an eighth of a batch of distorted non-digit glyphs labelled as the rubbish class
    (index num_classes: the e^{-j} term of the MAP criterion)."""
    count = max(1, len(y) // 8)
    idx = torch.randint(len(glyphs), (count,), generator=gen).to(glyphs.device)
    ink = distort(glyphs[idx].unsqueeze(1).float() / 255.0, gen)
    x = torch.cat([x, preprocess(ink, spec)])
    return x, torch.cat([y, torch.full((count,), spec.num_classes, dtype=y.dtype, device=y.device)])


def choose_best(record: dict[str, Any], best_acc: float) -> tuple[bool, float]:
    """(is this epoch best.pt, the best validation accuracy so far). Chosen on the validation
    slice (``val_acc``), the first of equals; without one every epoch replaces best.pt, which is
    then the last. The test split (``test_acc``) never chooses."""
    if "val_acc" not in record:
        return True, best_acc
    return record["val_acc"] > best_acc, max(best_acc, record["val_acc"])


def evaluate(model: LeNet, batches: Batches) -> tuple[float, float]:
    """Mean loss and accuracy over a whole split (every rank evaluates all of it: exact, small)."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in batches:
            scores = model(x)
            loss_sum += float(model.loss(scores, y)) * len(y)
            correct += int((scores.argmax(1) == y).sum())
            count += len(y)
    return loss_sum / max(count, 1), correct / max(count, 1)


def draw_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    ax1.plot(epochs, [m["test_loss"] for m in metrics], "s-", label="test")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend(), ax1.grid(alpha=0.3)
    ax2.plot(epochs, [m["train_acc"] for m in metrics], "o-", label="train")
    ax2.plot(epochs, [m["test_acc"] for m in metrics], "s-", label="test")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy"), ax2.legend(), ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# The files a run directory holds: a new run refuses to replace them without --force.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png")


def check_run_directory(out: Path, args: argparse.Namespace) -> list[str]:
    """Refuse to start a fresh run over an earlier one (its checkpoints would be overwritten);
    with --force, the earlier run's files, which :func:`remove_earlier_run` removes later."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"lenet-train: {out} exists and is not a directory")
    if args.resume:
        return []
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if earlier and not args.force:
        raise SystemExit(f"lenet-train: {out} already holds a run ({', '.join(earlier)}); "
                         "continue it with --resume, or start over with --force (replaces them)")
    return earlier


def remove_earlier_run(out: Path, earlier: list[str]) -> None:
    """--force: no file of the earlier run may outlive the new one (a better best.pt would)."""
    if not earlier:
        return
    print(f"lenet-train: --force: replacing the run in {out} ({', '.join(earlier)})", file=sys.stderr)
    for name in earlier:
        try:
            (out / name).unlink()
        except OSError as exc:
            raise SystemExit(f"lenet-train: cannot remove {out / name}: {exc.strerror or exc}") from None


def write_or_exit(path: Path, write, *args) -> None:
    """Run one atomic write; a full disk or a lost permission ends the run with a line naming
    the file (the atomic write has already removed its temp file, the old file is intact)."""
    try:
        write(*args)
    except OSError as exc:
        raise SystemExit(f"lenet-train: cannot write {path}: {exc.strerror or exc} "
                         f"(the files already in {path.parent} are intact; resume with --resume)") from None


def write_metrics(metrics: list[dict[str, Any]], path: Path) -> None:
    atomic_write_bytes(path, "".join(json.dumps(m) + "\n" for m in metrics).encode())


@dataclass
class Learner:
    """The network and what moves its weights: with the generator states, what last.pt restores."""
    model: LeNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


@dataclass
class Progress:
    """How far a run has come: ``epoch`` epochs done, their metrics, and the best validation
    accuracy so far (-1: none yet, or no validation slice)."""
    epoch: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = -1.0

    def add(self, record: dict[str, Any]) -> bool:
        """Count the epoch that ``record`` describes; return whether it becomes best.pt."""
        self.metrics.append(record)
        self.epoch = record["epoch"]
        is_best, self.best_acc = choose_best(record, self.best_acc)
        return is_best


@dataclass
class Feed:
    """What the epochs read: this process's shuffled training batches, the splits that every
    process evaluates whole, and the rubbish glyphs (--rubbish) mixed into training batches."""
    train: Batches
    test: Batches
    val: Batches | None
    rubbish: torch.Tensor | None


class TrainedEpoch(NamedTuple):
    """One epoch of training over every process's shard: mean loss and accuracy, speed, time."""
    loss: float
    acc: float
    images_per_s: float
    seconds: float


def run_state(args: argparse.Namespace, learner: Learner, progress: Progress) -> dict[str, Any]:
    """Everything --resume needs to continue bit-identically after ``progress.epoch`` epochs."""
    return {"version": __version__, "spec": learner.model.spec.to_dict(), "model": learner.model.state_dict(),
            "optimizer": learner.optimizer.state_dict(), "scheduler": learner.scheduler.state_dict(),
            "epoch": progress.epoch, "rng": rng_state(), "metrics": progress.metrics,
            "best_accuracy": progress.best_acc if progress.best_acc >= 0 else None,  # None: no validation slice
            "args": {k: v for k, v in vars(args).items()}}


def set_up_process(args: argparse.Namespace) -> tuple[Dist, torch.device]:
    """This process's place in the run (alone or one of torchrun's) and the device it computes on."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    d, device = setup_distributed(args.device)
    if args.amp and device.type != "cuda":
        raise SystemExit("lenet-train: --amp needs a CUDA device (float16 autocast); drop it on the CPU")
    return d, device


def load_splits(args: argparse.Namespace) -> tuple[Dataset, Split, Split | None]:
    """The dataset, the training images that train, and the --validation slice (None without one)."""
    try:
        data = load_dataset(args.dataset, args.data_dir)
        train_split, val_split = (hold_out(data.train, args.validation) if args.validation
                                  else (data.train, None))
    except DataError as exc:
        raise SystemExit(f"lenet-train: {exc}") from None
    return data, train_split, val_split


def make_run_directory(out: Path, d: Dist) -> None:
    """Rank 0 writes every file of the run; the others only need it to exist by then."""
    if not d.main:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"lenet-train: cannot create run directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise SystemExit(f"lenet-train: run directory {out} is not writable")


def build_learner(args: argparse.Namespace, class_names: tuple[str, ...], device: torch.device) -> Learner:
    """The network initialized from --seed, with its optimizer and LR schedule."""
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = build_model(args.arch, class_names).to(device)
    optimizer, scheduler = make_optimizer(args, model)
    return Learner(model, optimizer, scheduler)


def resume_from(last: Path, args: argparse.Namespace, learner: Learner, device: torch.device) -> Progress:
    """--resume: the weights, optimizer, schedule and generator states of ``last`` restored in
    place, after checking that it is a run of these settings."""
    if not last.exists():
        raise SystemExit(f"lenet-train: --resume: no {last} to resume from")
    try:
        state = load_checkpoint(last, map_location=device)
    except CheckpointError as exc:
        raise SystemExit(f"lenet-train: {exc}") from None
    if ArchSpec.from_dict(state["spec"]) != learner.model.spec:
        raise SystemExit(f"lenet-train: {last} was trained as {state['spec']['arch']} on other "
                         f"settings; it does not match --arch {args.arch} --dataset {args.dataset}")
    held = int((state.get("args") or {}).get("validation") or 0)
    if held != args.validation:
        raise SystemExit(f"lenet-train: {last} was trained with --validation {held}; resume it with "
                         f"the same (it decides which images train and which choose best.pt)")
    learner.model.load_state_dict(state["model"])
    learner.optimizer.load_state_dict(state["optimizer"])
    learner.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    best_acc = -1.0 if state.get("best_accuracy") is None else float(state["best_accuracy"])
    return Progress(int(state["epoch"]), list(state["metrics"]), best_acc)


def start_over(out: Path, earlier: list[str], args: argparse.Namespace, learner: Learner) -> Progress:
    """A new run (rank 0): the earlier run's files go only now, so a run that fails to start
    keeps them."""
    remove_earlier_run(out, earlier)
    progress = Progress()
    # An epoch-0 checkpoint, written where --resume would restore it (the same generator
    # states), so a run killed in its first epoch resumes like any other.
    write_or_exit(out / "last.pt", save_checkpoint, out / "last.pt", run_state(args, learner, progress))
    return progress


def distribute(model: LeNet, d: Dist, device: torch.device) -> torch.nn.Module:
    """The module the epochs train through: under torchrun the DDP wrapper, which averages the
    gradients across processes; alone the model itself."""
    if not d.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def make_feed(args: argparse.Namespace, spec: ArchSpec, data: Dataset, train_split: Split,
              val_split: Split | None, d: Dist, device: torch.device) -> Feed:
    train_batches = Batches(train_split, spec, args.batch_size, device=device, shuffle=True,
                            augment=args.augment, flip=args.flip, seed=args.seed, rank=d.rank, world_size=d.world_size)
    test_batches = Batches(data.test, spec, 1000, device=device)
    val_batches = Batches(val_split, spec, 1000, device=device) if val_split is not None else None
    rubbish = None
    if args.rubbish:
        from .glyphs import rubbish_glyphs
        rubbish = torch.from_numpy(rubbish_glyphs(args.rubbish, np.random.default_rng(args.seed))).to(device)
    return Feed(train_batches, test_batches, val_batches, rubbish)


def announce(args: argparse.Namespace, model: LeNet, feed: Feed, d: Dist, device: torch.device) -> None:
    print(f"lenet-train {__version__}: {model.spec.arch} ({count_parameters(model):,} parameters) on "
          f"{args.dataset} ({len(feed.train.labels):,} train"
          f"{f' / {len(feed.val.labels):,} validation' if feed.val is not None else ''}"
          f" / {len(feed.test.labels):,} test), "
          f"device {device}, {d.world_size} process(es)", file=sys.stderr)


def train_step(net: torch.nn.Module, learner: Learner, scaler: torch.amp.GradScaler,
               x: torch.Tensor, y: torch.Tensor, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch; returns the batch's scores and loss."""
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
        scores = net(x)
        loss = learner.model.loss(scores.float(), y)
    learner.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(learner.optimizer)
    scaler.update()
    return scores, loss


def train_one_epoch(epoch: int, net: torch.nn.Module, learner: Learner, scaler: torch.amp.GradScaler,
                    feed: Feed, args: argparse.Namespace, d: Dist, device: torch.device) -> TrainedEpoch:
    """One pass over this process's shard of the training images, then one step of the LR schedule."""
    feed.train.set_epoch(epoch)
    net.train()
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    bar = tqdm(feed.train, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch",
               disable=args.quiet or not d.main, leave=False, dynamic_ncols=True)
    # The rubbish glyphs of an epoch depend only on (seed, epoch), like the batches.
    rubbish_gen = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch + 1)
    for x, y in bar:
        # Loss and accuracy count the dataset's images only, not the rubbish glyphs added to them.
        n_real = len(y)
        if feed.rubbish is not None:
            x, y = add_rubbish(x, y, feed.rubbish, learner.model.spec, rubbish_gen)
        scores, loss = train_step(net, learner, scaler, x, y, args.amp)
        loss_sum += loss.detach().double() * n_real
        correct += (scores.detach()[:n_real].argmax(1) == y[:n_real]).sum()
        seen += n_real
    learner.scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()  # the epoch's kernels finish inside its time, not the next's
    elapsed = time.perf_counter() - t0
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64)])
    if d.enabled:
        dist.all_reduce(totals)
    return TrainedEpoch(float(totals[0] / totals[2]), float(totals[1] / totals[2]),
                       float(totals[2]) / elapsed, elapsed)


def epoch_record(epoch: int, trained: TrainedEpoch, learner: Learner, feed: Feed) -> dict[str, Any]:
    """The epoch's line of metrics.jsonl: its training figures, and the test split (and the
    validation slice) read with the weights the epoch ended with."""
    test_loss, test_acc = evaluate(learner.model, feed.test)
    record = {"epoch": epoch + 1, "train_loss": trained.loss, "train_acc": trained.acc,
              "test_loss": test_loss, "test_acc": test_acc,
              "images_per_s": trained.images_per_s, "epoch_seconds": trained.seconds,
              "lr": learner.optimizer.param_groups[0]["lr"]}
    if feed.val is not None:
        record["val_loss"], record["val_acc"] = evaluate(learner.model, feed.val)
    return record


def save_epoch(out: Path, args: argparse.Namespace, learner: Learner, progress: Progress, is_best: bool) -> None:
    """Rank 0's files after an epoch: last.pt, best.pt when the epoch is the best, and the
    metrics and curves so far."""
    state = run_state(args, learner, progress)
    write_or_exit(out / "last.pt", save_checkpoint, out / "last.pt", state)
    if is_best:
        write_or_exit(out / "best.pt", save_checkpoint, out / "best.pt", state)
    write_or_exit(out / "metrics.jsonl", write_metrics, progress.metrics, out / "metrics.jsonl")
    write_or_exit(out / "curves.png", draw_curves, progress.metrics, out / "curves.png",
                  f"{learner.model.spec.arch} on {args.dataset}")


def report_epoch(record: dict[str, Any], args: argparse.Namespace) -> None:
    val = f"validation acc {record['val_acc']:.4f} | " if "val_acc" in record else ""
    print(f"epoch {record['epoch']}/{args.epochs}: train loss {record['train_loss']:.4f} "
          f"acc {record['train_acc']:.4f} | {val}test loss {record['test_loss']:.4f} "
          f"acc {record['test_acc']:.4f} | {record['images_per_s']:,.0f} img/s", file=sys.stderr)


def report_end(out: Path, progress: Progress, feed: Feed) -> None:
    final = progress.metrics[-1] if progress.metrics else {}
    chosen = (f"best.pt: validation accuracy {progress.best_acc:.4f}" if feed.val is not None
              else "best.pt = the last epoch")
    print(f"test accuracy: {final.get('test_acc', float('nan')):.4f} on {len(feed.test.labels):,} "
          f"test images ({chosen}); run directory: {out}")


def train(args: argparse.Namespace) -> tuple[LeNet, dict[str, Any]]:
    """Run the training loop; return the trained model and the last epoch's metrics."""
    d, device = set_up_process(args)
    out = Path(args.out)
    earlier = check_run_directory(out, args) if d.main else []
    # Data first: a missing dataset must not leave an empty run directory behind.
    data, train_split, val_split = load_splits(args)
    make_run_directory(out, d)

    learner = build_learner(args, data.class_names, device)
    if args.resume:
        progress = resume_from(out / "last.pt", args, learner, device)
        if d.main:
            print(f"resuming {out} after epoch {progress.epoch}/{args.epochs}", file=sys.stderr)
    elif d.main:
        progress = start_over(out, earlier, args, learner)
    else:
        progress = Progress()

    net = distribute(learner.model, d, device)
    feed = make_feed(args, learner.model.spec, data, train_split, val_split, d, device)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
    if d.main:
        announce(args, learner.model, feed, d, device)

    for epoch in range(progress.epoch, args.epochs):
        trained = train_one_epoch(epoch, net, learner, scaler, feed, args, d, device)
        record = epoch_record(epoch, trained, learner, feed)
        is_best = progress.add(record)
        if d.main:
            save_epoch(out, args, learner, progress, is_best)
            report_epoch(record, args)
        if d.enabled:
            dist.barrier()

    if d.enabled:
        dist.destroy_process_group()
    if d.main:
        report_end(out, progress, feed)
    return learner.model, progress.metrics[-1] if progress.metrics else {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except KeyboardInterrupt:
        print("lenet-train: interrupted; resume with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
