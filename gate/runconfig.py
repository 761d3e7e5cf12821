"""gate.yaml turned into what a run needs: the suite and its tasks, budgets, policies, scoring settings, served
endpoints, the result cache and the model pair's references."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gate.cache import ResultCache
from gate.config import GateConfig, load_config
from gate.errors import ConfigError
from gate.loading.backends import Endpoint, VllmOptions, parse_endpoint
from gate.loading.loaders import ScoringSettings
from gate.loading.references import OutsideLinks, ResolvedModel, resolve_model
from gate.paths import cache_root
from gate.runner import ModelPair
from gate.sandbox import check_code_execution
from gate.sequential import SequentialPolicy
from gate.suites import (
    PreparedTask,
    Suite,
    check_suite_hooks,
    load_suite,
    prepare_tasks,
)
from gate.verdict import Policy


def check_task_keys(config: GateConfig, suite: Suite) -> None:
    known = {spec.id for spec in suite.tasks}
    for section in ("budgets", "items"):
        for key in getattr(config, section):
            if key not in known:
                raise ConfigError(
                    f"{section}.{key}: suite {suite.name} has no task '{key}' (its tasks: {', '.join(sorted(known))})"
                )


def scored_suite(config: GateConfig, *, extend: bool = False) -> tuple[Suite, list[PreparedTask]]:
    """The suite and tasks about to be scored; BadInputError when a task runs generated code without the opt-in."""
    suite, tasks = suite_and_tasks(config, extend=extend)
    check_code_execution([(task.spec.id, task.lm_eval_config) for task in tasks], config.allow_code_execution)
    return suite, tasks


def suite_and_tasks(config: GateConfig, *, extend: bool = False) -> tuple[Suite, list[PreparedTask]]:
    """The configured suite, checked against the config's task keys, with its items sampled (with `extend`, each
    task's pool beyond its cap too, for the sequential mode to go on into)."""
    suite = load_suite(config.suite)
    check_task_keys(config, suite)
    check_suite_hooks(suite, config.allow_suite_hooks)
    tasks = prepare_tasks(
        suite,
        seed=config.seed,
        caps=config.items,
        max_items=config.max_items,
        data_dir=Path(config.data_dir) if config.data_dir else None,
        extend=extend,
        cache_dir=cache_root(config.cache_dir),
    )
    return suite, tasks


def sequential_policy(config: GateConfig, composite_budget: float) -> SequentialPolicy:
    """The sequential design's error rates and smoke stage, from gate.yaml."""
    return SequentialPolicy(
        alpha_fail=config.alpha.fail,
        alpha_pass=config.alpha.pass_,
        composite_budget=composite_budget,
        smoke_items=config.smoke_items,
        catastrophic_drop=config.catastrophic_drop,
        planning_discordance=config.planning_discordance,
        sequence=config.sequence,
    )


def task_budgets(config: GateConfig, suite: Suite) -> dict[str, float]:
    """The budgets the verdict uses: the suite's, as gate.yaml overrides and waives them."""
    return config.task_budgets({spec.id: spec.budget for spec in suite.tasks}, suite=suite.name)


def result_cache(config: GateConfig, settings: ScoringSettings, secret: str | None = None) -> ResultCache | None:
    """The per-item result cache the config asks for (None with `cache: false`), authenticated with `secret`."""
    if not config.cache:
        return None
    return ResultCache(cache_root(config.cache_dir), asdict(settings), secret)


def scoring_settings(config: GateConfig) -> ScoringSettings:
    return ScoringSettings(
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
        trust_remote_code=config.trust_remote_code,
        backend=config.backend,
        vllm=VllmOptions(**config.vllm.model_dump()),
        chat_template=config.chat_template,
    )


def served_endpoints(config: GateConfig) -> dict[str, Endpoint]:
    """The served roles' endpoints; ConfigError when `backend: openai-compatible` lacks one."""
    found = {}
    for role in ("base", "checkpoint"):
        served = getattr(config.served, role)
        if served is not None:
            found[role] = parse_endpoint(served.url, served.num_concurrent)
    if config.backend == "openai-compatible" and len(found) < 2:
        raise ConfigError(
            "backend openai-compatible scores both models on servers: give served.base.url and served.checkpoint.url "
            "in gate.yaml (or --base-url and --ckpt-url)"
        )
    return found


def resolve_pair(
    ckpt: str, base: str | None, config: GateConfig, outside_links: OutsideLinks = "warn"
) -> tuple[ResolvedModel, ResolvedModel]:
    """The checkpoint and its base: --base, else gate.yaml's base if set, else the adapter's own, else the default."""
    resolve = functools.partial(
        resolve_model,
        allow_pickle=config.allow_pickle,
        trust_remote_code=config.trust_remote_code,
        outside_links=outside_links,
        cache_dir=cache_root(config.cache_dir),
    )
    base_model = None
    if base is not None or "base" in config.model_fields_set:
        base_model = resolve(base or config.base)
    checkpoint = resolve(ckpt, base=base_model)
    if base_model is None:
        base_model = checkpoint.base or resolve(config.base)
    return checkpoint, base_model


def fixed_policy(config: GateConfig, composite_budget: float) -> Policy:
    return Policy(
        alpha_fail=config.alpha.fail,
        alpha_pass=config.alpha.pass_,
        composite_budget=composite_budget,
        method=config.method,
    )


def configured(config: GateConfig | Path | None, *, data_dir: Path | None = None, **overrides: Any) -> GateConfig:
    """gate.yaml (a path, a GateConfig, or None for the defaults) with a call's overrides; None overrides nothing."""
    gate_config = config if isinstance(config, GateConfig) else load_config(config)
    return gate_config.with_overrides(data_dir=str(data_dir) if data_dir else None, **overrides)


@dataclass(frozen=True)
class RunInputs:
    """What scoring a suite needs, from one config: its tasks with their items, budgets, and how models are scored."""

    config: GateConfig
    suite: Suite
    tasks: list[PreparedTask]
    budgets: dict[str, float]
    composite_budget: float
    settings: ScoringSettings
    endpoints: dict[str, Endpoint]

    def model_pair(self, base: ResolvedModel, checkpoint: ResolvedModel) -> ModelPair:
        """The two models, loaded with the same settings, as the config allows them to differ."""
        return ModelPair(
            base,
            checkpoint,
            self.settings,
            self.config.allow_differences,
            self.endpoints,
            allow_code_execution=self.config.allow_code_execution,
            cache_dir=cache_root(self.config.cache_dir),
        )


def run_inputs(config: GateConfig, *, extend: bool = False) -> RunInputs:
    """The suite's tasks and everything else a run, a shard or a baseline scores with; fails before any model loads."""
    suite, tasks = scored_suite(config, extend=extend)
    return RunInputs(
        config=config,
        suite=suite,
        tasks=tasks,
        budgets=task_budgets(config, suite),
        composite_budget=config.composite_budget or suite.composite_budget,
        settings=scoring_settings(config),
        endpoints=served_endpoints(config),
    )
