"""The gate.yaml schema: load, validate, defaults. Errors name the key, the bad value and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from gate.bounded_yaml import YamlLimitError, read_bounded
from gate.errors import ConfigError, shown

DEFAULT_BASE = "smollm2-135m-instruct"
DEFAULT_SUITE = "core"

Points = Annotated[float, Field(gt=0, le=100)]
ItemCap = Annotated[int, Field(ge=1, le=1_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Alphas(_Strict):
    """Error rates: family-wise on the FAIL side, per task on the PASS side."""

    fail: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    pass_: Annotated[float, Field(gt=0, lt=0.5, alias="pass")] = 0.05


def _iso_date(value: Any) -> date:
    """YAML reads an unquoted 2027-03-01 as a date and a quoted one as text: accept both, as a date."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise PydanticCustomError("date_format", "expected a date such as 2027-03-01")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PydanticCustomError("date_format", "no such day: expected a date such as 2027-03-01") from None


def _has_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("reason", "a waiver needs a reason: say why this regression is accepted")
    return value.strip()


class VllmConfig(_Strict):
    """lm-eval `vllm` arguments for `backend: vllm`: how the model spreads over GPUs."""

    tensor_parallel_size: Annotated[int, Field(ge=1, le=1024)] = 1
    data_parallel_size: Annotated[int, Field(ge=1, le=1024)] = 1
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    max_model_len: Annotated[int, Field(ge=1)] | None = None


class ServedModel(_Strict):
    """An OpenAI-compatible server scoring one role: its /v1 URL (`#name` picks the served model) and concurrency."""

    url: str
    num_concurrent: Annotated[int, Field(ge=1, le=1024)] = 4


class Served(_Strict):
    """Endpoints for the roles scored by a server; a role without one uses `backend`."""

    base: ServedModel | None = None
    checkpoint: ServedModel | None = None


class Waiver(_Strict):
    """An accepted regression: the task's budget loosened to `budget` points, for a stated reason, until `expires`."""

    task: str
    budget: Points
    reason: Annotated[str, AfterValidator(_has_text)]
    expires: Annotated[date, BeforeValidator(_iso_date)]


def utc_today() -> date:
    """Today's date in UTC: the day waivers are checked against."""
    return datetime.now(timezone.utc).date()


class GateConfig(_Strict):
    """Everything gate.yaml may say; every field has a default."""

    base: str = DEFAULT_BASE
    suite: str = DEFAULT_SUITE
    data_dir: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 1234
    alpha: Alphas = Alphas()
    mode: Literal["sequential", "fixed"] = "sequential"
    method: Literal["tango", "wald"] = "tango"
    # The sequential mode's per-task confidence sequence (gate.stats.ConfidenceSequence).
    sequence: Literal["design-betting", "normal-mixture"] = "design-betting"
    smoke_items: Annotated[int, Field(ge=1, le=100_000)] = 200
    catastrophic_drop: Points = 10.0
    planning_discordance: Annotated[float, Field(gt=0, le=1)] = 0.1
    # Seconds of scoring (sequential mode) within which a task undecided at its item cap may go on into the rest of
    # its pool, as far as the discordance it shows calls for; 0 keeps every task within its cap.
    time_budget: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    warn_blocks: bool = False
    composite_budget: Points | None = None
    budgets: dict[str, Points] = {}
    items: dict[str, ItemCap] = {}
    max_items: ItemCap | None = None
    # 32 rows a step: on a CPU, generation's per-step overhead dominates (docs/speed-and-scale.md, "Speed"); an
    # out-of-memory error torch raises halves it for the rest of the run.
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Python hooks (lm-eval `!function`) in a suite that is not one of the gate's own.
    allow_suite_hooks: bool = False
    # Run the model's generated programs (code tasks such as HumanEval), confined by gate.sandbox.
    allow_code_execution: bool = False
    waivers: list[Waiver] = []
    # Per-item results of both models are kept here (default: GATE_CACHE_DIR, else ~/.cache/sft-gate), so the base
    # is scored once per suite and an interrupted run resumes; `cache: false` scores everything afresh.
    cache: bool = True
    cache_dir: str | None = None
    # Differences between base and checkpoint that are refused unless listed here on purpose.
    allow_differences: list[Literal["tokenizer", "chat_template"]] = []
    # A Jinja chat template for a model whose tokenizer has none: without one, chat-template tasks are refused.
    chat_template: Annotated[str, Field(min_length=1)] | None = None
    # How the models are scored: hf (in process), vllm (in process, GPUs), or openai-compatible (servers in `served`).
    backend: Literal["hf", "vllm", "openai-compatible"] = "hf"
    vllm: VllmConfig = VllmConfig()
    served: Served = Served()

    def with_overrides(self, **overrides: Any) -> GateConfig:
        """A copy with the given fields replaced (None means keep), validated like the file."""
        merged = self.model_dump(by_alias=True, exclude_unset=True)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return parse_config(merged, source="command line")

    def normal_budgets(self, suite_budgets: Mapping[str, float]) -> dict[str, float]:
        """Each task's budget before waivers: the suite's, or the one `budgets:` sets."""
        return {task: self.budgets.get(task, budget) for task, budget in suite_budgets.items()}

    def task_budgets(
        self, suite_budgets: Mapping[str, float], *, suite: str, today: date | None = None
    ) -> dict[str, float]:
        """The budgets the verdict uses: normal ones loosened by the waivers; ConfigError on a waiver that cannot apply.

        A waiver must name a task of the suite (once), must not have expired (`expires` before `today`, default
        the UTC date) and must loosen: its budget above the task's normal budget.
        """
        budgets = self.normal_budgets(suite_budgets)
        day = today or utc_today()
        waived: set[str] = set()
        for waiver in self.waivers:
            task, normal = waiver.task, budgets.get(waiver.task)
            if normal is None:
                raise ConfigError(
                    f"waivers.{task}: suite {suite} has no task '{task}' (its tasks: {', '.join(sorted(budgets))})"
                )
            if task in waived:
                raise ConfigError(f"waivers.{task}: the task is waived twice: keep one waiver per task")
            if waiver.expires < day:
                raise ConfigError(
                    f"waivers.{task}: the waiver expired on {waiver.expires.isoformat()} (today is {day.isoformat()}, "
                    "UTC): renew it with a later `expires` if the regression is still accepted, or remove it"
                )
            if waiver.budget <= normal:
                raise ConfigError(
                    f"waivers.{task}: budget {waiver.budget:g} is not looser than the task's budget {normal:g}: "
                    f"a waiver only loosens, so give it a budget above {normal:g} or remove it"
                )
            waived.add(task)
        return {**budgets, **{waiver.task: waiver.budget for waiver in self.waivers}}


def _shown(text: str) -> str:
    """Text as it may appear inside a one-line message: line breaks and other controls escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _describe(error: dict[str, Any]) -> str:
    key = _shown(".".join(str(part) for part in error["loc"])) or "(top level)"
    if error["type"] == "extra_forbidden":
        sections: dict[str, type[BaseModel]] = {
            "alpha": Alphas, "waivers": Waiver, "vllm": VllmConfig, "served": Served,
        }
        model = sections.get(str(error["loc"][0]), GateConfig) if len(error["loc"]) > 1 else GateConfig
        if model is Served and len(error["loc"]) > 2:
            model = ServedModel
        allowed = ", ".join(sorted(f.alias or name for name, f in model.model_fields.items()))
        return f"unknown key '{key}' (allowed here: {allowed})"
    if error["type"] == "missing":
        return f"{key} is missing: it is required here"
    return f"{key} = {shown(error.get('input'))}: {error['msg'].lower()}"


def parse_config(data: Any, source: str = "gate.yaml") -> GateConfig:
    """Validate a mapping (as read from YAML) into a GateConfig."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return GateConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {_describe(dict(first))}{suffix}") from None


def load_config(path: Path | None) -> GateConfig:
    """Read and validate gate.yaml; no path means all defaults."""
    if path is None:
        return GateConfig()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing gate.yaml to --config")
    try:
        data = read_bounded(path)
    except YamlLimitError as exc:
        raise ConfigError(f"{path} is too large a YAML document ({exc}): write the keys out, without aliases") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: 2027-02-30
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: fix the syntax ({str(exc).splitlines()[0]})") from None
    return parse_config(data, source=str(path))
