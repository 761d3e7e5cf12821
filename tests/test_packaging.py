"""The wheel ships what a user's install needs: the suites, the templates, the type marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gate
from gate.suites import list_suites, load_suite, suites_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
    )
    (wheel,) = out.glob("sft_gate-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_wheel_carries_every_suite_file(wheel_names: set[str]) -> None:
    for path in (REPO / "suites").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"gate/suites/{path.relative_to(REPO / 'suites')}" in wheel_names


def test_wheel_carries_templates_and_marker(wheel_names: set[str]) -> None:
    for path in (REPO / "gate" / "report" / "templates").iterdir():
        assert f"gate/report/templates/{path.name}" in wheel_names
    assert "gate/py.typed" in wheel_names


def test_installed_package_finds_its_suites() -> None:
    assert "core" in list_suites()
    assert load_suite("core").tasks
    installed_from_source = Path(gate.__file__).resolve().parent == REPO / "gate"
    if not installed_from_source:  # `make test` installs a wheel: the suites must come from inside it
        assert suites_root().resolve().parent == Path(gate.__file__).resolve().parent
