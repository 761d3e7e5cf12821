"""Suite specs (YAML data, like lm-eval tasks), seeded item sampling, fingerprints and the offline mirror."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from jinja2.exceptions import SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.bounded_yaml import YamlLimitError, function_tags, read_bounded
from gate.errors import SuiteError, shown
from gate.paths import cache_root

SUITE_FILE = "suite.yaml"
Capability = Literal[
    "knowledge",
    "commonsense",
    "reasoning",
    "reading",
    "math",
    "instruction following",
    "truthfulness",
    "language modelling",
    "format following",
    "safety",
    "helpfulness",
    "code",
    "Chinese knowledge",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where a task reads its items from a local mirror: one JSONL file for one split."""

    file: str
    split: str


class TaskSpec(_Strict):
    """One task of a suite: what lm-eval runs, what capability it measures, how it is budgeted."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")]
    task: str | None = None
    config: str | None = None
    capability: Capability
    metric: str
    filter: str = "none"
    items: Annotated[int, Field(ge=1)]
    pool: Annotated[int, Field(ge=1)] | None = None
    budget: Annotated[float, Field(gt=0, le=100)]
    chat_template: bool = False
    cluster_field: str | None = None
    stratify_field: str | None = None
    num_fewshot: Annotated[int, Field(ge=0)] | None = None
    max_gen_toks: Annotated[int, Field(ge=1)] | None = None
    # The effective discordance r the item cap was planned with (E[d^2]: the disagreement rate for 0/1 scores).
    discordance: Annotated[float, Field(gt=0, le=1)] | None = None
    # Whether per-item scores are 0/1 (binary) or anywhere in [0, 1] (continuous): how the plan models a drop.
    scores: Literal["binary", "continuous"] = "binary"
    data: DataSpec | None = None
    # A generation task's multiple-choice counterpart on the same facts: a drop here while the twin holds is
    # labelled format/alignment, not knowledge (a diagnosis, never the verdict; not part of the fingerprint).
    loglik_twin: str | None = None
    # A document field naming the fact an item asks, set on a task and on its twin: the label then also compares
    # them item by item, on the same facts (a diagnosis, never the verdict; not part of the fingerprint).
    match_field: str | None = None


class Suite(_Strict):
    """A named, versioned set of tasks with a composite budget."""

    # An identifier: it names folders under the cache (generated items), so no path separators and no dots.
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    version: int
    description: str
    generator: str | None = None
    seed: int | None = None
    composite_budget: Annotated[float, Field(gt=0, le=100)]
    tasks: Annotated[list[TaskSpec], Field(min_length=1)]
    directory: Path = Path()

    def task(self, task_id: str) -> TaskSpec:
        """The task with this id."""
        for spec in self.tasks:
            if spec.id == task_id:
                return spec
        raise KeyError(task_id)


@dataclass(frozen=True)
class PreparedTask:
    """A task ready to score: its lm-eval config, the sampled doc ids in seeded order, and its fingerprint."""

    spec: TaskSpec
    lm_eval_config: dict[str, Any]
    doc_ids: tuple[int, ...]
    pool_size: int
    fingerprint: str
    clusters: tuple[str, ...] | None = None
    scoring_key: str = ""
    item_keys: tuple[str, ...] = ()
    match_keys: tuple[str, ...] = ()  # per sampled item, the fact it asks (spec.match_field), for the diagnosis
    # Items within the task's cap; doc_ids beyond it are the rest of the pool in the seeded order, which a sequential
    # run may extend into (prepare_tasks with extend=True). None: every doc id is within the cap.
    cap: int | None = None

    @property
    def units(self) -> int:
        """Independent units: items, or clusters for a task whose items share passages."""
        return len(self.doc_ids) if self.clusters is None else len(set(self.clusters))

    @property
    def cap_units(self) -> int:
        """Units within the cap (units when there is no reserve beyond it)."""
        if self.cap is None:
            return self.units
        return self.cap if self.clusters is None else len(set(self.clusters[: self.cap]))


def suites_root() -> Path:
    """The folder of built-in suites: inside the wheel, or `suites/` beside the package in a source checkout."""
    packaged = Path(str(importlib.resources.files("gate") / "suites"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "suites"


def list_suites() -> list[str]:
    """Names of the built-in suites."""
    return sorted(p.parent.name for p in suites_root().glob(f"*/{SUITE_FILE}"))


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name, or a suite from a folder or suite.yaml path."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = path / SUITE_FILE
    if not path.is_file():
        builtin = suites_root() / name_or_path / SUITE_FILE
        if not builtin.is_file():
            raise SuiteError(
                f"unknown suite '{name_or_path}': use one of {', '.join(list_suites())} "
                "or a path to a suite folder (see `gate suites list`)"
            )
        path = builtin
    try:
        data = read_bounded(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, YamlLimitError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SuiteError(f"{path} is not a readable YAML suite spec: {reason}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite spec is a mapping with name, version, tasks")
    try:
        suite = Suite.model_validate({**data, "directory": path.parent})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SuiteError(f"{path}: {key} = {shown(first.get('input'))}: {first['msg'].lower()}") from None
    for spec in suite.tasks:
        if (spec.task is None) == (spec.config is None):
            raise SuiteError(f"{path}: task {spec.id} needs exactly one of `task` (lm-eval name) or `config` (YAML)")
    ids = [spec.id for spec in suite.tasks]
    if len(set(ids)) != len(ids):
        raise SuiteError(f"{path}: task ids must be unique, got {ids}")
    for spec in suite.tasks:
        if spec.loglik_twin is not None and (spec.loglik_twin not in ids or spec.loglik_twin == spec.id):
            raise SuiteError(
                f"{path}: task {spec.id} has loglik_twin '{spec.loglik_twin}', which is not another task of the "
                f"suite: name one of {', '.join(i for i in ids if i != spec.id)}, or drop the key"
            )
    return suite


def is_shipped(suite: Suite) -> bool:
    """Whether the suite is one of the gate's own (its hooks are the gate's code, reviewed with it)."""
    return suite.directory.resolve().is_relative_to(suites_root().resolve())


def suite_hooks(suite: Suite) -> list[str]:
    """The Python hooks (`!function`) a suite's own task configs would import and run; none for a shipped suite."""
    if is_shipped(suite):
        return []
    hooks: list[str] = []
    for spec in suite.tasks:
        path = suite.directory / spec.config if spec.config is not None else None
        if path is None or not path.is_file():
            continue
        try:
            hooks += [f"{spec.config}: {hook}" for hook in function_tags(path)]
        except (OSError, UnicodeDecodeError, yaml.YAMLError, YamlLimitError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SuiteError(f"suite {suite.name}: task {spec.id}'s config {path} is not readable YAML: {reason}") \
                from None
    return hooks


def check_suite_hooks(suite: Suite, allowed: bool) -> None:
    """SuiteError (exit 2) when a suite from outside the gate would run Python hooks that were not allowed."""
    hooks = [] if allowed else suite_hooks(suite)
    if hooks:
        raise SuiteError(
            f"suite {suite.name} runs its own Python ({shown(hooks[0], 60)}{' and more' if len(hooks) > 1 else ''}): "
            "review that code, then allow it with --allow-suite-hooks (Action: `allow-code: suite-hooks`)"
        )


def _match_keys(spec: TaskSpec, docs: Any, doc_ids: tuple[int, ...]) -> tuple[str, ...]:
    """Each sampled item's spec.match_field value (none without the key); SuiteError when a document lacks it."""
    if spec.match_field is None:
        return ()
    missing = next((doc_id for doc_id in doc_ids if spec.match_field not in docs[doc_id]), None)
    if missing is not None:
        raise SuiteError(
            f"task {spec.id} has match_field '{spec.match_field}', which item {missing} does not have: name a field "
            "of its documents, or drop the key"
        )
    return tuple(str(docs[doc_id][spec.match_field]) for doc_id in doc_ids)


def _check_twins(tasks: list[PreparedTask]) -> None:
    """A loglik_twin pairs a generation task with a multiple-choice one, and a pair sets match_field on both or on
    neither: SuiteError otherwise. (A match_field outside any pair, as in a subset of a suite, is not used.)"""
    # lm-eval's own default when a config says nothing
    output_type = {task.spec.id: task.lm_eval_config.get("output_type", "generate_until") for task in tasks}
    match_field = {task.spec.id: task.spec.match_field for task in tasks}
    for task in tasks:
        twin = task.spec.loglik_twin
        if twin is None:
            continue
        if output_type[task.spec.id] != "generate_until" or output_type[twin] != "multiple_choice":
            raise SuiteError(
                f"task {task.spec.id} ({output_type[task.spec.id]}) names loglik_twin {twin} ({output_type[twin]}): "
                "a twin pairs a generate_until task with a multiple_choice task on the same facts; fix or drop the key"
            )
        if (match_field[task.spec.id] is None) != (match_field[twin] is None):
            raise SuiteError(
                f"tasks {task.spec.id} and its twin {twin}: only one has match_field; set it on both (the document "
                "field naming the fact an item asks), or on neither"
            )


def suite_data_dir(suite: Suite, data_dir: Path | None, seed: int | None, root: Path | None = None) -> Path | None:
    """The folder the suite's tasks read their items from: generated items (under the cache folder `root`), a
    mirror, or None (the hub)."""
    if suite.generator is not None:
        from gate.core_items import write_items

        item_seed = suite.seed if seed is None else seed
        if item_seed is None:
            raise SuiteError(f"suite {suite.name} generates its items and needs a seed: set `seed` in its suite.yaml")
        target = cache_root(root) / "items" / f"{suite.name}-v{suite.version}-seed{item_seed}"
        pools = {spec.id: spec.pool or spec.items for spec in suite.tasks}
        write_items(target, item_seed, pools)
        return target
    if data_dir is not None and not data_dir.is_dir():
        raise SuiteError(f"data dir {data_dir} does not exist: pass a mirror folder to --data-dir (or GATE_DATA_DIR)")
    return data_dir


@functools.cache
def _lm_eval_registry() -> Any:
    """lm-eval's index of its built-in tasks (takes seconds: built once, only when a suite names one)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def bare_task_manager() -> Any:
    """A TaskManager that indexes nothing (the gate always hands lm-eval complete task configs), its templates
    rendered in the sandbox."""
    from lm_eval.tasks import TaskManager

    from gate.templates import sandbox_lm_eval_templates

    sandbox_lm_eval_templates()
    return TaskManager(include_defaults=False)


def _base_config(suite: Suite, spec: TaskSpec, root: Path | None) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    from gate.punkt import register_punkt

    # Loading a config imports its Python hooks; IFEval's fetch nltk's punkt_tab at import unless one is found.
    register_punkt(cache_root(root) / "nltk_data")
    if spec.config is not None:
        config_path = suite.directory / spec.config
        if not config_path.is_file():
            raise SuiteError(f"suite {suite.name}: task {spec.id} names {config_path}, which does not exist")
    else:
        entry = _lm_eval_registry().task_index.get(spec.task or "")
        if entry is None or entry.yaml_path is None:
            raise SuiteError(
                f"suite {suite.name}: '{spec.task}' is not an lm-eval task with a YAML config: "
                "check the name with `lm_eval ls tasks`"
            )
        config_path = Path(entry.yaml_path)
    try:
        return dict(load_yaml(config_path, resolve_func=True))
    except ImportError as exc:
        raise SuiteError(
            f"task {spec.id}: lm-eval's code for it needs the Python module '{exc.name}', which is not installed: "
            f"pip install {exc.name} (lm-eval's `tasks` extra lists them all)"
        ) from None


def _with_settings(config: dict[str, Any], spec: TaskSpec) -> dict[str, Any]:
    """The suite's shot count and generation cap on top of the task's own config."""
    config = dict(config)
    if spec.num_fewshot is not None:
        config["num_fewshot"] = spec.num_fewshot
    if spec.max_gen_toks is not None:
        config["generation_kwargs"] = {**(config.get("generation_kwargs") or {}), "max_gen_toks": spec.max_gen_toks}
    return config


def _with_mirror(config: dict[str, Any], spec: TaskSpec, data_dir: Path | None) -> dict[str, Any]:
    config = {**config, "task": spec.id}
    if data_dir is None or spec.data is None:
        return config
    data_file = data_dir / spec.data.file
    if not data_file.is_file():
        raise SuiteError(
            f"task {spec.id} needs {spec.data.file} in the mirror {data_dir}: "
            "write it with `gate mirror export` on a machine with the hub, or drop --data-dir to use the hub"
        )
    from gate.mirror import read_records

    read_records(data_file)
    if config.get("num_fewshot") and config.get("fewshot_split") != spec.data.split:
        raise SuiteError(
            f"task {spec.id} is {config['num_fewshot']}-shot from another split than the mirror's "
            f"{spec.data.split}: set `num_fewshot: 0` for it in the suite, or drop --data-dir to use the hub"
        )
    config.pop("dataset_name", None)
    # The mirror holds the evaluation split only: a zero-shot task must not reach for the others.
    for split_key in ("training_split", "validation_split", "test_split", "fewshot_split"):
        if config.get(split_key) not in (None, spec.data.split):
            config[split_key] = None
    config["dataset_path"] = "json"
    config["dataset_kwargs"] = {"data_files": {spec.data.split: str(data_file.resolve())}}
    return config


def _seeded_order(pool_size: int, cap: int, seed: int, task_id: str, strata: list[str] | None) -> tuple[int, ...]:
    task_key = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, task_key])
    order = rng.permutation(pool_size)
    if strata is not None:
        # Round-robin over strata in shuffled order, so every prefix is close to proportional.
        by_stratum: dict[str, list[int]] = {}
        for index in order:
            by_stratum.setdefault(strata[index], []).append(int(index))
        rank = {key: r for r, key in enumerate(sorted(by_stratum, key=lambda k: (-len(by_stratum[k]), k)))}
        positions = [
            ((i + 0.5) / len(members), rank[key], member)
            for key, members in by_stratum.items()
            for i, member in enumerate(members)
        ]
        order = np.array([member for *_, member in sorted(positions)])
    return tuple(int(i) for i in order[:cap])


def _cluster_contiguous(doc_ids: tuple[int, ...], labels: list[str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Keep the seeded order but stream each cluster's items together, clusters in order of first appearance."""
    by_cluster: dict[str, list[int]] = {}
    for doc_id, label in zip(doc_ids, labels, strict=True):
        by_cluster.setdefault(label, []).append(doc_id)
    ordered = [(doc_id, label) for label, members in by_cluster.items() for doc_id in members]
    return tuple(d for d, _ in ordered), tuple(label for _, label in ordered)


def _canonical(value: Any) -> Any:
    if callable(value):
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = getattr(value, "__qualname__", repr(value))
        return "fn:" + hashlib.sha256(source.encode()).hexdigest()
    return str(value)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=_canonical, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _TaskIdentity:
    fingerprint: str  # what is measured: spec, config and the sampled items
    scoring_key: str  # what decides one item's score: config, task version, metric, filter, chat-template setting
    item_keys: tuple[str, ...]  # each sampled item's document, rendered prompt, choices and target


def _identify_task(task: Any, spec: TaskSpec, doc_ids: tuple[int, ...]) -> _TaskIdentity:
    docs = task.eval_docs
    rendered = []
    for doc_id in doc_ids:
        doc = docs[doc_id]
        choices = task.doc_to_choice(doc) if task.OUTPUT_TYPE == "multiple_choice" else None
        rendered.append([doc_id, task.doc_to_text(doc), choices, task.doc_to_target(doc)])
    full = task.config.to_dict()
    config = {k: v for k, v in full.items() if k not in {"dataset_kwargs", "metadata"}}
    version = (full.get("metadata") or {}).get("version")
    scoring = {
        "config": config,
        "task_version": version,
        "spec": spec.model_dump(include={"metric", "filter", "chat_template", "cluster_field"}),
    }
    return _TaskIdentity(
        fingerprint=_digest(
            {"spec": spec.model_dump(exclude={"loglik_twin", "match_field"}), "config": config, "items": rendered}
        ),
        scoring_key=_digest(scoring),
        # The whole document too: a metric may read fields beyond the prompt (IFEval's instruction ids and kwargs).
        item_keys=tuple(_digest([item, docs[item[0]]]) for item in rendered),
    )


def prepare_tasks(
    suite: Suite,
    *,
    seed: int,
    data_dir: Path | None = None,
    caps: Mapping[str, int] | None = None,
    max_items: int | None = None,
    item_seed: int | None = None,
    extend: bool = False,
    cache_dir: Path | None = None,
) -> list[PreparedTask]:
    """Build each task with lm-eval, sample its items in a seeded order, and fingerprint what will be measured.

    `seed` orders the items; `item_seed` regenerates a generated suite's items afresh (default: the suite's seed).
    With `extend`, each task whose cap is the suite's own (not set through `caps` or `max_items`, which are hard)
    also carries the rest of its pool, in the same seeded order, after its capped items (PreparedTask.cap); the
    fingerprint still covers the capped items only. Generated items and Punkt data go under `cache_dir`
    (gate.paths.cache_root's default when None).
    """
    item_dir = suite_data_dir(suite, data_dir, item_seed, cache_dir)
    manager = bare_task_manager()
    prepared = []
    for spec in suite.tasks:
        hub_config = task_config(suite, spec, cache_dir=cache_dir)
        config = _with_mirror(hub_config, spec, item_dir)
        try:
            task = manager.load([config])["tasks"][spec.id]
            docs = task.eval_docs
        except SecurityError as exc:
            raise _unsafe_template(suite, spec, exc) from None
        except Exception as exc:
            raise SuiteError(_dataset_message(spec, hub_config, item_dir, exc)) from None
        configured = (caps or {}).get(spec.id)
        if configured is not None and configured > len(docs):
            raise SuiteError(
                f"items: {spec.id}: {configured} is more than its pool of {len(docs)} items: set at most {len(docs)}"
            )
        # gate.yaml's items: may raise a task's cap up to its pool; max_items: only lowers caps.
        cap = min(x for x in (configured if configured is not None else spec.items, max_items) if x is not None)
        # A cap the caller sets (gate.yaml's items: or max_items:) is a hard one: only the suite's own caps extend.
        reserved = extend and configured is None and max_items is None
        strata = [str(doc[spec.stratify_field]) for doc in docs] if spec.stratify_field else None
        order = _seeded_order(len(docs), len(docs) if reserved else cap, seed, spec.id, strata)
        doc_ids, clusters = order[:cap], None
        if spec.cluster_field:
            doc_ids, clusters = _cluster_contiguous(doc_ids, [str(docs[i][spec.cluster_field]) for i in doc_ids])
        try:
            identity = _identify_task(task, spec, doc_ids)  # renders every prompt
        except SecurityError as exc:
            raise _unsafe_template(suite, spec, exc) from None
        item_keys, within = identity.item_keys, len(doc_ids)
        if reserved and within < len(docs):
            taken = set(doc_ids)
            reserve = tuple(i for i in order[cap:] if i not in taken)
            if clusters is not None:  # whole clusters only: one met within the cap is not continued beyond it
                met = set(clusters)
                reserve = tuple(i for i in reserve if str(docs[i][spec.cluster_field]) not in met)
                reserve, more = _cluster_contiguous(reserve, [str(docs[i][spec.cluster_field]) for i in reserve])
                clusters = (*clusters, *more)
            doc_ids = (*doc_ids, *reserve)
            try:
                item_keys = (*item_keys, *_identify_task(task, spec, reserve).item_keys)
            except SecurityError as exc:
                raise _unsafe_template(suite, spec, exc) from None
        prepared.append(
            PreparedTask(
                spec, config, doc_ids, len(docs), identity.fingerprint, clusters, identity.scoring_key,
                item_keys, _match_keys(spec, docs, doc_ids), within if reserved else None,
            )
        )
    _check_twins(prepared)
    return prepared


def _unsafe_template(suite: Suite, spec: TaskSpec, exc: SecurityError) -> SuiteError:
    return SuiteError(
        f"suite {suite.name}: a template of task {spec.id} reaches past its document ({shown(str(exc), 80)}): "
        "templates may read the document's fields only; move the logic into a reviewed hook (allow-code: suite-hooks)"
    )


def task_config(
    suite: Suite, spec: TaskSpec, data_dir: Path | None = None, *, cache_dir: Path | None = None
) -> dict[str, Any]:
    """The complete lm-eval config the gate hands over for a task: from the hub, or from the mirror data_dir."""
    return _with_mirror(_with_settings(_base_config(suite, spec, cache_dir), spec), spec, data_dir)


def dataset_label(config: Mapping[str, Any]) -> str:
    """The dataset a task config reads, as the hub names it: 'allenai/ai2_arc (ARC-Easy)'."""
    name = config.get("dataset_name")
    return f"{config.get('dataset_path')}" + (f" ({name})" if name else "")


def _dataset_message(spec: TaskSpec, hub_config: Mapping[str, Any], data_dir: Path | None, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if data_dir is not None and spec.data is not None:
        return f"task {spec.id} cannot read its items from {data_dir / spec.data.file} ({reason}): fix the mirror file"
    mirror = f" holding {spec.data.file}" if spec.data else ""
    return (
        f"task {spec.id} cannot load the dataset {dataset_label(hub_config)} ({reason}): connect to the Hugging "
        f"Face hub, or pass --data-dir with an offline mirror{mirror} (see `gate mirror export`)"
    )


def suite_fingerprint(suite: Suite, tasks: list[PreparedTask]) -> str:
    """Hash of the suite spec, every task's config and every sampled item: changes iff what is measured changes."""
    payload = {
        "name": suite.name,
        "version": suite.version,
        "composite_budget": suite.composite_budget,
        "tasks": {t.spec.id: t.fingerprint for t in tasks},
    }
    text = json.dumps(payload, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
