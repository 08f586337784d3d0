"""lenet-summary: per-layer table of output shape, trainable parameters, connections and MACs.

Everything is derived from the model itself (shapes from a forward pass, parameters from the
modules, connections from each layer's fan-in), so the table checks the implementation against
the paper rather than repeating the paper's numbers.

Counting rules (those of LeCun et al. 1998): a *connection* is one input (or the bias) feeding one
output unit; weights shared across positions count once as parameters but every time as
connections. *MACs* are the multiply-accumulates of the weighted sums, biases excluded; a 2×2
pooling window counts its 4 reads, the RBF unit one subtract-square-accumulate per input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .models import LeNet, build_model
from .models.layers import RBFOutput, Subsampling, TableConv
from .spec import ARCHS

LAYERS = (("c1", "C1 conv"), ("s2", "S2 subsampling"), ("c3", "C3 conv"), ("s4", "S4 subsampling"),
          ("c5", "C5 conv"), ("f6", "F6 full"), ("output", "output"))


@dataclass
class LayerRow:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    connections: int
    macs: int


def _fan_in(module: nn.Module, out_channels: int) -> list[int]:
    """Weighted inputs (without bias) of one unit of each output map / unit."""
    if isinstance(module, TableConv):
        return [len(inputs) * module.kernel ** 2 for inputs in module.table]
    if isinstance(module, nn.Conv2d):
        per = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return [per] * out_channels
    if isinstance(module, (Subsampling, nn.AvgPool2d, nn.MaxPool2d)):
        return [4] * out_channels
    if isinstance(module, nn.Linear):
        return [module.in_features] * out_channels
    if isinstance(module, RBFOutput):
        return [module.prototypes.shape[1]] * out_channels
    raise TypeError(f"no counting rule for {type(module).__name__}")


def layer_table(model: LeNet) -> list[LayerRow]:
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, _ in LAYERS]
    size = model.spec.input_size
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows = []
    for name, kind in LAYERS:
        module = getattr(model, name)
        shape = shapes[name]
        positions = shape[1] * shape[2] if len(shape) == 3 else 1
        fan_in = _fan_in(module, shape[0])
        has_bias = getattr(module, "bias", None) is not None
        macs = positions * sum(fan_in)
        connections = positions * sum(f + int(has_bias) for f in fan_in)
        params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append(LayerRow(name, kind, shape, params, connections, macs))
    return rows


def format_table(model: LeNet) -> str:
    rows = layer_table(model)
    head = ("layer", "output shape", "params", "connections", "MACs")
    body = [(r.kind, "×".join(map(str, r.shape)), f"{r.params:,}", f"{r.connections:,}", f"{r.macs:,}")
            for r in rows]
    size = model.spec.input_size
    body.insert(0, ("input", f"1×{size}×{size}", "", "", ""))
    body.append(("total", "", f"{sum(r.params for r in rows):,}",
                 f"{sum(r.connections for r in rows):,}", f"{sum(r.macs for r in rows):,}"))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    spec = model.spec
    title = (f"{spec.arch}: {spec.activation}, {spec.pooling} pooling, C3 table {spec.c3_table}, "
             f"{spec.head} head, {spec.num_classes} classes")
    return "\n".join([title, line(head), rule, *map(line, body[:-1]), rule, line(body[-1])])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="lenet-summary",
        description="Per-layer table (output shape, trainable parameters, connections, MACs) of an "
                    f"architecture ({', '.join(ARCHS)}) or of the model in a checkpoint file.")
    p.add_argument("model", metavar="ARCH_OR_CHECKPOINT", help="an arch name or a checkpoint path")
    args = p.parse_args(argv)
    if args.model in ARCHS:
        model = build_model(args.model)
    elif Path(args.model).exists():
        from .checkpoint import CheckpointError, load_model
        try:
            model, _ = load_model(args.model)
        except CheckpointError as exc:
            print(f"lenet-summary: {exc}", file=sys.stderr)
            return 2
    else:
        print(f"lenet-summary: {args.model!r} is neither an arch ({', '.join(ARCHS)}) "
              "nor an existing checkpoint file", file=sys.stderr)
        return 2
    print(format_table(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
