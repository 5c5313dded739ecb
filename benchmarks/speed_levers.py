"""Measure each speed lever of a cell's training on this machine and print a table.

Variants are interleaved and repeated and the table gives the median of the repeats, so a neighbour's load shifts
all of them alike; processes that must not share state (torch.compile, parallel processes) run as children. Run
with nothing else heavy on the machine for absolute figures; the ratios are what to read.

  python -m benchmarks.speed_levers training --repeats 3      # channels_last, threads, fused AdamW, bf16 autocast
  python -m benchmarks.speed_levers training --variants "1 thread" "1 thread, fused AdamW" \
      "1 thread, shortcut convolutions" "1 thread, shortcut convolutions, fused AdamW" --batch 10   # as workers train
  python -m benchmarks.speed_levers training --separate --variants "torch.compile (inductor)"   # compile time + gain
  python -m benchmarks.speed_levers parallel --repeats 3      # two 1-thread processes vs one 2-thread process
  python -m benchmarks.speed_levers probe                     # linear probe: today's fits vs warm-started along C
  python -m benchmarks.speed_levers eval                      # cost of one validation pass vs one training step
  python -m benchmarks.speed_levers overhead                  # DVC's own time + process start-ups, 1-step training
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pretraining_gap.config import Backbone, SklearnDigits
from tests.study_repo import ROOT

BACKBONE = Backbone(model="tf_efficientnet_lite0", weights="package")

# name: keyword arguments of measure_steps
TRAINING_VARIANTS = {
    "2 threads, channels_last (the first baseline)": dict(threads=2, channels_last=1),
    "contiguous (NCHW) memory": dict(threads=2, channels_last=0),
    "1 thread": dict(threads=1, channels_last=1),
    "fused AdamW": dict(threads=2, channels_last=1, fused=1),
    "bf16 autocast (AMX)": dict(threads=2, channels_last=1, bf16=1),
    "torch.compile (inductor)": dict(threads=2, channels_last=1, compile=1),
    "1 thread, fused AdamW": dict(threads=1, channels_last=1, fused=1),
    "1 thread, shortcut convolutions": dict(threads=1, channels_last=1, shortcut=1),
    "1 thread, shortcut convolutions, fused AdamW": dict(threads=1, channels_last=1, shortcut=1, fused=1),
}


def _data(resolution: int = 32):
    from pretraining_gap.data import datasets

    digits = SklearnDigits(
        source="sklearn_digits", resolution=resolution, val_per_class=20, test_per_class=50, split_seed=0
    )
    return datasets.prepare("digits", digits, sizes=[50])


def _model(regime: str, num_classes: int = 10):
    from pretraining_gap.training import backbones

    return backbones.create(BACKBONE, num_classes, pretrained=regime != "scratch", seed=1)


def measure_steps(
    regime: str,
    steps: int,
    threads: int,
    channels_last: int,
    fused: int = 0,
    bf16: int = 0,
    batch: int = 32,
    compile: int = 0,
    shortcut: int = 0,
    data=None,
) -> dict:
    """Images/s of `steps` training steps (after 5 warm-up steps), as the study's fit() does them."""
    import torch
    import torch.nn.functional as F

    from pretraining_gap.training import backbones, convolutions, loop

    torch.set_num_threads(threads)
    data = data or _data()
    model = convolutions.shortcut(_model(regime)) if shortcut else _model(regime)
    mean, std = backbones.normalisation(model)
    x = loop.to_input(data.images[:500], mean, std)
    if not channels_last:
        x = x.contiguous()
    y = torch.from_numpy(data.labels[:500])
    model = model.to(memory_format=torch.channels_last) if channels_last else model
    loop.set_train_mode(model, loop.batchnorms(model) if regime == "finetune" else ())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, weight_decay=0.05, **({"fused": True} if fused else {})
    )
    generator = torch.Generator().manual_seed(0)
    compile_seconds = 0.0
    forward = model
    if compile:
        start = time.perf_counter()
        forward = torch.compile(model)
    timings, cpu = [], []
    for step in range(steps + 5):
        t, c = time.perf_counter(), time.process_time()
        idx = torch.randint(0, len(x), (batch,), generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(bf16)):
            loss = F.cross_entropy(forward(loop.shift(x[idx], 0.1, generator)), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        timings.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if compile and step == 0:
            compile_seconds = time.perf_counter() - start
    seconds = sum(timings[5:])
    return {
        "images_per_second": steps * batch / seconds,
        "images_per_cpu_second": steps * batch / sum(cpu[5:]),
        "compile_seconds": compile_seconds,
    }


def measure_eval(regime: str, threads: int) -> dict:
    """Seconds of one validation pass (200 images) and of one training step, at batch 32, on the CPU."""
    import torch

    from pretraining_gap.training import backbones, loop

    torch.set_num_threads(threads)
    data = _data()
    model = _model(regime).to(memory_format=torch.channels_last)
    mean, std = backbones.normalisation(model)
    val = loop.to_input(data.images[:200], mean, std), torch.from_numpy(data.labels[:200])
    cpu = torch.device("cpu")
    loop.evaluate(model, *val, cpu)
    start = time.perf_counter()
    for _ in range(3):
        loop.evaluate(model, *val, cpu)
    eval_seconds = (time.perf_counter() - start) / 3
    step = measure_steps(regime, 20, threads, 1)
    return {"eval_seconds": eval_seconds, "step_seconds": 32 / step["images_per_second"]}


def _child(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.speed_levers", "_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def _args(regime: str, steps: int, variant: dict) -> list[str]:
    return [regime, str(steps), *[f"--{k}={v}" for k, v in variant.items()]]


def training_table(
    regimes: list[str], steps: int, repeats: int, variants: list[str], separate: bool, batch: int
) -> None:
    """Variants interleaved, in this process (a fresh model each) or, with `separate`, one process each."""
    rows = {(r, v): [] for r in regimes for v in variants}
    data = None if separate else _data()
    for _ in range(repeats):
        for regime in regimes:
            for name in variants:
                variant = {**TRAINING_VARIANTS[name], "batch": batch}
                rows[regime, name].append(
                    _result(_child(_args(regime, steps, variant)))
                    if separate
                    else measure_steps(regime, steps, data=data, **variant)
                )
    print(
        f"\nTraining throughput, digits 32 px, tf_efficientnet_lite0, batch {batch}, {steps} steps, "
        f"median of {repeats}"
    )
    print(
        "img/CPU-s: images per second of this process's CPU time (all its threads), steadier than wall time "
        "on a shared machine"
    )
    print(
        f"{'regime':9} {'variant':44} {'img/s':>7} {'vs today':>8} {'img/CPU-s':>9} {'vs today':>8} {'compile s':>9}"
    )

    def median(regime, name, key):
        return statistics.median(r[key] for r in rows[regime, name])

    for regime in regimes:
        base = median(regime, variants[0], "images_per_second")
        base_cpu = median(regime, variants[0], "images_per_cpu_second")
        for name in variants:
            ips, cps = (
                median(regime, name, "images_per_second"),
                median(regime, name, "images_per_cpu_second"),
            )
            print(
                f"{regime:9} {name:44} {ips:7.0f} {ips / base:7.2f}x {cps:9.0f} {cps / base_cpu:7.2f}x "
                f"{median(regime, name, 'compile_seconds'):9.1f}"
            )


def parallel_table(regime: str, steps: int, repeats: int) -> None:
    """Throughput of the machine: one process with 2 threads vs two concurrent 1-thread processes."""
    one, two = [], []
    for _ in range(repeats):
        one.append(
            _result(_child(_args(regime, steps, {"threads": 2, "channels_last": 1})))["images_per_second"]
        )
        procs = [_child(_args(regime, steps, {"threads": 1, "channels_last": 1})) for _ in range(2)]
        two.append(sum(_result(p)["images_per_second"] for p in procs))
    a, b = statistics.median(one), statistics.median(two)
    print(f"\n{regime}: machine throughput, median of {repeats}")
    print(f"  1 process x 2 threads : {a:6.0f} img/s")
    print(f"  2 processes x 1 thread: {b:6.0f} img/s  ({b / a:.2f}x)")


def probe_fits(train_x, train_y, val_x, val_y, Cs, warm: bool) -> tuple[object, float, float, int]:
    """(chosen model, its C, its validation accuracy, lbfgs iterations over the grid). warm=False is
    regimes.linear today: an independent fit from zero per C; warm=True continues each fit from the previous C's."""
    import copy

    from sklearn.linear_model import LogisticRegression

    model, best, iterations = LogisticRegression(max_iter=2000, warm_start=warm), None, 0
    for c in sorted(Cs):
        model.set_params(C=c).fit(train_x, train_y)
        iterations += int(model.n_iter_.max())
        accuracy = model.score(val_x, val_y)
        if best is None or accuracy > best[2]:  # ties: the strongest regularisation
            best = (copy.deepcopy(model), c, accuracy)
    return (*best, iterations)


def probe_table(sizes: list[int], seeds: list[int], Cs: list[float]) -> None:
    """Today's linear probe (independent lbfgs fits) vs warm-started fits along the C grid, same features."""
    from pretraining_gap.data import subsets
    from pretraining_gap.data.prepared import POOL, TEST, VAL
    from pretraining_gap.training import device, features

    data = _data()
    feats = features.extract(BACKBONE, data.images, device.choose())
    val, test = data.part(VAL), data.part(TEST)
    print(f"\nLinear probe on {feats.shape[1]}-d features, C grid {Cs}")
    print(
        f"{'size':>4} {'seed':>4} {'today s':>8} {'warm s':>7} {'iters':>6} {'iters':>6} {'C today':>8} "
        f"{'C warm':>7} {'val today':>9} {'val warm':>8} {'test today':>10} {'test warm':>9}"
    )
    totals = np.zeros(4)
    for seed in seeds:
        orderings = subsets.class_orderings(data.labels, data.part(POOL), seed)
        for n in sizes:
            idx = subsets.subset(orderings, n)
            args = (feats[idx], data.labels[idx], feats[val], data.labels[val], Cs)
            runs = []
            for warm in (False, True):
                start = time.perf_counter()
                runs.append((*probe_fits(*args, warm=warm), time.perf_counter() - start))
            (old, c_old, v_old, i_old, t_old), (new, c_new, v_new, i_new, t_new) = runs
            totals += (t_old, t_new, i_old, i_new)
            print(
                f"{n:4} {seed:4} {t_old:8.2f} {t_new:7.2f} {i_old:6} {i_new:6} {c_old:8g} {c_new:7g} {v_old:9.3f} "
                f"{v_new:8.3f} {old.score(feats[test], data.labels[test]):10.3f} "
                f"{new.score(feats[test], data.labels[test]):9.3f}",
                flush=True,
            )
    print(
        f"total: today {totals[0]:.1f} s / {totals[2]:.0f} lbfgs iterations, warm-started {totals[1]:.1f} s / "
        f"{totals[3]:.0f} iterations"
    )


def overhead_table() -> None:
    """DVC's own time and the stages' process start-ups, from `dvc repro` of the default grid with training cut to
    one step and the probe to one C: the same stages, processes and order as the study, only shorter cells.

    DVC's own time = the `dvc repro` wall - its stage commands' walls (each timed by /usr/bin/time, added to the
    commands of the copy's dvc.yaml). A stage's start-up = the wall of `python stages/<stage>.py --help`
    (interpreter and imports); train adds the start of the workers' server (its imports of torch and timm; they
    overlap the stage's MLflow set-up, so counting them in full is an upper bound).
    """
    import tempfile

    import yaml

    from pretraining_gap import config, execution, parallel
    from tests.study_repo import make_study_repo, study_env

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["training"].update(min_steps=1, max_steps=1, ladder=[1])
    raw["regimes"]["linear"]["C"] = [1]
    with tempfile.TemporaryDirectory() as work:
        repo = make_study_repo(Path(work) / "repo", config.validate(raw))
        times = Path(work) / "times.txt"
        pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
        for stage in pipeline["stages"].values():
            stage["cmd"] = f"/usr/bin/time -a -o {times} -f '%e %C' {stage['cmd']}"
        (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=repo, env=study_env(repo), check=True, capture_output=True)
        wall = time.perf_counter() - start
        commands = [(float(line.split()[0]), line.split()[2]) for line in times.read_text().splitlines()]
    startups = {}
    for _, script in commands:
        if script not in startups:
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, script, "--help"],
                    cwd=ROOT,
                    env=study_env(ROOT),
                    check=True,
                    capture_output=True,
                )
                runs.append(time.perf_counter() - started)
            startups[script] = statistics.median(runs)
    started = time.perf_counter()
    execution.start_workers()  # as the train stage starts them: a server that preloads the training code
    list(parallel.run(abs, [1, 2], execution.workers()))
    server = time.perf_counter() - started
    dvc_own = wall - sum(seconds for seconds, _ in commands)
    startup = sum(startups[script] for _, script in commands) + server
    print(
        f"\ndvc repro, default grid, training cut to 1 step: {wall:.1f} s wall, {len(commands)} stage commands"
    )
    for script, seconds in startups.items():
        print(f"  {script:24} start-up {seconds:4.1f} s x {sum(s == script for _, s in commands)}")
    print(f"  workers' server start  {server:4.1f} s")
    print(f"DVC's own time {dvc_own:.1f} s + process start-ups {startup:.1f} s = {dvc_own + startup:.1f} s")


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        child = argparse.ArgumentParser()
        child.add_argument("regime")
        child.add_argument("steps", type=int)
        for key in ("threads", "channels_last", "fused", "bf16", "batch", "compile", "shortcut", "eval"):
            child.add_argument(f"--{key}", type=int, default=argparse.SUPPRESS)
        a = vars(child.parse_args(sys.argv[2:]))
        result = measure_eval(a["regime"], a["threads"]) if a.pop("eval", 0) else measure_steps(**a)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed_levers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("lever", choices=["training", "parallel", "probe", "eval", "overhead"])
    parser.add_argument(
        "--regimes", nargs="+", default=["finetune", "scratch"], choices=["finetune", "scratch"]
    )
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    parser.add_argument(
        "--batch",
        type=int,
        default=32,
        help="training: images per step (the study's subsets of 1/class train at 10)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the table shows medians")
    parser.add_argument(
        "--variants", nargs="+", default=list(TRAINING_VARIANTS), help="training variants to run"
    )
    parser.add_argument(
        "--separate",
        action="store_true",
        help="training: each measurement in its own process (needed for torch.compile's cost)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 5, 10, 25, 50], help="probe: sizes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="probe: seeds")
    parser.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1, 1, 10, 100], help="probe: C grid")
    args = parser.parse_args()
    if args.lever == "training":
        training_table(args.regimes, args.steps, args.repeats, args.variants, args.separate, args.batch)
    elif args.lever == "parallel":
        for regime in args.regimes:
            parallel_table(regime, args.steps, args.repeats)
    elif args.lever == "probe":
        probe_table(args.sizes, args.seeds, args.C)
    elif args.lever == "overhead":
        overhead_table()
    else:
        for regime in args.regimes:
            for threads in (2, 1):
                r = _result(_child([regime, "0", f"--threads={threads}", "--eval=1"]))
                print(
                    f"{regime} {threads} thread(s): validation pass (200 images) {r['eval_seconds']:.3f} s "
                    f"= {r['eval_seconds'] / r['step_seconds']:.1f} training steps of 32"
                )


if __name__ == "__main__":
    main()
