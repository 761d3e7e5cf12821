"""The `gate` command: click commands only. Parse, call the API, map errors to exit codes and one-line messages."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from gate import distributed
from gate.errors import BadInputError, ExitCode, one_line
from gate.exits import failure, stop_on_sigterm

if TYPE_CHECKING:
    from gate.config import GateConfig
    from gate.report import ReportFormat
    from gate.result import GateResult

F = TypeVar("F", bound=Callable[..., Any])
CACHE_SECRET_VARIABLE = "GATE_CACHE_SECRET"  # noqa: S105 (the variable's name)
_QUIET_LOGGERS = ("lm_eval", "lm-eval", "transformers", "datasets", "peft", "accelerate", "httpx", "urllib3")


DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="GATE_DATA_DIR",
    show_envvar=True,
    default=None,
    help="Offline mirror of the suite's datasets.",
)


OUT_OPTION = click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("gate-out"),
    show_default=True,
    help="Folder for report.md and result.json.",
)
HTML_OPTION = click.option("--html", is_flag=True, help="Also write report.html, a self-contained sign-off page.")
JUNIT_OPTION = click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write JUnit XML here: one test case per task, for GitLab, Jenkins, Azure, Buildkite.",
)
CACHE_DIR_OPTION = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    # Not click's envvar: the option is recorded in the result's config, GATE_CACHE_DIR (read by gate.paths) is not.
    help="The folder the gate caches in: per-item results, generated items, dequantised models "
    "(default: GATE_CACHE_DIR, else ~/.cache/sft-gate).",
)
VERBOSE_OPTION = click.option("-v", "--verbose", is_flag=True, help="Show library logs and tracebacks.")
JSON_FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people, json for scripts.",
)


def _fail(message: str, code: ExitCode) -> None:
    click.echo(f"gate: error: {one_line(message)}", err=True)
    sys.exit(int(code))


def handles_errors(command: F) -> F:
    """Turn library errors into one line on stderr and the error's exit code; Ctrl-C exits 130."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose"))
        try:
            return command(*args, **kwargs)
        except (KeyboardInterrupt, Exception) as exc:
            message, code, unexpected = failure(exc)
            if verbose and code != ExitCode.INTERRUPTED:
                raise
            _fail(f"{message} (rerun with --verbose for the traceback)" if unexpected else message, code)
        return None

    return wrapper  # type: ignore[return-value]


def _configure_logging(verbose: bool) -> None:
    from gate.progress import quiet_library_bars

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        # The libraries' download and loading bars would bury the gate's own progress lines and its one-line errors.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    quiet_library_bars()  # in a CI log, none of the libraries' carriage-return bars, verbose or not


def _progress(start: float, err: bool = True) -> Callable[[str], None]:
    def say(message: str) -> None:
        click.echo(f"[gate {time.monotonic() - start:6.1f}s] {message}", err=err)

    return say


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="sft-gate")
def main() -> None:
    """A CI regression gate for fine-tuned LLM checkpoints.

    Scores a general-capability suite on the checkpoint and its base with lm-eval, decides with a paired
    statistical test whether it regressed beyond the budgets, and writes report.md and result.json.

    \b
    Environment:
      GATE_CACHE_DIR   the cache folder: results, generated items, dequantised models (default ~/.cache/sft-gate)
      GATE_DATA_DIR    offline mirror of the suites' datasets
      CI               set: plain progress lines instead of progress bars
      GITHUB_ACTIONS   true: `gate run` reports to GitHub Actions (--github)
      OPENAI_API_KEY   key for --backend openai-compatible servers
      HF_HUB_OFFLINE   1: never reach the hub (use a mirror and local models)
    Shell completion (bash): eval "$(_GATE_COMPLETE=bash_source gate)"; zsh_source and fish_source likewise.
    """
    stop_on_sigterm()


@main.command(short_help="Gate a checkpoint against its base (exit 0 PASS, 1 regression).")
@click.option(
    "--ckpt", "--checkpoint", "ckpt", required=True,
    help="Checkpoint: model folder, PEFT adapter folder, .gguf file, hub id or alias."
)
@click.option(
    "--base", default=None, help="Base model (default: the adapter's base, gate.yaml's, or smollm2-135m-instruct)."
)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None, help="gate.yaml with budgets and policy."
)
@click.option("--suite", default=None, help="Suite name (see `gate suites list`) or path to a suite folder.")
@OUT_OPTION
@DATA_DIR_OPTION
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Batch size for both models.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "mps"]), default=None, help="Device for both models.")
@click.option("--allow-pickle", is_flag=True, default=None, help="Allow pickle (.bin) weights, which can run code.")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Allow a model's own Python code to run.")
@click.option(
    "--allow-suite-hooks", is_flag=True, default=None, help="Allow a suite's own Python hooks (lm-eval !function)."
)
@click.option(
    "--allow-code-execution",
    is_flag=True,
    default=None,
    help="Run the model's generated programs for code tasks (HumanEval), confined in a sandbox.",
)
@click.option("--fail-on-warn", is_flag=True, default=None, help="Exit 1 on WARN too (release candidates).")
@click.option(
    "--time-budget",
    type=click.FloatRange(0),
    default=None,
    help="Seconds of scoring within which a task undecided at its item cap may go on into its pool (default 600).",
)
@HTML_OPTION
@click.option(
    "--backend",
    type=click.Choice(["hf", "vllm", "openai-compatible"]),
    default=None,
    help="How both models are scored: hf (in process, default), vllm (in process, GPUs), openai-compatible (servers).",
)
@click.option("--ckpt-url", default=None, help="Score the checkpoint on this OpenAI-compatible server: URL/v1[#model].")
@click.option("--base-url", default=None, help="Score the base on this OpenAI-compatible server: URL/v1[#model].")
@click.option(
    "--shard",
    default=None,
    help="Score only shard i/n of the items (fixed-n) and write a partial result for `gate merge`. Example: 2/4",
)
@JUNIT_OPTION
@CACHE_DIR_OPTION
@click.option("--no-cache", is_flag=True, help="Score every item afresh; read and write no cached results.")
@click.option(
    "--github/--no-github",
    default=False,
    envvar="GITHUB_ACTIONS",
    show_envvar=True,
    help="Report to GitHub Actions: step summary, annotations, step outputs, ::group:: log sections.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines: only the verdict and where the reports are.")
@VERBOSE_OPTION
@handles_errors
def run(
    ckpt: str,
    base: str | None,
    config_path: Path | None,
    suite: str | None,
    out_dir: Path,
    data_dir: Path | None,
    batch_size: int | None,
    device: str | None,
    allow_pickle: bool | None,
    trust_remote_code: bool | None,
    allow_suite_hooks: bool | None,
    allow_code_execution: bool | None,
    fail_on_warn: bool | None,
    time_budget: float | None,
    html: bool,
    junit_path: Path | None,
    cache_dir: Path | None,
    no_cache: bool,
    backend: str | None,
    ckpt_url: str | None,
    base_url: str | None,
    shard: str | None,
    github: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Gate a checkpoint against its base; exit 0 PASS, 1 regression, 2 bad input, 3 runtime failure.

    Per-item results are cached by model and item fingerprints: the base is scored once per suite, and an
    interrupted run, started again, resumes where it stopped.

    Example: gate run --ckpt ./my-lora-adapter --suite core
    """
    _configure_logging(verbose)
    from gate.config import load_config

    config = load_config(config_path)  # before the heavy imports: a bad gate.yaml fails in a fraction of a second
    from gate.api import run as run_gate

    served = config.served.model_dump(exclude_none=True)
    served.update({role: {"url": url} for role, url in (("checkpoint", ckpt_url), ("base", base_url)) if url})
    config = config.with_overrides(
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        allow_suite_hooks=allow_suite_hooks,
        allow_code_execution=allow_code_execution,
        warn_blocks=fail_on_warn,
        time_budget=time_budget,
        cache=False if no_cache else None,
        cache_dir=str(cache_dir) if cache_dir else None,
        backend=backend,
        served=served if ckpt_url or base_url else None,
    )
    if shard is not None:
        _run_shard(ckpt, shard, base, config, suite, out_dir, data_dir, batch_size, device, html or bool(junit_path))
        return
    progress = _progress(time.monotonic(), err=not github) if distributed.is_main() and not quiet else None
    groups = None
    if github and progress is not None:
        from gate.ci.github import LogGroups

        progress = groups = LogGroups(progress)
    result = run_gate(
        ckpt,
        base=base,
        config=config,
        suite=suite,
        out_dir=out_dir,
        data_dir=data_dir,
        batch_size=batch_size,
        device=device,
        progress=progress,
        html=html,
        cache_secret=_cache_secret(),
    )
    if groups is not None:
        groups.end()
    if not distributed.is_main():  # a data-parallel helper process: rank 0 reports; same verdict, same exit code
        sys.exit(result.exit_code)
    if github:
        _publish_to_workflow(result, out_dir)
    _finish(result, out_dir, html, junit_path)


def _cache_secret() -> str | None:
    """GATE_CACHE_SECRET, read once and removed from the environment before any model or suite code runs."""
    return os.environ.pop(CACHE_SECRET_VARIABLE, None) or None
def _publish_to_workflow(result: GateResult, out_dir: Path) -> None:
    """`gate run --github`: what the Action reports, for a CLI run in a workflow (a job container, a GPU runner)."""
    from gate.ci.github import publish_to_workflow, step_outputs

    data = result.to_dict()
    workspace = os.environ.get("GITHUB_WORKSPACE")
    summary, output = os.environ.get("GITHUB_STEP_SUMMARY"), os.environ.get("GITHUB_OUTPUT")
    publish_to_workflow(
        data, step_outputs(data, out_dir, Path(workspace) if workspace else None),
        summary_path=Path(summary) if summary else None, output_path=Path(output) if output else None,
    )


def _finish(result: GateResult, out_dir: Path, html: bool, junit_path: Path | None) -> None:
    """Print the verdict and where the reports are, write JUnit if asked, exit with the verdict's code."""
    click.echo(f"{result.verdict}: {result.summary}")
    html_report = f"  html: {out_dir / 'report.html'}" if html else ""
    click.echo(f"report: {out_dir / 'report.md'}  result: {out_dir / 'result.json'}{html_report}")
    if junit_path is not None:
        from gate.report.junit import write_junit

        click.echo(f"junit: {write_junit(result.to_dict(), junit_path)}")
    sys.exit(result.exit_code)


def _run_shard(
    ckpt: str,
    shard: str,
    base: str | None,
    config: GateConfig,
    suite: str | None,
    out_dir: Path,
    data_dir: Path | None,
    batch_size: int | None,
    device: str | None,
    reports: bool,
) -> None:
    from gate.api import run_shard
    from gate.shards import parse_shard

    if reports:
        raise BadInputError("--shard writes a partial result, not a report: pass --html and --junit to `gate merge`")
    path = run_shard(
        ckpt,
        parse_shard(shard),
        base=base,
        config=config,
        suite=suite,
        out_dir=out_dir,
        data_dir=data_dir,
        batch_size=batch_size,
        device=device,
        progress=_progress(time.monotonic()),
        cache_secret=_cache_secret(),
    )
    click.echo(f"partial result: {path} (combine all shards with `gate merge`)")


@main.command("merge", short_help="Combine the partial results of sharded runs into one verdict.")
@click.argument("partials", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@OUT_OPTION
@DATA_DIR_OPTION
@HTML_OPTION
@JUNIT_OPTION
@VERBOSE_OPTION
@handles_errors
def merge_command(
    partials: tuple[Path, ...], out_dir: Path, data_dir: Path | None, html: bool, junit_path: Path | None, verbose: bool
) -> None:
    """Combine the partial results of `gate run --shard i/n` into one result and verdict (exit codes as `run`).

    Example: gate merge shards/partial-*-of-4.json --out gate-out
    """
    _configure_logging(verbose)
    from gate.api import merge

    result = merge(list(partials), out_dir=out_dir, data_dir=data_dir, html=html)
    _finish(result, out_dir, html, junit_path)


@main.command("sweep", short_help="Gate every checkpoint of a training run, in step order.")
@click.argument("checkpoints", nargs=-1, required=True)
@click.option("--base", default=None, help="Base model (default: the adapters' base, gate.yaml's, or the default).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="gate.yaml.")
@click.option("--suite", default=None, help="Suite name or path to a suite folder.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("gate-sweep"),
              show_default=True, help="Folder for sweep.json, sweep.md, sweep.html and a result folder per checkpoint.")
@click.option("--require", default="last", show_default=True,
              help="Which checkpoint must pass for exit 0: last, any, or a checkpoint's name or step.")
@click.option("--stop-at-fail", is_flag=True, help="Skip the checkpoints after the first FAIL.")
@DATA_DIR_OPTION
@CACHE_DIR_OPTION
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Batch size for both models.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "mps"]), default=None, help="Device for both models.")
@click.option("--fail-on-warn", is_flag=True, default=None, help="A WARN does not pass --require either.")
@VERBOSE_OPTION
@handles_errors
def sweep_command(
    checkpoints: tuple[str, ...],
    base: str | None,
    config_path: Path | None,
    suite: str | None,
    out_dir: Path,
    require: str,
    stop_at_fail: bool,
    data_dir: Path | None,
    cache_dir: Path | None,
    batch_size: int | None,
    device: str | None,
    fail_on_warn: bool | None,
    verbose: bool,
) -> None:
    """Gate every checkpoint of one run in step order; exit 0 when the --require checkpoint passes, 1 otherwise.

    CHECKPOINTS: a glob, a folder of checkpoint-N folders, or checkpoint paths. The base is scored once (result
    cache); a sweep started again resumes from the cache.

    Example: gate sweep 'runs/exp1/checkpoint-*' --suite core --require last
    """
    _configure_logging(verbose)
    from gate.api import sweep
    from gate.config import load_config

    config = load_config(config_path).with_overrides(
        cache_dir=str(cache_dir) if cache_dir else None, warn_blocks=fail_on_warn
    )
    record = sweep(
        list(checkpoints), base=base, config=config, suite=suite, out_dir=out_dir, data_dir=data_dir,
        batch_size=batch_size, device=device, require=require, stop_at_fail=stop_at_fail,
        progress=_progress(time.monotonic()),
    )
    recommendation = record["recommendation"]
    assert isinstance(recommendation, dict)
    click.echo(f"{'PASS' if record['passed'] else 'FAIL'} (--require {require}): {recommendation['reason']}")
    click.echo(f"report: {out_dir / 'sweep.md'}  html: {out_dir / 'sweep.html'}  record: {out_dir / 'sweep.json'}")
    sys.exit(int(str(record["exit_code"])))


@main.command("baseline", short_help="Score the base on every suite item into the result cache.")
@click.option("--base", default=None, help="Base model (default: gate.yaml's, or smollm2-135m-instruct).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="gate.yaml.")
@click.option("--suite", default=None, help="Suite name or path to a suite folder.")
@DATA_DIR_OPTION
@CACHE_DIR_OPTION
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Batch size (must match the runs).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "mps"]), default=None, help="Device (must match the runs).")
@VERBOSE_OPTION
@handles_errors
def baseline_command(
    base: str | None,
    config_path: Path | None,
    suite: str | None,
    data_dir: Path | None,
    cache_dir: Path | None,
    batch_size: int | None,
    device: str | None,
    verbose: bool,
) -> None:
    """Score the base on every item of the suite into the result cache (a nightly job; CI restores the folder).

    Example: gate baseline --suite core --cache-dir .gate-cache
    """
    _configure_logging(verbose)
    from gate.api import baseline
    from gate.config import load_config

    config = load_config(config_path).with_overrides(cache_dir=str(cache_dir) if cache_dir else None)
    done = baseline(
        base=base,
        config=config,
        suite=suite,
        data_dir=data_dir,
        batch_size=batch_size,
        device=device,
        progress=_progress(time.monotonic()),
        cache_secret=_cache_secret(),
    )
    click.echo(
        f"baseline of {done.base}: {sum(done.items.values())} items over {len(done.items)} tasks in {done.cache_dir} "
        f"({done.reused} already cached, {done.scored} scored)"
    )


@main.command("plan", short_help="Items each task needs for its budget, and what they can detect.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="gate.yaml.")
@click.option("--suite", default=None, help="Suite name or path to a suite folder.")
@DATA_DIR_OPTION
@JSON_FORMAT_OPTION
@VERBOSE_OPTION
@handles_errors
def plan_command(
    config_path: Path | None, suite: str | None, data_dir: Path | None, fmt: str, verbose: bool
) -> None:
    """Items each task needs for its budget, and the smallest regression its item cap can detect.

    Example: gate plan --suite core --config gate.yaml
    """
    _configure_logging(verbose)
    from gate.api import composite_plan, plan
    from gate.sequential import SequentialPolicy

    rows = plan(config_path, suite=suite, data_dir=data_dir)
    if fmt == "json":
        from dataclasses import asdict

        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    budget, detectable, certifiable = composite_plan(rows, config_path, suite=suite)
    policy = SequentialPolicy()
    click.echo(
        f"{'task':26} {'budget':>6} {'r':>5} {'needed':>7} {'fixed-n':>7} {'cap':>6} {'planned':>7} "
        f"{'detectable':>10} {'certifiable':>11}  method"
    )
    for row in rows:
        flag = "" if row.certified else "  <- budget not certifiable at this cap"
        click.echo(
            f"{row.name:26} {row.budget:6.1f} {row.discordance:5.2f} {row.needed:7d} {row.fixed_n:7d} {row.cap:6d} "
            f"{row.planned:7d} {-row.detectable:10.1f} {row.certifiable:11.1f}  {row.method}{flag}"
        )
    flag = "" if certifiable <= budget else "  <- budget not certifiable at these caps"
    click.echo(
        f"{'composite (equal weights)':26} {budget:6.1f} {'':5} {'':7} {'':7} {'':6} {sum(r.planned for r in rows):7d} "
        f"{-detectable:10.1f} {certifiable:11.1f}  normal-mixture{flag}"
    )
    click.echo(
        "r: planning discordance (planning_discordance in gate.yaml); counts are items (clusters where "
        f"clustered); detectable: the drop FAILed with {policy.fail_power:.0%} power; certifiable: the smallest "
        f"budget PASSed with {policy.pass_power:.0%} power at Δ = 0."
    )


@main.group()
def suites() -> None:
    """List and inspect the built-in suites."""


@suites.command("list")
@JSON_FORMAT_OPTION
@handles_errors
def suites_list(fmt: str) -> None:
    """List the built-in suites. Example: gate suites list"""
    from gate.suites import list_suites, load_suite

    loaded = [load_suite(name) for name in list_suites()]
    if fmt == "json":
        click.echo(json.dumps([{"name": s.name, "version": s.version, "tasks": len(s.tasks),
                                "description": s.description} for s in loaded], indent=2, ensure_ascii=False))
        return
    for suite in loaded:
        click.echo(f"{suite.name:12} v{suite.version}  {len(suite.tasks):2} tasks  {suite.description}")


@suites.command("show")
@click.argument("name")
@JSON_FORMAT_OPTION
@handles_errors
def suites_show(name: str, fmt: str) -> None:
    """Show a suite's tasks, capabilities, item caps, budgets and the regression each can see.

    Example: gate suites show core
    """
    from gate.sequential import SequentialPolicy, plan
    from gate.suites import load_suite

    suite = load_suite(name)
    if fmt == "json":
        tasks = [{"id": s.id, "capability": s.capability, "metric": s.metric, "items": s.items, "budget": s.budget}
                 for s in suite.tasks]
        click.echo(json.dumps({"name": suite.name, "version": suite.version, "description": suite.description,
                               "composite_budget": suite.composite_budget, "tasks": tasks}, indent=2,
                              ensure_ascii=False))
        return
    policy = SequentialPolicy(composite_budget=suite.composite_budget)
    continuous = [spec.id for spec in suite.tasks if spec.scores == "continuous"]
    caps = {spec.id: spec.items for spec in suite.tasks}
    rows = plan({spec.id: spec.budget for spec in suite.tasks}, caps, policy, continuous=continuous)
    click.echo(f"{suite.name} v{suite.version}: {suite.description}")
    click.echo(f"composite budget: {suite.composite_budget:g} points")
    click.echo(f"{'task':28} {'capability':22} {'metric':12} {'items':>6} {'budget':>7} {'detectable':>10}")
    for spec, row in zip(suite.tasks, rows, strict=True):
        click.echo(
            f"{spec.id:28} {spec.capability:22} {spec.metric:12} {spec.items:6d} {spec.budget:7.1f} "
            f"{-row.detectable:10.1f}"
        )
    click.echo(
        f"detectable: the drop (points) the default caps FAIL with {policy.fail_power:.0%} power at a discordance of "
        f"{policy.planning_discordance:.2f}, items counted as units (`gate plan` for your gate.yaml). More "
        "sensitivity costs items: raise `items:` in gate.yaml (up to the pool; the test stops early where it can), "
        "and score faster (a GPU: --device cuda; a served model: --ckpt-url/--base-url)."
    )


@main.group(short_help="Write an offline mirror of a suite's datasets.")
def mirror() -> None:
    """Write an offline mirror of a suite's datasets (one `<task>_<split>.jsonl` per task split)."""


@mirror.command("export")
@click.option("--suite", "suite_name", required=True, help="Suite name or path to a suite folder.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write the mirror files into (then pass it to `gate run --data-dir`).",
)
@click.option(
    "--source",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Read from this mirror instead of the hub (to copy or check a mirror).",
)
@VERBOSE_OPTION
@handles_errors
def mirror_export(suite_name: str, out_dir: Path, source: Path | None, verbose: bool) -> None:
    """Load each task's dataset split from the hub and write the mirror layout into --out.

    Example: gate mirror export --suite general --out ./gate-mirror
    """
    _configure_logging(verbose)
    import datasets

    from gate.mirror import export_mirror

    if not verbose:
        datasets.disable_progress_bars()
    from gate.suites import load_suite

    written = export_mirror(load_suite(suite_name), out_dir, source=source, progress=_progress(time.monotonic()))
    click.echo(f"wrote {len(written)} mirror files to {out_dir}: use it with `gate run --data-dir {out_dir}`")


_FORMAT = click.Choice(["md", "html"])
_FORMAT_HELP = "md: a pull-request comment; html: a self-contained sign-off page."
_OUT_HELP = "Write the report to this file (atomically) instead of stdout."


def _emit(text: str, out_path: Path | None) -> None:
    if out_path is None:
        click.echo(text, nl=False)
        return
    from gate.files import atomic_write_text

    atomic_write_text(out_path, text)
    click.echo(f"wrote {out_path}", err=True)


@main.command()
@click.argument("result_path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=_FORMAT, default="md", show_default=True, help=_FORMAT_HELP)
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_OUT_HELP)
@handles_errors
def report(result_path: Path, fmt: ReportFormat, out_path: Path | None) -> None:
    """Render a saved result.json as a report. Nothing is recomputed.

    Example: gate report gate-out/result.json --format html --out signoff.html
    """
    from gate.api import report as render_report

    _emit(render_report(result_path, fmt), out_path)


@main.command(short_help="Checkpoints' results side by side, and which one to ship.")
@click.argument("result_paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help=_FORMAT_HELP + " json: for scripts.")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_OUT_HELP)
@handles_errors
def compare(result_paths: tuple[Path, ...], fmt: Literal["md", "html", "json"], out_path: Path | None) -> None:
    """Show checkpoints' results (same suite, same base) side by side and which one to ship.

    Two results: A vs B. Three or more: a capabilities x candidates table and the recommended candidate.

    Example: gate compare full/result.json lora/result.json replay/result.json --format html --out remedies.html
    """
    if len(result_paths) < 2:
        raise BadInputError("gate compare needs at least two result.json files: pass every candidate's result")
    from gate.api import compare as compare_results
    from gate.api import compare_many

    if len(result_paths) == 2:
        _emit(compare_results(result_paths[0], result_paths[1], fmt), out_path)
    else:
        _emit(compare_many(result_paths, fmt), out_path)


@main.command()
@click.argument("result_path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("junit_path", type=click.Path(path_type=Path, dir_okay=False))
@handles_errors
def junit(result_path: Path, junit_path: Path) -> None:
    """Write a saved result.json as JUnit XML, one test case per task.

    Example: gate junit gate-out/result.json gate-out/junit.xml
    """
    from gate.report.junit import write_junit
    from gate.result import load_result

    click.echo(f"wrote {write_junit(load_result(result_path), junit_path)}", err=True)
