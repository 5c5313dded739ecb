"""Horizontal fusion (Wang et al., "Horizontally Fused Training Array", MLSys 2021): N trainings of one
architecture computed as one model, so each operation does the N members' work.

The members are ordinary models of the same architecture (e.g. timm's tf_efficientnet_lite0), with their own
weights, batch-norm statistics and modes; they share the batch size. `Fused(members)` runs them on
member-stacked channels: activations are (B, N*C, H, W) in channels-last memory, member i owning channels
[i*C, (i+1)*C). Each member's parameters stay its own leaf tensors (the fused layers concatenate them per forward),
so one optimiser with a param group per member gives each member its own learning rate, schedule, weight decay
and AdamW state, and `members[i].state_dict()` is always member i's model as trained. Members never mix: a
member's gradient is the one it gets when trained alone (tests/test_fusion.py checks whole trainings in float64).

Per layer, in the fastest exact form measured for its shape (python -m benchmarks.fusion_speed layers):
- convolution: one convolution with N times the groups (a member's dense convolution is one group, its depthwise
  convolution C groups), its kernel cut to the taps that can meet the input (convolutions.cut); a 1x1
  convolution as one batched matrix product, N matrix products or one grouped convolution by map and batch size
  (`_pointwise_form`); on a CPU, a depthwise convolution whose output map has no more positions than its kernel
  has taps gets its weight gradient as a sum over the taps (`depthwise_taps`: oneDNN's took 10-50x longer);
- batch norm: one over N*C channels (per-channel statistics are per-member statistics, exactly); the updated
  running statistics are written back to each member's buffers; a member whose batch norm is in eval mode
  (frozen statistics) keeps its running statistics while the others use their batch's;
- group norm: one over N*C channels in N times the groups (a member's groups are its own channels' groups);
- linear (the classifier): one batched matrix product;
- parameter-free modules (activations, pooling, residual additions) act on the stacked tensor as they are.

`loop.fit` drives it: one AdamW with every member's param groups, one schedule over all; the members of a cell
share its data order and augmentation draws, so a step's batch is one (B, C, H, W) tensor; `member_losses` gives
the N losses, whose sum is backpropagated; a member that stops early or diverges leaves the fused model, which is
built again from the others, and with `zero_grad(set_to_none=True)` its parameters get no gradient, so AdamW
leaves them, its state and its weight decay alone. tests/test_fusion.py trains members with their own subsets and
data order too (fusing the seeds of a size would need that), tests/test_loop.py a cell's grid through loop.fit.
In float64 a fused member ends on the weights it reaches alone; in float32 the forms sum in other orders, and
AdamW turns those round-off differences into lr-sized ones within steps, as any change of kernels does: a cell's
float32 weights depend on whether, and with which members, it was fused (bitwise; the accuracies differ within
seed noise, docs/performance.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import convolutions

# The forms below are exact alike; which one runs is a measured choice (python -m benchmarks.fusion_speed layers
# compares them layer by layer). Set these to force one form in measurements; None chooses by the rules.
POINTWISE: str | None = None  # 1x1 convolutions: "linear" (N matrix products), "bmm" or "grouped"
TAPS: bool | None = None  # depthwise weight gradients as sums over taps


class Fused(nn.Module):
    """N members of one architecture as one model.

    members: models with the same modules and parameter shapes, on one device. Supported layers: nn.Conv2d
    (zero padding, no dilation; timm's Conv2dSame), 2-d batch norm and group norm (timm's BatchNormAct2d and
    GroupNormAct too), nn.Linear on
    (B, features); parameter-free modules as they are, except dropout and drop-path (their random masks would
    differ from the member's own). Raises ValueError for other layers or mismatched members.

    forward(x): x (N, B, C, H, W), member i's images in x[i], or (B, C, H, W) shared by every member (validation);
    returns logits (N, B, classes). Train/eval mode: `fused.train()` / `.eval()` set every member's; a member's
    batch-norm module put in eval mode afterwards keeps its running statistics (frozen batch norm).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        _check_same(members)
        self.members = nn.ModuleList(members)
        first = members[0]
        # The body is member 0's module tree with every layer that holds tensors replaced by a fused layer over
        # the N members' layers; deepcopy shares (does not copy) member 0's tensors, which the body then drops.
        body = copy.deepcopy(first, memo={id(t): t for t in [*first.parameters(), *first.buffers()]})
        layers = [dict(m.named_modules()) for m in members]
        for name, module in first.named_modules():
            if isinstance(module, nn.Conv2d):
                fused = _Conv([layer[name] for layer in layers])
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                fused = _BatchNorm([layer[name] for layer in layers])
            elif isinstance(module, nn.GroupNorm):
                fused = _GroupNorm([layer[name] for layer in layers])
            elif isinstance(module, nn.Linear):
                fused = _Linear([layer[name] for layer in layers])
            elif any(True for _ in module.parameters(recurse=False)) or any(
                True for _ in module.buffers(recurse=False)
            ):
                raise ValueError(f"{name}: fusion has no fused form of {type(module).__name__}")
            elif (
                (isinstance(module, nn.Dropout) and module.p > 0)
                or getattr(module, "drop_prob", 0) > 0
                or getattr(module, "drop_rate", 0) > 0
            ):  # timm's classifier dropout is F.dropout
                raise ValueError(
                    f"{name}: {type(module).__name__} draws random masks; fused members would not "
                    "train as they do alone (create the models with drop rates 0)"
                )
            else:
                continue
            parent, _, leaf = name.rpartition(".")
            setattr(body.get_submodule(parent) if parent else body, leaf, fused)
        self.body = body

    @property
    def n(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(self.n, *x.shape)
        n, b, c, h, w = x.shape
        if n != self.n:
            raise ValueError(f"inputs for {n} members given to {self.n} fused members")
        stacked = (
            x.permute(1, 0, 2, 3, 4).reshape(b, n * c, h, w).contiguous(memory_format=torch.channels_last)
        )
        return self.body(stacked).view(b, n, -1).transpose(0, 1)


def member_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member over its batch: logits (N, B, classes), labels (N, B) -> (N,).

    Backward through `.sum()` gives each member the gradient of its own mean loss, as when it trains alone.
    """
    n, b, k = logits.shape
    return (
        F.cross_entropy(logits.reshape(n * b, k), labels.reshape(n * b), reduction="none").view(n, b).mean(1)
    )


def _check_same(members: Sequence[nn.Module]) -> None:
    if not members:
        raise ValueError("no members to fuse")

    def shape(m: nn.Module) -> list:
        return [(name, type(module)) for name, module in m.named_modules()] + [
            (name, t.shape, t.dtype, t.device) for name, t in m.state_dict().items()
        ]

    first = shape(members[0])
    for i, m in enumerate(members[1:], 1):
        if shape(m) != first:
            raise ValueError(f"member {i} differs from member 0 in its modules or tensor shapes")


def _cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The members' tensors end to end (no copy for one member); None for absent ones (no bias)."""
    if tensors[0] is None:
        return None
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _part(tensors: Sequence[torch.Tensor | None], start: int, stop: int) -> list[torch.Tensor | None]:
    return [None if t is None else t[start:stop] for t in tensors]


class _Plan(NamedTuple):
    """How a fused convolution computes one input size: its form and its cut kernel (convolutions.cut)."""

    form: str  # "scale", "linear", "bmm", "grouped", "taps" or "conv"
    cut: convolutions.Cut


class _Conv(nn.Module):
    """N convolutions as one: input (B, N*Cin, H, W), output (B, N*Cout, H', W')."""

    def __init__(self, convs: list[nn.Conv2d]):
        super().__init__()
        c = convs[0]
        if c.dilation != (1, 1) or c.padding_mode != "zeros" or isinstance(c.padding, str):
            raise ValueError(f"fusion has no fused form of {c} (dilation, padding mode or string padding)")
        self.convs, self.n = tuple(convs), len(convs)
        self.depthwise = c.groups == c.in_channels == c.out_channels
        self.plans: dict[tuple[int, int, int, str], _Plan] = {}

    def plan(self, x: torch.Tensor) -> _Plan:
        """The form and cut kernel for inputs of x's batch size, map size and device."""
        batch, _, height, width = x.shape
        key = (batch, height, width, x.device.type)
        if key not in self.plans:
            self.plans[key] = self._plan(batch, height, width, x.device.type == "cpu")
        return self.plans[key]

    def _plan(self, batch: int, height: int, width: int, cpu: bool) -> _Plan:
        c = self.convs[0]
        cut = convolutions.cut(c, height, width)
        (rows, cols), (left, right, top, bottom) = cut.shape, cut.pad
        plain = rows * cols == 1 and c.stride == (1, 1) and max(cut.pad) == 0
        out_pixels = ((height + top + bottom - rows) // c.stride[0] + 1) * (
            (width + left + right - cols) // c.stride[1] + 1
        )
        if plain and self.depthwise:
            form = "scale"
        elif plain and c.groups == 1:
            form = POINTWISE or _pointwise_form(batch, height * width, cpu)
        elif self.depthwise and cpu and (out_pixels <= rows * cols if TAPS is None else TAPS):
            form = "taps"
        else:
            form = "conv"
        return _Plan(form, cut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan, c = self.plan(x), self.convs[0]
        rows, cols = plan.cut.rows, plan.cut.cols
        bias = _cat([conv.bias for conv in self.convs])
        if plan.form in ("linear", "bmm"):
            weights = [conv.weight[:, :, rows, cols] for conv in self.convs]
            pointwise = convolutions.pointwise_linear if plan.form == "linear" else pointwise_bmm
            return pointwise(x, weights, bias)
        weight = _cat([conv.weight for conv in self.convs])[:, :, rows, cols]
        if plan.form == "scale":
            return convolutions.scale(x, weight, bias)
        weight = weight.contiguous()  # oneDNN is slow on strided weights
        left, right, top, bottom = plan.cut.pad
        if (left, top) != (right, bottom):
            x, (top, left) = F.pad(x, plan.cut.pad), (0, 0)
        if plan.form == "taps":
            y = depthwise_taps(x, weight, c.stride, (top, left))
            return y if bias is None else y + bias.view(1, -1, 1, 1)
        return F.conv2d(x, weight, bias, c.stride, (top, left), 1, c.groups * self.n)


def _pointwise_form(batch: int, pixels: int, cpu: bool) -> str:
    """The fastest exact form of N 1x1 convolutions on this machine's CPU, by map and batch size.

    Measured with `python -m benchmarks.fusion_speed layers` (EfficientNet-Lite0, N = 10, batches 10 and 32, forward and
    backward against the N unfused convolutions): on 1x1 maps N matrix products (0.9x; a batched product ran
    0.3-1.0x, a grouped convolution 0.1-0.4x); with fewer than 1024 pixels in the batch one batched product
    (1.0-1.6x); with more, and at least 16 images, one grouped convolution (1.0x at 8x8, 0.7x at 16x16, where the
    batched product ran 0.7x and 0.5x). With one thread, a 1x1 kernel and fewer than 16 images torch computes a
    grouped convolution group by group, not with oneDNN.
    """
    if not cpu:
        return "grouped"
    if pixels == 1:
        return "linear"
    return "grouped" if batch >= 16 and batch * pixels >= 1024 else "bmm"


def pointwise_bmm(
    x: torch.Tensor, weights: Sequence[torch.Tensor], bias: torch.Tensor | None = None
) -> torch.Tensor:
    """N 1x1 convolutions as one batched matrix product.

    x (B, N*Cin, H, W), channels-last; weights: N tensors (Cout, Cin, 1, 1); bias (N*Cout,) or None;
    returns (B, N*Cout, H, W), channels-last.
    """
    b, nc, h, w = x.shape
    n = len(weights)
    # (N, B*H*W, Cin) as a strided view of the channels-last input, so that both the output and the input's
    # gradient come back channels-last (the other orientation hands later layers slow layouts)
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, n, nc // n).transpose(0, 1)
    y = torch.bmm(rows, torch.stack(weights).flatten(2).transpose(1, 2))  # (N, B*H*W, Cout)
    if bias is not None:
        y = y + bias.view(n, 1, -1)
    return y.transpose(0, 1).reshape(b, h, w, -1).permute(0, 3, 1, 2)


def depthwise_taps(
    x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int]
) -> torch.Tensor:
    """Depthwise convolution, symmetric zero padding, whose weight gradient is a sum over the kernel's taps.

    x (B, C, H, W), weight (C, 1, kh, kw) -> (B, C, H', W'); the same values and gradients as F.conv2d with
    groups=C. The forward pass and the input gradient are oneDNN's; its weight gradient took 10-50x longer than
    this sum on this CPU when the output map has no more positions than the kernel has taps.
    """
    return _DepthwiseTaps.apply(x, weight, stride, padding)


class _DepthwiseTaps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        # under autocast the forward convolved in the autocast dtype, which backward (outside autocast) must match
        x, weight = (t.to(grad.dtype) for t in ctx.saved_tensors)
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                ctx.stride,
                ctx.padding,
                (1, 1),
                False,
                (0, 0),
                weight.shape[0],
                (True, False, False),
            )[0]
        padded, (ho, wo) = F.pad(x, (pw, pw, ph, ph)), grad.shape[-2:]
        grad_w = torch.stack(
            [
                (grad * padded[:, :, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw]).sum(
                    (0, 2, 3)
                )
                for i in range(weight.shape[2])
                for j in range(weight.shape[3])
            ],
            1,
        )
        return grad_x, grad_w.view_as(weight), None, None


class _BatchNorm(nn.Module):
    """N batch norms as one over (B, N*C, H, W): per-channel statistics are per-member statistics."""

    def __init__(self, norms: list[nn.modules.batchnorm._BatchNorm]):
        super().__init__()
        first = norms[0]
        if first.momentum is None:
            raise ValueError(
                "fusion needs batch norm with a momentum (cumulative averages are not supported)"
            )
        self.norms = tuple(norms)
        # timm's BatchNormAct2d applies its dropout and activation after the normalisation
        self.drop = copy.deepcopy(getattr(first, "drop", nn.Identity()))
        self.act = copy.deepcopy(getattr(first, "act", nn.Identity()))
        if any(True for _ in [*self.drop.parameters(), *self.act.parameters()]):
            raise ValueError("fusion has no fused form of a batch norm's activation with parameters")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms, size = self.norms, x.shape[1] // len(self.norms)
        first, tracked = norms[0], norms[0].running_mean is not None
        weight, bias = _cat([m.weight for m in norms]), _cat([m.bias for m in norms])
        # the running statistics as copies, updated in place by F.batch_norm and written back below
        mean, var = (
            (torch.cat([m.running_mean for m in norms]), torch.cat([m.running_var for m in norms]))
            if tracked
            else (None, None)
        )
        # members in the same mode (batch statistics, or frozen running statistics) one after another: one call
        runs, start = [], 0
        for i in range(1, len(norms) + 1):
            if i == len(norms) or norms[i].training != norms[start].training:
                runs.append((start * size, i * size, norms[start].training or not tracked))
                start = i
        if len(runs) == 1:
            y = F.batch_norm(x, mean, var, weight, bias, runs[0][2], first.momentum, first.eps)
        else:
            y = torch.cat(
                [
                    F.batch_norm(
                        x[:, a:z], *_part((mean, var, weight, bias), a, z), batch, first.momentum, first.eps
                    )
                    for a, z, batch in runs
                ],
                1,
            )
        if tracked:
            with torch.no_grad():
                for i, m in enumerate(norms):
                    if m.training:  # F.batch_norm updated the concatenated statistics in place
                        m.running_mean.copy_(mean[i * size : (i + 1) * size])
                        m.running_var.copy_(var[i * size : (i + 1) * size])
                        m.num_batches_tracked.add_(1)
        return self.act(self.drop(y))


class _GroupNorm(nn.Module):
    """N group norms as one over (B, N*C, H, W): member i's G groups are groups [i*G, (i+1)*G) of N*G."""

    def __init__(self, norms: list[nn.GroupNorm]):
        super().__init__()
        self.norms = tuple(norms)
        self.groups, self.eps = norms[0].num_groups * len(norms), norms[0].eps
        # timm's GroupNormAct applies its dropout and activation after the normalisation
        self.drop = copy.deepcopy(getattr(norms[0], "drop", nn.Identity()))
        self.act = copy.deepcopy(getattr(norms[0], "act", nn.Identity()))
        if any(True for _ in [*self.drop.parameters(), *self.act.parameters()]):
            raise ValueError("fusion has no fused form of a group norm's activation with parameters")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = _cat([m.weight for m in self.norms]), _cat([m.bias for m in self.norms])
        return self.act(self.drop(F.group_norm(x, self.groups, weight, bias, self.eps)))


class _Linear(nn.Module):
    """N linear layers as one batched product: input (B, N*in), output (B, N*out)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.linears = tuple(linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"fused linear layers take (batch, members x features), not {tuple(x.shape)}")
        n, b = len(self.linears), x.shape[0]
        weight = torch.stack([m.weight for m in self.linears])  # (N, out, in)
        y = torch.bmm(x.view(b, n, -1).transpose(0, 1), weight.transpose(1, 2))  # (N, B, out)
        if self.linears[0].bias is not None:
            y = y + torch.stack([m.bias for m in self.linears]).unsqueeze(1)
        return y.transpose(0, 1).reshape(b, -1)
