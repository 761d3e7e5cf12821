"""The wheel ships what a user's install needs: the suites, the templates, the type marker."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import gate
from gate.suites import list_suites, load_suite, suites_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
    )
    (path,) = out.glob("sft_gate-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    return set(zipfile.ZipFile(wheel).namelist())


@pytest.fixture(scope="module")
def wheel_metadata(wheel: Path, wheel_names: set[str]) -> str:
    (name,) = [n for n in wheel_names if n.endswith(".dist-info/METADATA")]
    return zipfile.ZipFile(wheel).read(name).decode()


def test_wheel_carries_the_licence_and_tells_pypi_what_it_is(wheel_names: set[str], wheel_metadata: str) -> None:
    (licence,) = [n for n in wheel_names if n.endswith(".dist-info/licenses/LICENSE")]
    assert licence and "License-Expression: Apache-2.0" in wheel_metadata
    assert "Project-URL: Homepage, " in wheel_metadata and "Classifier: Typing :: Typed" in wheel_metadata
    assert "Provides-Extra: dev" not in wheel_metadata  # the dev tools are a dependency group, never published


def test_sdist_carries_the_licence(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(tmp_path)], cwd=REPO,
                   check=True, capture_output=True)
    (sdist,) = tmp_path.glob("sft_gate-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert "sft_gate-0.1.0/LICENSE" in names and "sft_gate-0.1.0/PKG-INFO" in names


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
