"""The item types every stage passes on: one model's per-item outputs, and the two models' outputs paired."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gate.errors import BadInputError, RunError
from gate.suites import PreparedTask

ProgressHook = Callable[[str], None]


@dataclass(frozen=True)
class ItemOutput:
    """One model's result on one item: its score and what it answered."""

    doc_id: int
    score: float
    answer: str
    target: str
    prompt: str
    cluster: str | None
    generation: str | None = None  # a generation task's raw answer (before the filter): the checkpoint's draft
    generation_ids: list[int] | None = None  # its generated token ids, when the gate's decoder produced it


@dataclass(frozen=True)
class ItemPair:
    """The base's and the checkpoint's results on the same item."""

    doc_id: int
    base_score: float
    ckpt_score: float
    base_answer: str
    ckpt_answer: str
    target: str
    prompt: str
    cluster: str | None


@dataclass(frozen=True)
class PairedTask:
    """A task's items scored on both models, in the seeded order; `chat_template` is the setting both used."""

    task: PreparedTask
    items: tuple[ItemPair, ...]
    chat_template: bool


@dataclass(frozen=True)
class ModelScores:
    """One model's per-item outputs per task id, and whether its chat template was applied per task."""

    outputs: dict[str, list[ItemOutput]]
    chat_template: dict[str, bool]


def pair_scores(tasks: Sequence[PreparedTask], base: ModelScores, ckpt: ModelScores) -> list[PairedTask]:
    """Join the two models' outputs item by item; refuse if they were not scored the same way."""
    paired = []
    for task in tasks:
        task_id = task.spec.id
        if base.chat_template[task_id] != ckpt.chat_template[task_id]:
            raise BadInputError(
                f"task {task_id}: the base has {'a' if base.chat_template[task_id] else 'no'} chat template and the "
                "checkpoint does not match, so their prompts differ: save the base's tokenizer with the checkpoint"
            )
        base_ids = [output.doc_id for output in base.outputs[task_id]]
        if base_ids != [output.doc_id for output in ckpt.outputs[task_id]]:
            raise RunError(f"task {task_id}: the two models' outputs are for different items: a bug, please report it")
        items = tuple(
            ItemPair(
                doc_id=b.doc_id,
                base_score=b.score,
                ckpt_score=c.score,
                base_answer=b.answer,
                ckpt_answer=c.answer,
                target=b.target,
                prompt=b.prompt,
                cluster=b.cluster,
            )
            for b, c in zip(base.outputs[task_id], ckpt.outputs[task_id], strict=True)
        )
        paired.append(PairedTask(task, items, base.chat_template[task_id]))
    return paired


class ItemScorer(Protocol):
    """Scores one role ("base" or "checkpoint") on given items: gate.runner.ModelPair, or the result cache over it."""

    def score(
        self,
        role: str,
        tasks: Sequence[PreparedTask],
        doc_ids: Mapping[str, Sequence[int]],
        progress: ProgressHook | None = None,
    ) -> ModelScores: ...
