"""Schedule-free AdamW (Defazio et al. 2024, the `schedulefree` package) against the protocol's warm-restarted cosine
cycles (loop.cycles), one run per arm up the whole ladder: validation accuracy at every rung and the seconds.

Does a short first rung choose as well? If schedule-free's run is already near its final accuracy at 0.5x or 1x
of the base budget, successive halving can cut there, and the ladder can start lower at the same fairness.

Each arm trains one candidate (below) at each size, seed 1, one thread, on params.yaml's digits split, through the
selection procedure (training/selection.py) with that one candidate, made to climb every rung (climb_patience:
the ladder's length). The schedule-free run has no schedule beyond its warm-up (a tenth of the first rung) and is
evaluated at its averaged weights (`optimizer.eval()`), with the batch-norm statistics recomputed there first for
the members that train theirs (the package's advice). Reads validation only. Example (about 30 minutes on one
core):
python -m benchmarks.schedule_free --sizes 1 10 --ladder 0.5 1 2 4 8
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import schedulefree
import torch

from benchmarks import schedules
from pretraining_gap.training import loop

ARMS = {  # an arm's one candidate: the options its params block gets
    "scratch bn": ("scratch", {"lr": [0.01], "group_norm_lr": None}),
    "scratch gn": ("scratch", {"lr": None, "group_norm_lr": [0.001]}),
    "finetune bn frozen": ("finetune", {"lr": [0.001], "batchnorm": ["frozen"]}),
    "finetune bn train": ("finetune", {"lr": [0.001], "batchnorm": ["train"]}),
    "frozen": ("frozen", {"lr": [0.001], "dropout": [0.2]}),
}
STATISTICS_BATCHES = 20  # at most, for the batch-norm statistics at the averaged weights


class ScheduleFreeRun(loop.Run):
    """loop.Run with schedule-free AdamW in place of AdamW and its cosine cycles, one member alone."""

    def __init__(self, members, train, val, cfg, seed, device, ends, batch_size, *args, **kwargs):
        super().__init__(members, train, val, cfg, seed, device, ends, batch_size, *args, **kwargs)
        self.fuse, self.batch_size = False, batch_size
        groups = [
            {"params": g["params"], "lr": g.get("initial_lr", g["lr"])} for g in self.optimizer.param_groups
        ]
        self.optimizer = schedulefree.AdamWScheduleFree(
            groups, weight_decay=cfg.weight_decay, warmup_steps=max(1, ends[0] // 10)
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)  # the rates as set
        self.optimizer.train()

    def record(self, models, step, skip=()):
        self.optimizer.eval()
        try:
            for i in self.active:
                self._statistics(self.members[i])
            return super().record(models, step, skip)
        finally:
            self.optimizer.train()

    @torch.no_grad()
    def _statistics(self, member: loop.Member) -> None:
        """Batch-norm running statistics recomputed at the averaged weights, on training batches (own draw)."""
        norms = [m for m in loop.batchnorms(member.model) if m not in member.eval_modules]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
        member.set_train_mode()
        x = self.train[0]
        draw = torch.Generator().manual_seed(0)
        for _ in range(min(STATISTICS_BATCHES, math.ceil(len(x) / self.batch_size))):
            member.model(x[torch.randint(len(x), (self.batch_size,), generator=draw)].to(self.device))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--ladder", type=float, nargs="+", default=[0.5, 1, 2, 4, 8])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()
    raw, data, orders, feats = schedules.digits()
    rungs = " / ".join(f"{m:g}x" for m in args.ladder)
    print(f"validation accuracy at {rungs} of the base budget")
    print(f"{'arm':20} {'per class':>9}  {'cosine cycles (one run)':44}  {'schedule-free (one run)':44}")
    for size in args.sizes:
        train_idx = np.sort(np.concatenate([order[:size] for order in orders.values()]))
        for name in args.arms:
            regime, block = ARMS[name]
            row = []
            for run in (loop.Run, ScheduleFreeRun):
                original, loop.Run = loop.Run, run  # selection.py builds its runs as loop.Run
                try:
                    accuracy, steps, seconds = schedules.one(
                        raw,
                        regime,
                        block,
                        args.ladder,
                        data,
                        train_idx,
                        feats,
                        size,
                        climb_patience=len(args.ladder),
                    )
                finally:
                    loop.Run = original
                row.append(
                    " / ".join(f"{a:.3f}" for a in accuracy.values()) + f" ({steps} steps, {seconds:.0f} s)"
                )
            print(f"{name:20} {size:9}  {row[0]:44}  {row[1]:44}", flush=True)


if __name__ == "__main__":
    main()
