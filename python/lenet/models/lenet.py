"""The LeNet family, built from an architecture spec (lenet.spec; docs/ARCHITECTURE.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import ArchSpec, layer_widths, spec_for
from .layers import (
    RBFOutput,
    Subsampling,
    TableConv,
    activation,
    connection_table,
    conv_output_fan_in,
    lecun_map_loss,
    lecun_uniform_,
)


class LeNet(nn.Module):
    """C1 → S2 → C3 → S4 → C5 → F6 → output, configured by an :class:`ArchSpec`.

    ``forward`` returns scores [N, classes], larger = more likely; for the RBF head these are
    minus the distances to the prototypes. State-dict names (the engine reads them):
    ``c1.weight/bias``, ``s2.coef/bias`` (trainable pooling), ``c3.weight/bias`` (``[60,5,5]``
    slots in table order for the LeCun table, ``[16,6,5,5]`` for the full one), ``s4.*``,
    ``c5.weight/bias`` (a 5×5 conv), ``f6.weight/bias``, ``output.prototypes`` (RBF) or
    ``output.weight/bias`` (linear).
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        c1, c3, c5 = layer_widths(spec)  # LeNet-5's 6, 16, 120 but for the wider members
        self.c1 = nn.Conv2d(1, c1, 5, padding=spec.c1_padding)
        self.s2 = self._pooling(c1)
        if spec.c3_table == "lecun":
            self.c3: nn.Module = TableConv(connection_table("lecun"))
        else:
            self.c3 = nn.Conv2d(c1, c3, 5)
        self.s4 = self._pooling(c3)
        self.c5 = nn.Conv2d(c3, c5, 5)
        self.f6 = nn.Linear(c5, 84)
        self.output: nn.Module = RBFOutput() if spec.head == "rbf" else nn.Linear(84, spec.num_classes)
        self.act = activation(spec.activation)
        # Trainable subsampling is a weighted sum, so it is squashed like every other one.
        self.squash_pooled = spec.pooling == "trainable"
        self.rbf = spec.head == "rbf"
        self.reset_parameters()

    def _pooling(self, maps: int) -> nn.Module:
        if self.spec.pooling == "trainable":
            return Subsampling(maps)
        return nn.AvgPool2d(2) if self.spec.pooling == "avg" else nn.MaxPool2d(2)

    def reset_parameters(self) -> None:
        if self.spec.activation == "scaled_tanh":
            for conv in (self.c1, self.c5):
                lecun_uniform_(conv.weight, conv_output_fan_in(conv))
                lecun_uniform_(conv.bias, conv_output_fan_in(conv))
            if isinstance(self.c3, TableConv):
                # Every C3 kernel is uniform in ±2.4/(25·fan-in) of its own output map.
                slot = 0
                with torch.no_grad():
                    for out, inputs in enumerate(self.c3.table):
                        bound = 2.4 / (25 * len(inputs))
                        self.c3.weight[slot:slot + len(inputs)].uniform_(-bound, bound)
                        self.c3.bias[out].uniform_(-bound, bound)
                        slot += len(inputs)
            else:
                lecun_uniform_(self.c3.weight, conv_output_fan_in(self.c3))
            lecun_uniform_(self.f6.weight, self.f6.in_features)
            lecun_uniform_(self.f6.bias, self.f6.in_features)
        elif self.spec.activation == "sigmoid":
            # d2l initializes its LeNet's weights Xavier-uniform and leaves the biases at
            # PyTorch's defaults.
            for m in (self.c1, self.c3, self.c5, self.f6, self.output):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.c1(x))
        x = self.s2(x)
        if self.squash_pooled:
            x = self.act(x)
        x = self.act(self.c3(x))
        x = self.s4(x)
        if self.squash_pooled:
            x = self.act(x)
        x = self.act(self.c5(x)).flatten(1)
        x = self.act(self.f6(x))
        out = self.output(x)
        return -out if self.rbf else out

    def loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training criterion: the paper's MAP criterion for the RBF head, cross-entropy else."""
        if self.rbf:
            return lecun_map_loss(scores, target)
        return F.cross_entropy(scores, target)


def build_model(arch_or_spec: str | ArchSpec, class_names: tuple[str, ...] | None = None, *,
                weights: str | None = None) -> LeNet:
    """A freshly initialized model from an arch name or a spec; with ``weights`` (e.g.
    ``build_model("lenet5", weights="mnist")``), the pretrained weights the package ships under
    ``ARCH-WEIGHTS`` (:mod:`lenet.pretrained`), in eval mode. An unknown name is a ValueError
    that lists the shipped ones."""
    if weights is not None:
        return _pretrained(arch_or_spec, weights)
    if isinstance(arch_or_spec, ArchSpec):
        return LeNet(arch_or_spec)
    return LeNet(spec_for(arch_or_spec) if class_names is None else spec_for(arch_or_spec, class_names))


def _pretrained(arch: str | ArchSpec, weights: str) -> LeNet:
    from .. import pretrained
    from ..artifacts import load_artifact

    if not isinstance(arch, str):
        raise ValueError("weights= takes an arch name (e.g. 'lenet5'), not a spec")
    art = load_artifact(pretrained.shipped(pretrained.weights_name(arch, weights)))
    model = LeNet(art.spec)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in art.state_dict.items()})
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
