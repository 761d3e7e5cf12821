"""The format/alignment vs knowledge label of a generation task, read off its log-likelihood twin, and the
suite-spec key `loglik_twin` that pairs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from gate.decision import TaskDecision
from gate.diagnosis import FORMAT_ALIGNMENT, KNOWLEDGE, MIN_MATCHED_ITEMS, UNDETERMINED, MatchedItems, diagnose
from gate.errors import SuiteError
from gate.evaluate import twin_matches
from gate.items import ItemOutput, ItemPair, ModelScores, PairedTask
from gate.sequential import SequentialPolicy, look
from gate.suites import load_suite, prepare_tasks, suites_root

# core's budgets: core_facts_gen 17 points on 60 items, its twin core_facts_mc 9 points on 150 items.
from gate.verdict import Policy, TaskEvidence, decide

GEN_BUDGET, MC_BUDGET = 17.0, 9.0


def evidence(name: str, n: int, right: int, lost: int, gained: int, budget: float) -> TaskEvidence:
    """0/1 scores: the base gets `right` of n items; the checkpoint loses `lost` of those and gains `gained` others."""
    base = np.zeros(n)
    base[:right] = 1.0
    ckpt = base.copy()
    ckpt[:lost] = 0.0
    ckpt[right : right + gained] = 1.0
    return TaskEvidence(name, base, ckpt, budget)


GEN_DROPS = evidence("gen", 60, right=42, lost=24, gained=0, budget=GEN_BUDGET)  # 70% -> 30%: -40 points
GEN_HOLDS = evidence("gen", 60, right=42, lost=3, gained=3, budget=GEN_BUDGET)  # unchanged, 10% discordant
MC_HOLDS = evidence("mc", 150, right=120, lost=10, gained=10, budget=MC_BUDGET)  # unchanged, 13% discordant
MC_DROPS = evidence("mc", 150, right=120, lost=30, gained=0, budget=MC_BUDGET)  # 80% -> 60%: -20 points


def decisions(gen: TaskEvidence, mc: TaskEvidence, mode: str) -> tuple[TaskDecision, TaskDecision]:
    """Both tasks decided by the gate's own rules: Tango + Holm (fixed) or anytime-valid bounds (sequential)."""
    if mode == "fixed":
        verdict = decide([gen, mc], Policy(composite_budget=6.0))
        return verdict.tasks[0], verdict.tasks[1]
    seq = look([gen, mc], SequentialPolicy(composite_budget=6.0), {"gen": 60, "mc": 150}, {"gen": True, "mc": True})
    return seq.tasks[0].decision, seq.tasks[1].decision


@pytest.mark.parametrize("mode", ["fixed", "sequential"])
@pytest.mark.parametrize(
    ("gen", "mc", "label"),
    [(GEN_DROPS, MC_HOLDS, FORMAT_ALIGNMENT), (GEN_DROPS, MC_DROPS, KNOWLEDGE), (GEN_HOLDS, MC_HOLDS, None)],
    ids=["gen drops, twin holds", "both drop", "neither drops"],
)
def test_the_label_follows_the_demonstrated_drops(gen: TaskEvidence, mc: TaskEvidence, label: str | None,
                                                  mode: str) -> None:
    gen_decision, mc_decision = decisions(gen, mc, mode)
    diagnosis = diagnose(gen_decision, mc_decision, MC_BUDGET)
    if label is None:
        assert diagnosis is None
        return
    assert diagnosis is not None and diagnosis.label == label
    assert gen_decision.upper < 0  # the drop it labels is demonstrated, not just estimated
    assert "gen dropped (Δ -40.0 pts" in diagnosis.detail and "twin mc" in diagnosis.detail
    assert "Compared task by task" in diagnosis.detail and "item by item" not in diagnosis.detail


def test_an_undemonstrated_drop_gets_no_diagnosis_and_an_undecided_twin_says_undetermined() -> None:
    # 12 points down on 25 items: an estimate, not a demonstration.
    small_drop = evidence("gen", 25, right=15, lost=3, gained=0, budget=GEN_BUDGET)
    gen, mc = decisions(small_drop, MC_HOLDS, "fixed")
    assert gen.delta == pytest.approx(-12.0) and gen.upper > 0
    assert diagnose(gen, mc, MC_BUDGET) is None
    # A twin on 12 items, 8 points down: neither holding within 9 points nor a drop is shown.
    unsure_twin = evidence("mc", 12, right=8, lost=2, gained=1, budget=MC_BUDGET)
    gen, mc = decisions(GEN_DROPS, unsure_twin, "fixed")
    assert mc.lower <= -MC_BUDGET and mc.upper >= 0
    for matched, count in ((None, 0), (MatchedItems(24, 4, 2), 4)):
        diagnosis = diagnose(gen, mc, MC_BUDGET, matched)
        assert diagnosis is not None and diagnosis.label == UNDETERMINED
        assert diagnosis.detail.startswith(f"{count} matched items, {MIN_MATCHED_ITEMS} needed; gen dropped (Δ -40.0")
        assert "its log-likelihood twin mc was not decided" in diagnosis.detail
    split = diagnose(gen, mc, MC_BUDGET, MatchedItems(24, 20, 10))
    assert split is not None and split.label == UNDETERMINED
    assert split.detail.startswith(f"20 matched items, no clear majority at {MIN_MATCHED_ITEMS} or more;")


def test_a_waived_twin_budget_does_not_pass_for_holding() -> None:
    # The twin drops 12 points: PASS under a 30-point waiver, yet the facts are lost at its normal 9 points.
    twin_drop = evidence("mc", 150, right=120, lost=18, gained=0, budget=30.0)
    gen, mc = decisions(GEN_DROPS, twin_drop, "fixed")
    assert mc.outcome.value == "PASS" and mc.lower < -MC_BUDGET < mc.upper < 0
    diagnosis = diagnose(gen, mc, MC_BUDGET)
    assert diagnosis is not None and diagnosis.label == KNOWLEDGE


# --- item by item, on the same facts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mc", "matched", "label"),
    [(MC_HOLDS, MatchedItems(24, 20, 3), KNOWLEDGE), (MC_DROPS, MatchedItems(24, 20, 18), FORMAT_ALIGNMENT)],
    ids=["twin holds, the lost facts do not", "twin drops, the lost facts hold"],
)
def test_the_lost_items_read_on_the_same_facts_decide_the_label(mc: TaskEvidence, matched: MatchedItems,
                                                                 label: str) -> None:
    gen_decision, mc_decision = decisions(GEN_DROPS, mc, "fixed")
    diagnosis = diagnose(gen_decision, mc_decision, MC_BUDGET, matched)
    assert diagnosis is not None and diagnosis.label == label
    assert "item by item: of the 24 answers lost, 20 ask a fact" in diagnosis.detail
    assert f"still answers {matched.held} of those right" in diagnosis.detail


@pytest.mark.parametrize(
    ("matched", "reading"),
    [(MatchedItems(24, 6, 0), "too few"), (MatchedItems(24, 20, 10), "no clear majority")],
    ids=["too few", "split"],
)
def test_without_a_clear_item_reading_the_tasks_decide(matched: MatchedItems, reading: str) -> None:
    gen_decision, mc_decision = decisions(GEN_DROPS, MC_HOLDS, "fixed")
    diagnosis = diagnose(gen_decision, mc_decision, MC_BUDGET, matched)
    assert diagnosis is not None and diagnosis.label == FORMAT_ALIGNMENT
    assert "Compared task by task" in diagnosis.detail
    assert f"{matched.matched} lost answers matched on the same facts: {reading}" in diagnosis.detail


def test_matched_counts_must_nest() -> None:
    with pytest.raises(ValueError, match="held <= matched <= lost"):
        MatchedItems(lost=5, matched=6, held=1)


def _paired(task: object, scores: dict[int, tuple[float, float]]) -> PairedTask:
    items = tuple(ItemPair(doc, b, c, "", "", "", "", None) for doc, (b, c) in scores.items())
    return PairedTask(task, items, False)  # type: ignore[arg-type]


def test_twin_matches_reads_the_lost_facts_on_the_twins_items_and_scores_the_missing_ones() -> None:
    """The shipped core items: the facts core_facts_gen loses are looked up among core_facts_mc's sampled items
    by their `fact` field; in a sequential run the ones not scored yet are scored for the diagnosis."""
    tasks = {t.spec.id: t for t in prepare_tasks(load_suite("core"), seed=1)}
    gen, mc = tasks["core_facts_gen"], tasks["core_facts_mc"]
    gen_facts = dict(zip(gen.doc_ids, gen.match_keys, strict=True))
    mc_doc = dict(zip(mc.match_keys, mc.doc_ids, strict=True))
    shared = [doc for doc in gen.doc_ids if gen_facts[doc] in mc_doc]
    assert len(shared) >= 0.5 * len(gen.doc_ids)  # most facts asked in generation are in the twin's sample
    lost = shared[:12]  # the checkpoint loses 12 answers; their facts as multiple choice: 9 held, 3 lost
    gen_pairs = _paired(gen, {doc: (1.0, 0.0 if doc in lost else 1.0) for doc in gen.doc_ids})
    twin_docs = [mc_doc[gen_facts[doc]] for doc in lost]
    scored_twin = {doc: (1.0, 0.0 if i < 3 else 1.0) for i, doc in enumerate(twin_docs[:6])}  # half scored yet
    drop = decisions(GEN_DROPS, MC_HOLDS, "fixed")[0]
    partial = twin_matches([gen_pairs, _paired(mc, scored_twin)], {"core_facts_gen": drop})
    assert partial == {"core_facts_gen": MatchedItems(lost=12, matched=6, held=3)}

    class Twin:
        """Scores asked-for twin items: base right, checkpoint right (held)."""

        def __init__(self) -> None:
            self.asked: list[int] = []

        def score(self, role, tasks, doc_ids, progress=None):  # type: ignore[no-untyped-def]
            self.asked.extend(doc_ids["core_facts_mc"] if role == "base" else [])
            outputs = [ItemOutput(d, 1.0, "", "", "", None) for d in doc_ids["core_facts_mc"]]
            return ModelScores({"core_facts_mc": outputs}, {"core_facts_mc": False})

    scorer = Twin()
    full = twin_matches([gen_pairs, _paired(mc, scored_twin)], {"core_facts_gen": drop}, scorer)
    assert sorted(scorer.asked) == sorted(twin_docs[6:])
    assert full == {"core_facts_gen": MatchedItems(lost=12, matched=12, held=9)}
    holds = decisions(GEN_HOLDS, MC_HOLDS, "fixed")[0]  # no demonstrated drop: nothing to diagnose
    assert twin_matches([gen_pairs, _paired(mc, scored_twin)], {"core_facts_gen": holds}, scorer) == {}


def test_match_field_is_set_on_both_twins_and_names_a_document_field(tmp_path: Path) -> None:
    folder = _core_copy(tmp_path, {})
    spec = yaml.safe_load((folder / "suite.yaml").read_text())
    subset = {**spec, "tasks": [task for task in spec["tasks"] if task["id"] == "core_facts_mc"]}
    (folder / "suite.yaml").write_text(yaml.safe_dump(subset))  # the twin alone: its match_field goes unused
    assert prepare_tasks(load_suite(str(folder)), seed=1, max_items=5)[0].match_keys
    for task in spec["tasks"]:
        if task["id"] == "core_facts_mc":
            task.pop("match_field")
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SuiteError, match="only one has match_field"):
        prepare_tasks(load_suite(str(folder)), seed=1, max_items=5)
    for task in spec["tasks"]:
        if task["id"] in ("core_facts_mc", "core_facts_gen"):
            task["match_field"] = "nope"
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SuiteError, match="match_field 'nope', which item"):
        prepare_tasks(load_suite(str(folder)), seed=1, max_items=5)


# --- the suite-spec key -------------------------------------------------------------------------------------


def _core_copy(tmp_path: Path, edit: dict[str, str | None]) -> Path:
    """The shipped core suite in a temp folder, with `loglik_twin` set (or removed, None) on the named tasks."""
    folder = tmp_path / "core"
    shutil.copytree(suites_root() / "core", folder)
    spec = yaml.safe_load((folder / "suite.yaml").read_text())
    for task in spec["tasks"]:
        if task["id"] in edit:
            task.pop("loglik_twin", None)
            if edit[task["id"]] is not None:
                task["loglik_twin"] = edit[task["id"]]
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_core_pairs_facts_gen_with_facts_mc() -> None:
    suite = load_suite("core")
    assert {spec.id: spec.loglik_twin for spec in suite.tasks if spec.loglik_twin} == {
        "core_facts_gen": "core_facts_mc"
    }


@pytest.mark.parametrize(("twin", "named"), [("core_nope", "core_nope"), ("core_facts_gen", "core_facts_gen")])
def test_a_twin_must_be_another_task_of_the_suite(tmp_path: Path, twin: str, named: str) -> None:
    folder = _core_copy(tmp_path, {"core_facts_gen": twin})
    with pytest.raises(SuiteError) as caught:
        load_suite(str(folder))
    message = str(caught.value)
    assert f"loglik_twin '{named}'" in message and "core_facts_mc" in message and "\n" not in message


def test_a_twin_leaves_the_fingerprints_alone(tmp_path: Path) -> None:
    shipped = prepare_tasks(load_suite("core"), seed=1, max_items=5)
    untwinned = prepare_tasks(load_suite(str(_core_copy(tmp_path, {"core_facts_gen": None}))), seed=1, max_items=5)
    assert [t.fingerprint for t in shipped] == [t.fingerprint for t in untwinned]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"core_facts_gen": "core_math_gen"}, "core_math_gen (generate_until)"),
        ({"core_facts_gen": None, "core_facts_mc": "core_facts_gen"}, "core_facts_mc (multiple_choice)"),
    ],
    ids=["twin is a generation task", "a multiple-choice task names a twin"],
)
def test_a_twin_pairs_generation_with_multiple_choice(tmp_path: Path, edit: dict[str, str | None],
                                                      named: str) -> None:
    suite = load_suite(str(_core_copy(tmp_path, edit)))
    with pytest.raises(SuiteError) as caught:
        prepare_tasks(suite, seed=1, max_items=5)
    assert named in str(caught.value) and "generate_until task with a multiple_choice task" in str(caught.value)
