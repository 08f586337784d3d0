"""The plain deployment form computes what the paper-parameterized training module computes, for
every arch and every pooling / C3 table / head a spec may combine with it."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from lenet.exporters import PlainLeNet, plain_module
from lenet.models import LeNet
from lenet.plain import fold, plain_shapes
from lenet.spec import ARCH_FAMILY, ARCHS, POOLINGS, spec_for

from .conftest import relative_error

# Every pooling, C3 table and head an arch allows (lenet5-wide's C3 is full: Table I is 6 to 16 maps).
COMBOS = [(arch, pooling, table, head)
          for arch, pooling, table, head in itertools.product(ARCHS, POOLINGS, ("lecun", "full"), ("rbf", "linear"))
          if ARCH_FAMILY[arch].get("c3_table", table) == table]


def spread(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights away from zero so a wrong fold (a lost 2/3 or 1.7159, a swapped C3 slot) shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("coef"):
                p.uniform_(0.2, 0.6)
            elif name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
            else:
                p.copy_(torch.randn_like(p) * 2.0 / p[0].numel() ** 0.5)
    return model.eval()


@pytest.mark.parametrize("arch, pooling, table, head", COMBOS)
def test_plain_form_matches_the_training_module(arch, pooling, table, head):
    spec = dataclasses.replace(spec_for(arch), pooling=pooling, c3_table=table, head=head)
    model = spread(LeNet(spec), seed=COMBOS.index((arch, pooling, table, head)))
    params = {k: v.numpy() for k, v in model.state_dict().items()}
    folded = fold(spec, params)
    assert {k: v.shape for k, v in folded.items()} == plain_shapes(spec)
    assert all(v.dtype == np.float32 for v in folded.values())
    plain = PlainLeNet(spec, folded)
    pre = spec.preprocessing
    x = torch.from_numpy(np.random.default_rng(0).uniform(
        pre.offset, pre.offset + pre.scale, (5, 1, spec.input_size, spec.input_size)))
    with torch.no_grad():
        ref = model.double()(x).numpy()
        got = plain(x.float()).numpy()
    assert relative_error(got, ref) <= 1e-5


def test_fold_is_deterministic_and_plain_module_uses_it():
    """Loaders demand bit-equality between a file's graph weights and a re-fold: folding the same
    parameters twice, or through the export's module, must give the same bytes."""
    model = spread(LeNet(spec_for("lenet5")), seed=3)
    params = {k: v.numpy() for k, v in model.state_dict().items()}
    a, b = fold(model.spec, params), fold(model.spec, {k: v.copy() for k, v in params.items()})
    module = plain_module(model)
    for name, value in a.items():
        assert value.tobytes() == b[name].tobytes(), name
        layer, kind = name.split(".")
        assert getattr(getattr(module, layer), kind).detach().numpy().tobytes() == value.tobytes()
