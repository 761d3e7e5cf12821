"""The comparability guard: a checkpoint whose tokenizer or chat template differs is refused unless allowed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_tiny_model

from gate.cli import main
from gate.errors import ExitCode


def _run(ckpt: Path, base: Path, suite: Path, out: Path, config: str) -> tuple[int, str]:
    gate_yaml = out.parent / f"{out.name}.yaml"
    gate_yaml.write_text(config)
    result = CliRunner().invoke(main, [
        "run", "--ckpt", str(ckpt), "--base", str(base), "--suite", str(suite),
        "--data-dir", str(suite.parent / "mirror"), "--out", str(out), "--config", str(gate_yaml), "--no-cache",
    ])
    return result.exit_code, result.stderr


@pytest.fixture(scope="module")
def extended_vocabulary(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A tiny model whose tokenizer gained a domain token (and whose embeddings grew with it)."""
    from transformers import AutoTokenizer

    tokenizer_dir = tmp_path_factory.mktemp("extended-tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    tokenizer.add_tokens(["<acme_ticket>"])
    tokenizer.save_pretrained(tokenizer_dir)
    return make_tiny_model(tmp_path_factory.mktemp("extended"), tokenizer_dir, seed=3)


@pytest.fixture()
def other_template(tmp_path: Path, other_tiny_model: Path) -> Path:
    """The second tiny model with another chat template in its tokenizer files."""
    folder = tmp_path / "other-template"
    shutil.copytree(other_tiny_model, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    template = (folder / "chat_template.jinja") if (folder / "chat_template.jinja").is_file() else None
    if template is not None:
        template.write_text("{% for m in messages %}### {{ m['content'] }}\n{% endfor %}")
    else:
        config["chat_template"] = "{% for m in messages %}### {{ m['content'] }}\n{% endfor %}"
        config_path.write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("difference", ["tokenizer", "chat_template"])
def test_a_difference_is_refused_unless_allowed_on_purpose(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path, extended_vocabulary: Path, other_template: Path,
    difference: str,
) -> None:
    ckpt = extended_vocabulary if difference == "tokenizer" else other_template
    code, stderr = _run(ckpt, tiny_model, tiny_suite, tmp_path / "refused", "{}\n")
    assert code == ExitCode.BAD_INPUT, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("gate: error:")]
    assert len(errors) == 1 and f"list `{difference}` under allow_differences" in errors[0]
    assert not (tmp_path / "refused").exists()

    code, stderr = _run(ckpt, tiny_model, tiny_suite, tmp_path / "allowed", f"allow_differences: [{difference}]\n")
    assert code in (ExitCode.OK, ExitCode.REGRESSION), stderr
    result = json.loads((tmp_path / "allowed" / "result.json").read_text())
    assert result["provenance"]["config"]["allow_differences"] == [difference]
