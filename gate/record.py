"""The result record of a run, assembled: per-task results, the summary, the exit code, and the files written."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gate.config import GateConfig
from gate.decision import NOT_REACHED, Outcome, TaskDecision
from gate.diagnosis import diagnose
from gate.drift import Drift
from gate.errors import ExitCode
from gate.evaluate import Evaluation
from gate.files import atomic_write_text, file_lock
from gate.items import PairedTask
from gate.loading.loaders import ScoringSettings
from gate.loading.references import ResolvedModel
from gate.provenance import hardware, package_versions
from gate.report import render_html, render_markdown
from gate.result import (
    ActiveWaiver,
    CompositeResult,
    Diagnosis,
    FlippedItem,
    GateResult,
    ModelInfo,
    TaskResult,
)
from gate.suites import (
    PreparedTask,
    Suite,
    TaskSpec,
    suite_fingerprint,
)

FLIPPED_KEPT = 20
RESULT_FILE = "result.json"
REPORT_FILE = "report.md"
HTML_REPORT_FILE = "report.html"
OUT_LOCK_FILE = ".gate-out.lock"


def model_info(model: ResolvedModel) -> ModelInfo:
    return ModelInfo(model.reference, model.kind, model.describe(), model.fingerprint, dict(model.weight_sha256))


def _identity(task: PreparedTask) -> dict[str, Any]:
    """The fields of a task's result that say which task and items it is, scored or not."""
    spec = task.spec
    return {
        "id": spec.id,
        "capability": spec.capability,
        "metric": spec.metric,
        "lm_eval_task": spec.task or spec.config or "",
        "pool_size": task.pool_size,
        "fingerprint": task.fingerprint,
    }


def _task_result(
    task: PairedTask, decision: TaskDecision, reason: str, planned: int, diagnosis: Diagnosis | None
) -> TaskResult:
    lost = [item for item in task.items if item.base_score > item.ckpt_score]
    gained = [item for item in task.items if item.base_score < item.ckpt_score]
    return TaskResult(
        **_identity(task.task),
        chat_template=task.chat_template,
        n=decision.n,
        base_score=decision.base_score,
        ckpt_score=decision.ckpt_score,
        delta=decision.delta,
        lower=decision.lower,
        upper=decision.upper,
        p_fail=decision.p_fail,
        p_fail_adjusted=decision.p_fail_adjusted,
        budget=decision.budget,
        discordance=decision.discordance,
        detectable=decision.detectable,
        certifiable=decision.certifiable,
        n_items=decision.n_items,
        planned=planned,
        stop_reason=reason,
        method=decision.method,
        outcome=decision.outcome.value,
        right_to_wrong=len(lost),
        wrong_to_right=len(gained),
        flipped=[
            FlippedItem(item.doc_id, item.prompt, item.target, item.base_answer, item.ckpt_answer)
            for item in lost[:FLIPPED_KEPT]
        ],
        items=[[item.doc_id, item.base_score, item.ckpt_score] for item in task.items],
        diagnosis=diagnosis,
    )


def _unreached_result(task: PreparedTask, budget: float, planned: int) -> TaskResult:
    """A task the gate FAILed before scoring: its identity and budget, no items, no numbers."""
    return TaskResult(
        **_identity(task),
        chat_template=None,
        n=0,
        base_score=None,
        ckpt_score=None,
        delta=None,
        lower=None,
        upper=None,
        p_fail=None,
        p_fail_adjusted=None,
        budget=budget,
        discordance=None,
        detectable=None,
        certifiable=None,
        n_items=0,
        planned=planned,
        stop_reason=NOT_REACHED,
        method=None,
        outcome=Outcome.WARN.value,
        right_to_wrong=0,
        wrong_to_right=0,
        flipped=[],
        items=[],
        reached=False,
    )


def _summary(evaluation: Evaluation, waived: Collection[str]) -> str:
    def listed(decisions: list[TaskDecision]) -> str:
        return ", ".join(
            f"{d.name} ({d.delta:+.1f} pts, {'waived ' if d.name in waived else ''}budget {d.budget:g})"
            for d in decisions
        )

    decisions = list(evaluation.decisions.values()) + ([evaluation.composite] if evaluation.composite else [])
    failed = [d for d in decisions if d.outcome is Outcome.FAIL]
    undecided = [d for d in decisions if d.outcome is Outcome.WARN]
    if evaluation.outcome is Outcome.FAIL:
        return f"regression beyond budget demonstrated on {listed(failed)}"
    if evaluation.outcome is Outcome.PASS:
        return f"no regression beyond budget on any of {len(evaluation.decisions)} tasks or the composite"
    return f"undecided on {listed(undecided)}: more items or a wider budget would decide"


def exit_code_for(verdict: str, warn_blocks: bool) -> ExitCode:
    """The process exit code a verdict maps to under the WARN policy."""
    if verdict == Outcome.FAIL.value or (verdict == Outcome.WARN.value and warn_blocks):
        return ExitCode.REGRESSION
    return ExitCode.OK


def build_result(
    *,
    evaluation: Evaluation,
    suite: Suite,
    tasks: Sequence[PreparedTask],
    checkpoint: ModelInfo,
    base: ModelInfo,
    config: GateConfig,
    settings: ScoringSettings,
    drift: Drift | None,
    timing: dict[str, object],
) -> GateResult:
    """Assemble the result record from the evaluation."""
    composite = None
    composite_budget = evaluation.policy.get("composite_budget")
    if evaluation.composite is not None:
        c = evaluation.composite
        composite = CompositeResult(c.delta, c.lower, c.upper, c.p_fail, c.p_fail_adjusted, c.budget, c.outcome.value)
    elif evaluation.not_reached and composite_budget is not None:
        composite = CompositeResult(None, None, None, None, None, composite_budget, Outcome.WARN.value, reached=False)
    code = exit_code_for(evaluation.outcome.value, config.warn_blocks)
    normal = config.normal_budgets({spec.id: spec.budget for spec in suite.tasks})
    waivers = [
        ActiveWaiver(waiver.task, waiver.budget, normal[waiver.task], waiver.reason, waiver.expires.isoformat())
        for waiver in config.waivers
    ]
    budgets = normal | {waiver.task: waiver.budget for waiver in waivers}
    paired = {task.task.spec.id: task for task in evaluation.paired}

    def diagnosis(spec: TaskSpec) -> Diagnosis | None:
        twin = spec.loglik_twin
        if twin is None or twin not in evaluation.decisions:
            return None
        return diagnose(
            evaluation.decisions[spec.id], evaluation.decisions[twin], normal[twin], evaluation.matched.get(spec.id)
        )

    def task_result(task: PreparedTask) -> TaskResult:
        task_id, planned = task.spec.id, evaluation.planned[task.spec.id]
        if task_id in evaluation.not_reached:
            return _unreached_result(task, budgets[task_id], planned)
        decision = evaluation.decisions[task_id]
        return _task_result(paired[task_id], decision, evaluation.reasons[task_id], planned, diagnosis(task.spec))

    return GateResult(
        verdict=evaluation.outcome.value,
        blocking=code is ExitCode.REGRESSION,
        exit_code=int(code),
        summary=_summary(evaluation, {waiver.task for waiver in waivers}),
        checkpoint=checkpoint,
        base=base,
        suite={
            "name": suite.name,
            "version": suite.version,
            "description": suite.description,
            "fingerprint": suite_fingerprint(suite, list(tasks)),
        },
        policy=evaluation.policy,
        settings={**asdict(settings), "seed": config.seed},
        composite=composite,
        tasks=[task_result(task) for task in tasks],
        provenance={
            "versions": package_versions(),
            "hardware": hardware(settings.device),
            "config": config.model_dump(by_alias=True, mode="json"),
        },
        drift=asdict(drift) if drift is not None else None,
        timing=timing,
        waivers=waivers,
    )


def write_outputs(result: GateResult, out_dir: Path, *, html: bool = False) -> list[Path]:
    """Write result.json, report.md and (with html) report.html atomically; returns their paths.

    All of them are rendered first and written under one lock on the folder, so two runs writing the same folder
    leave the files of one run, never a mix (the run id in each tells).
    """
    data = result.to_dict()
    outputs = [(out_dir / RESULT_FILE, result.to_json()), (out_dir / REPORT_FILE, render_markdown(data))]
    if html:
        outputs.append((out_dir / HTML_REPORT_FILE, render_html(data)))
    with file_lock(out_dir / OUT_LOCK_FILE):
        for path, text in outputs:
            atomic_write_text(path, text)
    return [path for path, _ in outputs]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
