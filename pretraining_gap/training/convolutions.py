"""Exact, cheaper forms of the convolutions that small feature maps make wasteful.

At 32 px EfficientNet's last stages see 2x2 and 1x1 maps. A 5x5 depthwise kernel over a 1x1 map with padding 2
multiplies 24 of its 25 taps by padding zeros, and torch's CPU kernels for such shapes are slow (a 1x1 depthwise
convolution is one multiply per channel; a 1x1 pointwise convolution is a matrix product). `shortcut` makes a
model compute the same function and the same gradients with the taps that can meet real input only, and its
pointwise convolutions as matrix products: one-thread training steps of EfficientNet-Lite0 at 32 px ran 1.2-1.6x
as many images per second (tools/speed_levers.py training, README Performance). Taps that only ever meet padding
get a zero gradient either way; larger maps keep every tap, so nothing changes for them.
"""

from __future__ import annotations

import math
import types

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


def _cut_kernel_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    (h, w), (pad_h, pad_w) = x.shape[-2:], _padding(conv, *x.shape[-2:])
    (top, bottom, before_h, after_h), (left, right, before_w, after_w) = (
        used_taps(size, k, s, *pad)
        for size, k, s, pad in zip((h, w), conv.kernel_size, conv.stride, (pad_h, pad_w))
    )
    if (bottom - top + 1, right - left + 1) == conv.kernel_size or min(after_h, after_w) < 0:
        return type(conv).forward(
            conv, x
        )  # every tap is used (or the last input rows are skipped): as it was
    weight = conv.weight[
        :, :, top : bottom + 1, left : right + 1
    ].contiguous()  # mkldnn is slow on strided weights
    if (
        weight.shape[-2:] == (1, 1)
        and conv.groups == conv.in_channels == conv.out_channels
        and conv.stride == (1, 1)
        and before_h == after_h == before_w == after_w == 0
    ):
        y = x * weight.view(1, -1, 1, 1)  # a 1x1 depthwise convolution scales each channel
        return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1)
    if before_h == after_h and before_w == after_w:
        return F.conv2d(x, weight, conv.bias, conv.stride, (before_h, before_w), 1, conv.groups)
    return F.conv2d(
        F.pad(x, (before_w, after_w, before_h, after_h)), weight, conv.bias, conv.stride, 0, 1, conv.groups
    )


def _pointwise_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as a matrix product over the channel axis (a view of a channels-last tensor)."""
    y = F.linear(x.permute(0, 2, 3, 1), conv.weight.view(conv.out_channels, conv.in_channels), conv.bias)
    return y.permute(0, 3, 1, 2)


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
