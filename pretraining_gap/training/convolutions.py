"""Exact, cheaper forms of the convolutions that small feature maps make wasteful.

At 32 px EfficientNet's last stages see 2x2 and 1x1 maps. A 5x5 depthwise kernel over a 1x1 map with padding 2
multiplies 24 of its 25 taps by padding zeros, and torch's CPU kernels for such shapes are slow (a 1x1 depthwise
convolution is one multiply per channel; a 1x1 pointwise convolution is a matrix product). `shortcut` makes a
model compute the same function and the same gradients with the taps that can meet real input only, and its
pointwise convolutions as matrix products: one-thread training steps of EfficientNet-Lite0 at 32 px ran 1.2-1.6x
as many images per second (benchmarks/speed_levers.py training, docs/performance.md). Taps that only ever meet padding
get a zero gradient either way; larger maps keep every tap, so nothing changes for them. Fused members
(fusion.py) use the same cut kernels (`cut`) and forms (`scale`, `pointwise_linear`).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from torch import nn


def used_taps(size: int, kernel: int, stride: int, before: int, after: int) -> tuple[int, int, int, int]:
    """(first, last) kernel taps that meet the input somewhere, and the (before, after) padding that keeps the
    output's size and alignment when the kernel is cut to them."""
    out = (size + before + after - kernel) // stride + 1
    first, last = max(0, before - (out - 1) * stride), min(kernel - 1, size - 1 + before)
    new_before = before - first
    return first, last, new_before, (out - 1) * stride + last - first + 1 - size - new_before


def _padding(conv: nn.Conv2d, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(before, after) zero padding of the height and width, static or TensorFlow "same" (timm's Conv2dSame)."""
    if not isinstance(conv, Conv2dSame):
        return (conv.padding[0],) * 2, (conv.padding[1],) * 2
    pads = []
    for size, kernel, stride in zip((height, width), conv.kernel_size, conv.stride):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


class Cut(NamedTuple):
    """A convolution's kernel cut to the taps that can meet an input of one size."""

    rows: slice  # of the kernel's taps, kept
    cols: slice
    pad: tuple[
        int, int, int, int
    ]  # zero padding that keeps the output's size and alignment: F.pad's (l, r, t, b)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


def cut(conv: nn.Conv2d, height: int, width: int) -> Cut:
    """`conv`'s kernel cut to the taps that meet a height x width input, with the padding to go with it (zero
    padding, static or TensorFlow "same"). A dimension whose cut would skip the last input rows (a negative
    padding after) keeps its whole kernel and padding."""
    kept = []
    for size, kernel, stride, (before, after) in zip(
        (height, width), conv.kernel_size, conv.stride, _padding(conv, height, width)
    ):
        first, last, new_before, new_after = used_taps(size, kernel, stride, before, after)
        kept.append(
            (first, last, new_before, new_after) if new_after >= 0 else (0, kernel - 1, before, after)
        )
    (top, bottom, pad_top, pad_bottom), (left, right, pad_left, pad_right) = kept
    return Cut(slice(top, bottom + 1), slice(left, right + 1), (pad_left, pad_right, pad_top, pad_bottom))


def scale(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 depthwise convolution (stride 1, no padding) as what it is, a scale per channel: x (B, C, H, W),
    weight (C, 1, 1, 1), bias (C,) or None."""
    y = x * weight.reshape(1, -1, 1, 1)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def pointwise_linear(
    x: torch.Tensor, weights: Sequence[torch.Tensor], bias: torch.Tensor | None = None
) -> torch.Tensor:
    """N 1x1 convolutions (N = 1: one) as N matrix products over the channel axis, each on its own channel slice
    (fused members, fusion.py; no concatenated weights).

    x (B, N*Cin, H, W), channels-last; weights: N tensors (Cout, Cin, 1, 1); bias (N*Cout,) or None;
    returns (B, N*Cout, H, W), channels-last.
    """
    n = len(weights)
    # split, not slicing: its backward concatenates the N input gradients once
    parts = x.permute(0, 2, 3, 1).split(x.shape[1] // n, dim=-1)
    biases = [None] * n if bias is None else bias.chunk(n)
    ys = [F.linear(p, w.flatten(1), b) for p, w, b in zip(parts, weights, biases)]
    return (ys[0] if n == 1 else torch.cat(ys, -1)).permute(0, 3, 1, 2)


def _cut_kernel_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    kept = cut(conv, *x.shape[-2:])
    if kept.shape == conv.kernel_size:
        return type(conv).forward(
            conv, x
        )  # every tap is used (or the last input rows are skipped): as it was
    weight = conv.weight[:, :, kept.rows, kept.cols].contiguous()  # mkldnn is slow on strided weights
    left, right, top, bottom = kept.pad
    depthwise = conv.groups == conv.in_channels == conv.out_channels
    if depthwise and kept.shape == (1, 1) and conv.stride == (1, 1) and max(kept.pad) == 0:
        return scale(x, weight, conv.bias)
    if (left, top) == (right, bottom):
        return F.conv2d(x, weight, conv.bias, conv.stride, (top, left), 1, conv.groups)
    return F.conv2d(F.pad(x, kept.pad), weight, conv.bias, conv.stride, 0, 1, conv.groups)


def _pointwise_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as a matrix product over the channel axis (a view of a channels-last tensor)."""
    return pointwise_linear(x, [conv.weight], conv.bias)


def shortcut(model: nn.Module) -> nn.Module:
    """`model`, its zero-padded convolutions computed by the forms above; weights and state dict are untouched."""
    for conv in model.modules():
        if (
            not isinstance(conv, nn.Conv2d)
            or conv.dilation != (1, 1)
            or conv.padding_mode != "zeros"
            or isinstance(conv.padding, str)
        ):
            continue
        if (
            conv.kernel_size == (1, 1)
            and conv.stride == (1, 1)
            and conv.groups == 1
            and conv.padding == (0, 0)
        ):
            conv.forward = types.MethodType(_pointwise_forward, conv)
        elif conv.kernel_size != (1, 1):
            conv.forward = types.MethodType(_cut_kernel_forward, conv)
    return model
