"""The `general` suite: its spec and sizing, every task built from the offline mirror with lm-eval's own prompts,
MMLU stratified by subject, the no-hub-no-mirror error, IFEval's offline sentence splitter, one real-model run."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import TEST_DATA, needs_full_data

from gate.cli import main
from gate.errors import ExitCode
from gate.sequential import SequentialPolicy
from gate.sequential import plan as sequential_plan
from gate.stats import certifiable_budget, sequence_certifiable
from gate.suites import (
    PreparedTask,
    _lm_eval_registry,
    bare_task_manager,
    load_suite,
    prepare_tasks,
    task_config,
)

GENERAL = load_suite("general")
CAPABILITIES = {
    "knowledge", "commonsense", "reasoning", "reading", "math", "instruction following", "truthfulness",
    "language modelling",
}
GENERATION = {"gsm8k", "ifeval"}
DATA_KEYS = {"dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split", "test_split",
             "fewshot_split"}
MMLU_CAP = GENERAL.task("mmlu").items  # the planned sample: about eight items per subject


@pytest.fixture(scope="module")
def prepared() -> dict[str, PreparedTask]:
    """Every general task built from the test mirror on a few items (MMLU on enough to see its strata)."""
    tasks = prepare_tasks(GENERAL, seed=1234, data_dir=TEST_DATA, max_items=MMLU_CAP, caps=dict.fromkeys(
        (spec.id for spec in GENERAL.tasks if spec.id != "mmlu"), 8))
    return {task.spec.id: task for task in tasks}


def _lines(file: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (TEST_DATA / file).read_text(encoding="utf-8").split("\n") if line]


def _task(config: dict[str, Any]) -> Any:
    return bare_task_manager().load([config])["tasks"][config["task"]]


def test_every_capability_is_covered_by_zero_shot_mirrored_tasks() -> None:
    assert {spec.capability for spec in GENERAL.tasks} == CAPABILITIES
    for spec in GENERAL.tasks:
        assert spec.data is not None and (TEST_DATA / spec.data.file).is_file(), spec.id
        assert spec.data.file == f"{spec.data.file.rsplit('_', 1)[0]}_{spec.data.split}.jsonl"
        assert spec.chat_template == (spec.id in GENERATION), spec.id
        assert spec.discordance is not None, f"{spec.id}: state the discordance its item cap was planned with"
    assert all(GENERAL.task(t).max_gen_toks for t in GENERATION), "generation is capped"


@needs_full_data
def test_every_budget_is_certifiable_at_its_item_cap() -> None:
    """`gate plan`'s rule at each task's planning r: the cap PASSes Delta = 0 with 95% power and FAILs Delta = -2B
    with 90%, the floor the caps are sized for (the default plan aims at 97% where a pool allows)."""
    budgets = {spec.id: spec.budget for spec in GENERAL.tasks}
    units = {spec.id: spec.items for spec in GENERAL.tasks}
    (boolq,) = prepare_tasks(GENERAL.model_copy(update={"tasks": [GENERAL.task("boolq")]}), seed=1234,
                             data_dir=TEST_DATA)
    units["boolq"] = boolq.units  # clustered: the plan counts passages
    variances = []
    for spec in GENERAL.tasks:
        assert spec.discordance is not None
        policy = SequentialPolicy(
            planning_discordance=spec.discordance, composite_budget=GENERAL.composite_budget, fail_power=0.9
        )
        continuous = [t.id for t in GENERAL.tasks if t.scores == "continuous"]
        rows = sequential_plan(budgets, units, policy, continuous=continuous)
        row = next(row for row in rows if row.name == spec.id)
        assert row.certified and row.needed <= row.cap, (spec.id, row)
        assert certifiable_budget(spec.items, spec.discordance, policy.alpha_pass, 0.95) <= spec.budget
        variances.append(spec.discordance / units[spec.id])
    # The composite: the equally weighted mean of the deltas, certified like a task of many units.
    total = sum(units.values())
    composite_r = total * sum(variances) / len(variances) ** 2
    assert sequence_certifiable(total, composite_r, 0.05, 0.95, "normal-mixture") <= GENERAL.composite_budget


def test_every_task_builds_from_the_mirror(prepared: dict[str, PreparedTask]) -> None:
    assert list(prepared) == [spec.id for spec in GENERAL.tasks]
    for task_id, task in prepared.items():
        spec = GENERAL.task(task_id)
        assert spec.data is not None
        assert task.pool_size == len(_lines(spec.data.file)), task_id
        assert task.lm_eval_config["dataset_path"] == "json"
        assert not task.lm_eval_config.get("num_fewshot"), f"{task_id} is zero-shot"
        assert task.fingerprint.startswith("sha256:")
        assert len(task.doc_ids) == (min(MMLU_CAP, task.pool_size) if task_id == "mmlu" else 8)


def test_the_mirror_changes_only_where_items_come_from() -> None:
    for spec in GENERAL.tasks:
        hub, mirrored = task_config(GENERAL, spec), task_config(GENERAL, spec, TEST_DATA)
        changed = {key for key in hub.keys() | mirrored.keys() if hub.get(key) != mirrored.get(key)}
        assert changed <= DATA_KEYS, (spec.id, changed - DATA_KEYS)
        assert spec.data is not None and spec.data.split in mirrored["dataset_kwargs"]["data_files"]
        assert spec.data.split in {mirrored.get("test_split"), mirrored.get("validation_split")}, spec.id


@pytest.mark.parametrize(
    ("task_id", "expected"),
    [
        ("arc_easy", lambda d: ("Question: " + d["question"] + "\nAnswer:", d["choices"]["text"],
                                d["choices"]["label"].index(d["answerKey"]))),
        ("piqa", lambda d: ("Question: " + d["goal"] + "\nAnswer:", [d["sol1"], d["sol2"]], d["label"])),
        ("boolq", lambda d: (d["passage"] + "\nQuestion: " + d["question"] + "?\nAnswer:", ["no", "yes"], d["label"])),
        ("openbookqa", lambda d: (d["question_stem"], d["choices"]["text"],
                                  d["choices"]["label"].index(d["answerKey"].lstrip()))),
    ],
)
def test_mirrored_items_render_lm_eval_prompts(prepared: dict[str, PreparedTask], task_id: str, expected: Any) -> None:
    """Rendered from the mirror as lm-eval's YAML templates render the hub's records (fields as on the hub)."""
    task = _task(prepared[task_id].lm_eval_config)
    spec = GENERAL.task(task_id)
    assert spec.data is not None
    raw = _lines(spec.data.file)
    for doc_id in prepared[task_id].doc_ids[:3]:
        doc = task.eval_docs[doc_id]
        assert (task.doc_to_text(doc), task.doc_to_choice(doc), task.doc_to_target(doc)) == expected(raw[doc_id])


def test_mmlu_is_lm_eval_s_per_subject_task_on_one_pool(prepared: dict[str, PreparedTask], tmp_path: Path) -> None:
    """Same prompt (with its subject description), choices and target as lm-eval's mmlu_<subject> tasks."""
    from lm_eval.tasks._yaml_loader import load_yaml

    ours = _task(prepared["mmlu"].lm_eval_config)
    by_subject = collections.defaultdict(list)
    for doc in ours.eval_docs:
        by_subject[doc["subject"]].append(doc)
    for subject in ("abstract_algebra", "high_school_us_history", "us_foreign_policy"):
        (tmp_path / f"{subject}.jsonl").write_text("".join(json.dumps(dict(d)) + "\n" for d in by_subject[subject]))
        entry = _lm_eval_registry().task_index[f"mmlu_{subject}"]
        config = dict(load_yaml(entry.yaml_path, resolve_func=True))
        config.update(dataset_path="json", dataset_name=None, fewshot_split=None,
                      dataset_kwargs={"data_files": {"test": str(tmp_path / f"{subject}.jsonl")}})
        reference = _task(config)
        for doc in reference.eval_docs.select(range(min(3, len(by_subject[subject])))):
            assert ours.fewshot_context(doc=doc, num_fewshot=0) == reference.fewshot_context(doc=doc, num_fewshot=0)
            assert ours.doc_to_choice(doc) == reference.doc_to_choice(doc)
            assert ours.doc_to_target(doc) == reference.doc_to_target(doc)


def test_mmlu_sample_is_stratified_by_subject(prepared: dict[str, PreparedTask]) -> None:
    docs = _lines("mmlu_test.jsonl")
    pool = collections.Counter(doc["subject"] for doc in docs)
    subjects = [docs[i]["subject"] for i in prepared["mmlu"].doc_ids]
    assert len(pool) == 57 and set(subjects) == set(pool)
    drawn_items = len(subjects)
    for prefix in (drawn_items // 3, drawn_items):  # every prefix of the seeded order is close to proportional
        drawn = collections.Counter(subjects[:prefix])
        for subject, size in pool.items():
            assert abs(drawn[subject] - prefix * size / len(docs)) < 1.5, (prefix, subject)


def test_no_hub_and_no_mirror_names_the_dataset_and_both_ways_out(tmp_path: Path, tiny_model: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--ckpt", str(tiny_model), "--base", str(tiny_model),
                                       "--suite", "general", "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "Rowan/hellaswag" in message and "hub" in message and "--data-dir" in message, message
    assert "hellaswag_validation.jsonl" in message and "gate mirror export" in message
    assert not (tmp_path / "out").exists()


def test_ifeval_counts_sentences_offline(tmp_path: Path) -> None:
    """In a fresh process with no nltk data: no download is attempted, and Punkt splits as expected."""
    script = f"""
import nltk
from pathlib import Path
from gate.punkt import RESOURCE, register_punkt
nltk.data.path[:] = []  # no nltk data anywhere: only the project's parameters can be found
register_punkt(Path({str(tmp_path)!r}))
assert str(nltk.data.find(RESOURCE)).startswith({str(tmp_path)!r})
def refuse(*args, **kwargs):
    raise SystemExit("nltk.download was called")
nltk.download = refuse
from lm_eval.tasks.ifeval import instructions_util as util
print(util.count_sentences("Dr. Smith met Mr. J. Jones at 5 p.m. in the U.S. office. It went well! Did it? Yes."))
print(util.count_sentences("I chose plan B. The others e.g. plan C were worse... Then we left."))
print(len(util.nltk.word_tokenize("HELLO WORLD. This is it.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["4", "3", "7"]


@pytest.mark.slow
def test_general_runs_offline_on_the_embedded_model(tmp_path: Path) -> None:
    """`gate run --suite general` on the mirror: two tasks on a few items, every other task on one."""
    caps = dict.fromkeys((spec.id for spec in GENERAL.tasks), 1) | {"arc_easy": 12, "piqa": 12}
    config = tmp_path / "gate.yaml"
    config.write_text(json.dumps({"items": caps}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--ckpt", "smollm2-135m-instruct", "--suite", "general", "--config",
                                       str(config), "--data-dir", str(TEST_DATA), "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    record = json.loads((out / "result.json").read_text())
    assert [t["id"] for t in record["tasks"]] == [spec.id for spec in GENERAL.tasks]
    for task in record["tasks"]:
        assert task["n"] == caps[task["id"]] and task["delta"] == 0, task["id"]
        assert task["chat_template"] == (task["id"] in GENERATION)
    assert record["verdict"] != "FAIL" and (out / "report.md").is_file()  # one item per task decides nothing
