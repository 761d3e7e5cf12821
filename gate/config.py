"""The gate.yaml schema: load, validate, defaults. Errors name the key, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.errors import ConfigError

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


class GateConfig(_Strict):
    """Everything gate.yaml may say; every field has a default."""

    base: str = DEFAULT_BASE
    suite: str = DEFAULT_SUITE
    data_dir: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 1234
    alpha: Alphas = Alphas()
    mode: Literal["sequential", "fixed"] = "sequential"
    method: Literal["tango", "wald"] = "tango"
    smoke_items: Annotated[int, Field(ge=1, le=100_000)] = 200
    catastrophic_drop: Points = 10.0
    planning_discordance: Annotated[float, Field(gt=0, le=1)] = 0.1
    warn_blocks: bool = False
    composite_budget: Points | None = None
    budgets: dict[str, Points] = {}
    items: dict[str, ItemCap] = {}
    max_items: ItemCap | None = None
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 8
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def with_overrides(self, **overrides: Any) -> GateConfig:
        """A copy with the given fields replaced (None means keep), validated like the file."""
        merged = self.model_dump(by_alias=True, exclude_unset=True)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return parse_config(merged, source="command line")


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        model: type[BaseModel] = Alphas if error["loc"][0] == "alpha" else GateConfig
        allowed = ", ".join(sorted(f.alias or name for name, f in model.model_fields.items()))
        return f"unknown key '{key}' (allowed here: {allowed})"
    value = error.get("input")
    return f"{key} = {value!r}: {error['msg'].lower()}"


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: fix the syntax ({str(exc).splitlines()[0]})") from None
    return parse_config(data, source=str(path))
