"""Gate a model object in memory (a training run's model) against its base's cached scores: no save, no reload.

The base is scored once, on every item the gate could ask for, when the scorer is made (or read from the result cache,
keyed by a hash of its weights); each later check scores only the in-memory model, as it is at that moment. Scoring
runs in eval mode under torch.no_grad() and leaves the model's train mode and every random number generator (python,
numpy, torch CPU and CUDA) as it found them, so a training run gated this way takes exactly the steps it would
without the gate.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gate.cache import CachedScorer, ResultCache
from gate.items import ItemOutput, ModelScores, ProgressHook
from gate.loading.loaders import ScoringSettings
from gate.loading.references import ResolvedModel
from gate.runner import _score, _tokenizer_identity
from gate.suites import PreparedTask


@contextmanager
def untouched(model: Any) -> Iterator[None]:
    """Eval mode and no gradients inside; train mode and the python, numpy and torch RNG states restored after."""
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = bool(model.training)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def weights_fingerprint(model: Any) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes and bytes): the in-memory model's identity."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def in_memory_model(reference: str, fingerprint: str) -> ResolvedModel:
    """The record of an in-memory model for results and messages (nothing is loaded from it)."""
    return ResolvedModel(reference=reference, kind="in-memory", pretrained=reference, fingerprint=fingerprint)


class InMemoryScorer:
    """An ItemScorer over one model object: `base` reads the scores taken before training, `checkpoint` scores now."""

    def __init__(self, model: Any, tokenizer: Any, settings: ScoringSettings) -> None:
        from gate.scorer import GateHFLM

        with untouched(model):
            self.lm = GateHFLM(pretrained=model, tokenizer=tokenizer, batch_size=settings.batch_size)
        self.model, self.settings = model, settings
        self.base_model = in_memory_model("base (the model before training)", weights_fingerprint(model))
        self.checkpoint = self.base_model
        self._base: dict[str, dict[int, ItemOutput]] = {}
        self._base_template: dict[str, bool] = {}

    def score_base(
        self, tasks: Sequence[PreparedTask], cache_root: Path | None, progress: ProgressHook | None = None
    ) -> None:
        """Score the model as it is now (the base) on every sampled item of every task, through the result cache."""
        doc_ids = {task.spec.id: task.doc_ids for task in tasks}
        if cache_root is None:
            scores = self.score("checkpoint", tasks, doc_ids, progress)
        else:
            cache = ResultCache(cache_root, asdict(self.settings))
            scores = CachedScorer(self, cache).score("checkpoint", tasks, doc_ids, progress)
        self._base = {task_id: {o.doc_id: o for o in outputs} for task_id, outputs in scores.outputs.items()}
        self._base_template = dict(scores.chat_template)

    def at(self, reference: str) -> None:
        """Name the model as it is now (e.g. `step 200 of runs/exp1`) for the next checks' results."""
        self.checkpoint = in_memory_model(reference, "")

    def model_identity(self, role: str) -> dict[str, str]:
        """The base's identity (what keys its cached scores); the in-memory model is never cached."""
        vocabulary, template = _tokenizer_identity(self.lm)
        return {
            "fingerprint": self.base_model.fingerprint,
            "vocabulary": vocabulary,
            "chat_template": template,
            "backend": "hf in-memory",
        }

    def record_drafts(self, outputs: Sequence[ItemOutput]) -> None:
        """Cached base answers are not drafts here: the model under training generates without them."""

    def score(
        self,
        role: str,
        tasks: Sequence[PreparedTask],
        doc_ids: Mapping[str, Sequence[int]],
        progress: ProgressHook | None = None,
    ) -> ModelScores:
        """`base`: the scores taken before training; `checkpoint`: the model as it is now."""
        if role == "base":
            return ModelScores(
                {task.spec.id: [self._base[task.spec.id][d] for d in doc_ids[task.spec.id]] for task in tasks},
                {task.spec.id: self._base_template[task.spec.id] for task in tasks},
            )
        with untouched(self.model):
            return _score(self.lm, self.checkpoint, tasks, doc_ids, progress, self.settings)
