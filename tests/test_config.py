"""gate.yaml validation: every bad key or value names itself and exits 2 through the CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
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


WAIVER = "waivers: [{{task: core_math_gen, budget: 30, reason: {reason}, expires: {expires}}}]\n"


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
        (WAIVER.format(reason="'  '", expires="2027-03-01"), ["waivers.0.reason", "needs a reason"]),
        (WAIVER.format(reason="ok", expires="'2027/03/01'"), ["waivers.0.expires", "2027/03/01", "such as 2027-03-01"]),
        (WAIVER.format(reason="ok", expires="'2027-02-30'"), ["waivers.0.expires", "no such day"]),
        (WAIVER.format(reason="ok", expires="2027-02-30"), ["not valid YAML", "day is out of range for month"]),
        (WAIVER.format(reason="ok", expires="2027-03-01 10:00:00"), ["waivers.0.expires", "such as 2027-03-01"]),
        (WAIVER.format(reason="ok", expires="20270301"), ["waivers.0.expires", "such as 2027-03-01"]),
        (WAIVER.format(reason="ok, reson: typo", expires="2027-03-01"), ["waivers.0.reson", "budget, expires, reason"]),
        ("waivers: [{task: core_math_gen, budget: 30, reason: ok}]\n", ["waivers.0.expires", "required"]),
        ("waivers: [{task: core_math_gen, budget: 0, reason: ok, expires: 2027-03-01}]\n", ["waivers.0.budget"]),
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


# --- waivers ------------------------------------------------------------------------------------------------

CORE_BUDGETS = {"core_math_gen": 21.0, "core_facts_mc": 9.0}
WAIVER_DAY = date(2027, 3, 1)


@pytest.mark.parametrize("expires", ["2027-03-01", "'2027-03-01'", '"2027-03-01"'])
def test_a_waiver_date_may_be_a_yaml_date_or_iso_text(tmp_path: Path, expires: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(WAIVER.format(reason="'math traded for domain accuracy, see JIRA-123'", expires=expires))
    (waiver,) = load_config(path).waivers
    assert waiver.expires == WAIVER_DAY and waiver.budget == 30.0 and waiver.reason.endswith("JIRA-123")
    # It survives the command-line overrides (which revalidate the config) unchanged.
    assert load_config(path).with_overrides(batch_size=2).waivers == [waiver]


def _waived(text: str, today: date) -> dict[str, float]:
    config = parse_config(yaml.safe_load(text))
    return config.task_budgets(CORE_BUDGETS, suite="core", today=today)


def test_a_waiver_replaces_the_budget_until_its_last_day() -> None:
    text = WAIVER.format(reason="ok", expires="2027-03-01")
    assert _waived(text, today=WAIVER_DAY) == {"core_math_gen": 30.0, "core_facts_mc": 9.0}
    with pytest.raises(ConfigError) as caught:
        _waived(text, today=date(2027, 3, 2))
    message = str(caught.value)
    assert "waivers.core_math_gen" in message and "expired on 2027-03-01" in message
    assert "today is 2027-03-02" in message and "renew it" in message and "remove it" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("waivers: [{task: core_nope, budget: 30, reason: ok, expires: 2027-03-01}]",
         ["waivers.core_nope", "suite core has no task 'core_nope'", "core_facts_mc, core_math_gen"]),
        ("waivers: [{task: core_math_gen, budget: 21, reason: ok, expires: 2027-03-01}]",
         ["waivers.core_math_gen", "budget 21 is not looser than the task's budget 21", "above 21"]),
        ("waivers: [{task: core_math_gen, budget: 15, reason: ok, expires: 2027-03-01}]",
         ["budget 15 is not looser than the task's budget 21"]),
        ("budgets: {core_math_gen: 35}\nwaivers: [{task: core_math_gen, budget: 30, reason: ok, expires: 2027-03-01}]",
         ["budget 30 is not looser than the task's budget 35"]),
        ("waivers: [{task: core_math_gen, budget: 30, reason: a, expires: 2027-03-01},"
         " {task: core_math_gen, budget: 40, reason: b, expires: 2027-03-01}]",
         ["waivers.core_math_gen", "waived twice", "keep one"]),
    ],
    ids=["unknown task", "equal budget", "tighter budget", "tighter than budgets:", "twice"],
)
def test_a_waiver_that_cannot_apply_names_the_problem(text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _waived(text, today=WAIVER_DAY)
    for name in names:
        assert name in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_expired_waiver_exits_2_before_scoring(tmp_path: Path, tiny_suite: Path, tiny_model: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("waivers: [{task: tiny_mc, budget: 30, reason: ok, expires: 2020-01-31}]\n")
    result = CliRunner().invoke(
        main,
        ["run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--config", str(path), "--suite",
         str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror"), "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == ExitCode.BAD_INPUT
    message = result.stderr.strip().splitlines()[-1]  # above it: the datasets library's progress bar
    assert message.startswith("gate: error: waivers.tiny_mc: the waiver expired on 2020-01-31")
    assert not (tmp_path / "out").exists()
