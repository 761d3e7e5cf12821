"""GGUF models dequantised once into the cache folder, and verified against their digests before every load."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

from gate.files import make_readable
from gate.loading.references import file_sha256
from gate.paths import cache_root

log = logging.getLogger("gate")
# Beside the dequantised weights: the GGUF's sha256 and every file's, checked before each load.
DIGEST_FILE = "gate-digest.json"
# Version of the dequantised-GGUF folder layout (part of its cache key): 2 stores tied embeddings under their own name.
DEQUANTISED_FORMAT = "v2"


def _return_freed_memory() -> None:
    """Hand the heap the dequantisation freed back to the OS: glibc keeps it (about 400 MB for the embedded model),
    and the model loaded next would sit on top of it. A no-op where the C library has no malloc_trim."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """Within the block, every `gguf.GGUFReader` of one file is the same reader (reading a plain array), and each
    tensor-name map is built once.

    transformers parses the file's metadata three times to load one GGUF (the config, the weights, the tokenizer),
    and the gguf package's reader reads a vocabulary's strings one by one: about 10 s of CPU a parse for a
    150k-token vocabulary. The file is not written to meanwhile (the readers are read-only memory maps). To map
    tensor names it asks gguf for the architecture's name map once per module of the model (about 400 for the
    embedded model, 20 ms each), though the map depends on the architecture and layer count only, and is only read.
    """
    import gguf
    import numpy as np

    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    if not isinstance(reader_class, type):  # within another such block (another thread's): its readers serve
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    class PlainArrayReader(reader_class):  # type: ignore[misc,valid-type]
        """The reader over a plain array view of its memory map (which it keeps open): numpy's memmap subclass
        makes each of the few hundred thousand small slices of a parse about three times slower."""

        @property
        def data(self) -> Any:
            return self._plain

        @data.setter
        def data(self, value: Any) -> None:
            self._plain = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    def reader(path: os.PathLike[str] | str, mode: Literal["r", "r+", "c"] = "r") -> Any:
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = PlainArrayReader(path, mode)
        return readers[key]

    try:  # transformers imports both by name when it loads
        gguf.GGUFReader = reader  # type: ignore[misc,assignment]
        gguf.get_tensor_name_map = functools.cache(name_map)
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map  # type: ignore[misc]


def _file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in the folder but its digest file."""
    return {path.name: file_sha256(path) for path in sorted(folder.iterdir()) if path.name != DIGEST_FILE}


def _matches(folder: Path, gguf_digest: str) -> bool:
    """Whether the folder's digest file names this GGUF and every file still has the digest it was written with."""
    try:
        manifest = json.loads((folder / DIGEST_FILE).read_text(encoding="utf-8"))
        return (
            isinstance(manifest, dict)
            and manifest.get("gguf_sha256") == gguf_digest
            and manifest.get("files") == _file_digests(folder)
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def dequantised_folder(gguf_path: Path, trust_remote_code: bool = False, cache_dir: Path | None = None) -> Path:
    """A folder holding the GGUF model dequantised to float32 safetensors, written on first use.

    Keyed by the file's sha256 and the transformers version (which does the dequantisation), under the gate cache.
    Before it is loaded, the folder is verified against its digest file: the GGUF's full sha256 and each file's
    digest; a folder that does not match (edited, truncated, planted in a cache) is logged and rebuilt.
    """
    import transformers

    gguf_digest = file_sha256(gguf_path)
    name = f"{gguf_digest[:32]}-transformers{transformers.__version__}-{DEQUANTISED_FORMAT}"
    target = cache_root(cache_dir) / "gguf" / name
    if target.is_dir():
        if _matches(target, gguf_digest):
            return target
        log.warning("dequantised model folder %s does not match %s's digest: rebuilding it", target, gguf_path.name)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _gguf_read_once():
            _dequantise(gguf_path, trust_remote_code, staging)
        gc.collect()
        _return_freed_memory()  # the parsed metadata, kept for the three loads
        manifest = {"gguf_sha256": gguf_digest, "files": _file_digests(staging)}
        (staging / DIGEST_FILE).write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # another process may have finished the same folder first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _dequantise(gguf_path: Path, trust_remote_code: bool, staging: Path) -> None:
    """Write the GGUF model's float32 weights, config and tokenizer files into `staging`."""
    import transformers

    make_readable(staging)
    options = {"gguf_file": gguf_path.name, "trust_remote_code": trust_remote_code}
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **options)
    # The weights are plain tensors now; a saved GGUF quantization_config would send the reload to the GGUF file
    # (and save_pretrained refuses a GGUF-quantized model), so write the parts directly.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)
    # Tied embeddings are stored once, under the embedding's own name: what save_pretrained writes, and what
    # other loaders (vLLM) look for.
    tied = model.config.get_text_config().tie_word_embeddings
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    if tied:
        state.pop("lm_head.weight", None)
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    del model, state
    gc.collect()
    _return_freed_memory()
    transformers.AutoTokenizer.from_pretrained(gguf_path.parent, **options).save_pretrained(staging)
