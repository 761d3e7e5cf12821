"""The Action's trust boundary, probe by probe: each input an attacker with write access to a pull request could
commit, and what the gate does with it now (exit code, the one line, no token, the verdict unchanged)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_github import TOKEN
from fake_results import real_result, with_outcomes
from test_action import ROOT, env_for, stages

from gate.api import run
from gate.cache import ResultCache, _checksum
from gate.ci import action
from gate.ci.inert import INERT_PREFIX, InertStream
from gate.cli import main as cli
from gate.config import GateConfig, load_config
from gate.errors import MESSAGE_LIMIT, ConfigError, ExitCode, ModelRefError, SuiteError, one_line
from gate.items import ItemOutput
from gate.loading.references import resolve_model
from gate.report import render_html
from gate.report.markdown import render_markdown
from gate.suites import PreparedTask, TaskSpec, load_suite, prepare_tasks
from gate.templates import sandbox_lm_eval_templates

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
seed: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
FORGED = "x\n::error title=forged::the checkpoint is fine"
# The Action's container command, as the Dockerfile gives it, with this interpreter for `python`.
_ENTRYPOINT = json.loads(stages((ROOT / "Dockerfile").read_text())["action"].split("ENTRYPOINT ", 1)[1].splitlines()[0])
ACTION_COMMAND = [sys.executable if part == "python" else part for part in _ENTRYPOINT]


def one_error_line(text: str) -> str:
    """The single `gate: error:` line of a CLI run's output."""
    lines = [line for line in text.splitlines() if line.startswith("gate: error:")]
    assert len(lines) == 1, text
    return lines[0]


def action_process(workspace: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m gate.ci.action` as GitHub starts it, with HOME inside the test's folder."""
    home = workspace.parent / "home"
    home.mkdir(exist_ok=True)
    full = {**os.environ, **env, "HOME": str(home)}
    return subprocess.run(ACTION_COMMAND, cwd=workspace, env=full, capture_output=True, text=True, timeout=timeout,
                          check=False)


def no_forged_commands(output: str) -> None:
    """No line the runner would read as a workflow command, but the gate's own annotations."""
    for line in output.splitlines():
        if line.lstrip().startswith(("::", "##[")):
            ours = ("::error::gate", "::warning::", "::error title=gate ", "::warning title=gate ")
            assert line.startswith(ours) and not line.startswith("::error title=forged"), line


# --- 1. a committed, edited cache ------------------------------------------------------------------------------


def test_a_cache_folder_committed_in_the_change_is_refused(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git builds the checkout's index")
    workspace = tmp_path / "workspace"
    (workspace / ".gate-cache" / "results").mkdir(parents=True)
    (workspace / ".gate-cache" / "results" / "entry.json").write_text("{}")
    (workspace / "ckpt").mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "add", "."], check=True)
    env = env_for(workspace, checkpoint="ckpt", comment="off")
    assert action.main(env) == ExitCode.BAD_INPUT
    with pytest.raises(Exception, match=r"input 'cache-dir': \.gate-cache holds files committed in the checkout"):
        action.ActionConfig.from_env(env)
    action.ActionConfig.from_env({**env, "INPUT_CACHE-DIR": ".gate-cache-restored"})  # untracked: fine


def _forge(cache: Path, base_fingerprint: str) -> None:
    """Every cached base item scored 1 and every checkpoint item 0, checksums recomputed: a 'regression'."""
    for path in (cache / "results").rglob("*.json"):
        entry = json.loads(path.read_text())
        score = 1 if path.parent.name == base_fingerprint.replace("sha256:", "") else 0
        for item in entry["items"].values():
            item["score"] = score
        entry["sha256"] = _checksum(entry["items"])
        path.write_text(json.dumps(entry))


@pytest.mark.slow
def test_a_forged_cache_entry_changes_no_verdict_with_a_secret_and_is_reported_without(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    config = GateConfig(cache_dir=str(cache), max_items=12, mode="fixed")

    def gate(secret: str | None, out: Path) -> dict[str, Any]:
        result = run(str(other_tiny_model), base=str(tiny_model), config=config, suite=str(tiny_suite),
                     data_dir=tiny_suite.parent / "mirror", out_dir=out, cache_secret=secret)
        return result.to_dict()

    honest = gate("s3cret", tmp_path / "first")
    assert honest["timing"]["cache"]["authenticated"] and honest["timing"]["cache"]["hits"]["base"] == 0
    report = (tmp_path / "first" / "report.md").read_text()
    assert "unauthenticated" not in report
    # result.json and report.md of one run say so: the same run id in both, another in the next run's.
    assert f"| run | `{honest['timing']['run_id']}` |" in report
    _forge(cache, honest["base"]["fingerprint"])
    with caplog.at_level(logging.WARNING, logger="gate"):
        again = gate("s3cret", tmp_path / "second")
    # The forged entries keep their old tags: recomputed, the same items, the same verdict.
    assert again["verdict"] == honest["verdict"] and again["tasks"][0]["items"] == honest["tasks"][0]["items"]
    assert again["timing"]["cache"]["recomputed_entries"] == 2 and again["timing"]["cache"]["hits"]["base"] == 0
    assert "fails its authentication tag" in caplog.text
    assert again["timing"]["run_id"] != honest["timing"]["run_id"]
    # Entries served without a secret: the report says so beside the verdict.
    served = {**again["timing"]["cache"], "authenticated": False, "hits": {"base": 12, "checkpoint": 0}}
    marked = {**again, "timing": {**again["timing"], "cache": served}}
    first_line = render_markdown(marked).splitlines()[0]
    assert first_line.startswith(("✅", "❌", "⚠️")) and "base results from an unauthenticated cache" in first_line
    assert "base results from an unauthenticated cache" in render_html(marked)
    assert "unauthenticated" not in render_html(again)


def _task(doc_ids: range) -> PreparedTask:
    spec = TaskSpec(id="t", config="t.yaml", capability="knowledge", metric="acc", items=len(doc_ids), budget=5)
    return PreparedTask(spec, {}, tuple(doc_ids), len(doc_ids), "sha256:f", None, "sha256:k",
                        tuple(f"item{i}" for i in doc_ids))


IDENTITY = {"fingerprint": "sha256:abc", "tokenizer": "t"}


def _output(doc_id: int, score: float = 1.0) -> ItemOutput:
    return ItemOutput(doc_id, score, "a", "b", "p", None)


@pytest.mark.parametrize(("field", "value"), [
    ("score", 7.0), ("score", "1"), ("score", float("nan")), ("doc_id", 5), ("answer", ["x"]), ("extra", 1),
])
def test_cached_values_are_type_and_range_checked(tmp_path: Path, field: str, value: Any) -> None:
    task = _task(range(3))
    cache = ResultCache(tmp_path, {})
    cache.store(IDENTITY, task, False, [_output(i) for i in range(3)])
    path = next((tmp_path / "results").rglob("*.json"))
    entry = json.loads(path.read_text())
    entry["items"]["1"][field] = value
    entry["sha256"] = _checksum(entry["items"])
    path.write_text(json.dumps(entry))
    assert cache.lookup(IDENTITY, task, [0, 1, 2]) == (None, {})
    assert cache.stats.recomputed_entries == 1


def _store_each(root: str, doc_ids: list[int]) -> None:
    cache = ResultCache(Path(root), {})
    task = _task(range(200))
    for doc_id in doc_ids:
        cache.store(IDENTITY, task, False, [_output(doc_id)])


def test_two_runs_storing_into_one_entry_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_store_each, args=(str(tmp_path), list(range(k, 200, 2)))) for k in (0, 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    _, found = ResultCache(tmp_path, {}).lookup(IDENTITY, _task(range(200)), list(range(200)))
    assert len(found) == 200


# --- 2. a suite hook reading the environment; 3. code opt-ins in gate.yaml ----------------------------------


HOOK = '''\
import os, pathlib, signal, time

def process_docs(dataset):
    dump = pathlib.Path(os.environ["GITHUB_WORKSPACE"]) / "dump.txt"
    seen = [f"{k}={v}" for k, v in os.environ.items()]
    for path in pathlib.Path(os.environ["HOME"]).rglob("*"):
        if path.is_file():
            seen.append(path.read_text(errors="replace"))
    seen.append(pathlib.Path("/proc/self/environ").read_bytes().decode(errors="replace"))
    seen.append(pathlib.Path(f"/proc/{os.getppid()}/environ").read_bytes().decode(errors="replace"))
    dump.write_text("\\n".join(seen))
    if os.environ.get("HOOK_SLEEPS"):
        time.sleep(120)
    raise RuntimeError("the hook stops the run here: the dump is what this test needs")
'''


@pytest.fixture()
def hook_workspace(tmp_path: Path, tiny_suite: Path) -> Path:
    """A checkout whose suite has a Python hook that dumps the environment and everything readable under HOME."""
    root = tmp_path / "workspace"
    shutil.copytree(tiny_suite, root / "suites" / "tiny")
    shutil.copytree(tiny_suite.parent / "mirror", root / "mirror")
    task = root / "suites" / "tiny" / "tiny_mc.yaml"
    task.write_text(task.read_text() + "process_docs: !function utils.process_docs\n")
    (root / "suites" / "tiny" / "utils.py").write_text(HOOK)
    (root / "ckpt").mkdir()
    return root


def test_suite_hooks_need_the_workflow_opt_in(hook_workspace: Path) -> None:
    env = env_for(hook_workspace, checkpoint="smollm2-135m-instruct", suite="suites/tiny", data_dir="mirror",
                  comment="off")
    with pytest.raises(SuiteError, match=r"runs its own Python .*Action: `allow-code: suite-hooks`"):
        action.run_gate(action.ActionConfig.from_env(env))
    assert not (hook_workspace / "dump.txt").exists()


@pytest.mark.slow
def test_a_suite_hook_sees_no_token_in_the_environment_or_under_home(hook_workspace: Path) -> None:
    home = hook_workspace.parent / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "settings").write_text("nothing secret")
    env = {**env_for(hook_workspace, checkpoint="smollm2-135m-instruct", suite="suites/tiny", data_dir="mirror",
                     allow_code="suite-hooks", cache_key_secret="cache-s3cret"),
           "GITHUB_TOKEN": TOKEN, "ACTIONS_RUNTIME_TOKEN": TOKEN + "runtime"}
    process = action_process(hook_workspace, env)
    dump = (hook_workspace / "dump.txt").read_text()
    assert process.returncode == ExitCode.BAD_INPUT, process.stdout + process.stderr  # the hook's error
    assert "GITHUB_WORKSPACE=" in dump and "nothing secret" in dump  # the hook did read the environment and HOME
    assert TOKEN not in dump and "cache-s3cret" not in dump
    assert TOKEN not in process.stdout + process.stderr


def test_a_template_reaching_past_its_document_runs_nothing(tmp_path: Path, tiny_suite: Path) -> None:
    """lm-eval renders prompt templates with plain Jinja, where a template can reach `os`: the gate sandboxes them."""
    marker = tmp_path / "ran"
    task = tiny_suite / "tiny_mc.yaml"
    lines = [line for line in task.read_text().splitlines() if not line.startswith("doc_to_text:")]
    escape = f"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}"
    task.write_text("\n".join([*lines, f"doc_to_text: {json.dumps(escape)}"]) + "\n")
    with pytest.raises(SuiteError, match="a template of task tiny_mc reaches past its document") as raised:
        prepare_tasks(load_suite(str(tiny_suite)), seed=0, data_dir=tiny_suite.parent / "mirror")
    assert not marker.exists()
    assert raised.value.exit_code == ExitCode.BAD_INPUT and len(str(raised.value)) <= MESSAGE_LIMIT


@pytest.mark.parametrize("template", [  # the forms lm-eval's configs of the general suite's tasks use
    "Question: {{question.strip()}}\nAnswer:", "{{choices.label.index(answerKey.lstrip())}}", "{{[sol1, sol2]}}",
    "{{text.split(' ')[:-1]|join(' ')}}",
    "{{ 'ABCD'[answerKey|int - 1] if answerKey|string in '1234' else answerKey }}",
    "{% if choices.text|length > 3 %}D. {{choices.text[3]}}{% endif %}", "{{answer|regex_replace('#+', '')}}",
])
def test_the_sandbox_renders_ordinary_templates_as_lm_eval_does(template: str) -> None:
    from jinja2 import BaseLoader, Environment, StrictUndefined
    from lm_eval import utils

    doc = {"question": " Why? ", "answerKey": "2", "sol1": "a", "sol2": "b", "text": "the last word",
           "choices": {"label": ["1", "2"], "text": ["w", "x", "y", "z"]}, "answer": "## 42"}
    plain = Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    plain.filters["regex_replace"] = utils.regex_replace
    sandbox_lm_eval_templates()
    assert utils.apply_template(template, doc) == plain.from_string(template).render(**doc)


@pytest.mark.parametrize(("key", "opt_in"), [
    ("trust_remote_code", "remote-code"), ("allow_pickle", "pickle"), ("allow_suite_hooks", "suite-hooks"),
])
def test_code_opt_ins_in_gate_yaml_need_the_action_input(tmp_path: Path, key: str, opt_in: str) -> None:
    (tmp_path / "gate.yaml").write_text(f"{key}: true\n")
    env = env_for(tmp_path, checkpoint="smollm2-135m-instruct", config="gate.yaml", comment="off")
    with pytest.raises(Exception, match=f"sets {key}: true.*add `allow-code: {opt_in}`") as raised:
        action.run_gate(action.ActionConfig.from_env(env))
    assert raised.value.exit_code == ExitCode.BAD_INPUT and len(str(raised.value)) <= MESSAGE_LIMIT
    assert action.main(env) == ExitCode.BAD_INPUT


def test_code_opt_ins_are_refused_under_pull_request_target(tmp_path: Path) -> None:
    env = {**env_for(tmp_path, checkpoint="ckpt", allow_code="suite-hooks"), "GITHUB_EVENT_NAME": "pull_request_target"}
    with pytest.raises(Exception, match="pull_request_target"):
        action.ActionConfig.from_env(env)
    with pytest.raises(Exception, match="'shell' is not one of remote-code, pickle, suite-hooks"):
        action.ActionConfig.from_env(env_for(tmp_path, checkpoint="ckpt", allow_code="pickle,shell"))
    assert action.ActionConfig.from_env(env_for(tmp_path, checkpoint="ckpt", allow_code="pickle, suite-hooks")
                                        ).allow_code == {"pickle", "suite-hooks"}


# --- 4. a workflow command in adapter metadata -----------------------------------------------------------------


def test_a_workflow_command_in_adapter_metadata_prints_inert(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "ckpt").mkdir(parents=True)
    (workspace / "ckpt" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": FORGED}))
    process = action_process(workspace, env_for(workspace, checkpoint="ckpt", comment="off"))
    assert process.returncode == ExitCode.BAD_INPUT
    no_forged_commands(process.stdout + "\n" + process.stderr)
    # The forged text is data inside the gate's own one-line error: shown, never run.
    assert process.stdout.startswith("::error::gate: x ::error title=forged::") and "%0A" not in process.stdout


def test_every_line_written_is_inert_and_only_the_trusted_path_writes_commands() -> None:
    class Sink(list[str]):
        def write(self, text: str) -> None:
            self.append(text)

        def flush(self) -> None:
            pass

    sink = Sink()
    stream = InertStream(sink)  # type: ignore[arg-type]
    stream.write("progress 1\n::error title=x::forged\r  ::add-mask::y\n##[set-output name=a;]b\n:")
    stream.flush()
    stream.write(":warning::split across writes\n")
    stream.command("::notice::the gate's own")
    written = "".join(sink).splitlines()
    assert written == ["progress 1", f"{INERT_PREFIX}::error title=x::forged", f"{INERT_PREFIX}  ::add-mask::y",
                       f"{INERT_PREFIX}##[set-output name=a;]b", f"{INERT_PREFIX}::warning::split across writes",
                       "::notice::the gate's own"]
    with pytest.raises(ValueError, match="one line"):
        stream.command("::notice::a\n::error::b")


SHADOW = "import pathlib\npathlib.Path({marker!r}).write_text('imported from the checkout')\n"


def test_a_gate_package_committed_in_the_checkout_is_never_imported(tmp_path: Path) -> None:
    """GitHub starts the container in the checkout: a `gate/` or `json.py` there must not shadow the installed ones,
    neither in the first start (which holds the token) nor after the re-exec without the secrets."""
    workspace = tmp_path / "workspace"
    (workspace / "gate" / "ci").mkdir(parents=True)
    marker = tmp_path / "imported"
    for module in ("gate/__init__.py", "gate/ci/__init__.py", "gate/ci/action.py", "json.py"):
        (workspace / module).write_text(SHADOW.format(marker=str(marker)))
    process = action_process(workspace, env_for(workspace, checkpoint="missing", comment="off"))
    assert not marker.exists(), process.stdout + process.stderr
    assert process.returncode == ExitCode.BAD_INPUT and process.stdout.startswith("::error::gate: missing does not ")
    assert TOKEN not in process.stdout + process.stderr


# --- 5. suite metadata in the comment ---------------------------------------------------------------------------


NASTY = "@octocat <img src=x> [x](https://evil.example)"


def test_a_suite_name_that_is_no_identifier_is_refused(tmp_path: Path, tiny_suite: Path) -> None:
    for name in (NASTY, "../../../../tmp/escaped", "a/b", ".hidden"):
        spec = (tiny_suite / "suite.yaml").read_text().replace("name: tiny", f"name: {json.dumps(name)}")
        (tiny_suite / "suite.yaml").write_text(spec)
        with pytest.raises(SuiteError, match="name = "):
            load_suite(str(tiny_suite))
        (tiny_suite / "suite.yaml").write_text(spec.replace(f"name: {json.dumps(name)}", "name: tiny"))
    assert not Path("/tmp/escaped").exists()


def test_suite_metadata_is_escaped_in_the_markdown_report(tiny_model: Path, other_tiny_model: Path,
                                                          tiny_suite: Path) -> None:
    data = real_result(other_tiny_model, tiny_model, tiny_suite)
    data["suite"] = {**data["suite"], "name": NASTY, "description": NASTY}
    data["tasks"][0]["capability"] = NASTY
    text = render_markdown(data)
    assert "<img" not in text and "[x](https://evil" not in text and "@octocat" not in text
    assert "@\u200boctocat &lt;img src=x&gt; \\[x\\](https://evil.example)" in text


# --- 6. YAML bombs and unbounded messages -----------------------------------------------------------------------


def test_an_alias_bomb_in_gate_yaml_is_exit_2_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(ALIAS_BOMB)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="too large a YAML document") as raised:
        load_config(path)
    assert time.monotonic() - started < 5  # it used to run for minutes: this is a hang check, not a benchmark
    assert "\n" not in str(raised.value) and len(str(raised.value)) <= MESSAGE_LIMIT
    result = CliRunner().invoke(cli, ["run", "--ckpt", "x", "--config", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT and len(one_error_line(result.output)) <= MESSAGE_LIMIT + 20


def test_a_smaller_bomb_gives_a_bounded_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("\n".join(ALIAS_BOMB.splitlines()[:5]).replace("e: &e", "seed: &e"))  # 9^4 strings: allowed
    with pytest.raises(ConfigError, match=r"seed = \[\[\[\[") as raised:
        load_config(path)
    assert "\n" not in str(raised.value) and len(str(raised.value)) <= MESSAGE_LIMIT
    assert one_line("x" * 1000 + " fix: do this").endswith("fix: do this")


# --- 7. a suite name escaping the cache; 8. an adapter based on itself ------------------------------------------


def test_an_adapter_whose_base_is_itself_or_a_cycle_is_exit_2(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, base in ((one, one), (two, tmp_path / "three")):
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(two)}))
    for folder in (one, two):
        with pytest.raises(ModelRefError, match="is itself an adapter"):
            resolve_model(str(folder))
    result = CliRunner().invoke(cli, ["run", "--ckpt", str(one), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitCode.BAD_INPUT and "RecursionError" not in result.output


# --- 9. --out unwritable ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["existing file", "under a file", "unwritable"])
def test_an_unusable_out_is_exit_2_before_anything_loads(tmp_path: Path, kind: str) -> None:
    (tmp_path / "file").write_text("x")
    out = {"existing file": tmp_path / "file", "under a file": tmp_path / "file" / "out",
           "unwritable": Path("/proc/gate-out")}[kind]
    # The checkpoint does not exist: the --out check must come first, before any reference is even resolved.
    result = CliRunner().invoke(cli, ["run", "--ckpt", str(tmp_path / "missing"), "--out", str(out)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert one_error_line(result.output).startswith(f"gate: error: --out {out} ")


# --- 10. a reporting failure during a FAIL ----------------------------------------------------------------------


@dataclass
class _Result:
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def __getattr__(self, name: str) -> Any:
        return self.data[name]


def test_an_unwritable_step_summary_only_warns_and_the_fail_stands(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = with_outcomes(real_result(other_tiny_model, tiny_model, tiny_suite), ["FAIL", "PASS"])
    assert failed["verdict"] == "FAIL"
    (tmp_path / "summary").mkdir()  # a folder: appending to it fails
    env = {**env_for(tmp_path, checkpoint="ckpt", comment="off"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "GITHUB_OUTPUT": str(tmp_path / "output")}
    # The scoring is the real run's (fake_results); what is under test is what happens after it.
    monkeypatch.setattr(action, "run_gate", lambda config: _Result({**failed, "exit_code": 1}))
    with caplog.at_level(logging.WARNING, logger="gate.ci.action"):
        assert action.main(env) == ExitCode.REGRESSION  # the FAIL's exit 1, not 3
    assert "the step summary was not written (IsADirectoryError" in caplog.text and "verdict stands" in caplog.text
    assert "Traceback" not in caplog.text
    assert "verdict<<" in (tmp_path / "output").read_text()  # the outputs still come


# --- 11. see test_two_runs_storing_into_one_entry_at_once_lose_nothing; 12. symlinks out of a checkpoint ---------


def test_a_symlink_out_of_a_checkpoint_is_refused_in_the_action_and_warned_in_the_cli(
    tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = tmp_path / "workspace"
    shutil.copytree(tiny_model, workspace / "ckpt")
    (workspace / "ckpt" / "notes.txt").symlink_to("/proc/self/environ")
    with pytest.raises(ModelRefError, match="is a symlink out of the model folder"):
        resolve_model(str(workspace / "ckpt"), outside_links="refuse")
    env = env_for(workspace, checkpoint="ckpt", comment="off")
    with caplog.at_level(logging.ERROR, logger="gate.ci.action"):
        assert action.main(env) == ExitCode.BAD_INPUT
    refused = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(refused) == 1 and "notes.txt is a symlink out of the model folder" in refused[0]
    assert "\n" not in refused[0] and len(refused[0]) <= MESSAGE_LIMIT + 10
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gate"):
        resolve_model(str(workspace / "ckpt"))  # the CLI's default: a warning, and the folder is read
    assert "is a symlink out of the model folder" in caplog.text


# --- SIGTERM in the Action --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_in_the_action_is_exit_130_and_no_result(hook_workspace: Path) -> None:
    home = hook_workspace.parent / "home"
    home.mkdir()
    env = {**os.environ, **env_for(hook_workspace, checkpoint="smollm2-135m-instruct", suite="suites/tiny",
                                   data_dir="mirror", allow_code="suite-hooks", comment="off"),
           "HOME": str(home), "HOOK_SLEEPS": "1"}
    process = subprocess.Popen(ACTION_COMMAND, cwd=hook_workspace, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (hook_workspace / "dump.txt").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, stdout + stderr
    assert "interrupted; no result was written" in stdout
    assert not (hook_workspace / "gate-out" / "result.json").exists()


# --- the dequantised GGUF folder in the cache -------------------------------------------------------------------


def test_a_planted_dequantised_folder_is_verified_against_the_gguf_digest_and_never_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import transformers

    from gate.loading.gguf import DEQUANTISED_FORMAT, DIGEST_FILE, _file_digests, _matches, dequantised_folder
    from gate.loading.references import file_sha256
    from gate.paths import cache_root

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF, but not a real one")
    digest = file_sha256(gguf)
    planted = cache_root() / "gguf" / f"{digest[:32]}-transformers{transformers.__version__}-{DEQUANTISED_FORMAT}"
    planted.mkdir(parents=True)
    (planted / "model.safetensors").write_bytes(b"forged weights")
    honest = {"gguf_sha256": digest, "files": _file_digests(planted)}
    (planted / DIGEST_FILE).write_text(json.dumps(honest))
    assert _matches(planted, digest) and not _matches(planted, "0" * 64)
    (planted / DIGEST_FILE).write_text(json.dumps({**honest, "files": {"model.safetensors": "0" * 64}}))
    with caplog.at_level(logging.WARNING, logger="gate"), pytest.raises(Exception):  # noqa: B017 (rebuilt: a fake GGUF)
        dequantised_folder(gguf)
    assert "does not match model.gguf's digest: rebuilding it" in caplog.text and not planted.exists()
