"""The reader model's recipe (`make reader-model`): data → lenet-train → lenet-export → rejection
threshold → the model shipped in python/lenet/digits/model/.

1. Training data: ``lenet.digits.kit.training_data`` (digits from MNIST's 60,000 training digits and
   the training fonts, rubbish, every crop made by the reader's own ``candidate_crops``; validation
   crops with the first 5,000 MNIST test digits, writers the training never saw), cached in
   BUILD/reader-data and remade only when the code that makes it changes.
2. ``lenet-train --arch lenet5 --dataset reader`` with RECIPE (lenet5: 60,000 parameters, the
   RBF head whose MAP criterion has the rubbish class).
3. ``lenet-export`` to ONNX; the shipped directory keeps model.onnx and its manifest only.
4. The default ``--min-confidence``: on the validation crops (other seeds, same fonts, MNIST
   writers the model never saw; digits vs rubbish) the strictest threshold that refuses at most
   1 % of the new writers' digits; both error rates recorded. And ``--min-confidence-in-number`` (shapes among
   read digits): the strictest that refuses at most 0.5 %; ``--min-confidence-between`` (shapes
   between two read digits of a number): at most 0.25 %.

The recipe, the data's description, the held-out fonts and these figures go into the shipped
manifest under "reader"; tools/reader_eval.py adds the held-out page figures.

    python tools/reader_model.py [--build build] [--ship python/lenet/digits/model] [--thresholds-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from ship import ship  # noqa: E402  (tools/ship.py, beside this script)

RECIPE = {"arch": "lenet5", "dataset": "reader", "epochs": 24, "batch_size": 64, "optimizer": "adam",
          "lr": 2e-3, "schedule": "cosine", "augment": True, "seed": 0,
          "train_strips": 24000, "val_strips": 800}
# Validation digits (new writers) the default threshold may refuse: refusing good digits was the
# reader's main error on writers it had never seen (thresholds chosen on its training writers).
MAX_REFUSED = 0.01
# ... and the threshold for shapes among read digits (lenet.digits.decide): half that. Inside a
# number a shape is most likely a digit, and the marks found there are letters written after it.
MAX_REFUSED_IN_NUMBER = 0.005
# ... and for shapes between two read digits of a number, a quarter: a letter or a unit is written
# after a number, not inside it.
MAX_REFUSED_BETWEEN = 0.0025
# Code whose change changes the training crops (the data cache's key).
DATA_CODE = ("digits/kit/training_data.py", "digits/kit/variety.py", "digits/kit/fonts.py",
             "digits/segment.py", "digits/boxes.py", "digits/normalize.py", "mnist_crop.py", "glyphs.py",
             "data.py")


def data_key() -> str:
    h = hashlib.sha256(json.dumps({k: RECIPE[k] for k in ("train_strips", "val_strips", "seed")}).encode())
    for name in DATA_CODE:
        h.update((ROOT / "python/lenet" / name).read_bytes())
    return h.hexdigest()[:16]


def make_data(build: Path, key: str) -> Path:
    from lenet.digits.kit import training_data

    folder = build / "reader-data"
    stamp = folder / "key.txt"
    if stamp.is_file() and stamp.read_text().strip() == key and (folder / training_data.DATA_FILE).is_file():
        print(f"reader data: cached in {folder}", file=sys.stderr)
        return folder
    t0 = time.perf_counter()
    status = training_data.main(["--out", str(folder), "--train-strips", str(RECIPE["train_strips"]),
                                 "--val-strips", str(RECIPE["val_strips"]), "--seed", str(RECIPE["seed"])])
    if status:
        raise SystemExit(status)
    stamp.write_text(key + "\n")
    print(f"reader data: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folder


def train(data: Path, run: Path) -> Path:
    import torch

    from lenet.train import parse_args, train as run_training

    # One thread: LeNet-5 at batch 64 gains little from a second one, and two threads on cores
    # that other work shares collapse (measured: 175 images/s on two threads vs 4,600 on one,
    # same load, 2-core machine).
    torch.set_num_threads(1)

    argv = ["--arch", RECIPE["arch"], "--dataset", RECIPE["dataset"], "--data-dir", str(data),
            "--epochs", str(RECIPE["epochs"]), "--batch-size", str(RECIPE["batch_size"]),
            "--optimizer", RECIPE["optimizer"], "--lr", str(RECIPE["lr"]), "--schedule", RECIPE["schedule"],
            "--seed", str(RECIPE["seed"]), "--device", "cpu", "--quiet", "--out", str(run)]
    if RECIPE["augment"]:
        argv.append("--augment")
    if (run / "last.pt").exists():
        argv.append("--resume")
    run_training(parse_args(argv))
    return run / "last.pt"


def choose_threshold(model_dir: Path, data: Path) -> dict:
    """The confidence thresholds on the validation crops, as the reader computes confidence
    (jitter-averaged MAP posterior), and the two error rates each gives."""
    import lenet_ext

    from lenet.digits.classify import EngineClassifier
    from lenet.digits.reader import DigitReader, ReaderOptions
    from lenet.digits.kit.training_data import RUBBISH, SOURCES

    reader = DigitReader(EngineClassifier(lenet_ext.load(model_dir)), ReaderOptions())
    with np.load(data / "reader-data.npz") as z:
        x, y, source = z["val_x"], z["val_y"], z["val_source"]
    probs = np.concatenate([reader.classify(x[i:i + 512]) for i in range(0, len(x), 512)])
    conf, best = probs.max(axis=1), probs.argmax(axis=1)
    digit, rubbish = y != RUBBISH, y == RUBBISH
    # The refusals that matter are of writers the model never saw: the validation strips' MNIST
    # digits (the first half of the test split). The fonts' digits are renderings of training
    # fonts, easier than any new hand, and would let a stricter threshold pass.
    new_writers = digit & (source == SOURCES.index("mnist"))
    # A refused digit breaks the number it belongs to. So: the strictest threshold that refuses at
    # most MAX_REFUSED of the new writers' digits; the share of rubbish it lets through is what
    # that costs. (Fine steps near 0: the thresholds inside a number can be that low.)
    grid = np.round(np.concatenate([np.arange(0.001, 0.01, 0.001), np.arange(0.01, 0.9, 0.005)]), 3)

    def strictest(max_refused: float) -> float:
        ok = [t for t in grid if (conf[new_writers] < t).mean() <= max_refused]
        if not ok:
            print(f"reader-model: warning: even {grid[0]} refuses more than {max_refused:.1%} of the "
                  f"new writers' digits ({(conf[new_writers] < grid[0]).mean():.2%}); using it", file=sys.stderr)
        return float(ok[-1] if ok else grid[0])

    t, t_in, t_between = strictest(MAX_REFUSED), strictest(MAX_REFUSED_IN_NUMBER), strictest(MAX_REFUSED_BETWEEN)

    def rates(threshold: float) -> dict:
        return {"new_writers_refused": round(float((conf[new_writers] < threshold).mean()), 4),
                "digits_refused": round(float((conf[digit] < threshold).mean()), 4),
                "rubbish_accepted": round(float((conf[rubbish] >= threshold).mean()), 4)}

    return {"min_confidence": t, "min_confidence_in_number": t_in, "min_confidence_between": t_between,
            "validation": {"digits": int(digit.sum()), "new_writers": int(new_writers.sum()),
                           "rubbish": int(rubbish.sum()), **rates(t),
                           "digits_misread": round(float(((conf >= t) & (best != y))[digit].mean()), 4),
                           "in_number": rates(t_in), "between": rates(t_between)}}


def rethreshold(ship_dir: Path, build: Path, key: str) -> int:
    """The shipped model's thresholds chosen again (after a change to how they are chosen)."""
    from lenet.paths import atomic_write_bytes

    manifest_path = ship_dir / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {ship_dir}: no shipped model (manifest.json) to update", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    reader = manifest.get("reader") or {}
    shipped = {k: reader.get("recipe", {}).get(k) for k in ("train_strips", "val_strips", "seed")}
    if shipped != {k: RECIPE[k] for k in shipped}:
        print(f"error: {ship_dir} was made from other data ({shipped}); rerun without --thresholds-only",
              file=sys.stderr)
        return 2
    chosen = choose_threshold(ship_dir, make_data(build, key))
    reader.update(chosen)
    manifest["reader"] = reader
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    print(json.dumps(chosen))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train, export and ship the reader model.")
    p.add_argument("--build", default="build", help="cache and run directory (default build)")
    p.add_argument("--ship", default=str(ROOT / "python/lenet/digits/model"),
                   help="where the shipped model goes (default python/lenet/digits/model)")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"],
                   help=f"training epochs (default {RECIPE['epochs']})")
    p.add_argument("--train-strips", type=int, default=RECIPE["train_strips"],
                   help=f"photographed strips rendered for training (default {RECIPE['train_strips']})")
    p.add_argument("--thresholds-only", action="store_true",
                   help="keep the shipped model; choose its thresholds again on the validation crops "
                        "(made again if not cached) and update its manifest")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.train_strips < 1:
        p.error("--epochs and --train-strips must be at least 1")
    RECIPE.update(epochs=args.epochs, train_strips=args.train_strips)
    build = Path(args.build)
    t0 = time.perf_counter()
    key = data_key()  # once: the data cache and the run directory must name the same data
    if args.thresholds_only:
        return rethreshold(Path(args.ship), build, key)
    data = make_data(build, key)
    t_data = time.perf_counter() - t0
    # One run directory per recipe: an interrupted run resumes, another recipe starts afresh.
    recipe_key = hashlib.sha256((key + json.dumps(RECIPE, sort_keys=True)).encode()).hexdigest()[:16]
    run = build / f"reader-run-{recipe_key}"
    checkpoint = train(data, run)
    t_train = time.perf_counter() - t0 - t_data
    export_dir = build / "reader-export"
    from lenet.export import main as export_main

    status = export_main([str(checkpoint), "--out", str(export_dir)])
    if status:
        return status
    from lenet.digits.kit import fonts

    info = {"recipe": {**RECIPE, "command": "make reader-model (tools/reader_model.py)"},
            "data": {"description": "MNIST training split (60,000 digits; validation: the first 5,000 "
                                    "test digits, other writers) and digits rendered from "
                                    "the training fonts, pen and camera variety, rubbish class (letters "
                                    "unlike digits, punctuation, smudges, lines, ruled-paper corners, "
                                    "digit fragments, border-cut digits, touching pairs); every crop "
                                    "made by lenet.digits.normalize.candidate_crops",
                     "training_fonts": {k: fonts.training_packages(k) for k in ("print", "handwriting")},
                     "held_out_fonts": list(fonts.HELD_OUT),
                     "crops": json.loads((data / "reader-data.json").read_text())["crops"]},
            "metrics": json.loads((run / "metrics.jsonl").read_text().splitlines()[-1]),
            "seconds": {"data": round(t_data), "train": round(t_train)}}
    info.update(choose_threshold(export_dir, data))
    ship(export_dir, Path(args.ship), "reader", info)
    print(json.dumps({k: info[k] for k in ("min_confidence", "min_confidence_in_number", "min_confidence_between",
                                           "validation", "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
