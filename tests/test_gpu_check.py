"""The GPU check's tiny mode (`make gpu-check TINY=1`): the same parts as on a GPU, at toy sizes, on this CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

from pretraining_gap import config

ROOT = Path(__file__).resolve().parents[1]


def test_the_tiny_gpu_check_runs_every_part_from_the_checkout(tmp_path):
    out = tmp_path / "check.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the checkout itself, as on a GPU box
    done = subprocess.run(
        [sys.executable, "-m", "pretraining_gap.gpu_check", "--tiny", "--no-dvc", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("missing: ") and "images/s" in done.stdout, done.stdout
    # the train stage's packing line (conftest: one worker)
    assert (
        "cells on the CPU, float32: 1 worker process, 1 thread each; a cell's settings trained" in done.stderr
    )
    report = json.loads(out.read_text())
    assert not [key for key, part in report.items() if isinstance(part, dict) and "error" in part], report
    assert report["environment"]["package"] == str(ROOT)
    study = report["study"]
    assert {name.split(" · ")[2].split("_")[0] for name in study["cells"]} == set(config.REGIMES)
    assert study["finished"] == len(study["cells"]) == 2 * len(config.REGIMES)  # 2 sizes; depth: one k
    rows = report["throughput"]["rows"]
    assert {(r["resolution"], r["dtype"]) for r in rows} == {
        (s, d) for s in (16, 32) for d in ("float32", "bfloat16")
    }
    assert all(r[k] > 0 for r in rows for k in ("plain", "fused 1", "fused 2"))
    assert all(v > 0 for v in report["forms"]["images_per_second"].values())
    accuracy = report["precision"]["accuracy"]
    assert len(accuracy["float32"]) == len(accuracy["bfloat16"]) == 2 and None not in accuracy["bfloat16"]
    default = report["default_study"]
    assert default["cell_seconds"] > 0 and 0 < default["trained"] <= default["cells"]
