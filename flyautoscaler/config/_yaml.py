"""Reading the YAML file: the Go original's keys, strictly, and safely.

Values are read by the kind their setting declares (see
:mod:`flyautoscaler.config._model`), ``$VAR`` expanded where the kind allows
it, and every problem is named by its key (``metric-collectors[0]: unknown
key "tokn"``). A file nested too deep or holding too many values (an alias
bomb) is refused before it is composed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

import yaml
from attrs import define

from flyautoscaler._durations import parse_duration, parse_seconds
from flyautoscaler._errors import ConfigError
from flyautoscaler._names import expand_variables
from flyautoscaler._settings import Kind
from flyautoscaler._validation import quote
from flyautoscaler.config._entry import COLLECTOR_KEYS, CollectorConfig, put
from flyautoscaler.config._model import TOP_KEYS, Config

__all__ = ["MAX_YAML_DEPTH", "MAX_YAML_NODES", "apply_yaml"]


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$VAR`` and ``${VAR}`` in a file value (not in queries).

    ``$APP_NAME`` stays for the per-app expansion; ``$$`` is a literal ``$``;
    an unset variable becomes ``""`` (as Go's ``os.ExpandEnv``); a ``$`` not
    followed by a name (``$1``) stays as written.
    """
    return expand_variables(text, env, keep_unknown=False)


_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_YAML_BOOLS: Final = {
    **dict.fromkeys(("true", "yes", "on", "y"), True),
    **dict.fromkeys(("false", "no", "off", "n"), False),
}


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {quote(str(node.value))}"


@define
class _Reader:
    """Turns the YAML nodes of one file into values, naming what is wrong."""

    env: Mapping[str, str]

    def string(self, node: yaml.Node, path: str) -> str:
        # Plain scalars (numbers too: `min-started-machine-count: 1`) are read
        # as their text, as Go's yaml.v3 does for a string field.
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string, got {_kind(node)}")
        return _expand(node.value, self.env)

    def query(self, node: yaml.Node, path: str) -> str:
        # Queries are expanded per app when collected (expand_metric_query):
        # never here, so $APP_NAME survives and no secret leaks into them.
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string, got {_kind(node)}")
        return str(node.value)

    def secret(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string")
        return _expand(node.value, self.env)

    def integer(self, node: yaml.Node, path: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag != _BOOL_TAG:
            text = _expand(node.value, self.env).strip()
            if re.fullmatch(r"[+-]?\d+", text):
                return int(text)
        raise ConfigError(f"{path}: expected an integer, got {_kind(node)}")

    def boolean(self, node: yaml.Node, path: str) -> bool:
        if isinstance(node, yaml.ScalarNode):
            value = _YAML_BOOLS.get(_expand(node.value, self.env).strip().lower())
            if value is not None:
                return value
        raise ConfigError(f"{path}: expected true or false, got {_kind(node)}")

    def duration(self, node: yaml.Node, path: str) -> float:
        if isinstance(node, yaml.ScalarNode):
            text = _expand(node.value, self.env).strip()
            try:
                return parse_duration(text)
            except ValueError:
                pass
        raise ConfigError(
            f'{path}: expected a duration such as "15s", "1m30s" or '
            f'"500ms", got {_kind(node)}'
        )

    def seconds(self, node: yaml.Node, path: str) -> float:
        if isinstance(node, yaml.ScalarNode):
            try:
                return parse_seconds(_expand(node.value, self.env))
            except ValueError:
                pass
        raise ConfigError(
            f'{path}: expected a duration such as "5m" or "90s", or a number of '
            f"seconds such as 300, not negative; got {_kind(node)}"
        )

    def string_list(
        self, node: yaml.Node, path: str, *, query: bool = False
    ) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{path}: expected a list of strings, got {_kind(node)}")
        read = self.query if query else self.string
        return [read(item, f"{path}[{i}]") for i, item in enumerate(node.value)]

    def name_list(self, node: yaml.Node, path: str) -> list[str]:
        # Variable names, read as written: no $ expansion.
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{path}: expected a list of names, got {_kind(node)}")
        names: list[str] = []
        for i, item in enumerate(node.value):
            if not isinstance(item, yaml.ScalarNode):
                raise ConfigError(f"{path}[{i}]: expected a name, got {_kind(item)}")
            names.append(str(item.value))
        return names

    def read(self, kind: Kind, node: yaml.Node, path: str) -> object:
        """Read *node* as a value of *kind* (a key's reader in the key tables)."""
        readers: dict[str, Callable[[yaml.Node, str], object]] = {
            "string": self.string,
            "url": self.string,
            "query": self.query,
            "secret": self.secret,
            "integer": self.integer,
            "boolean": self.boolean,
            "duration": self.duration,
            "seconds": self.seconds,
            "string_list": self.string_list,
            "query_list": lambda n, p: self.string_list(n, p, query=True),
            "name_list": self.name_list,
        }
        return readers[kind](node, path)

    def mapping(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}expected a mapping, got {_kind(node)}")
        pairs: list[tuple[str, yaml.Node]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            where = f"{path}: " if path else ""
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{where}keys must be strings")
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(f"{where}duplicate key {quote(key)}")
            seen.add(key)
            pairs.append((key, value_node))
        return pairs


def _apply(
    target: Config | CollectorConfig,
    pairs: list[tuple[str, yaml.Node]],
    keys: Mapping[str, tuple[str, Kind]],
    reader: _Reader,
    path: str,
) -> None:
    for key, node in pairs:
        where = f"{path}." if path else ""
        if key not in keys:
            prefix = f"{path}: " if path else ""
            raise ConfigError(f"{prefix}unknown key {quote(key)}", field=key)
        if node.tag == _NULL_TAG:
            continue  # `key:` with no value keeps the default (the environment's)
        attribute, kind = keys[key]
        value = reader.read(kind, node, where + key)
        if isinstance(target, CollectorConfig):
            put(target, attribute, value)  # type: ignore[arg-type] # text or a list
        else:
            setattr(target, attribute, value)
        target.origins[attribute] = key


_COLLECTORS_KEY: Final = "metric-collectors"
_STOP_METRIC_KEY: Final = "stop-metric-collector"
# The keys whose value is a collector block, or a list of them.
_BLOCKS: Final = frozenset({_COLLECTORS_KEY, _STOP_METRIC_KEY})

#: Deepest nesting of lists and mappings a configuration file may have.
MAX_YAML_DEPTH: Final = 50
#: Most nodes a configuration file may hold, each alias counted as the nodes
#: it stands for (so an "alias bomb" is refused before it is read).
MAX_YAML_NODES: Final = 100_000


def _check_yaml_shape(text: str, name: str) -> None:
    """Refuse a document nested too deep or too big, before composing it.

    PyYAML composes nodes recursively, so thousands of nested ``[`` end in a
    RecursionError; its parser, walked here, does not recurse.

    Raises:
        ConfigError: Nested deeper than :data:`MAX_YAML_DEPTH`, or more than
            :data:`MAX_YAML_NODES` nodes with aliases expanded.
        yaml.YAMLError: The text is not YAML.
    """
    depth = 0
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    # Open collections: (anchor, node count when it opened).
    open_: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = 0 if event.start_mark is None else event.start_mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{name}: YAML nested deeper than {MAX_YAML_DEPTH} levels "
                    f"at line {line}"
                )
            nodes += 1
            open_.append((event.anchor, nodes - 1))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = open_.pop()
            if anchor is not None:
                sizes[anchor] = nodes - start
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            # An alias of a collection still open (a recursive one) counts 1;
            # the reader refuses what it finds there anyway.
            nodes += sizes.get(event.anchor or "", 1)
        if nodes > MAX_YAML_NODES:
            raise ConfigError(
                f"{name}: YAML has more than {MAX_YAML_NODES} values (aliases "
                f"expanded) at line {line}"
            )


def apply_yaml(text: str, name: str, env: Mapping[str, str], config: Config) -> None:
    """Apply the YAML document *text* over *config*."""
    try:
        _check_yaml_shape(text, name)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = (
            ""
            if mark is None
            else f" at line {mark.line + 1}, column {mark.column + 1}"
        )
        raise ConfigError(f"{name}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    if root is None:
        return
    reader = _Reader(env)
    pairs = reader.mapping(root, "")
    blocks: dict[str, yaml.Node] = {}
    top: list[tuple[str, yaml.Node]] = []
    for key, node in pairs:
        if key in _BLOCKS:
            blocks[key] = node
        else:
            top.append((key, node))
    _apply(config, top, TOP_KEYS, reader, "")
    stop_node = blocks.get(_STOP_METRIC_KEY)
    if stop_node is not None and stop_node.tag != _NULL_TAG:
        # As metric-collectors: the file's block replaces the environment's.
        config.stop_metric_collector = _entry(reader, stop_node, _STOP_METRIC_KEY)
    collectors_node = blocks.get(_COLLECTORS_KEY)
    if collectors_node is None or collectors_node.tag == _NULL_TAG:
        return
    if not isinstance(collectors_node, yaml.SequenceNode):
        raise ConfigError(
            f"metric-collectors: expected a list, got {_kind(collectors_node)}"
        )
    # As in Go, the file's list replaces the one the environment made.
    config.metric_collectors = [
        _entry(reader, entry_node, f"{_COLLECTORS_KEY}[{i}]")
        for i, entry_node in enumerate(collectors_node.value)
    ]


def _entry(reader: _Reader, node: yaml.Node, path: str) -> CollectorConfig:
    """Read the collector block *node* (at *path*) as an entry."""
    entry = CollectorConfig()
    _apply(entry, reader.mapping(node, path), COLLECTOR_KEYS, reader, path)
    return entry
