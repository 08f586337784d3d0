"""python -m lenet_ext ARTIFACT: run an exported model through the engine on a test split.

Prints the engine, its accuracy on the dataset's test images (raw uint8 in, the spec's
preprocessing applied by the engine) and the throughput of that one batched call.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import lenet_ext


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lenet_ext", description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", help="artifact dir, .onnx, .torchscript.pt, .pt2, or the name of "
                                     "pretrained weights the package ships (lenet5-mnist)")
    ap.add_argument("--dataset", default="mnist-sample", help="test split to score (lenet.data)")
    ap.add_argument("--data-dir", default=None, help="where the dataset is (default ./data or $LENET_DATA_DIR)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from lenet.commands import has_extra

    if not has_extra("python -m lenet_ext", "train"):  # the datasets come with lenet-train's extra
        return 2
    from lenet.data import DataError, load_dataset

    try:
        engine = lenet_ext.load(args.artifact, threads=args.threads)
        test = load_dataset(args.dataset, args.data_dir).test
    except (ValueError, RuntimeError, DataError) as exc:  # ArtifactError and SpecError are ValueErrors
        print(f"python -m lenet_ext: error: {exc}", file=sys.stderr)
        return 1
    images = test.images.numpy()
    labels = test.labels.numpy()
    engine.predict(images[:64])  # warm-up
    t = time.perf_counter()
    pred, _ = engine.predict(images)
    dt = time.perf_counter() - t
    acc = float((pred == labels).mean())
    print(f"{engine!r}: {args.dataset} test, {len(images)} images: accuracy {100 * acc:.2f}% "
          f"({100 * (1 - acc):.2f}% error), {len(images) / dt:,.0f} images/s in one call")
    names = engine.class_names
    idx = np.linspace(0, len(images) - 1, 20).astype(int)  # spread over the (class-sorted) split
    print("predicted:", " ".join(names[p] for p in pred[idx]))
    print("truth:    ", " ".join(names[t] for t in labels[idx]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
