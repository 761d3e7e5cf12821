"""A model reference loaded for scoring: in process with the gate's scorer (`hf`), with vLLM, or on a served
endpoint, with the settings both models share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import RunError
from gate.loading.backends import Endpoint, VllmOptions, load_served, load_vllm
from gate.loading.references import ResolvedModel

log = logging.getLogger("gate")


@dataclass(frozen=True)
class ScoringSettings:
    """Everything that must be identical for the base and the checkpoint."""

    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    trust_remote_code: bool = False
    backend: str = "hf"
    vllm: VllmOptions = field(default_factory=VllmOptions)
    chat_template: str | None = None  # given by the user for a model whose tokenizer has none


def load_model(
    model: ResolvedModel, settings: ScoringSettings, endpoint: Endpoint | None, cache_dir: Path | None
) -> Any:
    """The lm-eval model that scores `model`: on its endpoint if served, else by the settings' backend."""
    if endpoint is not None:
        return load_served(model, endpoint, cache_dir=cache_dir)
    if settings.backend == "vllm":
        return load_vllm(
            model, settings.vllm, dtype=settings.dtype, trust_remote_code=settings.trust_remote_code,
            cache_dir=cache_dir,
        )
    return load_hf(model, settings, cache_dir)


def load_hf(model: ResolvedModel, settings: ScoringSettings, cache_dir: Path | None = None) -> Any:
    """lm-eval's HFLM with the gate's shared-prefix multiple-choice scorer (gate.scorer)."""
    args = model.hflm_args(
        device=settings.device,
        dtype=settings.dtype,
        batch_size=settings.batch_size,
        trust_remote_code=settings.trust_remote_code,
    )
    try:
        lm = load_scorer_model(args, cache_dir)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"{model.describe()} failed to load ({reason}): check that the files are complete") from None
    if settings.chat_template and getattr(lm.tokenizer, "chat_template", None) is None:
        log.info("%s has no chat template: using the one gate.yaml gives", model.describe())
        lm.tokenizer.chat_template = settings.chat_template
    return lm


def load_scorer_model(args: dict[str, Any], cache_dir: Path | None = None) -> Any:
    """The gate's scorer for `ResolvedModel.hflm_args(...)`; a GGUF model loads from its dequantised disk cache."""
    args = dict(args)
    gguf_file = args.pop("gguf_file", None)
    if gguf_file:
        from gate.loading.gguf import dequantised_folder

        gguf_path = Path(args["pretrained"]) / gguf_file
        folder = dequantised_folder(gguf_path, bool(args.get("trust_remote_code")), cache_dir)
        args["pretrained"] = str(folder)
    from gate.scorer import GateHFLM

    return GateHFLM(**args)
