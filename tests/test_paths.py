"""--cache-dir (gate.yaml's cache_dir) moves everything the gate caches, not only the per-item results."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.api import plan
from gate.config import load_config


def test_the_configured_cache_folder_holds_the_generated_items_and_nothing_goes_to_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "from-env"))
    chosen = tmp_path / "chosen"
    config = load_config(None).with_overrides(cache_dir=str(chosen), max_items=5)
    rows = plan(config, suite="core")
    assert rows and any((chosen / "items").iterdir())  # the core suite's generated items
    assert not (tmp_path / "from-env").exists()


def test_without_a_configured_folder_the_environment_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "from-env"))
    plan(load_config(None).with_overrides(max_items=5), suite="core")
    assert any((tmp_path / "from-env" / "items").iterdir())
