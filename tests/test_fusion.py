"""Horizontal fusion must not change the science: a fused member trains to the weights it reaches alone."""

from __future__ import annotations

import copy
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from torch import nn

from pretraining_gap.training import convolutions, fusion, loop

BATCH, STEPS, WARMUP, MAX_SHIFT = 8, 6, 2, 0.1


def tiny(seed: int) -> nn.Module:
    """timm's 100k-parameter EfficientNet in float64, 10 classes, initialised from `seed`."""
    torch.manual_seed(seed)
    return timm.create_model("test_efficientnet", num_classes=10).double()


class Member:
    """One training as a cell runs it: its own model, subset, data order, augmentation draws and hyperparameters."""

    def __init__(self, model, pool, subset_seed, lr, weight_decay, frozen_bn):
        self.model, self.lr, self.weight_decay, self.frozen_bn = model, lr, weight_decay, frozen_bn
        chosen = torch.randperm(len(pool[0]), generator=torch.Generator().manual_seed(subset_seed))[:20]
        self.x, self.y = pool[0][chosen], pool[1][chosen]
        self.generator = torch.Generator().manual_seed(subset_seed)
        self.order, self.cursor = torch.randperm(len(self.x), generator=self.generator), 0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of a reshuffled epoch, as loop.fit draws it."""
        if self.cursor + BATCH > len(self.x):
            self.order, self.cursor = torch.randperm(len(self.x), generator=self.generator), 0
        idx = self.order[self.cursor : self.cursor + BATCH]
        self.cursor += BATCH
        return self.x[idx], self.y[idx]

    def groups(self) -> list[dict]:
        return [{"params": list(self.model.parameters()), "lr": self.lr, "weight_decay": self.weight_decay}]

    def set_train_mode(self) -> None:
        loop.set_train_mode(self.model, loop.batchnorms(self.model) if self.frozen_bn else ())


def schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay over STEPS, as loop.fit schedules every param group."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * min(s, STEPS) / STEPS)),
    )


def members(pool) -> list[Member]:
    """A pretrained-like member with frozen batch norm and two random inits training theirs; every member with
    its own learning rate, weight decay and subset."""
    pretrained = tiny(0)
    pretrained.load_state_dict(
        {
            k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
            for k, v in pretrained.state_dict().items()
        }
    )
    return [
        Member(pretrained, pool, 11, 1e-3, 0.05, frozen_bn=True),
        Member(tiny(1), pool, 12, 3e-3, 0.0, frozen_bn=False),
        Member(tiny(2), pool, 13, 1e-2, 0.1, frozen_bn=False),
    ]


def train_alone(member: Member, steps: int) -> dict[str, torch.Tensor]:
    """Today's path: the member's own model (channels-last, shortcut convolutions), loss and fused AdamW."""
    model = convolutions.shortcut(member.model.to(memory_format=torch.channels_last))
    optimizer = torch.optim.AdamW(member.groups(), fused=True)
    lr_schedule = schedule(optimizer)
    member.set_train_mode()
    for _ in range(steps):
        x, y = member.batch()
        loss = F.cross_entropy(model(loop.shift(x, MAX_SHIFT, member.generator)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
    return model.state_dict()


def train_fused(team: list[Member], stop_after: dict[int, int]) -> list[dict[str, torch.Tensor]]:
    """All members as one fused model and one AdamW (a param group per member); member i is dropped after
    stop_after[i] steps, as early stopping drops it."""
    optimizer = torch.optim.AdamW([g for m in team for g in m.groups()], fused=True)
    lr_schedule = schedule(optimizer)
    active = list(range(len(team)))
    for step in range(1, STEPS + 1):
        fused = fusion.Fused([team[i].model for i in active]).train()
        for i in active:
            team[i].set_train_mode()
        batches = [team[i].batch() for i in active]
        x = torch.stack([loop.shift(b[0], MAX_SHIFT, team[i].generator) for i, b in zip(active, batches)])
        loss = fusion.member_losses(fused(x), torch.stack([b[1] for b in batches])).sum()
        optimizer.zero_grad(set_to_none=True)  # a dropped member gets no gradient, so AdamW leaves it alone
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        active = [i for i in active if stop_after.get(i, STEPS) > step]
        if not active:
            break
    return [m.model.state_dict() for m in team]


def assert_same_state(fused: dict[str, torch.Tensor], alone: dict[str, torch.Tensor]) -> None:
    """Equal to 1e-9: trained weights agree to ~1e-14 while a step moves them ~1e-3; the largest differences,
    ~5e-10, are in biases followed by a training batch norm, whose gradient is zero in exact arithmetic (AdamW
    turns their round-off gradients into moves of that size, alone as fused)."""
    assert fused.keys() == alone.keys()
    for key in fused:
        torch.testing.assert_close(fused[key], alone[key], rtol=1e-9, atol=1e-9, msg=key)


@pytest.mark.parametrize(
    "pointwise, taps", [(None, None), ("linear", True), ("bmm", False), ("grouped", True)]
)
def test_a_fused_member_trains_to_the_weights_it_reaches_alone(monkeypatch, pointwise, taps):
    """Float64, warm-up and cosine AdamW, shift augmentation, own subsets and data order, per-member learning rate
    and weight decay, frozen batch norm beside training batch norm, one member dropped early: every member ends
    with the weights and batch-norm statistics it reaches alone (by the rules' forms and by each form forced)."""
    monkeypatch.setattr(fusion, "POINTWISE", pointwise)
    monkeypatch.setattr(fusion, "TAPS", taps)
    torch.manual_seed(0)
    pool = torch.rand(60, 3, 32, 32, dtype=torch.float64) * 2 - 1, torch.randint(0, 10, (60,))
    team, alone = members(pool), members(pool)
    initial = [copy.deepcopy(m.model.state_dict()) for m in team]
    stop_after = {2: 3}
    trained = train_fused(team, stop_after)
    for i, member in enumerate(alone):
        assert_same_state(trained[i], train_alone(member, stop_after.get(i, STEPS)))
        assert not torch.allclose(
            trained[i]["conv_stem.weight"], initial[i]["conv_stem.weight"]
        )  # it trained


def test_frozen_and_training_batch_norm_keep_their_statistics():
    """A frozen member's running statistics stay as they were; a training member's move as they do alone."""
    torch.manual_seed(0)
    pool = torch.rand(60, 3, 32, 32, dtype=torch.float64) * 2 - 1, torch.randint(0, 10, (60,))
    team = members(pool)[:2]
    before = [copy.deepcopy(m.model.state_dict()) for m in team]
    after = train_fused(team, {0: 2, 1: 2})
    assert all(
        torch.equal(after[0][k], before[0][k]) for k in after[0] if "running" in k or "num_batches" in k
    )
    assert after[1]["bn1.num_batches_tracked"].item() == 2
    assert not torch.equal(after[1]["bn1.running_mean"], before[1]["bn1.running_mean"])


def test_validation_forward_gives_each_members_eval_logits():
    """(B, C, H, W) images shared by every member: each member's logits in eval mode, as it computes them alone."""
    team = [tiny(seed) for seed in range(3)]
    for model in team:  # running statistics that differ between members
        model.train()(torch.randn(16, 3, 32, 32, dtype=torch.float64))
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    logits = fusion.Fused(team).eval()(x)
    assert logits.shape == (3, 5, 10)
    for model, fused in zip(team, logits):
        torch.testing.assert_close(fused, model.eval()(x), rtol=1e-10, atol=1e-12)


CONVOLUTIONS = {  # name: (conv, map side, batch)
    "depthwise 3x3 on a 1x1 map (scale)": (nn.Conv2d(6, 6, 3, padding=1, groups=6), 1, 4),
    "depthwise 3x3 on a 2x2 map (taps)": (nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), 2, 4),
    "depthwise 5x5 stride 2 same on 4x4 (taps)": (Conv2dSame(6, 6, 5, stride=2, groups=6, bias=False), 4, 4),
    "depthwise 3x3 stride 2 same on 9x9 (conv)": (Conv2dSame(6, 6, 3, stride=2, groups=6, bias=False), 9, 4),
    "dense 3x3 stride 2 on 5x5": (nn.Conv2d(4, 6, 3, stride=2, padding=1), 5, 4),
    "dense 3x3 on a 1x1 map (cut to 1x1)": (nn.Conv2d(4, 6, 3, padding=1), 1, 4),
    "grouped 3x3, 2 groups a member": (nn.Conv2d(4, 6, 3, padding=1, groups=2), 3, 4),
    "depthwise, 2 outputs a channel, on 2x2": (nn.Conv2d(3, 6, 3, padding=1, groups=3), 2, 4),
    "1x1 with bias on 1x1": (nn.Conv2d(5, 7, 1), 1, 4),
    "1x1 on 3x3": (nn.Conv2d(5, 7, 1, bias=False), 3, 4),
    "1x1 on 9x9, batch 16": (nn.Conv2d(5, 7, 1, bias=False), 9, 16),
}


@pytest.mark.parametrize("name", CONVOLUTIONS)
@pytest.mark.parametrize("pointwise", [None, "linear", "bmm", "grouped"])
def test_each_fused_convolution_form_computes_each_members_convolution(name, pointwise, monkeypatch):
    """Outputs and gradients (input, weight, bias) of every form equal the members' own convolutions."""
    monkeypatch.setattr(fusion, "POINTWISE", pointwise)
    conv, side, batch = CONVOLUTIONS[name]
    torch.manual_seed(0)
    convs = [copy.deepcopy(conv).double() for _ in range(3)]
    for c in convs:
        for p in c.parameters():
            nn.init.normal_(p)
    xs = [
        torch.randn(batch, conv.in_channels, side, side, dtype=torch.float64, requires_grad=True)
        for _ in convs
    ]
    stacked = torch.stack(xs)
    fused = fusion.Fused([nn.Sequential(c) for c in convs])
    flat = (
        stacked.permute(1, 0, 2, 3, 4)
        .reshape(batch, -1, side, side)
        .contiguous(memory_format=torch.channels_last)
    )
    out = fused.body(flat)
    grads = torch.randn_like(out)
    (out * grads).sum().backward()
    fused_grads = [[p.grad.clone() for p in c.parameters()] for c in convs]
    for c in convs:
        c.zero_grad()
    fused_input_grads = [x.grad.clone() for x in xs]
    per_member = out.shape[1] // 3
    for i, (c, x) in enumerate(zip(convs, xs)):
        x.grad = None
        alone = c(x)
        g = grads[:, i * per_member : (i + 1) * per_member]
        torch.testing.assert_close(
            out[:, i * per_member : (i + 1) * per_member], alone, rtol=1e-12, atol=1e-12
        )
        (alone * g).sum().backward()
        for p, fused_grad in zip(c.parameters(), fused_grads[i]):
            torch.testing.assert_close(fused_grad, p.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fused_input_grads[i], x.grad, rtol=1e-12, atol=1e-12)


def test_members_that_differ_or_draw_random_masks_are_refused():
    with pytest.raises(ValueError, match="member 1 differs"):
        fusion.Fused([tiny(0), timm.create_model("test_efficientnet", num_classes=5).double()])
    with pytest.raises(ValueError, match="random masks"):
        fusion.Fused([timm.create_model("test_efficientnet", drop_rate=0.2) for _ in range(2)])
    with pytest.raises(ValueError, match="no fused form of LayerNorm"):
        fusion.Fused([nn.Sequential(nn.LayerNorm(4)) for _ in range(2)])
