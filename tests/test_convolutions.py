"""The shortcut convolutions compute the same function and gradients, and do cut the kernels of small maps."""

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.profiler import profile

from pretraining_gap.training import convolutions


@pytest.mark.parametrize(
    "size, kernel, stride, before, after, expected",
    [
        (1, 5, 1, 2, 2, (2, 2, 0, 0)),  # a 1x1 map: only the centre tap
        (2, 5, 1, 2, 2, (1, 3, 1, 1)),  # a 2x2 map: the centre 3x3
        (2, 5, 2, 1, 2, (1, 2, 0, 0)),  # TF "same", stride 2, on 2 pixels: one output sees taps 1 and 2
        (32, 5, 1, 2, 2, (0, 4, 2, 2)),  # a large map uses every tap
    ],
)
def test_used_taps(size, kernel, stride, before, after, expected):
    assert convolutions.used_taps(size, kernel, stride, before, after) == expected


def _model():
    torch.manual_seed(0)
    return (
        timm.create_model("tf_efficientnet_lite0", num_classes=10)
        .double()
        .to(memory_format=torch.channels_last)
    )


@pytest.mark.parametrize("resolution", [32, 33, 64])  # 33: odd maps, asymmetric "same" padding
def test_same_outputs_and_gradients_as_the_plain_model(resolution):
    plain = _model()
    fast = convolutions.shortcut(copy.deepcopy(plain))
    x = torch.randn(3, 3, resolution, resolution, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.tensor([0, 1, 2])

    def run(model):
        model.zero_grad()
        out = model(x)
        F.cross_entropy(out, y).backward()
        return out, {n: p.grad for n, p in model.named_parameters()}

    (out_a, grads_a), (out_b, grads_b) = run(plain), run(fast)
    torch.testing.assert_close(out_b, out_a, rtol=1e-10, atol=1e-12)
    scale = max(g.abs().max() for g in grads_a.values())
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-8, atol=1e-10 * scale, msg=name)
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_small_maps_get_cut_kernels():
    model = convolutions.shortcut(_model().float())
    with profile(record_shapes=True) as prof:
        model(torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    shapes = [e.input_shapes for e in prof.events() if e.name == "aten::convolution"]
    kernels = {tuple(w[-2:]) for x, w, *_ in shapes if x[-2:] == [1, 1]}
    assert shapes and kernels <= {(1, 1)}, f"1x1 maps met kernels {kernels}"
    assert not any(x[-2:] == [1, 1] and w[1] == 1 for x, w, *_ in shapes), (
        "1x1 depthwise ran as a convolution"
    )
