"""Model references: each kind resolves to HFLM arguments; unsafe or broken inputs are refused with exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SMOLLM2_GGUF, smollm2_folder

from gate.cli import main
from gate.errors import ExitCode, ModelRefError
from gate.loading.references import resolve_model


def test_builtin_alias_points_at_the_packaged_gguf() -> None:
    model = resolve_model("smollm2-135m-instruct")
    assert model.kind == "alias" and model.gguf_file == SMOLLM2_GGUF
    assert Path(model.pretrained) == smollm2_folder()
    assert model.fingerprint.startswith("sha256:") and SMOLLM2_GGUF in model.weight_sha256


def test_gguf_file_reference() -> None:
    model = resolve_model(str(smollm2_folder() / SMOLLM2_GGUF))
    assert model.kind == "gguf" and model.gguf_file == SMOLLM2_GGUF
    assert model.fingerprint == resolve_model("smollm2-135m-instruct").fingerprint


def test_hf_folder_and_fingerprint_follows_weights(tiny_model: Path, other_tiny_model: Path) -> None:
    first, again, other = (
        resolve_model(str(tiny_model)),
        resolve_model(str(tiny_model)),
        resolve_model(str(other_tiny_model)),
    )
    assert first.kind == "hf-folder" and first.pretrained == str(tiny_model.resolve())
    assert first.fingerprint == again.fingerprint != other.fingerprint
    args = first.hflm_args(device="cpu", dtype="float32", batch_size=4, trust_remote_code=False)
    assert args["pretrained"] == str(tiny_model.resolve()) and "gguf_file" not in args and "peft" not in args


def _adapter(folder: Path, base: str | None) -> Path:
    folder.mkdir()
    config = {"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"], "lora_alpha": 4}
    if base is not None:
        config["base_model_name_or_path"] = base
    (folder / "adapter_config.json").write_text(json.dumps(config))
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_adapter_reads_its_base_from_adapter_config(tmp_path: Path, tiny_model: Path) -> None:
    adapter = resolve_model(str(_adapter(tmp_path / "a", "smollm2-135m-instruct")))
    assert adapter.kind == "adapter" and adapter.base is not None and adapter.base.kind == "alias"
    assert adapter.gguf_file == SMOLLM2_GGUF and adapter.peft == str((tmp_path / "a").resolve())
    explicit = resolve_model(str(tmp_path / "a"), base=resolve_model(str(tiny_model)))
    assert explicit.pretrained == str(tiny_model.resolve()) and explicit.gguf_file is None


def test_adapter_without_base_needs_base(tmp_path: Path) -> None:
    with pytest.raises(ModelRefError, match="--base"):
        resolve_model(str(_adapter(tmp_path / "a", None)))


def _copy(tiny_model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(tiny_model, target)
    return target


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda p: shutil.rmtree(p), "does not exist"),
        (lambda p: [f.unlink() for f in p.iterdir()], "empty folder"),
        (lambda p: (p / "config.json").unlink(), "neither config.json"),
        (lambda p: (p / "model.safetensors").unlink(), "no weight files"),
        (
            lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
            "not a readable safetensors",
        ),
        (lambda p: (p / "model.safetensors").write_bytes(b"garbage" * 10), "not a readable safetensors"),
        (lambda p: (p / "model.safetensors").rename(p / "pytorch_model.bin"), "--allow-pickle"),
        (
            lambda p: (p / "config.json").write_text(
                json.dumps({**json.loads((p / "config.json").read_text()), "auto_map": {"AutoModel": "x.Y"}})
            ),
            "--trust-remote-code",
        ),
        (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
    ],
)
def test_broken_checkpoints_exit_2(tiny_model: Path, tmp_path: Path, break_it, message: str) -> None:  # type: ignore[no-untyped-def]
    folder = _copy(tiny_model, tmp_path)
    break_it(folder)
    with pytest.raises(ModelRefError, match=message.replace("-", r"\-")):
        resolve_model(str(folder))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--ckpt", str(folder), "--out", str(out)])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr and not result.stdout
    assert not out.exists()


def test_pickle_allowed_only_when_opted_in(tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert resolve_model(str(folder), allow_pickle=True).weight_files[0].name == "pytorch_model.bin"


def test_plain_file_and_unknown_names(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(ModelRefError, match="is a file, not a model"):
        resolve_model(str(text))
    with pytest.raises(ModelRefError, match="does not exist"):
        resolve_model("./missing-folder")


def test_hub_id_offline_without_cache_names_both_ways_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelRefError, match="HF_HUB_OFFLINE"):
        resolve_model("someorg/some-model")
