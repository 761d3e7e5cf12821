"""The default suite sees moderate forgetting: every `core` budget is certifiable at its cap, budgets are at most 8
points (multiple choice), 12 (generation) and 4 (composite), and the caps detect at most twice each budget."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gate.api import composite_plan, plan
from gate.cli import main
from gate.errors import SuiteError
from gate.suites import load_suite, prepare_tasks


def test_core_budgets_are_certifiable_and_detectable_at_twice_the_budget() -> None:
    suite = load_suite("core")
    specs = {spec.id: spec for spec in suite.tasks}
    rows = plan(suite="core")
    assert {row.name for row in rows} == set(specs)
    for row in rows:
        generates = row.name.endswith("_gen")
        assert row.budget <= (12.0 if generates else 8.0), row
        assert row.certified and row.certifiable <= row.budget, row
        assert -row.detectable >= -2.0 * row.budget - 1e-6, row  # the plan FAILs -2B with its power within the cap
        # Room beyond the cap for a discordance higher than planned.
        assert (specs[row.name].pool or 0) >= 1.5 * row.cap, row
    budget, detectable, certifiable = composite_plan(rows, suite="core")
    assert budget <= 4.0 and certifiable <= budget and detectable <= 2.0 * budget


def test_gate_plan_flags_no_row_of_core() -> None:
    result = CliRunner().invoke(main, ["plan", "--suite", "core"])
    assert result.exit_code == 0, result.output
    assert "core_facts_mc" in result.output and "composite" in result.output
    assert "not certifiable" not in result.output


def test_extended_tasks_carry_their_pool_after_the_same_capped_items() -> None:
    suite = load_suite("core")
    capped = {t.spec.id: t for t in prepare_tasks(suite, seed=3)}
    extended = {t.spec.id: t for t in prepare_tasks(suite, seed=3, extend=True, caps={"core_math_gen": 40})}
    facts = extended["core_facts_mc"]
    assert facts.cap == 500 and facts.cap_units == 500 and len(facts.doc_ids) == facts.pool_size == 786
    assert facts.doc_ids[:500] == capped["core_facts_mc"].doc_ids and len(set(facts.doc_ids)) == 786
    assert facts.fingerprint == capped["core_facts_mc"].fingerprint  # what is measured within the cap is unchanged
    assert len(facts.item_keys) == len(facts.match_keys) == 786
    # A cap set in gate.yaml is a hard one: no reserve beyond it.
    math = extended["core_math_gen"]
    assert math.cap is None and len(math.doc_ids) == math.cap_units == 40


def test_items_in_gate_yaml_raise_a_cap_up_to_the_pool_and_no_further() -> None:
    suite = load_suite("core")
    raised = {t.spec.id: t for t in prepare_tasks(suite, seed=3, caps={"core_facts_mc": 786, "core_math_gen": 600})}
    assert len(raised["core_facts_mc"].doc_ids) == 786 and len(raised["core_math_gen"].doc_ids) == 600
    assert len(raised["core_logic_mc"].doc_ids) == 500  # the suite's own cap elsewhere
    lowered = {t.spec.id: t for t in prepare_tasks(suite, seed=3, caps={"core_facts_mc": 786}, max_items=100)}
    assert len(lowered["core_facts_mc"].doc_ids) == 100  # max_items only lowers
    with pytest.raises(SuiteError, match=r"items: core_facts_mc: 787 is more than its pool of 786 items"):
        prepare_tasks(suite, seed=3, caps={"core_facts_mc": 787})
