"""The one folder the gate caches in, and what it keeps there.

`--cache-dir` / gate.yaml's `cache_dir` moves all of it; without them `GATE_CACHE_DIR`, else `~/.cache/sft-gate`.
Under it: `results/` (per-item results, gate.cache), `items/` (generated suites' items), `gguf/` (dequantised GGUF
models) and `nltk_data/` (the Punkt parameters IFEval needs).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_VARIABLE = "GATE_CACHE_DIR"


def cache_root(configured: str | Path | None = None) -> Path:
    """The cache folder: the configured one, else GATE_CACHE_DIR, else ~/.cache/sft-gate."""
    if configured:
        return Path(configured)
    return Path(os.environ.get(CACHE_DIR_VARIABLE) or Path.home() / ".cache" / "sft-gate")
