"""The GPU check's measurements (gpu_check.py runs them): each part returns a plain dict for the JSON file.

Every part trains through the study's own code: cells with execution.train_cell on planning.plan's jobs, fused
members with fusion.Fused as loop.fit builds them, precision through training.device (the policy loop.fit reads).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import config, execution, parallel, planning
from .data import datasets, subsets
from .training import device as devices
from .training import features, fusion, loop

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ("dvc.yaml", "stages", "pretraining_gap")  # a study's files beside params.yaml
DVC_FILES = (".dvc/config", ".dvc/plots")  # the project's DVC settings and `dvc plots show` templates


def environment(device: torch.device) -> dict:
    """Versions, and the device: name, memory, count, driver (NVML) and CUDA."""
    import timm

    found = {
        "package": str(ROOT),  # the checkout whose pretraining_gap ran (no install step)
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "device": f"CPU ({platform.machine()})",
        "cpus": parallel.available_cores(),
        "driver": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        found.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1))
        found.update(gpus=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
        if importlib.util.find_spec("pynvml"):
            import pynvml

            pynvml.nvmlInit()
            found["driver"] = pynvml.nvmlSystemGetDriverVersion()
    return found


class Utilisation:
    """NVML's GPU utilisation (percent) sampled every `every` seconds while `with` runs; nothing without NVML."""

    def __init__(self, device: torch.device, every: float = 0.5):
        self.samples: list[int] = []
        self.every, self.handle, self.stop = every, None, threading.Event()
        if device.type == "cuda" and importlib.util.find_spec("pynvml"):
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)

    def __enter__(self) -> Utilisation:
        if self.handle is not None:
            threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self) -> None:
        import pynvml

        while not self.stop.wait(self.every):
            self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def summary(self) -> dict:
        if not self.samples:
            return {"why": "not sampled: no GPU or no NVML (pip install nvidia-ml-py, or make gpu-bundle)"}
        return {
            "mean_percent": round(float(np.mean(self.samples)), 1),
            "busy_fraction": round(float(np.mean([s >= 50 for s in self.samples])), 3),  # samples at >= 50 %
            "samples": len(self.samples),
        }


def prepare(params: config.Params, folder: Path, device: torch.device) -> tuple[Path, Path, Path]:
    """The prepare, subsample and features stages' outputs for the study's one dataset and backbone: the files
    (prepared .npz, subsets .json, features .npy) the train stage reads."""
    dataset, backbone = params.study.datasets[0], params.study.backbones[0]
    files = folder / f"{dataset}.npz", folder / "subsets.json", folder / "features.npy"
    data = datasets.prepare(dataset, params.datasets[dataset], params.study.sizes)
    data.save(files[0])
    subsets.save(files[1], subsets.by_seed(data, params.study.seeds))
    np.save(files[2], features.extract(params.backbones[backbone], data.images, device))
    return files


def jobs(
    params: config.Params, files: tuple[Path, Path, Path], out: Path
) -> tuple[list[execution.Job], dict]:
    """The train stage's jobs for `params` (planning.plan: longest first) and each cell's work (steps)."""
    dataset, backbone = params.study.datasets[0], params.study.backbones[0]
    prepared, subsets_file, features_file = files
    inputs = planning.Inputs.load(params, backbone, prepared, subsets_file, features_file)
    plan = planning.plan(params, dataset, backbone, inputs, out)
    return execution.plan_jobs(plan, params, prepared, features_file), plan.work


def _row(result) -> dict:
    return {
        "status": result.status,
        "test_accuracy": result.test_accuracy,
        "seconds": (result.finished_ms - result.started_ms) / 1000,
        "reason": result.reason,
    }


def study_cells(params: config.Params, files: tuple, out: Path) -> dict:
    """Every cell of the study as the train stage trains it (execution.dispatch: its workers or Ray)."""
    listed, _ = jobs(params, files, out)
    cells = {
        job.cell.run_name: _row(result) for job, result in execution.dispatch(listed, params, *files[::2])
    }
    return {
        "cells": cells,
        "finished": sum(c["status"] == "finished" for c in cells.values()),
        "regimes": params.study.regimes,
        "sizes": params.study.sizes,
    }


def cell_seconds(params: config.Params, files: tuple, out: Path, budget_s: float) -> dict:
    """Cell-seconds of the study: its cells one at a time in this process (as one GPU worker trains them) until
    `budget_s` has passed, the rest estimated from each regime's measured seconds per training step
    (regimes.work); cells on cached features or pixels (no steps) all run first (they are cheap)."""
    listed, work = jobs(params, files, out)
    ordered = [j for j in listed if not work[j.cell]] + _spread([j for j in listed if work[j.cell]], work)
    start, measured = time.perf_counter(), {}  # cell -> its row
    for job in ordered:
        if time.perf_counter() - start > budget_s:
            break
        with parallel.one_thread():
            measured[job.cell] = _row(execution.train_cell(job))
    rate = _seconds_per_step({c: m["seconds"] for c, m in measured.items() if work[c]}, work)
    left = [j.cell for j in listed if j.cell not in measured]
    estimated = sum(work[c] * rate.get(c.regime, rate.get(None, 0)) for c in left)
    total = sum(m["seconds"] for m in measured.values()) + estimated
    return {
        "cells": len(listed),
        "trained": len(measured),
        "estimated": bool(left),
        "cell_seconds": round(total, 1),
        "seconds_per_step": {k or "all": round(v, 4) for k, v in rate.items()},
        "failed": [c.run_name for c, m in measured.items() if m["status"] != "finished"],
    }


def _spread(listed: list, work: dict) -> list:
    """The gradient cells in an order that spans each regime's sizes early: per regime, smallest, largest, next
    smallest, ...; the regimes taken in turn."""
    by_regime: dict[str, list] = {}
    for job in sorted(listed, key=lambda j: work[j.cell]):
        by_regime.setdefault(job.cell.regime, []).append(job)
    turns = [[r[i // 2] if i % 2 == 0 else r[-1 - i // 2] for i in range(len(r))] for r in by_regime.values()]
    return [row[i] for i in range(max(map(len, turns), default=0)) for row in turns if i < len(row)]


def _seconds_per_step(seconds: dict, work: dict) -> dict:
    """Seconds per training step of each regime's measured cells, and of all of them (key None)."""
    rates = {}
    for regime in {c.regime for c in seconds} | {None}:
        chosen = [c for c in seconds if regime in (None, c.regime)]
        if chosen:
            rates[regime] = sum(seconds[c] for c in chosen) / max(1, sum(work[c] for c in chosen))
    return rates


def precision(params: config.Params, files: tuple, out: Path, seeds: tuple[int, ...]) -> dict:
    """The study's one finetune cell per seed at float32 and under bfloat16 autocast (float16 on a GPU without
    bfloat16; training.device.PRECISION): test accuracies side by side, and the largest difference against the
    seeds' spread (sample sd at float32)."""
    listed, _ = jobs(params, files, out)
    device = devices.choose()
    mixed = str(devices.precision(device)[1]).removeprefix("torch.") if device.type == "cuda" else "bfloat16"
    accuracy: dict[str, list] = {"float32": [], mixed: []}
    for job in sorted(listed, key=lambda j: j.cell.seed):
        for dtype, values in accuracy.items():
            devices.PRECISION = dtype
            with parallel.one_thread():
                result = execution.train_cell(job)
            values.append(result.test_accuracy if result.status == "finished" else None)
    devices.PRECISION = None
    fp32, bf16 = (np.array(accuracy[k], dtype=float) for k in ("float32", mixed))
    spread = float(np.std(fp32, ddof=1)) if len(fp32) > 1 else float("nan")
    largest = float(np.nanmax(np.abs(bf16 - fp32)))
    return {
        "cell": listed[0].cell.run_name.replace(f"seed {listed[0].cell.seed}", f"seeds {list(seeds)}"),
        "accuracy": accuracy,
        "seed_sd": round(spread, 4),
        "largest_difference": round(largest, 4),
        "beyond_seed_noise": bool(largest > spread),
    }


def throughput(
    model: str, resolutions, members, batch: int, timing_s: float, device: torch.device
) -> list[dict]:
    """Training images/s of fused models of each member count against the plain timm model (one setting at a
    time), per resolution and precision; 'out of memory' where the device has too little."""
    rows, mixed = [], devices.precision(device)[1] if device.type == "cuda" else torch.bfloat16
    for side in resolutions:
        for dtype in (torch.float32, mixed):  # float16 on a GPU without bfloat16
            row = {"resolution": side, "dtype": str(dtype).removeprefix("torch.")}
            for n in (0, *members):  # 0: the plain model
                key = "plain" if n == 0 else f"fused {n}"
                try:
                    row[key] = round(_images_per_second(model, n, side, batch, dtype, timing_s, device), 1)
                except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError in torch >= 2.5 too
                    row[key] = "out of memory"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(row)
    return rows


def pointwise_forms(model: str, side: int, n: int, batch: int, timing_s: float, device: torch.device) -> dict:
    """Images/s of `n` fused members at `side` px with each exact form of the 1x1 convolutions forced
    (fusion.POINTWISE), under the device's mixed precision: which form fusion._pointwise_form should choose on
    this device (on a CPU it was measured; on a GPU it chooses "grouped" untested)."""
    dtype = devices.precision(device)[1] if device.type == "cuda" else torch.float32
    found = {}
    try:
        for form in ("grouped", "bmm", "linear"):
            fusion.POINTWISE = form
            found[form] = round(_images_per_second(model, n, side, batch, dtype, timing_s, device), 1)
    finally:
        fusion.POINTWISE = None
    return {
        "resolution": side,
        "members": n,
        "dtype": str(dtype).removeprefix("torch."),
        "images_per_second": found,
    }


def _images_per_second(
    name: str, n: int, side: int, batch: int, dtype: torch.dtype, seconds: float, device: torch.device
) -> float:
    """Images/s of training steps (forward, backward, fused AdamW) of `n` fused members, or of the plain timm
    model when n is 0, on one shared batch (a cell's members share its data order), under autocast to `dtype`."""
    import timm
    from torch.utils import benchmark

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" on a CPU

    models = [timm.create_model(name, num_classes=10) for _ in range(max(1, n))]
    x = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (max(1, n), batch), device=device)
    if n == 0:
        model = models[0].to(device, memory_format=torch.channels_last).train()
    else:
        model = fusion.Fused([loop.to_device(m, device) for m in models]).train()
    optimizer = torch.optim.AdamW(
        [{"params": list(m.parameters()), "lr": 1e-3} for m in models], weight_decay=0.05, fused=True
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x)
            loss = F.cross_entropy(logits, y[0]) if n == 0 else fusion.member_losses(logits, y).sum()
        loss.backward()
        optimizer.step()

    step()  # warm-up: first-call allocations and kernel choices
    timed = benchmark.Timer("step()", globals={"step": step}).blocked_autorange(min_run_time=seconds)
    return max(1, n) * batch / timed.median


def dvc_study(raw: dict, folder: Path, path: list[str]) -> dict:
    """The study by `dvc repro` in a fresh git + DVC copy of this pipeline (params `raw`; `path` after the copy on
    the stages' import path), with its own MLflow store; skipped, with the reason, where git, DVC or MLflow is
    missing. Returns dvc's exit status, the cells' result files and, when it failed, its last lines."""
    absent = [tool for tool in ("git", "dvc") if shutil.which(tool) is None]
    absent += [] if importlib.util.find_spec("mlflow") else ["mlflow"]
    if absent:
        return {"skipped": f"{', '.join(absent)} not installed"}
    import yaml

    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), *path]), DVC_NO_ANALYTICS="1")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    for name in PIPELINE + DVC_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            shutil.copy(ROOT / name, folder / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    start = time.perf_counter()
    done = subprocess.run(["dvc", "repro"], cwd=folder, env=env, capture_output=True, text=True)
    cells = list((folder / "results" / "cells").rglob("*.json"))
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "returncode": done.returncode,
        "cell_files": len(cells),
        "tail": done.stderr[-2000:] * bool(done.returncode),
    }
