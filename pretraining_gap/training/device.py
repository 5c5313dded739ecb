"""The device a process trains on, chosen when it starts work (not at import): a GPU when there is one."""

from __future__ import annotations

import torch


def choose() -> torch.device:
    """CUDA when available, else the CPU (the study never requires a GPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
