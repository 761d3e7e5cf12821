"""Whether a PEFT adapter fits a base model: its tensor shapes against the base's modules, before any weights load.

PEFT names every adapter tensor after the base module it wraps (`base_model.model.<module>.lora_A.weight`, ...).
The base's module tree is built from its config on the meta device (no memory, no weights read), so an adapter
trained on another architecture or size is caught by its shapes or by modules the base lacks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.loading.references import ResolvedModel

log = logging.getLogger("gate")
_PREFIX = "base_model.model."
# lora_A and lora_embedding_A are (rank, in features); lora_B and lora_embedding_B are (out features, rank).
_LORA = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?:embedding_)?(?P<side>[AB])(?:\.weight)?$")


def adapter_shapes(weights: Sequence[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of every safetensors file among `weights`, read from the headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in weights:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
                shapes.update({name: tuple(handle.get_slice(name).get_shape()) for name in names})
    return shapes


def _base_modules(base: ResolvedModel, trust_remote_code: bool, cache_dir: Path | None) -> Any:
    """The base's causal-LM module tree on the meta device, or None if its config cannot be built into one.

    A GGUF base's config is read from its dequantised folder (gate.loading.gguf, under `cache_dir`), which the run
    loads anyway: the GGUF's metadata is then parsed once a run, not once here and again to load it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    options: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if base.revision:
        options["revision"] = base.revision
    try:
        if base.gguf_file:
            from gate.loading.gguf import dequantised_folder

            gguf_path = Path(base.pretrained) / base.gguf_file
            config = AutoConfig.from_pretrained(dequantised_folder(gguf_path, trust_remote_code, cache_dir), **options)
        else:
            config = AutoConfig.from_pretrained(base.pretrained, **options)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)  # type: ignore[no-untyped-call]
    except Exception as exc:  # any config the loader would refuse too: HFLM reports it when it loads
        log.debug("cannot build %s on the meta device to check the adapter (%s)", base.reference, exc)
        return None


def _in_out(module: Any) -> tuple[int, int] | None:
    """A layer's (in, out) features as PEFT sizes its LoRA matrices, for the layer types LoRA targets."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return module.in_channels, module.out_channels
    if isinstance(module, Conv1D):
        rows, columns = module.weight.shape
        return int(rows), int(columns)
    return None


def adapter_misfit(
    weights: Sequence[Path], base: ResolvedModel, *, trust_remote_code: bool, cache_dir: Path | None = None
) -> str | None:
    """The first place the adapter's tensors do not fit the base's modules, or None (fits, or cannot be told)."""
    shapes = adapter_shapes(weights)
    if not any(name.startswith(_PREFIX) for name in shapes):
        return None
    model = _base_modules(base, trust_remote_code, cache_dir)
    if model is None:
        return None
    modules = dict(model.named_modules())
    parameters = {name: tuple(p.shape) for name, p in model.named_parameters()}
    for name in sorted(shapes):
        shape = shapes[name]
        match = _LORA.match(name)
        if match is None:
            # Full tensors saved beside the LoRA matrices (embeddings, modules_to_save) keep the base's shapes.
            parameter = name.removeprefix(_PREFIX).replace(".base_layer.", ".")
            if parameter in parameters and parameters[parameter] != shape:
                return f"{parameter} is {list(shape)} in the adapter but {list(parameters[parameter])} in the base"
            continue
        # LoRA on several parameters of one module (target_parameters: a mixture of experts' fused weights) nests
        # PEFT's wrappers, and the inner ones' tensors are named after `<module>.base_layer`.
        module = match["module"].replace(".base_layer", "")
        if module not in modules:
            return f"the base has no module {module}"
        features = _in_out(modules[module])
        if features is None or len(shape) < 2:
            continue
        side = "inputs" if match["side"] == "A" else "outputs"
        adapter_size, base_size = (shape[1], features[0]) if side == "inputs" else (shape[0], features[1])
        if adapter_size != base_size:
            return f"{module} has {adapter_size} {side} in the adapter but {base_size} in the base"
    return None
