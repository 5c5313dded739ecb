"""The training loop: a cell's grid trained as one fused model gives each setting the run it has alone."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from pretraining_gap.config import Training
from pretraining_gap.training import backbones, loop

TRAINING = Training(
    batch_size=8,
    epochs=1,
    min_steps=12,
    max_steps=12,
    ladder=[0.5, 1],
    reduction_factor=2,
    climb_patience=1,
    min_gain=0.0,
    weight_decay=0.05,
    augment_shift=0.1,
    fused_members=4,
)
PLAN = loop.Budget(steps=12, batch_size=8, eval_every=3, patience=3)
LRS = [1e-3, 1e-2, math.inf, 3e-2]  # inf: that member's loss stops being finite at its second step


def member(lr: float, frozen_bn: bool, norm: str = "batch") -> loop.Member:
    """timm's 100k-parameter EfficientNet in float64, the same seeded init for every member (as in a cell); with
    GroupNorm in place of batch norm (scratch's other family) for `norm="group"`."""
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=4)
    model = (backbones.group_norm(model) if norm == "group" else model).double()
    return loop.Member(
        model, [{"params": list(model.parameters()), "lr": lr}], loop.batchnorms(model) * frozen_bn
    )


@pytest.fixture(scope="module")
def data():
    """Four classes, each a bright quadrant in noise."""
    torch.manual_seed(1)
    labels = torch.arange(60) % 4
    images = torch.rand(60, 3, 16, 16, dtype=torch.float64)
    for i, label in enumerate(labels.tolist()):
        images[i, :, 8 * (label // 2) :, 8 * (label % 2) :][:, :8, :8] += 2
    return (images[:40], labels[:40]), (images[40:], labels[40:])


def fit(members: list[loop.Member], data, fused_members: int = 4) -> list:
    training = TRAINING.model_copy(update={"fused_members": fused_members})
    return loop.fit(members, *data, PLAN, training, seed=7, device=torch.device("cpu"), evaluate_start=True)


@pytest.mark.parametrize("frozen_bn, norm", [(False, "batch"), (True, "batch"), (False, "group")])
def test_a_fused_grid_gives_each_setting_the_run_it_has_alone(data, frozen_bn, norm):
    """Float64: each member's validation history, stop, best step and best weights are those of its run alone;
    the member whose loss stops being finite is a Diverged result and takes nobody else with it."""
    fused = [member(lr, frozen_bn, norm) for lr in LRS]
    together = fit(fused, data)
    for lr, m, result in zip(LRS, fused, together):
        alone_member = member(lr, frozen_bn, norm)
        (alone,) = fit([alone_member], data)
        if math.isinf(lr):
            assert isinstance(result, loop.Diverged) and isinstance(alone, loop.Diverged)
            assert result.step == alone.step == 2
            continue
        assert result.steps == alone.steps and result.best_step == alone.best_step
        assert result.history["train_loss"][0] is None  # step 0, before training
        for key in ("step", "train_loss", "val_accuracy", "val_loss"):
            assert result.history[key][1:] == pytest.approx(alone.history[key][1:], rel=1e-6, abs=1e-6), key
        # to 1e-8 while steps move weights by ~lr: the largest differences are in biases that a training batch
        # norm follows, whose gradient is zero in exact arithmetic (AdamW makes round-off moves of them, as in
        # test_fusion.py)
        for key, value in m.model.state_dict().items():
            torch.testing.assert_close(
                value, alone_member.model.state_dict()[key], rtol=1e-9, atol=1e-8, msg=key
            )
    best_steps = [r.best_step for r in together if isinstance(r, loop.Fit)]
    assert min(best_steps) > 0 and len(set(best_steps)) > 1, best_steps  # they trained, on runs of their own


def test_more_settings_than_fused_members_train_in_groups_with_the_same_results(data):
    """fused_members caps a fused model's size: 3 settings 2 at a time end as all 3 together (float64)."""
    in_twos, all_three = (
        [member(lr, False) for lr in (1e-3, 1e-2, 3e-2)],
        [member(lr, False) for lr in (1e-3, 1e-2, 3e-2)],
    )
    for a, b in zip(fit(in_twos, data, fused_members=2), fit(all_three, data, fused_members=3)):
        assert a.best_step == b.best_step and a.history["val_loss"] == pytest.approx(
            b.history["val_loss"], rel=1e-6
        )
    for a, b in zip(in_twos, all_three):
        torch.testing.assert_close(a.model.state_dict(), b.model.state_dict(), rtol=1e-9, atol=1e-8)


def test_a_run_stopped_at_a_rung_and_resumed_is_one_run(data):
    """loop.Run: advanced to the first rung's end, then to the second, a member trains as in one call to the second
    (float64): the evaluation between them changes nothing, and the rate restarts warm at the rung (loop.cycles)."""
    data_train, data_val = data

    def run(stops: list[int]) -> loop.Run:
        done = loop.Run(
            [member(1e-2, False)], data_train, data_val, TRAINING, 7, torch.device("cpu"), [6, 12], 8
        )
        done.eval_every = 6
        for stop in stops:
            done.advance(stop)
        return done

    resumed, whole = run([6, 12]), run([12])
    assert resumed.fit(0).history["step"] == whole.fit(0).history["step"] == [6, 12]
    assert resumed.fit(0).history["val_loss"] == pytest.approx(whole.fit(0).history["val_loss"], rel=1e-12)
    torch.testing.assert_close(resumed.members[0].model.state_dict(), whole.members[0].model.state_dict())


def test_the_rate_cycles_anneal_at_every_rung_end():
    """loop.cycles: warm-up over a tenth of each cycle, cosine to (near) 0 at each end, then the peak again."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = loop.cycles(optimizer, [10, 20, 40])
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1.0)  # a one-step warm-up (a tenth of 10)
    assert max(rates[:10]) == pytest.approx(1.0) and rates[9] < 0.05  # annealed at the first rung's end
    assert rates[10] == pytest.approx(1.0) and rates[19] < 0.05  # restarted, annealed again
    assert rates[20] == pytest.approx(0.5) and rates[21] == pytest.approx(1.0) and rates[39] < 0.01
