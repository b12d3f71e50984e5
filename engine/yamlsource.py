"""Read the YAML files pharmacists edit, keeping the line of every value.

Errors in a rule or gene file must point at the line to fix (``file:line: message``), so the
loader keeps a map from each value's path (``("recommendations", 2, "tier")``) to its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.yaml_messages import plain_yaml_error

try:  # the C loader is several times faster; fall back to pure Python where libyaml is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class _Loader(_BaseLoader):
    """YAML 1.2 core scalars only.

    PyYAML follows YAML 1.1, where ``off``/``no`` are booleans and ``15:02`` is the number 902;
    in a file holding modes (``mode: off``) and HLA alleles that would silently change meaning.
    """

    yaml_implicit_resolvers: dict = {}  # noqa: RUF012 - class-level table, as PyYAML expects


for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", list("-+.0123456789")),
]:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, reported as ``file:line: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class SourceError(Exception):
    """A file, or a set of files, that cannot be used; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file with the line of each value."""

    path: Path
    text: str
    data: Any
    lines: dict[Path_, int]

    @property
    def name(self) -> str:
        return str(self.path)

    def line_of(self, loc: Iterable[str | int]) -> int:
        """The line of the value at ``loc``, or of its nearest enclosing value that has one."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Iterable[str | int], message: str) -> Problem:
        return Problem(self.name, self.line_of(loc), message)

    def validation_problems(
        self, error: ValidationError, prefix: Path_ = (), strip_first: str | None = None
    ) -> list[Problem]:
        """Turn a pydantic error on (part of) this document into located problems.

        ``strip_first`` drops a leading location part that is not in the file (a union's tag).
        """
        problems = []
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            if strip_first is not None and loc[:1] == (strip_first,):
                loc = loc[1:]
            loc = prefix + loc
            where = ".".join(str(part) for part in loc)
            message = item["msg"]
            if message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            problems.append(self.problem(loc, f"{where}: {message}" if where else message))
        return problems


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file; a syntax error becomes a located :class:`SourceError`."""
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line, message = plain_yaml_error(exc, text)
        source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        if re.search(r"(^\s*|[:\-\[,]\s*)\*", source_line):
            # The most common slip in these files: an unquoted star allele reads as a YAML alias.
            message += ' (write star alleles in quotes, e.g. "*2" or "*1/*2")'
        raise SourceError([Problem(str(path), line, message)]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return YamlDocument(path=path, text=text, data=data, lines=lines)


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            _record_lines(value_node, (*path, key), lines)
            # A key's own line is the better pointer when the value spans several lines.
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines)
