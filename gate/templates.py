"""lm-eval's prompt templates rendered in Jinja's sandbox: a task config's template is data, never code.

lm-eval renders every `doc_to_text`/`doc_to_target`/`doc_to_choice` template with a plain Jinja Environment, in
which `{{ cycler.__init__.__globals__.os.system(...) }}` runs anything. A suite from the change carries such
templates, so the gate swaps lm-eval's environment for an immutable sandbox with the same settings and filters
before it builds any task. Ordinary templates (fields, indexing, `split`, `strip`, filters) render the same.
"""

from __future__ import annotations

from jinja2 import BaseLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


def sandbox_lm_eval_templates() -> None:
    """Replace lm_eval.utils.env, which apply_template renders with, by a sandboxed one (idempotent)."""
    from lm_eval import utils

    if isinstance(utils.env, ImmutableSandboxedEnvironment):
        return
    sandbox = ImmutableSandboxedEnvironment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    sandbox.filters.update({name: f for name, f in utils.env.filters.items() if name not in sandbox.filters})
    utils.env = sandbox
