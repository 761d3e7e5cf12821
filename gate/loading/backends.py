"""lm-eval's model classes for the other backends: `vllm` in process, and a served OpenAI-compatible endpoint.

Each backend is lm-eval's own class with its own arguments; the gate adds nothing to how they score. A role (base or
checkpoint) with an endpoint is scored by `local-completions` against that OpenAI-compatible server (log-likelihoods
from echoed prompt log-probabilities, which vLLM's server returns); the other roles by the configured backend.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from gate.errors import BadInputError, RunError
from gate.loading.references import ResolvedModel

Backend = Literal["hf", "vllm", "openai-compatible"]
BACKENDS: tuple[Backend, ...] = ("hf", "vllm", "openai-compatible")
_MODELS_TIMEOUT_S = 30
_VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server: its `/v1` URL, the name it serves the model under, and how hard to push it."""

    url: str
    model: str
    num_concurrent: int = 4
    max_retries: int = 3

    @property
    def completions_url(self) -> str:
        """The completions route lm-eval posts to."""
        return self.url.rstrip("/") + "/completions"

    def describe(self) -> str:
        """`name at URL`, for messages and provenance."""
        return f"{self.model} at {self.url}"


@dataclass(frozen=True)
class VllmOptions:
    """lm-eval `vllm` arguments that spread a model over GPUs."""

    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None


def served_models(url: str) -> list[str]:
    """The model names an OpenAI-compatible server lists at `<url>/models`; BadInputError if it cannot be reached."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise BadInputError("the server URL is not an http(s) URL: pass its /v1 URL, e.g. http://127.0.0.1:8000/v1")
    request = urllib.request.Request(url.rstrip("/") + "/models", headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=_MODELS_TIMEOUT_S) as response:  # noqa: S310 (http(s) checked)
            listing = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RunError(
            f"cannot reach the model server at {url} ({exc}): start it, or pass its /v1 URL (e.g. http://host:8000/v1)"
        ) from None
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        raise RunError(f"{url}/models did not list models as an OpenAI-compatible server does: check the URL")
    return [str(entry.get("id")) for entry in entries if isinstance(entry, dict)]


def parse_endpoint(text: str, num_concurrent: int = 4) -> Endpoint:
    """`http://host:port/v1#model` (the fragment names the served model; without it the server must serve one)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError("the server URL is not an http(s) URL: pass its /v1 URL, e.g. http://127.0.0.1:8000/v1")
    if parts.username or parts.password or parts.query:
        raise BadInputError(
            "the server URL carries credentials or a query, which would end up in logs and reports: "
            "pass the bare /v1 URL and the key in OPENAI_API_KEY"
        )
    loopback = parts.hostname in ("localhost", "::1") or parts.hostname.startswith("127.")
    if parts.scheme == "http" and not loopback and os.environ.get("OPENAI_API_KEY"):
        raise BadInputError(
            f"OPENAI_API_KEY is set and {parts.hostname} is reached over plain http, which would send the key in "
            "clear text: use https, or unset OPENAI_API_KEY for a server that needs no key"
        )
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if parts.fragment:
        return Endpoint(url, parts.fragment, num_concurrent)
    names = served_models(url)
    if len(names) != 1:
        raise BadInputError(
            f"the server at {url} serves {len(names)} models ({', '.join(names) or 'none'}): name one as {url}#NAME"
        )
    return Endpoint(url, names[0], num_concurrent)


def local_tokenizer(model: ResolvedModel, cache_dir: Path | None = None) -> str:
    """A tokenizer lm-eval can load for a model: its folder (an adapter's own, if it saved one), or the hub id."""
    if model.kind == "adapter" and model.peft and (Path(model.peft) / "tokenizer_config.json").is_file():
        return model.peft
    if model.gguf_file:
        from gate.loading.gguf import dequantised_folder

        return str(dequantised_folder(Path(model.pretrained) / model.gguf_file, cache_dir=cache_dir))
    return model.pretrained


def load_served(
    model: ResolvedModel, endpoint: Endpoint, max_length: int | None = None, cache_dir: Path | None = None
) -> Any:
    """lm-eval's `local-completions` model on the endpoint, tokenizing with the model's own local tokenizer."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    try:
        return LocalCompletionsAPI(
            base_url=endpoint.completions_url,
            model=endpoint.model,
            tokenizer=local_tokenizer(model, cache_dir),
            tokenizer_backend="huggingface",
            tokenized_requests=True,
            num_concurrent=endpoint.num_concurrent,
            max_retries=endpoint.max_retries,
            max_length=max_length or 2048,
        )
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"{endpoint.describe()} cannot be used for {model.describe()} ({reason})") from None


def vllm_args(
    model: ResolvedModel, options: VllmOptions, *, dtype: str, trust_remote_code: bool, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Arguments of lm-eval's `vllm` model class for a model reference (GGUF dequantised; adapters as LoRA)."""
    base = model.base if model.kind == "adapter" and model.base is not None else model
    pretrained = base.pretrained
    if base.gguf_file:
        from gate.loading.gguf import dequantised_folder

        pretrained = str(dequantised_folder(Path(base.pretrained) / base.gguf_file, trust_remote_code, cache_dir))
    args: dict[str, Any] = {
        "pretrained": pretrained,
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "tensor_parallel_size": options.tensor_parallel_size,
        "data_parallel_size": options.data_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "batch_size": "auto",
    }
    if options.max_model_len:
        args["max_model_len"] = options.max_model_len
    if base.revision:
        args["revision"] = base.revision
    if model.kind == "adapter" and model.peft:
        args["lora_local_path"] = model.peft
        rank = json.loads((Path(model.peft) / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16)
        args["max_lora_rank"] = next((size for size in _VLLM_LORA_RANKS if size >= int(rank)), _VLLM_LORA_RANKS[-1])
    return args


def load_vllm(
    model: ResolvedModel, options: VllmOptions, *, dtype: str, trust_remote_code: bool, cache_dir: Path | None = None
) -> Any:
    """lm-eval's `vllm` model class in this process (needs vLLM installed beside the gate)."""
    from importlib.util import find_spec

    if find_spec("vllm") is None:
        raise BadInputError(
            "backend vllm needs the vllm package in this environment: pip install vllm (on a GPU machine), "
            "or serve the model with `vllm serve` and pass its URL (--ckpt-url)"
        )
    from lm_eval.models.vllm_causallms import VLLM

    return VLLM(**vllm_args(model, options, dtype=dtype, trust_remote_code=trust_remote_code, cache_dir=cache_dir))
