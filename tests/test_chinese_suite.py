"""The `general-zh` suite: CMMLU as one pool stratified by subject with lm-eval's per-subject cmmlu prompt, its
budget certifiable, and a real run of the embedded model on mirrored items."""

from __future__ import annotations

import json
from pathlib import Path

import lm_eval.tasks
import yaml
from click.testing import CliRunner

from gate.cli import main
from gate.errors import ExitCode
from gate.sequential import SequentialPolicy
from gate.sequential import plan as sequential_plan
from gate.suites import bare_task_manager, load_suite, prepare_tasks

FIXTURE = Path(__file__).parent / "data" / "mirror-new-tasks"
ZH = load_suite("general-zh")
CMMLU_TASKS = Path(lm_eval.tasks.__file__).parent / "cmmlu"


def test_cmmlu_renders_lm_eval_s_per_subject_prompt(tmp_path: Path) -> None:
    """Each fixture item as lm-eval's cmmlu_<subject> task renders it: its Chinese description, question, target."""
    (task,) = prepare_tasks(ZH, seed=1234, data_dir=FIXTURE)
    ours = bare_task_manager().load([task.lm_eval_config])["tasks"]["cmmlu"]
    template = yaml.safe_load((CMMLU_TASKS / "_default_template_yaml").read_text())
    rows = [json.loads(line) for line in (FIXTURE / "cmmlu_test.jsonl").read_text().splitlines()]
    subjects = sorted({row["subject"] for row in rows})
    assert len(subjects) == 3
    for subject in subjects:
        own = yaml.safe_load((CMMLU_TASKS / f"cmmlu_{subject}.yaml").read_text())
        data = tmp_path / f"{subject}.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r["subject"] == subject))
        config = {**template, **{k: v for k, v in own.items() if k != "include"}, "dataset_path": "json",
                  "dataset_name": None, "fewshot_split": None, "dataset_kwargs": {"data_files": {"test": str(data)}}}
        theirs = bare_task_manager().load([config])["tasks"][own["task"]]
        mine = [doc for doc in ours.eval_docs if doc["subject"] == subject]
        assert len(mine) == len(theirs.eval_docs) == 3
        for doc, their_doc in zip(mine, theirs.eval_docs, strict=True):
            assert ours.fewshot_context(doc, 0) == theirs.fewshot_context(their_doc, 0)
            assert ours.doc_to_choice(doc) == theirs.doc_to_choice(their_doc) == ["A", "B", "C", "D"]
            assert ours.doc_to_target(doc) == theirs.doc_to_target(their_doc)


def test_the_sample_is_stratified_by_subject() -> None:
    (task,) = prepare_tasks(ZH, seed=1234, data_dir=FIXTURE, max_items=3)
    rows = [json.loads(line) for line in (FIXTURE / "cmmlu_test.jsonl").read_text().splitlines()]
    assert ZH.task("cmmlu").stratify_field == "subject"
    assert len({rows[i]["subject"] for i in task.doc_ids}) == 3  # one of each in the first three


def test_the_budget_is_certifiable_at_its_cap() -> None:
    spec = ZH.task("cmmlu")
    assert spec.discordance is not None
    policy = SequentialPolicy(planning_discordance=spec.discordance, composite_budget=ZH.composite_budget,
                              fail_power=0.9)
    (row,) = sequential_plan({spec.id: spec.budget}, {spec.id: spec.items}, policy)
    assert row.certified and row.needed <= row.cap, row


def test_a_cmmlu_run_scores_the_pooled_task(tmp_path: Path, tiny_model: Path) -> None:
    """`gate run --suite general-zh` end to end on the mirrored items (a tiny random model; the embedded model's
    scores are in test_new_suites_embedded_model.py)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--suite",
                                       "general-zh", "--data-dir", str(FIXTURE), "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    (task,) = json.loads((out / "result.json").read_text())["tasks"]
    assert task["id"] == "cmmlu" and task["n"] == 9 and task["delta"] == 0 and not task["chat_template"]
