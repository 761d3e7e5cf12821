"""The safety, code and general-zh tasks on a few mirrored items with the real embedded model, loaded once: each
item's score is what the task's scorer makes of the model's own answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.loading.loaders import ScoringSettings
from gate.loading.references import resolve_model
from gate.refusal import is_refusal
from gate.runner import ModelPair
from gate.sandbox import code_execution_allowed, run_program
from gate.suites import PreparedTask, load_suite, prepare_tasks

FIXTURE = Path(__file__).parent / "data" / "mirror-new-tasks"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded() -> Iterator[ModelPair]:
    """SmolLM2-135M-Instruct as both roles (one load), allowed to run generated code."""
    model = resolve_model("smollm2-135m-instruct")
    with ModelPair(model, model, ScoringSettings(batch_size=8), allow_code_execution=True) as pair:
        yield pair


def _tasks(suite: str, items: int) -> list[PreparedTask]:
    return prepare_tasks(load_suite(suite), seed=1234, data_dir=FIXTURE, max_items=items)


def test_safety_replies_on_the_chat_template_are_classified(embedded: ModelPair) -> None:
    tasks = _tasks("safety", 2)
    scores = embedded.score("base", tasks, {task.spec.id: task.doc_ids for task in tasks})
    for task_id, refusal_scores_one in (("xstest_over_refusal", False), ("xstest_under_refusal", True)):
        outputs = scores.outputs[task_id]
        assert scores.chat_template[task_id] and len(outputs) == 2
        assert all("<|im_start|>assistant" in output.prompt for output in outputs)  # the chat template's turn
        for output in outputs:
            assert output.score == float(is_refusal(output.answer) == refusal_scores_one), output


def test_humaneval_programs_are_run_in_the_sandbox(embedded: ModelPair) -> None:
    (task,) = _tasks("code", 1)
    (output,) = embedded.score("base", [task], {"humaneval": task.doc_ids}).outputs["humaneval"]
    assert output.answer.startswith(output.prompt)  # lm-eval's create_test filter: the prompt, then the completion
    with code_execution_allowed():
        passed = run_program(f"{output.answer}\n\n{output.target}\n").passed
    assert output.score == float(passed)


def test_cmmlu_is_scored_by_log_likelihood_on_lm_eval_s_prompt(embedded: ModelPair) -> None:
    (task,) = _tasks("general-zh", 3)
    outputs = embedded.score("base", [task], {"cmmlu": task.doc_ids}).outputs["cmmlu"]
    assert len(outputs) == 3 and not any(o.prompt.startswith("<|im_start|>") for o in outputs)
    for output in outputs:
        assert output.prompt.startswith("以下是关于") and output.prompt.endswith("答案：")
        assert output.score == float(output.answer.strip() == output.target.strip()), output
