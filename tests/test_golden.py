"""Golden numbers: one tiny cell per regime, trained by the library calls the train stage makes (regimes.runner
on regimes.CellInputs), its key numbers compared with those committed in tests/golden/regimes.json.

A behaviour change of the training code moves these numbers. When it is intended, the cells' identity must change
with it (the code digest of what the regime imports, pretraining_gap/fingerprints.py): then regenerate with
`python tests/test_golden.py --update` and commit the JSON. When it is not, it is a bug.

Float32 on one CPU thread: the training code casts its inputs to float32 (loop.to_input, features.extract), so a
float64 cell would need a dtype option it does not have. Float32 on one thread is deterministic on one machine;
another CPU can round differently, so the JSON names the CPU it was recorded on.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # `python tests/test_golden.py --update` finds conftest

from conftest import ROOT, tiny_params, tiny_weights  # noqa: E402
from pretraining_gap import config  # noqa: E402
from pretraining_gap.data.datasets import assign_split  # noqa: E402
from pretraining_gap.data.prepared import POOL, Prepared  # noqa: E402
from pretraining_gap.grid import Cell  # noqa: E402
from pretraining_gap.training import features, regimes  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "regimes.json"
CPU = torch.device("cpu")
RTOL = 1e-5  # float32 round-off on the same CPU is zero; this allows the last printed digits only
WHAT_TO_DO = (
    "a behaviour change of the training code. If intended, the cells' identity must change too (the code digest "
    "of the modules the regime imports, pretraining_gap/fingerprints.py, sees any edit of their syntax tree); "
    "regenerate with `python tests/test_golden.py --update` and commit tests/golden/regimes.json. If not intended, "
    "it is a bug. On another CPU than the JSON's, float32 round-off alone can move these numbers: regenerate there."
)


def golden_params(weights: Path) -> config.Params:
    """The tiny study's params with the shipped regime grids cut to two settings, 12-step budgets."""
    p = tiny_params(weights)
    p["regimes"] = yaml.safe_load((ROOT / "params.yaml").read_text())["regimes"]
    p["regimes"]["scratch"].update(lr=[0.03], group_norm_lr=[0.003])
    p["regimes"]["finetune"].update(lr=[0.001, 0.003], batchnorm=["frozen"])
    p["regimes"]["frozen"].update(lr=[0.001, 0.003], hidden=[16], dropout=[0.2])
    p["regimes"]["depth"].update(k=[2], lr=[0.001], lr_new=[0.01, 0.03])
    p["regimes"]["chainthaw"].update(lr=[0.001], batchnorm=["frozen", "train"], phase_budget=0.5)
    p["regimes"]["linear"].update(C=[0.01, 1, 100])
    p["regimes"]["pixels"].update(C=[0.1, 10])
    p["training"].update(min_steps=12, max_steps=12, batch_size=15, ladder=[0.5, 1, 2])
    return config.Params.model_validate(p)


def colours() -> Prepared:
    """Three colours under noise, 25 images each (16 x 16): every regime learns something in a few steps."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 25)
    images = rng.integers(0, 120, size=(len(labels), 16, 16, 3))
    images[np.arange(len(labels)), :, :, labels] += 40
    split = assign_split(labels, None, val_per_class=5, test_per_class=10, seed=0)
    return Prepared(images.astype(np.uint8), labels, split, ["red", "green", "blue"])


def numbers(outcome, model) -> dict:
    """A cell's key numbers: its validation curve, test accuracy and loss, what it chose, its final weights' norm."""
    found = {
        "val_accuracy": (outcome.history or {}).get("val_accuracy"),
        "val_loss": (outcome.history or {}).get("val_loss"),
        "best_val_accuracy": outcome.best_val_accuracy,
        "test_accuracy": outcome.test_accuracy,
        "test_loss": outcome.test_loss,
        "lr": outcome.lr,
        "C": outcome.C,
        "classifier": outcome.classifier,
        "trace_val_accuracy": _by_candidate(outcome, "best_val_accuracy"),
        "trace_steps": _by_candidate(outcome, "steps"),
        "val_accuracy_by_C": outcome.val_accuracy_by_C,
        "steps": outcome.steps,
    }
    if isinstance(model, torch.nn.Module):
        found["weights_norm"] = float(
            torch.cat([p.detach().double().flatten() for p in model.parameters()]).norm()
        )
    return {k: v for k, v in found.items() if v is not None}


def _by_candidate(outcome, key: str) -> dict | None:
    """One number per candidate the cell tried (its trace), by its options: 'lr=0.001 norm=batch' -> value."""
    return {
        " ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(e["options"].items())
        ): e.get(key)
        for e in outcome.trace or []
    } or None


def measure() -> dict[str, dict]:
    """Every regime's numbers on the colours set, on one CPU thread."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        params = golden_params(tiny_weights(Path(tmp) / "tiny.safetensors"))
        data = colours()
        feats = features.extract(params.backbones["tiny"], data.images, CPU)
        found = {}
        for regime in config.REGIMES:
            cell = Cell("colours", "tiny", regime, 10, 1, 2 if regime == "depth" else None)
            inputs = regimes.CellInputs.of(params, cell, data, data.part(POOL), feats, CPU)
            found[regime] = numbers(*regimes.runner(regime)(inputs))
    return found


def machine() -> dict:
    """The CPU's model name (Linux), else its architecture, and the torch version."""
    info = Path("/proc/cpuinfo")
    names = re.findall(r"model name\s*: (.*)", info.read_text()) if info.exists() else []
    return {"cpu": names[0] if names else platform.machine(), "torch": torch.__version__}


@pytest.fixture(scope="module")
def measured() -> dict[str, dict]:
    return measure()


@pytest.mark.parametrize("regime", config.REGIMES)
def test_each_regime_gives_its_golden_numbers(regime, measured):
    golden = json.loads(GOLDEN.read_text())
    expected, got = golden["regimes"][regime], measured[regime]
    assert set(got) == set(expected), f"{regime}: other numbers than recorded: {WHAT_TO_DO}"
    for key, value in expected.items():
        close = (
            got[key] == value
            if isinstance(value, str)
            else got[key] == pytest.approx(value, rel=RTOL, abs=1e-7)
        )
        assert close, f"{regime}.{key} is {got[key]}, recorded {value} on {golden['machine']}: {WHAT_TO_DO}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Record the golden numbers (tests/golden/regimes.json).")
    parser.add_argument("--update", action="store_true", help="write the JSON from this machine's run")
    if parser.parse_args().update:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"machine": machine(), "regimes": measure()}, indent=1) + "\n")
        print(f"wrote {GOLDEN}")
