"""Provenance of a run: the installed versions and the machine that produced the numbers."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE_PACKAGES = ("sft-gate", "lm_eval", "transformers", "torch", "peft", "numpy", "scipy")


def installed_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each named distribution ("not installed" where absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    versions = installed_versions(PROVENANCE_PACKAGES)
    versions["python"] = sys.version.split()[0]
    versions["platform"] = platform.platform()
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform.processor() below is the portable, vaguer answer
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def hardware(device: str) -> dict[str, Any]:
    """The machine that produced the numbers: CPU model, cores, memory, and the torch device that scored."""
    import torch

    accelerator = "none"
    if device == "cuda" and torch.cuda.is_available():
        accelerator = torch.cuda.get_device_name(0)
    elif device == "mps":
        accelerator = "Apple MPS"
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(),
        "torch_device": device, "accelerator": accelerator, "torch_threads": torch.get_num_threads(),
    }
