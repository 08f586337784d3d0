import numpy as np
import pytest
import torch

from lenet.models import LECUN_C3_TABLE, build_model, count_parameters, rbf_prototypes
from lenet.models.layers import ScaledTanh, TableConv, lecun_map_loss
from lenet.spec import ARCHS, ArchSpec, SpecError, spec_for, weight_shapes
from lenet.summary import layer_table


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch", [1, 7])
def test_output_shape(arch, batch):
    model = build_model(arch)
    s = model.spec.input_size
    assert model(torch.randn(batch, 1, s, s)).shape == (batch, 10)


@pytest.mark.parametrize("arch,params", [("lenet5", 60_000), ("lenet-d2l", 61_706), ("lenet-relu", 61_706),
                                         ("lenet5-wide", 222_516)])
def test_parameter_counts(arch, params):
    assert count_parameters(build_model(arch)) == params


def test_lenet5_layer_table_matches_the_paper():
    rows = {r.name: r for r in layer_table(build_model("lenet5"))}
    paper = {  # LeCun et al. 1998, section II-B: (output shape, parameters, connections)
        "c1": ((6, 28, 28), 156, 122_304), "s2": ((6, 14, 14), 12, 5_880),
        "c3": ((16, 10, 10), 1_516, 151_600), "s4": ((16, 5, 5), 32, 2_000),
        "c5": ((120, 1, 1), 48_120, 48_120), "f6": ((84,), 10_164, 10_164), "output": ((10,), 0, 840),
    }
    for name, (shape, params, conns) in paper.items():
        assert (rows[name].shape, rows[name].params, rows[name].connections) == (shape, params, conns), name


def test_c3_table_is_table_one():
    assert len(LECUN_C3_TABLE) == 16
    assert [len(t) for t in LECUN_C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    assert LECUN_C3_TABLE[0] == (0, 1, 2) and LECUN_C3_TABLE[4] == (4, 5, 0)
    assert LECUN_C3_TABLE[12] == (0, 1, 3, 4) and LECUN_C3_TABLE[14] == (0, 2, 3, 5)
    # every S2 map feeds exactly 10 C3 maps
    assert all(sum(i in t for t in LECUN_C3_TABLE) == 10 for i in range(6))


def test_table_conv_equals_masked_dense_conv():
    torch.manual_seed(0)
    conv = TableConv(LECUN_C3_TABLE)
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    dense = conv.dense_weight()
    # unconnected kernels are exactly zero, connected ones are the parameters
    for o, inputs in enumerate(LECUN_C3_TABLE):
        for i in range(6):
            assert bool(dense[o, i].abs().sum() > 0) == (i in inputs)
    x = torch.randn(3, 6, 14, 14, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x, dense.double(), conv.bias.double())
    torch.testing.assert_close(conv.double()(x), ref)


def test_rbf_prototypes_are_plus_minus_one_bitmaps():
    p = rbf_prototypes()
    assert p.shape == (10, 84)
    assert set(np.unique(p)) == {-1.0, 1.0}
    # all ten distinct; confusable digits are close on purpose, but none nearly equal
    d = ((p[:, None] - p[None]) ** 2).sum(-1)
    assert (d[~np.eye(10, dtype=bool)] >= 4 * 5).all()  # Hamming distance ≥ 5 (3 vs 8 is 6)


def test_rbf_head_scores_are_minus_distances():
    model = build_model("lenet5").eval()
    x = torch.randn(4, 1, 32, 32)
    feats = {}
    # the input of the output layer; a forward hook that returns None leaves the forward alone
    model.output.register_forward_hook(lambda m, i, o: feats.update(f6=i[0]))
    scores = model(x)
    dist = ((feats["f6"][:, None, :] - torch.from_numpy(rbf_prototypes())[None]) ** 2).sum(-1)
    torch.testing.assert_close(scores, -dist)


def test_scaled_tanh():
    a = torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(ScaledTanh()(a), torch.tensor([-1.0, 0.0, 1.0]), atol=2e-4, rtol=0)
    assert abs(float(ScaledTanh()(torch.tensor(100.0))) - 1.7159) < 1e-6


def test_map_loss_is_the_papers_formula():
    scores = -torch.tensor([[3.0, 1.0, 7.0], [0.5, 9.0, 2.0]])
    target = torch.tensor([1, 0])
    j = 4.0
    y = -scores
    expected = torch.stack([y[k, target[k]] + torch.log(torch.exp(torch.tensor(-j)) + torch.exp(-y[k]).sum())
                            for k in range(2)]).mean()
    torch.testing.assert_close(lecun_map_loss(scores, target, j=j), expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_spec_round_trip_rebuilds_the_model(arch):
    model = build_model(arch)
    spec = ArchSpec.from_json(model.spec.to_json())
    assert spec == model.spec
    clone = build_model(spec)
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, spec.input_size, spec.input_size)
    torch.testing.assert_close(clone(x), model(x))


def test_spec_rejects_unknown_names():
    d = spec_for("lenet5").to_dict()
    with pytest.raises(SpecError, match="unknown arch 'lenet7'"):
        ArchSpec.from_dict({**d, "arch": "lenet7"})
    with pytest.raises(SpecError, match="unknown pooling 'median'"):
        ArchSpec.from_dict({**d, "pooling": "median"})
    with pytest.raises(SpecError, match="unknown spec field"):
        ArchSpec.from_dict({**d, "dropout": 0.5})
    with pytest.raises(SpecError, match="missing"):
        ArchSpec.from_dict({k: v for k, v in d.items() if k != "head"})
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{")


def test_lenet5_preprocessing_is_the_papers():
    pre = spec_for("lenet5").preprocessing
    assert pre.normalize(0) == pytest.approx(-0.1)
    assert pre.normalize(255) == pytest.approx(1.175)
    assert pre.pad == 2


def test_table_conv_training_and_inference_paths_agree():
    torch.manual_seed(1)
    conv = TableConv(LECUN_C3_TABLE).double()
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(5, 6, 14, 14, dtype=torch.float64)
    torch.testing.assert_close(conv.train()(x), conv.eval()(x))
    # gradients reach only the 1,516 real parameters
    conv.train()(x).sum().backward()
    assert conv.weight.grad.shape == (60, 5, 5) and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_weight_shapes_describe_the_model(arch):
    model = build_model(arch)
    assert weight_shapes(model.spec) == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rbf = spec_for(arch).head == "rbf"  # ten fixed prototypes: other names, not another count
    fashion = build_model(spec_for(arch, [f"c{i}" for i in range(10 if rbf else 7)]))
    assert weight_shapes(fashion.spec) == {k: tuple(v.shape) for k, v in fashion.state_dict().items()}


def test_the_wide_member_has_twice_the_maps_and_a_full_c3():
    """lenet5-wide: LeNet-5 with C1 12, C3 32, C5 240 (F6 stays 84: the RBF prototypes are 7×12);
    LeCun's Table I connects 6 maps to 16, so its C3 reads every map and a spec that says
    otherwise is refused."""
    model = build_model("lenet5-wide")
    assert (model.c1.out_channels, model.c3.out_channels, model.c5.out_channels, model.f6.out_features) == (12, 32, 240, 84)
    with pytest.raises(SpecError, match="c3_table"):
        ArchSpec.from_dict({**spec_for("lenet5-wide").to_dict(), "c3_table": "lecun"})
