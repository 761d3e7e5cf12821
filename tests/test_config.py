"""gate.yaml validation: every bad key or value names itself and exits 2 through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gate.cli import main
from gate.config import GateConfig, load_config, parse_config
from gate.errors import ConfigError, ExitCode


def test_defaults_when_no_file() -> None:
    config = load_config(None)
    assert config == GateConfig()
    assert config.base == "smollm2-135m-instruct" and config.alpha.fail == 0.01 and config.alpha.pass_ == 0.05


def test_full_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(
        "base: ./base\nsuite: core\nseed: 7\nalpha: {fail: 0.005, pass: 0.1}\nmethod: wald\nwarn_blocks: true\n"
        "composite_budget: 2\nbudgets: {core_facts_mc: 4.5}\nitems: {core_facts_mc: 50}\nmax_items: 100\n"
    )
    config = load_config(path)
    assert config.seed == 7 and config.alpha.pass_ == 0.1 and config.budgets == {"core_facts_mc": 4.5}
    assert config.warn_blocks and config.method == "wald" and config.max_items == 100


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("bugdets: {a: 1}\n", ["bugdets", "unknown key"]),
        ("alpha: {fail: 0.7}\n", ["alpha.fail", "0.7"]),
        ("alpha: {fial: 0.01}\n", ["alpha.fial", "unknown key", "fail, pass"]),
        ("budgets: {core_facts_mc: -3}\n", ["budgets.core_facts_mc", "-3"]),
        ("budgets: {core_facts_mc: 300}\n", ["budgets.core_facts_mc", "300"]),
        ("seed: abc\n", ["seed", "abc"]),
        ("method: naive\n", ["method", "naive", "tango"]),
        ("warn_blocks: sometimes\n", ["warn_blocks", "sometimes"]),
        ("items: {core_facts_mc: 0}\n", ["items.core_facts_mc", "0"]),
        ("- just\n- a list\n", ["mapping"]),
        ("budgets: [1, 2\n", ["not valid YAML"]),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, text: str, names: list[str]) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for name in names:
        assert name in str(caught.value)
    result = CliRunner().invoke(main, ["run", "--ckpt", "smollm2-135m-instruct", "--config", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT
    message = result.stderr.strip()
    assert message.startswith("gate: error: ") and "\n" not in message and names[0] in message


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--ckpt", "x", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "does not exist" in result.output


def test_budget_for_unknown_task_names_the_task(tmp_path: Path, tiny_suite: Path, tiny_model: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("budgets: {no_such_task: 3}\n")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--ckpt",
            str(tiny_model),
            "--base",
            str(tiny_model),
            "--config",
            str(path),
            "--suite",
            str(tiny_suite),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "budgets.no_such_task" in result.output and "tiny_mc" in result.output
    assert not (tmp_path / "out").exists()


def test_overrides_are_validated() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        parse_config({}).with_overrides(batch_size=0)


def test_overrides_keep_track_of_what_the_user_set(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("seed: 3\n")
    config = load_config(path).with_overrides(batch_size=2, suite=None)
    assert config.seed == 3 and config.batch_size == 2 and config.suite == "core"
    assert "base" not in config.model_fields_set  # so an adapter's own base still wins over the default
