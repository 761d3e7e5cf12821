"""Drift on a fixed probe set: token-level KL(base || checkpoint) and top-1 flip rate. Reported, never the verdict."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

PROBE_RESOURCE = "probe.txt"
# A token logprob table: positions x vocabulary, natural-log probabilities of the next token.
LogprobFn = Callable[[str], "np.ndarray"]


@dataclass(frozen=True)
class Drift:
    """How far the checkpoint's next-token distribution moved from the base's on general text."""

    kl_mean: float  # nats per token, KL(base || checkpoint)
    kl_p95: float
    flip_rate: float  # share of positions where the two models' most likely next token differs
    tokens: int
    texts: int


def probe_texts() -> list[str]:
    """The shipped probe set: short general-text paragraphs separated by blank lines."""
    text = (importlib.resources.files("gate") / "data" / PROBE_RESOURCE).read_text(encoding="utf-8")
    return [block.strip() for block in text.split("\n\n") if block.strip()]


def token_kl(base: np.ndarray, ckpt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position KL(base || ckpt) in nats and top-1 disagreement, from two log-probability tables."""
    if base.shape != ckpt.shape:
        raise ValueError(f"log-probability tables differ in shape: {base.shape} vs {ckpt.shape}")
    kl = np.sum(np.exp(base) * (base - ckpt), axis=-1)
    flips = np.argmax(base, axis=-1) != np.argmax(ckpt, axis=-1)
    return np.maximum(kl, 0.0), flips


def measure_drift(base: LogprobFn, ckpt: LogprobFn, texts: Sequence[str] | None = None) -> Drift:
    """Score every probe text with both models and summarise the token-level drift."""
    texts = list(texts) if texts is not None else probe_texts()
    kls, flips = [], []
    for text in texts:
        kl, flip = token_kl(base(text), ckpt(text))
        kls.append(kl)
        flips.append(flip)
    all_kl, all_flips = np.concatenate(kls), np.concatenate(flips)
    return Drift(
        kl_mean=round(float(all_kl.mean()), 6),
        kl_p95=round(float(np.quantile(all_kl, 0.95)), 6),
        flip_rate=round(float(all_flips.mean()), 6),
        tokens=int(all_kl.size),
        texts=len(texts),
    )
