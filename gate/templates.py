"""lm-eval's prompt templates rendered in Jinja's sandbox: a task config's template is data, never code.

lm-eval renders every `doc_to_text`/`doc_to_target`/`doc_to_choice` template with a plain Jinja Environment, in
which `{{ cycler.__init__.__globals__.os.system(...) }}` runs anything. A suite from the change carries such
templates, so the gate swaps lm-eval's environment for an immutable sandbox with the same settings and filters
before it builds any task. Ordinary templates (fields, indexing, `split`, `strip`, filters) render the same.
"""

from __future__ import annotations

from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

_KEPT = 256  # compiled templates kept; a suite has a few per task


class _CompileOnceSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, compiling each template source once: lm-eval compiles a task's template anew for every
    document it renders (a 1,500-item pool: 3,000 compilations, most of preparing a suite's tasks)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._compiled: dict[str, Template] = {}

    def from_string(self, source: Any, globals: Any = None, template_class: Any = None) -> Template:
        if globals is not None or template_class is not None or not isinstance(source, str):
            return super().from_string(source, globals, template_class)
        if source not in self._compiled:
            if len(self._compiled) >= _KEPT:
                self._compiled.clear()
            self._compiled[source] = super().from_string(source)
        return self._compiled[source]


def sandbox_lm_eval_templates() -> None:
    """Replace lm_eval.utils.env, which apply_template renders with, by a sandboxed one (idempotent)."""
    from lm_eval import utils

    if isinstance(utils.env, ImmutableSandboxedEnvironment):
        return
    sandbox = _CompileOnceSandbox(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    sandbox.filters.update({name: f for name, f in utils.env.filters.items() if name not in sandbox.filters})
    utils.env = sandbox
