"""The building blocks of LeNet-5 as LeCun et al. (1998) describe them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# f(a) = A tanh(S a) with A = 1.7159 and S = 2/3, so f(±1) = ±1 (paper, Appendix A); the plain
# export form folds the same two numbers into its weights.
from ..plain import TANH_AMPLITUDE, TANH_SLOPE
from ..spec import LECUN_C3_TABLE, RUBBISH_ENERGY, c3_slot_positions
from .prototypes import rbf_prototypes

def connection_table(name: str, in_maps: int = 6, out_maps: int = 16) -> tuple[tuple[int, ...], ...]:
    """The C3 table by spec name: ``lecun`` (Table I) or ``full`` (every map reads all maps)."""
    if name == "lecun":
        return LECUN_C3_TABLE
    if name == "full":
        return tuple(tuple(range(in_maps)) for _ in range(out_maps))
    raise ValueError(f"unknown C3 table {name!r}")


class ScaledTanh(nn.Module):
    """The paper's squashing function 1.7159 · tanh(2a/3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TANH_AMPLITUDE * torch.tanh(TANH_SLOPE * x)


def activation(name: str) -> nn.Module:
    return {"scaled_tanh": ScaledTanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}[name]()


class Subsampling(nn.Module):
    """Trainable 2×2 subsampling: the four inputs are summed, multiplied by a per-map
    coefficient and offset by a per-map bias (2 parameters per map). The squash that follows
    is applied by the network, as for every other weighted sum."""

    def __init__(self, maps: int) -> None:
        super().__init__()
        # Fan-in is 4: the paper's uniform ±2.4/F_i rule gives ±0.6; starting at 0.25 (a plain
        # average) keeps the early activations in tanh's linear range.
        self.coef = nn.Parameter(torch.full((maps,), 0.25))
        self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(x, 2) * 4.0
        return summed * self.coef.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class TableConv(nn.Module):
    """A 5×5 convolution in which each output map reads only the input maps its connection table
    names. Only the connected kernels exist as parameters (C3: 60 kernels, 1,516 parameters),
    stored in ``weight[slot]`` with slots in table order. Output maps are grouped by fan-in so
    the forward pass is a channel gather plus one grouped convolution per group: ordinary ops
    that TorchScript, ONNX and torch.export all carry."""

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel: int = 5) -> None:
        super().__init__()
        self.table = table
        self.kernel = kernel
        slots = [i for inputs in table for i in inputs]
        self.weight = nn.Parameter(torch.empty(len(slots), kernel, kernel))
        self.bias = nn.Parameter(torch.empty(len(table)))
        self.register_buffer("gather_index", torch.tensor(slots, dtype=torch.long), persistent=False)
        # Where each slot sits in the dense [out*in] kernel grid.
        in_maps = 1 + max(slots)
        self.in_maps = in_maps
        dense_slots = [out * in_maps + i for out, i in c3_slot_positions(table)]
        self.register_buffer("dense_index", torch.tensor(dense_slots, dtype=torch.long), persistent=False)
        # Consecutive runs of output maps with the same fan-in: (first map, count, fan-in, first slot).
        groups: list[tuple[int, int, int, int]] = []
        slot = 0
        for out, inputs in enumerate(table):
            if groups and groups[-1][2] == len(inputs) and groups[-1][0] + groups[-1][1] == out:
                first, count, fan_in, first_slot = groups[-1]
                groups[-1] = (first, count + 1, fan_in, first_slot)
            else:
                groups.append((out, 1, len(inputs), slot))
            slot += len(inputs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # PyTorch's CPU backward of many tiny groups is ~5x slower than one dense conv whose
            # kernel is scattered from the 60 real ones (zeros elsewhere get no parameters and
            # pass no gradient). Inference and export take the gather + grouped-conv path, which
            # is made of ops every runtime has (a scatter is not in OpenCV DNN).
            return F.conv2d(x, self.dense_weight(), self.bias)
        gathered = x.index_select(1, self.gather_index)
        outs = []
        for first, count, fan_in, first_slot in self.groups:
            n = count * fan_in
            w = self.weight[first_slot:first_slot + n].reshape(count, fan_in, self.kernel, self.kernel)
            b = self.bias[first:first + count]
            outs.append(F.conv2d(gathered[:, first_slot:first_slot + n], w, b, groups=count))
        return torch.cat(outs, dim=1)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense [out, in, k, k] kernel, zero where the table has no connection."""
        k2 = self.kernel * self.kernel
        dense = self.weight.new_zeros(len(self.table) * self.in_maps, k2)
        dense = dense.index_copy(0, self.dense_index, self.weight.reshape(-1, k2))
        return dense.reshape(len(self.table), self.in_maps, self.kernel, self.kernel)


class RBFOutput(nn.Module):
    """Euclidean RBF units y_i = Σ_j (x_j − w_ij)² with fixed ±1 prototypes (not trained).

    Returns the distances; smaller means more likely."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.from_numpy(rbf_prototypes()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.prototypes.unsqueeze(0)
        return (diff * diff).sum(dim=2)


def lecun_uniform_(weight: torch.Tensor, fan_in: int) -> None:
    """The paper's initialization: uniform in ±2.4 / F_i (F_i = the unit's fan-in)."""
    bound = 2.4 / fan_in
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def lecun_map_loss(scores: torch.Tensor, target: torch.Tensor, j: float = RUBBISH_ENERGY) -> torch.Tensor:
    """The paper's MAP criterion (eq. 9) on RBF distances y = −scores:

        E = y_D + log(e^{−j} + Σ_i e^{−y_i})

    The e^{−j} term is a rubbish class that keeps pushing the correct distance down until it is
    small, which plain cross-entropy on −y does not. Written as cross-entropy over the scores with
    one extra constant logit −j, which is exactly E and numerically stable."""
    rubbish = scores.new_full((scores.shape[0], 1), -j)
    return F.cross_entropy(torch.cat([scores, rubbish], dim=1), target)


def conv_output_fan_in(conv: nn.Conv2d) -> int:
    return conv.in_channels // conv.groups * math.prod(conv.kernel_size)
