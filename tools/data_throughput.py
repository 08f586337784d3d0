"""Training images/s: lenet.data.Batches against a plain torchvision DataLoader loop.

Both feed the same model, optimizer and loss for the same number of steps, in one process, on
the same machine, so the ratio is meaningful even on a noisy host. The DataLoader side is the
way the seed tutorials do it: a torchvision dataset with ToTensor/Pad/Normalize transforms
applied per sample, batched by DataLoader (workers 0 and 2 tried, best kept).

    python tools/data_throughput.py --arch lenet5 --steps 150
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from lenet.data import Batches, load_dataset
from lenet.models import build_model


class _TorchvisionStyle(torch.utils.data.Dataset):
    """uint8 images → PIL → per-sample transforms, as torchvision's MNIST classes do."""

    def __init__(self, images, labels, transform):
        from PIL import Image
        self.images, self.labels, self.transform, self.Image = images, labels, transform, Image

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.Image.fromarray(self.images[i].numpy(), mode="L")), int(self.labels[i])


def _steps_per_second(model, batches, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, images = 0, 0
    t0 = time.perf_counter()
    while done < steps:
        for x, y in batches:
            loss = model.loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            images += len(y)
            if done == steps:
                break
    return images / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="lenet5")
    p.add_argument("--dataset", default="mnist-sample")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    data = load_dataset(args.dataset)
    spec = build_model(args.arch).spec
    pre = spec.preprocessing
    results = {}

    torch.manual_seed(0)
    ours = Batches(data.train, spec, args.batch_size, shuffle=True)
    _steps_per_second(build_model(args.arch), ours, 10)  # warm-up
    results["lenet.data.Batches"] = _steps_per_second(build_model(args.arch), ours, args.steps)

    tf = transforms.Compose([transforms.Pad(pre.pad), transforms.ToTensor(),
                             transforms.Normalize([-pre.offset / pre.scale], [1 / pre.scale])])
    ds = _TorchvisionStyle(data.train.images, data.train.labels, tf)
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0)
        results[f"DataLoader(num_workers={workers})"] = _steps_per_second(build_model(args.arch), loader, args.steps)

    best_peer = max(v for k, v in results.items() if k.startswith("DataLoader"))
    print(f"training images/s, {args.arch}, batch {args.batch_size}, {args.steps} steps, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    for name, ips in results.items():
        print(f"  {name:28s} {ips:10,.0f} img/s  ({ips / best_peer:.2f}x best DataLoader)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": args.arch, "batch_size": args.batch_size, "images_per_s": results}, f, indent=2)


if __name__ == "__main__":
    main()
