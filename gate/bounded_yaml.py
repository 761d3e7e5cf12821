"""YAML from untrusted files, bounded: size, node count and alias expansion are limited before anything is built.

A few lines of nested aliases (the "billion laughs") expand to billions of nodes: PyYAML builds them as shared
references in no time, but whatever walks the result afterwards (validation, an error message quoting it) never
ends. Every YAML file the gate reads goes through here: the document is composed, its expanded size counted from
the node graph, and only then constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4 << 20
MAX_NODES = 200_000  # nodes after alias expansion: far above any gate.yaml, suite or task config
MAX_ALIASES = 1_000
MAX_DEPTH = 100


class YamlLimitError(ValueError):
    """The document is larger than the limits (a one-line reason)."""


class _Loader(yaml.SafeLoader):
    """A safe loader that ignores unknown tags (lm-eval's `!function`) when only the shape is checked."""


def _ignore_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    return None


_Loader.add_multi_constructor("!", _ignore_tag)


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes after alias expansion, aliases): each node counted once per path reaching it, stopping at the limit."""
    sizes: dict[int, int] = {}
    seen: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        key = id(node)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases")
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YamlLimitError("an alias refers to the node that holds it")
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_NODES:
            raise YamlLimitError(f"more than {MAX_NODES:,} nodes once its aliases are expanded")
        sizes[key] = total
        open_nodes.discard(key)
        return total

    return size(root, 0), aliases


def load_bounded(text: str, *, tags: bool = False) -> Any:
    """The document in `text`, built only after its size is checked; YamlLimitError past a limit.

    `tags=True` accepts (and drops) unknown tags such as lm-eval's `!function`, for a check of the shape alone.
    """
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"larger than {MAX_BYTES >> 20} MiB")
    loader = (_Loader if tags else yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_bounded(path: Path, *, tags: bool = False) -> Any:
    """load_bounded on a file's text (OSError, UnicodeDecodeError and yaml.YAMLError pass through)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    return load_bounded(data.decode("utf-8"), tags=tags)


def function_tags(path: Path, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """The `!function` hooks a task config names, following its `include:` files: Python the config would run."""
    loader = _Loader(path.read_text(encoding="utf-8")[: MAX_BYTES + 1])
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        return []
    _expanded_size(node)
    found: list[str] = []
    stack = [node]
    includes: list[str] = []
    while stack:
        current = stack.pop()
        if current.tag == "!function":
            found.append(str(current.value))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "include" and isinstance(value, yaml.ScalarNode):
                    includes.append(str(value.value))
                stack += [key, value]
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
    for include in includes:
        target = (path.parent / include).resolve()
        if target.is_file() and target not in _seen:
            found += function_tags(target, _seen | {path.resolve()})
    return found
