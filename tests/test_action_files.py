"""What the gate writes is readable by the next CI step: file and folder modes under the umask, and the Action
(running as root in its container) handing its outputs and cache to the workspace's owner."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gate.core_items import write_items
from gate.files import atomic_write_text, chown_tree

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
RUNNER_UID = 65534  # the workspace owner, as the runner user owns the checkout (nobody here)
STRANGER_UID = 54321  # any other unprivileged user, e.g. a later job's container user


@pytest.fixture()
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_atomic_writes_and_generated_items_get_plain_modes(tmp_path: Path, umask_022: None) -> None:
    atomic_write_text(tmp_path / "out" / "result.json", "{}")
    paths = write_items(tmp_path / "items", seed=1, pool_sizes=dict.fromkeys(_core_ids(), 3))
    assert _mode(tmp_path / "out" / "result.json") == 0o644
    assert {_mode(p) for p in paths.values()} == {0o644}
    assert _mode(tmp_path / "out") == _mode(tmp_path / "items") == 0o755
    os.umask(0o077)  # a stricter umask is honoured, not widened
    atomic_write_text(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600


def _core_ids() -> list[str]:
    from gate.core_items import GENERATORS

    return list(GENERATORS)


def test_chown_tree_does_not_follow_symlinks(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a")
    (tree / "link").symlink_to(outside)
    (tree / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    assert chown_tree([tree], RUNNER_UID, RUNNER_UID) == []
    assert {p.lstat().st_uid for p in [tree, tree / "sub", tree / "sub" / "a.txt", tree / "link"]} == {RUNNER_UID}
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0


def _as_user(uid: int, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "sh", "-c", script, "sh", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="runs the Action as root, as its Docker container does, then reads as other users")
def test_the_action_run_as_root_hands_readable_outputs_to_the_workspace_owner(
    tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    # Outside pytest's 0700 temp root: the unprivileged readers must be able to reach the workspace.
    host = Path(tempfile.mkdtemp(prefix="gate-action-files-", dir="/tmp"))
    try:
        host.chmod(0o755)
        workspace = host / "workspace"
        shutil.copytree(other_tiny_model, workspace / "checkpoints" / "lora-a")
        shutil.copytree(tiny_model, workspace / "models" / "base")
        shutil.copytree(tiny_suite, workspace / "suites" / "tiny")
        shutil.copytree(tiny_suite.parent / "mirror", workspace / "mirror")
        for path in [workspace, *workspace.rglob("*")]:
            os.chown(path, RUNNER_UID, RUNNER_UID)  # actions/checkout ran as the runner user
            path.chmod(0o755 if path.is_dir() else 0o644)
        inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        inputs.update({"checkpoint": "checkpoints/lora-a", "base": "models/base", "suite": "suites/tiny",
                       "data-dir": "mirror", "comment": "false", "github-token": ""})
        env = {**os.environ, **{f"INPUT_{k.upper()}": v for k, v in inputs.items()},
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}
        env.pop("GITHUB_STEP_SUMMARY", None)
        env.pop("GITHUB_OUTPUT", None)
        process = subprocess.run([sys.executable, "-m", "gate.ci.action"], cwd=workspace, env=env,
                                 capture_output=True, text=True, timeout=600, check=False,
                                 umask=0o022)
        result = json.loads((workspace / "gate-out" / "result.json").read_text())
        assert process.returncode == result["exit_code"], process.stdout + process.stderr
        assert "\r" not in process.stdout + process.stderr, "a progress bar drew in the workflow log"

        written = [workspace / "gate-out", workspace / ".gate-cache"]
        paths = [p for root in written for p in [root, *root.rglob("*")]]
        files = [p for p in paths if p.is_file()]
        assert {p.name for p in files} >= {"report.md", "result.json", "report.html"}
        assert any(".gate-cache" in p.parts for p in files), "the run cached nothing"
        assert {p: p.lstat().st_uid for p in paths} == dict.fromkeys(paths, RUNNER_UID)
        assert {p: _mode(p) for p in paths} == {p: 0o755 if p.is_dir() else 0o644 for p in paths}

        # Every file reads as another unprivileged user (the modes) and as the owner, who may also replace them.
        read_all = 'for f; do cat -- "$f" > /dev/null || exit 1; done'
        stranger = _as_user(STRANGER_UID, read_all, *map(str, files))
        assert stranger.returncode == 0, stranger.stderr
        owner = _as_user(RUNNER_UID, read_all, *map(str, files))
        assert owner.returncode == 0, owner.stderr
        removed = _as_user(RUNNER_UID, 'rm -r -- "$@"', *map(str, written))
        assert removed.returncode == 0 and not any(p.exists() for p in written), removed.stderr
    finally:
        shutil.rmtree(host, ignore_errors=True)
