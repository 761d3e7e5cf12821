"""The `code` suite: HumanEval as lm-eval's task, generated code run only on opt-in, in a confining sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lm_eval.tasks
import pytest
import yaml
from click.testing import CliRunner

from gate.ci.action import ActionConfig, run_gate
from gate.cli import main
from gate.errors import BadInputError, ExitCode
from gate.sandbox import Limits, code_execution_allowed, network_isolation, run_program
from gate.suites import bare_task_manager, load_suite, prepare_tasks

FIXTURE = Path(__file__).parent / "data" / "mirror-new-tasks"
CODE = load_suite("code")
LM_EVAL_TASKS = Path(lm_eval.tasks.__file__).parent
# Tighter than the suite's limits, so the tests of programs that misbehave end sooner; the stop is the same.
TEST_LIMITS = Limits(cpu_seconds=1, memory_bytes=256 << 20, wall_seconds=4)


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The run's opt-in, as the runner enters it, with the tests' tighter limits."""
    monkeypatch.setattr("gate.sandbox.DEFAULT_LIMITS", TEST_LIMITS)
    with code_execution_allowed():
        yield


@pytest.fixture(scope="module")
def humaneval() -> Any:
    """lm-eval's task object for the suite's humaneval, built from the fixture mirror."""
    (task,) = prepare_tasks(CODE, seed=1234, data_dir=FIXTURE)
    return bare_task_manager().load([task.lm_eval_config])["tasks"]["humaneval"]


def _doc(humaneval: Any, index: int = 0) -> dict[str, Any]:
    return dict(humaneval.eval_docs[index])


def test_the_task_is_lm_eval_s_humaneval(humaneval: Any) -> None:
    """Same prompt, target, stop sequences, greedy decoding, filter and unsafe mark as lm-eval's own config."""
    # Read without importing lm-eval's `!function` hooks (its humaneval hook loads a metric from the hub).
    theirs = yaml.safe_load((LM_EVAL_TASKS / "humaneval" / "humaneval.yaml").read_text().replace("!function ", ""))
    ours = humaneval.config
    assert (ours.doc_to_text, ours.doc_to_target, ours.unsafe_code) == (
        theirs["doc_to_text"], theirs["doc_to_target"], theirs["unsafe_code"])
    kwargs = ours.generation_kwargs
    assert kwargs["until"] == theirs["generation_kwargs"]["until"] and kwargs["do_sample"] is False
    assert [f["name"] for f in ours.filter_list] == [f["name"] for f in theirs["filter_list"]] == ["create_test"]
    doc = _doc(humaneval)
    assert humaneval.doc_to_text(doc) == doc["prompt"]


def test_the_canonical_solution_passes_and_a_wrong_one_fails(humaneval: Any, allowed: None) -> None:
    doc = _doc(humaneval)
    right = humaneval.process_results(doc, [doc["prompt"] + doc["canonical_solution"]])
    wrong = humaneval.process_results(doc, [doc["prompt"] + "    return None\n"])
    assert right == {"pass@1": 1} and wrong == {"pass@1": 0}


@pytest.mark.parametrize(
    "body",
    [
        "    while True:\n        pass\n",  # loops: the CPU limit or the wall-clock timeout stops it
        "    hoard = []\n    while True:\n        hoard.append(bytearray(64 << 20))\n",  # allocates without bound
        "    import socket\n    socket.create_connection(('1.1.1.1', 53), timeout=5)\n    return []\n",  # network
        "    import urllib.request\n    urllib.request.urlopen('http://example.com', timeout=5)\n    return []\n",
    ],
    ids=["loops", "allocates", "opens-a-socket", "fetches-a-url"],
)
def test_a_misbehaving_program_is_stopped_and_scored_zero(humaneval: Any, allowed: None, body: str) -> None:
    doc = _doc(humaneval)
    assert humaneval.process_results(doc, [doc["prompt"] + body]) == {"pass@1": 0}


def test_the_sandbox_stops_programs_for_the_stated_reason(tmp_path: Path, allowed: None) -> None:
    limits = TEST_LIMITS
    assert run_program("assert sum(range(10)) == 45", limits).passed
    assert run_program("while True: pass", limits).reason in {"killed by SIGXCPU", "killed by SIGKILL", "timeout"}
    assert run_program("import time; time.sleep(60)", limits).reason == "timeout"
    assert run_program("x = bytearray(512 << 20)", limits).reason == "exit 1"  # MemoryError under RLIMIT_AS
    # No network: in a namespace the socket has no route; under the guard it cannot be made at all.
    connect = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=5)"
    assert run_program(connect, limits).reason == "exit 1", network_isolation()
    # A temporary working folder: what the program writes there is gone afterwards, and it does not see ours.
    (tmp_path / "secret.txt").write_text("x")
    probe = f"import os\nopen('left.txt', 'w').write('x')\nassert not os.path.exists('secret.txt')\n" \
            f"assert os.getcwd() != {str(tmp_path)!r}"
    assert run_program(probe, limits).passed


def test_no_program_runs_outside_the_run_s_opt_in(humaneval: Any, tmp_path: Path) -> None:
    """Even a task config without lm-eval's unsafe mark cannot run a program: the sandbox itself refuses."""
    marker = tmp_path / "ran"
    doc = _doc(humaneval)
    with pytest.raises(BadInputError, match="--allow-code-execution"):
        humaneval.process_results(doc, [doc["prompt"] + f"    open({str(marker)!r}, 'w')\n    return []\n"])
    with pytest.raises(BadInputError, match="has not allowed"):
        run_program(f"open({str(marker)!r}, 'w')")
    assert not marker.exists()


def test_the_action_never_takes_the_opt_in_from_the_change_s_gate_yaml(tmp_path: Path) -> None:
    """In a pull request gate.yaml is the change's: its allow_code_execution is refused (exit 2) before scoring."""
    (tmp_path / "gate.yaml").write_text("suite: code\nallow_code_execution: true\n")
    env = {"GITHUB_WORKSPACE": str(tmp_path), "INPUT_CHECKPOINT": "smollm2-135m-instruct",
           "INPUT_CONFIG": "gate.yaml", "INPUT_COMMENT": "false", "INPUT_CACHE-DIR": ".gate-cache"}
    config = ActionConfig.from_env(env)
    with pytest.raises(BadInputError, match="allow-code: code-execution") as refused:
        run_gate(config)
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    assert not (tmp_path / "gate-out").exists()


def test_a_code_suite_is_refused_without_the_opt_in(tmp_path: Path) -> None:
    """Exit 2 naming the flag, before any model is scored."""
    result = CliRunner().invoke(main, ["run", "--ckpt", "smollm2-135m-instruct", "--suite", "code", "--data-dir",
                                       str(FIXTURE), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--allow-code-execution" in result.output and "humaneval" in result.output
    assert not (tmp_path / "out").exists()


def test_the_opt_in_reaches_the_sandbox_through_a_run(tmp_path: Path, tiny_model: Path) -> None:
    """`allow_code_execution` in gate.yaml runs the code suite end to end (a tiny random model writes the programs;
    the embedded model's run is in test_new_suites_embedded_model.py)."""
    config = tmp_path / "gate.yaml"
    config.write_text(json.dumps({"items": {"humaneval": 2}, "allow_code_execution": True}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--suite", "code",
                                       "--config", str(config), "--data-dir", str(FIXTURE), "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    (task,) = json.loads((out / "result.json").read_text())["tasks"]
    assert task["id"] == "humaneval" and task["n"] == 2 and task["delta"] == 0
    assert all(base in (0.0, 1.0) for _, base, _ in task["items"])
