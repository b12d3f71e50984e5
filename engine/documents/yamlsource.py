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
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from engine.documents.yaml_messages import plain_yaml_error

try:  # libyaml is several times faster; fall back to pure Python where PyYAML was built without it
    from yaml import CSafeLoader as _WholeLoader
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _WholeLoader  # type: ignore[assignment]
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


# What one pharmacist-edited file may hold. The largest shipped file has a few thousand values and
# nests about ten deep; the limits bound every walk over a document (composing, recording lines,
# constructing, validating), whatever the file says.
MAX_DEPTH = 64
MAX_NODES = 200_000
STAR_HINT = ' (write star alleles in quotes, e.g. "*2" or "*1/*2")'
ALIASES_REFUSED = "anchors and aliases are not allowed (write the value out in full)"


class _Refused(yaml.MarkedYAMLError):
    """A file that is valid YAML but outside what these files may use."""


class _PlainLoader(_WholeLoader):
    """libyaml composing the whole document, for a text with no ``&``: without an anchor no alias resolves.

    Resolves YAML 1.2 core scalars only: PyYAML follows YAML 1.1, where ``off``/``no`` are
    booleans and ``15:02`` is the number 902; in a file holding modes (``mode: off``) and HLA
    alleles that would silently change meaning.
    """

    yaml_implicit_resolvers: dict = {}  # noqa: RUF012 - class-level table, as PyYAML expects


class _AliasRefusingLoader(Composer, _Parser, SafeConstructor, Resolver):
    """Composes from parser events in Python, refusing anchors and aliases before anything is built.

    Aliases let a few lines expand to billions of values (the "billion laughs"), or to a structure
    that contains itself; a clinical document needs neither.
    """

    yaml_implicit_resolvers = _PlainLoader.yaml_implicit_resolvers

    def __init__(self, stream: str):
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem=ALIASES_REFUSED, problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:  # before Python's own recursion limit
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", list("-+.0123456789")),
]:
    _PlainLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)

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
        errors = error.errors(include_url=False)
        for item in errors:
            loc = tuple(item["loc"])
            if item["type"] == "too_short" and any(len(o["loc"]) > len(loc) and tuple(o["loc"][: len(loc)]) == loc
                                                   for o in errors):  # fmt: skip
                continue  # a list left short only by its own bad item: the item's error says it all
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
    """Parse one YAML file; whatever stops it (bytes, syntax, aliases, size) is a located :class:`SourceError`."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceError([Problem(str(path), line, f"not UTF-8 text (byte {exc.start + 1})")]) from None
    loader = None
    lines: dict[Path_, int] = {}
    try:
        loader = (_AliasRefusingLoader if "&" in text else _PlainLoader)(text)
        node = loader.get_single_node()
        if node is not None:
            _record_lines(node, (), lines, [0])  # bounds depth and size before anything is constructed
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise SourceError([_located(path, text, exc)]) from None
    except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        raise SourceError([Problem(str(path), line, f"YAML: {exc}".splitlines()[0])]) from None
    except RecursionError:  # a safety net: the composer's depth limit should come first
        raise SourceError([Problem(str(path), 1, f"nested more than {MAX_DEPTH} levels deep")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDocument(path=path, text=text, data=data, lines=lines)


def _located(path: Path, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    if isinstance(exc, _Refused):
        return Problem(str(path), mark.line + 1 if mark else 1, str(exc.problem))
    if str(exc.problem).startswith("found undefined alias"):  # a *name in a text with no anchor
        line, message = (mark.line + 1 if mark else 1), "aliases are not allowed"
    else:
        line, message = plain_yaml_error(exc, text)
    source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    if re.search(r"(^\s*|[:\-\[,]\s*)\*", source_line):
        message += STAR_HINT  # the most common slip in these files: an unquoted star allele reads as an alias
    return Problem(str(path), line, message)


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], seen: list[int]) -> None:
    """Map each value's path to its line, refusing a document deeper or larger than a rule file can be."""
    seen[0] += 1
    if len(path) > MAX_DEPTH:
        raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=node.start_mark)
    if seen[0] > MAX_NODES:
        raise _Refused(problem=f"more than {MAX_NODES:,} values in one file", problem_mark=node.start_mark)
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            _record_lines(value_node, (*path, key), lines, seen)
            # A key's own line is the better pointer when the value spans several lines.
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, seen)
