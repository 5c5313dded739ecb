"""The device a process trains on, chosen when it starts work (not at import): a GPU when there is one; and the
precision training runs at there."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from .. import fingerprints

# None: by device (below); "float32", "bfloat16" or "float16" forces one on any device (the GPU check trains a
# cell at float32 and at bfloat16 to compare them: python -m pretraining_gap.gpu_check)
PRECISION: str | None = None


def choose() -> torch.device:
    """CUDA when available, else the CPU (the study never requires a GPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision(device: torch.device) -> tuple[bool, torch.dtype]:
    """(autocast on, its dtype): on CUDA mixed precision, bfloat16 where the GPU has it, else float16 (loop.fit
    scales its losses); float32 elsewhere; `PRECISION` when set."""
    if PRECISION is not None:
        dtype = getattr(torch, PRECISION)
        return dtype != torch.float32, dtype
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe(device: torch.device) -> str:
    """The device and its precision in words, for the train stage's log: 'cuda:0 (NVIDIA H100 80GB HBM3, 1 of 8
    GPUs), bfloat16 autocast' or 'the CPU, float32'."""
    mixed, dtype = precision(device)
    kind = f"{str(dtype).removeprefix('torch.')} autocast" if mixed else "float32"
    if device.type != "cuda":
        return f"the {device.type.upper()}, {kind}"
    index = device.index or 0
    name = torch.cuda.get_device_name(index)
    return f"cuda:{index} ({name}, 1 of {torch.cuda.device_count()} GPUs), {kind}"


def machine(device: torch.device) -> dict:
    """Where a cell trained, for its result: the device and precision, the CPU model, torch's threads, and the
    versions of Python and of the libraries whose kernels shape its numbers (cells move across machines by float
    round-off amplified by training: the seeds' spread is the measure to trust)."""
    return {
        "device": describe(device),
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "libraries": {"python": platform.python_version()}
        | {n: metadata.version(n) for n in fingerprints.LIBRARIES},
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
