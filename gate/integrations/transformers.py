"""`GateCallback`: gate a transformers (or TRL) Trainer's model while it trains, and stop at a demonstrated FAIL.

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    trainer.add_callback(GateCallback(trainer, every_n_steps=50, stop_on_fail=True))
    trainer.train()

Every `every_n_steps` steps (or at each checkpoint save when it is None) the model is gated in memory against the
base, the same model as it was when the callback was made (scored then, or read from the result cache). The metrics
go through the trainer's own `log`, so every `report_to` backend records them: `gate/<task>/delta`,
`gate/composite/delta`, `gate/verdict` (1 PASS, 0 WARN, -1 FAIL) and `gate/seconds`. Each check's result.json and
report.md are written to `<output_dir>/gate/step-<N>/`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from gate.config import GateConfig, load_config
from gate.errors import ConfigError
from gate.evaluate import evaluate_sequential
from gate.inmemory import InMemoryScorer
from gate.paths import cache_root
from gate.record import build_result, now, write_outputs
from gate.result import GateResult, ModelInfo
from gate.runconfig import scoring_settings, sequential_policy, suite_and_tasks, task_budgets

log = logging.getLogger("gate")
VERDICT_VALUES = {"PASS": 1.0, "WARN": 0.0, "FAIL": -1.0}
# A smoke-sized check by default: the first items of each task of `core` (its catastrophic-drop and format-collapse
# checks see them), cheap enough to run every few hundred steps.
DEFAULT_ITEMS = 50


@dataclass(frozen=True)
class Check:
    """One gate check during training: the step, the verdict, its seconds, and where its result.json is."""

    step: int
    verdict: str
    seconds: float
    result_path: Path
    summary: str


def _model_info(scorer_model: Any) -> ModelInfo:
    return ModelInfo(scorer_model.reference, scorer_model.kind, scorer_model.reference, scorer_model.fingerprint, {})


class GateCallback(TrainerCallback):
    """Gate the trainer's model in memory every `every_n_steps` steps (or on each save); see the module docstring.

    The base is scored when the callback is made, on every item a check can use. A check never changes training: it
    runs in eval mode under torch.no_grad() and restores train mode and the python, numpy and torch RNG states.
    """

    def __init__(
        self,
        trainer: Any,
        *,
        suite: str = "core",
        config: GateConfig | Path | None = None,
        max_items: int | None = DEFAULT_ITEMS,
        every_n_steps: int | None = None,
        stop_on_fail: bool = False,
        output_dir: Path | None = None,
        data_dir: Path | None = None,
        tokenizer: Any = None,
    ) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(
                f"every_n_steps is {every_n_steps}: give a positive number of steps, or None to gate on save"
            )
        gate_config = config if isinstance(config, GateConfig) else load_config(config)
        device = str(trainer.model.device).split(":")[0]
        self.config = gate_config.with_overrides(
            suite=suite,
            max_items=max_items,
            data_dir=str(data_dir) if data_dir else None,
            device=device if device in ("cpu", "cuda", "mps") else None,
        )
        tokenizer = tokenizer if tokenizer is not None else getattr(trainer, "processing_class", None)
        if tokenizer is None:
            raise ConfigError("GateCallback needs the tokenizer: pass tokenizer=, or give the trainer processing_class")
        self.trainer, self.every_n_steps, self.stop_on_fail = trainer, every_n_steps, stop_on_fail
        self.output_dir = Path(output_dir) if output_dir else Path(trainer.args.output_dir) / "gate"
        self.suite, self.tasks = suite_and_tasks(self.config)
        self.budgets = task_budgets(self.config, self.suite)
        self.settings = scoring_settings(self.config)
        self.checks: list[Check] = []
        started = time.monotonic()
        self.scorer = InMemoryScorer(trainer.model, tokenizer, self.settings)
        self.scorer.score_base(self.tasks, cache_root(self.config.cache_dir) if self.config.cache else None)
        self.base_seconds = round(time.monotonic() - started, 1)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Gate every `every_n_steps` steps."""
        if self.every_n_steps is not None and state.global_step % self.every_n_steps == 0:
            self._check(state, control)
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Gate at each checkpoint save when no `every_n_steps` is set."""
        if self.every_n_steps is None:
            self._check(state, control)
        return control

    def _check(self, state: Any, control: Any) -> None:
        if self.checks and self.checks[-1].step == state.global_step:
            return
        started, clock = now(), time.monotonic()
        self.scorer.at(f"step {state.global_step} of {self.trainer.args.output_dir}")
        composite_budget = self.config.composite_budget or self.suite.composite_budget
        policy = sequential_policy(self.config, composite_budget)
        evaluation = evaluate_sequential(self.scorer, self.tasks, self.budgets, policy)
        seconds = round(time.monotonic() - clock, 1)
        result = build_result(
            evaluation=evaluation,
            suite=self.suite,
            tasks=self.tasks,
            checkpoint=_model_info(self.scorer.checkpoint),
            base=_model_info(self.scorer.base_model),
            config=self.config,
            settings=self.settings,
            drift=None,
            timing={
                "started": started,
                "finished": now(),
                "seconds": {"scoring": seconds, "total": seconds},
                "looks": evaluation.looks,
                "step": state.global_step,
                "base_seconds": self.base_seconds,
            },
        )
        folder = self.output_dir / f"step-{state.global_step}"
        write_outputs(result, folder)
        self.checks.append(Check(state.global_step, result.verdict, seconds, folder / "result.json", result.summary))
        self.trainer.log(self._metrics(result, seconds))
        if result.verdict == "FAIL" and self.stop_on_fail:
            log.warning(
                "gate: FAIL at step %d (%s): training stopped (stop_on_fail=True); report %s",
                state.global_step,
                result.summary,
                folder / "report.md",
            )
            control.should_training_stop = True

    @staticmethod
    def _metrics(result: GateResult, seconds: float) -> dict[str, float]:
        """The check's numbers for the trainer's log; a task or composite the gate did not reach has none."""
        metrics = {f"gate/{task.id}/delta": task.delta for task in result.tasks if task.delta is not None}
        if result.composite is not None and result.composite.delta is not None:
            metrics["gate/composite/delta"] = result.composite.delta
        metrics["gate/verdict"] = VERDICT_VALUES[result.verdict]
        metrics["gate/seconds"] = seconds
        return metrics
