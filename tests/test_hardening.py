"""Faults and hostile checkpoints, on tiny random models: NaN or inf weights, out of memory, a mismatched adapter."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result
from conftest import make_tiny_model

from gate.cli import main
from gate.errors import ExitCode, ModelRefError, RunError
from gate.items import ModelScores
from gate.loading.loaders import ScoringSettings
from gate.loading.references import resolve_model
from gate.runner import FINITE_PROBE, ModelPair
from gate.suites import PreparedTask, load_suite, prepare_tasks


def _poke(model: Path, tensor: str, index: tuple[int, ...], value: float) -> Path:
    """Overwrite one weight of a saved model in place (safetensors stays safetensors)."""
    from safetensors.torch import load_file, save_file

    path = model / "model.safetensors"
    tensors = load_file(str(path))
    tensors[tensor][index] = value
    save_file(tensors, str(path), metadata={"format": "pt"})
    return model


def _cli_run(ckpt: Path, base: Path, suite: Path, out: Path) -> Result:
    args = ["run", "--ckpt", str(ckpt), "--base", str(base), "--suite", str(suite)]
    return CliRunner().invoke(main, [*args, "--data-dir", str(suite.parent / "mirror"), "--out", str(out)])


def _error(result: Result) -> str:
    """The CLI's error: from `gate: error:` to the end of stderr (libraries' progress bars may come before it)."""
    assert "gate: error: " in result.stderr and not result.stdout, result.output
    return result.stderr[result.stderr.index("gate: error: ") :]


def _tasks(suite: Path) -> tuple[list[PreparedTask], dict[str, list[int]]]:
    tasks = prepare_tasks(load_suite(str(suite)), seed=1234, data_dir=suite.parent / "mirror")
    return tasks, {task.spec.id: list(task.doc_ids) for task in tasks}


# ---- NaN or inf weights ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "value"), [("checkpoint", float("nan")), ("checkpoint", float("inf")), ("base", float("nan"))]
)
def test_non_finite_weights_stop_the_run_before_any_result(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path, broken: str, value: float
) -> None:
    bad = _poke(shutil.copytree(tiny_model, tmp_path / "bad"), "model.layers.0.self_attn.q_proj.weight", (0, 0), value)
    ckpt, base = (bad, tiny_model) if broken == "checkpoint" else (tiny_model, bad)
    out = tmp_path / "out"
    result = _cli_run(ckpt, base, tiny_suite, out)
    assert result.exit_code == ExitCode.RUNTIME, result.output
    assert _error(result) == (
        f"gate: error: hf-folder {bad} produces NaN or inf logits on a probe text, so it cannot be scored: "
        "check its weights for NaN or inf and re-export it from a healthy training step\n"
    )
    assert not (out / "result.json").exists() and not (out / "report.md").exists()


def test_non_finite_log_likelihoods_from_lm_eval_are_refused(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path, smollm2_tokenizer_dir: Path
) -> None:
    """NaN in the input embedding of a word the items use but the probe does not: only lm-eval's numbers show it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    probe_ids = set(tokenizer(FINITE_PROBE).input_ids)
    prompt = "Question: What colour is object 3?\nAnswer:"  # as the tiny task renders its items
    word = next(i for i in tokenizer(prompt).input_ids if i not in probe_ids)
    untied = make_tiny_model(tmp_path / "bad", smollm2_tokenizer_dir, seed=7, tied=False)
    bad = _poke(untied, "model.embed_tokens.weight", (word,), float("nan"))
    tasks, doc_ids = _tasks(tiny_suite)
    with ModelPair(resolve_model(str(tiny_model)), resolve_model(str(bad)), ScoringSettings(batch_size=8)) as pair:
        assert pair.score("base", tasks, doc_ids).outputs["tiny_mc"]
        with pytest.raises(RunError) as caught:
            pair.score("checkpoint", tasks, doc_ids)
    message = str(caught.value)
    assert message.startswith(f"hf-folder {bad} produces a log-likelihood of nan on task tiny_mc item ")
    assert "re-export it from a healthy training step" in message and "\n" not in message


# ---- out of memory -----------------------------------------------------------------------------------------------


def _forward_failing(monkeypatch: pytest.MonkeyPatch, fails: Callable[[Any], BaseException | None]) -> list[int]:
    """Patch every Llama's forward to raise what `fails(input_ids)` returns; the batch sizes it saw, in order."""
    from transformers import LlamaForCausalLM

    original = LlamaForCausalLM.forward
    seen: list[int] = []

    def forward(self: Any, input_ids: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(int(input_ids.shape[0]))
        error = fails(input_ids)
        if error is not None:
            raise error
        return original(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    return seen


def _score_both(pair: ModelPair, suite: Path) -> dict[str, ModelScores]:
    tasks, doc_ids = _tasks(suite)
    return {role: pair.score(role, tasks, doc_ids) for role in ("base", "checkpoint")}


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gate" and "ran out of memory" in r.getMessage()]


def test_out_of_memory_halves_the_batch_and_scores_what_batch_size_1_scores(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tiny_model: Path,
    other_tiny_model: Path,
    tiny_suite: Path,
) -> None:
    base, ckpt = resolve_model(str(tiny_model)), resolve_model(str(other_tiny_model))
    with ModelPair(base, ckpt, ScoringSettings(batch_size=1)) as pair:
        reference = _score_both(pair, tiny_suite)
    seen = _forward_failing(
        monkeypatch, lambda ids: torch.OutOfMemoryError("CUDA out of memory.") if ids.shape[0] > 1 else None
    )
    with caplog.at_level(logging.WARNING, logger="gate"), ModelPair(base, ckpt, ScoringSettings(batch_size=4)) as pair:
        retried = _score_both(pair, tiny_suite)
    assert retried == reference
    assert 4 in seen and 2 in seen and seen[-1] == 1
    assert _retries(caplog) == [
        f"{model.describe()} ran out of memory at batch size {size}: retrying at {size // 2} "
        "(kept for the rest of the run)"
        for model in (base, ckpt)
        for size in (4, 2)
    ]


def test_out_of_memory_at_batch_size_1_gives_up_and_other_errors_are_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_model: Path, tiny_suite: Path
) -> None:
    model = resolve_model(str(tiny_model))
    with ModelPair(model, model, ScoringSettings(batch_size=2)) as pair:
        error: list[BaseException] = [RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")]
        _forward_failing(monkeypatch, lambda _: error[0])
        with caplog.at_level(logging.WARNING, logger="gate"), pytest.raises(RunError) as caught:
            _score_both(pair, tiny_suite)
        assert str(caught.value) == (
            f"{model.describe()} ran out of memory even at batch size 1 (--batch-size cannot go lower): free memory "
            "on the machine, use a device with more memory, or set dtype: bfloat16 in gate.yaml"
        )
        assert len(_retries(caplog)) == 1
        caplog.clear()
        error[0] = RuntimeError("expected all tensors to be on the same device")
        with pytest.raises(RunError, match="failed \\(expected all tensors to be on the same device\\)"):
            _score_both(pair, tiny_suite)
        assert not _retries(caplog)


# ---- an adapter trained on another base --------------------------------------------------------------------------


def _lora(model: Path, folder: Path) -> Path:
    """A PEFT LoRA adapter on q_proj and v_proj of `model`; adapter_config.json names `model` as its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model)
    get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def wide_adapter(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> tuple[Path, Path]:
    """A LoRA adapter trained on a hidden-size-64 model (the tiny models have 32), and that model."""
    wide = make_tiny_model(tmp_path_factory.mktemp("wide"), smollm2_tokenizer_dir, seed=7, hidden=64)
    return _lora(wide, tmp_path_factory.mktemp("wide-adapter")), wide


def test_adapter_on_a_base_of_another_size_is_refused_before_loading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wide_adapter: tuple[Path, Path], tiny_model: Path, tiny_suite: Path
) -> None:
    from lm_eval.models.huggingface import HFLM

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(HFLM, "__init__", never)
    adapter, wide = wide_adapter
    out = tmp_path / "out"
    result = _cli_run(adapter, tiny_model, tiny_suite, out)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert _error(result) == (
        f"gate: error: adapter {adapter} does not fit the base {tiny_model} (model.layers.0.self_attn.q_proj has 64 "
        f"inputs in the adapter but 32 in the base): pass the adapter's own base with --base "
        f"(its adapter_config.json names {wide})\n"
    )
    assert not out.exists()


def test_adapter_on_a_gguf_base_of_another_size_is_refused(wide_adapter: tuple[Path, Path]) -> None:
    adapter, _ = wide_adapter
    with pytest.raises(ModelRefError, match="q_proj has 64 inputs in the adapter but 576 in the base"):
        resolve_model(str(adapter), base=resolve_model("smollm2-135m-instruct"))


def test_adapter_for_layers_the_base_lacks_is_refused(
    tmp_path: Path, smollm2_tokenizer_dir: Path, tiny_model: Path
) -> None:
    deeper = make_tiny_model(tmp_path / "deeper", smollm2_tokenizer_dir, seed=7, layers=3)
    adapter = _lora(deeper, tmp_path / "adapter")
    with pytest.raises(ModelRefError, match=r"the base has no module model\.layers\.2\.self_attn\.q_proj"):
        resolve_model(str(adapter), base=resolve_model(str(tiny_model)))


def test_adapter_fits_its_own_base_and_only_warns_on_a_same_shape_base_with_other_weights(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    tiny_model: Path,
    other_tiny_model: Path,
    wide_adapter: tuple[Path, Path],
) -> None:
    wide_ckpt, wide = wide_adapter
    own = resolve_model(str(wide_ckpt))
    assert own.base is not None and own.base.pretrained == str(wide.resolve())
    adapter = _lora(tiny_model, tmp_path / "adapter")
    with caplog.at_level(logging.WARNING, logger="gate"):
        assert resolve_model(str(adapter), base=resolve_model(str(tiny_model))).kind == "adapter"
        assert not caplog.records
        other = resolve_model(str(adapter), base=resolve_model(str(other_tiny_model)))
    assert other.base is not None and other.base.reference == str(other_tiny_model)
    assert [r.getMessage() for r in caplog.records] == [
        f"adapter {adapter} was trained on {tiny_model}, whose weights differ from the base {other_tiny_model} it "
        f"is gated on: fine for a re-saved or re-quantised copy of the same model, otherwise pass --base {tiny_model}"
    ]
