"""Measure horizontal fusion (pretraining_gap/training/fusion.py) against training the members one after another.

One thread, timed in CPU seconds of this process (images/s per core; a busy neighbour shows less than in wall
time), training steps as a cell takes them (indexing each member's images with its own generator, the shift
augmentation, forward, backward, fused AdamW), EfficientNet-Lite0 with random weights. Variants are interleaved
within each repeat and the table gives medians of the repeats, so a neighbour's load shifts all of them alike.

  python -m benchmarks.fusion_speed steps   # the table: unfused vs fused, 32 and 96 px, batch 32 / 10
  python -m benchmarks.fusion_speed steps --resolutions 32 --batches 10 --members 1 10 --frozen-bn
  python -m benchmarks.fusion_speed profile --members 10   # where a step's time goes, by kind of operation
  python -m benchmarks.fusion_speed layers --members 10   # each layer alone: the plain module vs the fused forms

unfused  : the path before fusion, N models one after another (channels-last, convolutions.shortcut, fused AdamW
           each); the training loop trains a cell's grid as `fused N` (training.fused_members)
fused 1  : each member as a fused model of one (fusion's per-layer forms without fusion)
fused N  : the N members as one fused model, one AdamW with a param group (own learning rate) per member
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pretraining_gap.training import convolutions, fusion, loop

MODEL = "tf_efficientnet_lite0"
POOL = 64  # images each member draws its batches from


def models(n: int, frozen_bn: bool) -> list[torch.nn.Module]:
    import timm

    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        model = timm.create_model(MODEL, num_classes=10).to(memory_format=torch.channels_last)
        loop.set_train_mode(model, loop.batchnorms(model) if frozen_bn else ())
        out.append(model)
    return out


class Runner:
    """`steps(k)` takes k training steps of n members, one fused model of `fused` members at a time."""

    def __init__(self, n: int, fused: int, resolution: int, batch: int, frozen_bn: bool):
        self.members, self.batch, self.fused = models(n, frozen_bn), batch, fused
        self.images = torch.randn(POOL, 3, resolution, resolution)
        self.labels = torch.randint(0, 10, (POOL,))
        self.generators = [torch.Generator().manual_seed(i) for i in range(n)]
        if fused == 0:  # the path before fusion
            self.models = [convolutions.shortcut(m) for m in self.members]
            self.optimizers = [
                torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
                for m in self.members
            ]
        else:
            chunks = [self.members[i : i + fused] for i in range(0, n, fused)]
            self.models = [fusion.Fused(chunk) for chunk in chunks]
            self.optimizers = [
                torch.optim.AdamW(
                    [{"params": list(m.parameters()), "lr": 1e-3 * (1 + i)} for i, m in enumerate(chunk)],
                    weight_decay=0.05,
                    fused=True,
                )
                for chunk in chunks
            ]

    def steps(self, k: int) -> None:
        for _ in range(k):
            for index, (model, optimizer) in enumerate(zip(self.models, self.optimizers)):
                width = max(1, self.fused)
                generators = self.generators[index * width : (index + 1) * width]
                idx = [torch.randint(0, POOL, (self.batch,), generator=g) for g in generators]
                x = torch.stack([loop.shift(self.images[i], 0.1, g) for i, g in zip(idx, generators)])
                y = torch.stack([self.labels[i] for i in idx])
                if self.fused == 0:
                    loss = F.cross_entropy(model(x[0].contiguous(memory_format=torch.channels_last)), y[0])
                else:
                    loss = fusion.member_losses(model(x), y).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()


def flops_per_image(resolution: int) -> float:
    """Training FLOPs per image: 3x the forward pass's (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = models(1, False)[0].eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, resolution, resolution))
    return 3.0 * counter.get_total_flops()


def matmul_rate() -> float:
    """GFLOP per CPU-second of a 2048x2048 fp32 matrix product on this thread."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start, k = time.process_time(), 5
    for _ in range(k):
        a @ b
    return k * 2 * 2048**3 / (time.process_time() - start) / 1e9


def steps_table(args) -> None:
    rate = statistics.median(matmul_rate() for _ in range(3))
    print(
        f"images per CPU-second of one thread (per core); fp32 2048^2 matmul {rate:.0f} GFLOP/s; {MODEL}, batch norm "
        f"{'frozen' if args.frozen_bn else 'training'}; median of {args.repeats} interleaved repeats"
    )
    print(
        f"{'px':>3} {'batch':>5} {'N':>3} | {'images/s: unfused':>17} {'fused 1':>8} {'fused N':>8} | "
        f"{'fused N / unfused':>17} {'/ fused 1':>9} | {'% matmul: unfused':>17} {'fused N':>8}"
    )
    for resolution in args.resolutions:
        flops = flops_per_image(resolution)
        for batch in args.batches:
            for n in args.members:
                variants = {"unfused": 0, "fused 1": 1, "fused N": n}
                runners = {
                    name: Runner(n, fused, resolution, batch, args.frozen_bn)
                    for name, fused in variants.items()
                }
                steps = max(1, round(args.images / (n * batch)))
                rates = {name: [] for name in runners}
                for runner in runners.values():
                    runner.steps(1)  # warm-up: plans, allocator, oneDNN primitives
                for _ in range(args.repeats):
                    for name, runner in runners.items():
                        start = time.process_time()
                        runner.steps(steps)
                        rates[name].append(steps * n * batch / (time.process_time() - start))
                m = {name: statistics.median(r) for name, r in rates.items()}
                print(
                    f"{resolution:3} {batch:5} {n:3} | {m['unfused']:17.0f} {m['fused 1']:8.0f} {m['fused N']:8.0f} | "
                    f"{m['fused N'] / m['unfused']:16.2f}x {m['fused N'] / m['fused 1']:8.2f}x | "
                    f"{100 * m['unfused'] * flops / 1e9 / rate:16.1f}% {100 * m['fused N'] * flops / 1e9 / rate:7.1f}%",
                    flush=True,
                )


KINDS = [  # (kind, operators): the first kind whose list holds the operator's name counts its self time
    (
        "convolution forward / input gradient / weight gradient",
        ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::convolution"),
    ),
    (
        "matrix products (1x1 convolutions, classifier)",
        ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"),
    ),
    (
        "batch norm",
        (
            "aten::native_batch_norm",
            "aten::native_batch_norm_backward",
            "aten::_batch_norm_with_update",
            "aten::batch_norm_backward",
        ),
    ),
    (
        "activations",
        ("aten::hardtanh", "aten::hardtanh_", "aten::hardtanh_backward", "aten::clamp", "aten::clamp_"),
    ),
    (
        "elementwise and reductions (residuals, scales, tap sums)",
        ("aten::mul", "aten::add", "aten::add_", "aten::sum", "aten::mean", "aten::div"),
    ),
    (
        "copies: concatenated weights, layouts, padding",
        (
            "aten::cat",
            "aten::copy_",
            "aten::stack",
            "aten::clone",
            "aten::constant_pad_nd",
            "aten::fill_",
            "aten::zero_",
        ),
    ),
    ("optimizer (fused AdamW)", ("aten::_fused_adamw_",)),
    (
        "augmentation (shift)",
        ("aten::grid_sampler_2d", "aten::grid_sampler_2d_backward", "aten::affine_grid_generator"),
    ),
]


def profile_table(args) -> None:
    from torch.profiler import profile

    for resolution in args.resolutions:
        for batch in args.batches:
            n = args.members[0]
            print(
                f"\n{resolution} px, batch {batch}, {n} members: self CPU ms per step of all members, by kind"
            )
            columns = {}
            for name, fused in (("unfused", 0), ("fused 1", 1), (f"fused {n}", n)):
                runner = Runner(n, fused, resolution, batch, args.frozen_bn)
                runner.steps(2)
                with profile() as prof:
                    runner.steps(args.steps)
                totals = {kind: 0.0 for kind, _ in KINDS}
                totals["other (dispatch, autograd, small operators)"] = 0.0
                for event in prof.key_averages():
                    if event.key.startswith("ProfilerStep") or event.self_cpu_time_total <= 0:
                        continue
                    kind = next(
                        (k for k, ops in KINDS if event.key in ops),
                        "other (dispatch, autograd, small operators)",
                    )
                    totals[kind] += event.self_cpu_time_total / 1000 / args.steps
                columns[name] = totals
            names = list(columns)
            print(f"{'kind':58} " + " ".join(f"{name:>10}" for name in names))
            for kind in columns[names[0]]:
                if any(columns[name][kind] for name in names):
                    print(f"{kind:58} " + " ".join(f"{columns[name][kind]:10.1f}" for name in names))
            print(f"{'total':58} " + " ".join(f"{sum(columns[name].values()):10.1f}" for name in names))


def _time(fn, repeats: int) -> float:
    """Median CPU seconds of fn() over `repeats` timed blocks (torch.utils.benchmark)."""
    from torch.utils import benchmark

    return statistics.median(
        benchmark.Timer("fn()", globals={"fn": fn}, timer=time.process_time)
        .blocked_autorange(min_run_time=0.2)
        .median
        for _ in range(repeats)
    )


def layers_table(args) -> None:
    """Each convolution and batch norm of the model alone, forward + backward: N unfused layers vs fused forms."""
    import copy

    n, batch = args.members[0], args.batches[0]
    for resolution in args.resolutions:
        model = convolutions.shortcut(models(1, False)[0])
        inputs = {}

        def record(module, args, output, inputs=inputs):
            inputs[module] = args[0].shape

        hooks = [
            m.register_forward_hook(record)
            for m in model.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))
        ]
        model.eval()(torch.randn(1, 3, resolution, resolution).contiguous(memory_format=torch.channels_last))
        model.train()
        for h in hooks:
            h.remove()
        print(
            f"\n{resolution} px, batch {batch}, {n} members: microseconds forward + backward of each layer kind, "
            "summed over the model's layers of that kind and map size (median of repeats)"
        )
        rows = {}
        for layer, shape in inputs.items():
            c, h, w = shape[1:]
            members = [copy.deepcopy(layer) for _ in range(n)]
            if isinstance(layer, torch.nn.BatchNorm2d):
                kind, settings = "batch norm", {}
            elif layer.kernel_size == (1, 1):
                kind = "1x1 convolution"
                settings = {f"fused {form}": {"POINTWISE": form} for form in ("linear", "bmm", "grouped")}
            elif layer.groups == c:
                kind = "depthwise convolution"
                settings = {"fused conv": {"TAPS": False}, "fused taps": {"TAPS": True}}
            else:
                kind, settings = "dense convolution", {"fused grouped": {}}
            settings["fused by the rules"] = {}
            xs = [
                torch.randn(batch, c, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()
                for _ in range(n)
            ]

            # backward from a dense gradient: a .sum()'s expanded one sends oneDNN down slow paths
            grads = [torch.randn_like(m(x)) for m, x in zip(members, xs)]

            def unfused(members=members, xs=xs, grads=grads):
                for m, x, g in zip(members, xs, grads):
                    m(x).backward(g)

            times = {"unfused": _time(unfused, args.repeats)}
            stacked = (
                torch.randn(batch, n * c, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()
            )
            grad = torch.cat(grads, 1)
            for name, constants in settings.items():
                saved = {k: getattr(fusion, k) for k in constants}
                for k, v in constants.items():
                    setattr(fusion, k, v)
                body = fusion.Fused([torch.nn.Sequential(m) for m in members]).body
                body(stacked)  # plans the forms under these constants
                for k, v in saved.items():
                    setattr(fusion, k, v)
                times[name] = _time(lambda body=body, x=stacked, g=grad: body(x).backward(g), args.repeats)
            key = (kind, f"{h}x{w}")
            for name, t in times.items():
                rows.setdefault(key, {}).setdefault(name, 0.0)
                rows[key][name] += t * 1e6
        for (kind, size), times in rows.items():
            base = times["unfused"]
            print(
                f"{kind:22} {size:>5}  unfused {base:8.0f}  "
                + "  ".join(
                    f"{name} {t:8.0f} ({base / t:.2f}x)" for name, t in times.items() if name != "unfused"
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["steps", "profile", "layers"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 96], help="image side, pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 10], help="images per member per step")
    parser.add_argument(
        "--members", type=int, nargs="+", default=[1, 3, 5, 10, 15], help="N, members trained together"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the table gives medians")
    parser.add_argument(
        "--images", type=int, default=640, help="training images per member set per timed block"
    )
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument(
        "--frozen-bn", action="store_true", help="batch norm in eval mode (finetune) instead of training"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"steps": steps_table, "profile": profile_table, "layers": layers_table}[args.command](args)


if __name__ == "__main__":
    main()
