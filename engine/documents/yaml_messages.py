"""PyYAML's syntax errors in the words of the people who edit rule files.

A pharmacist who indents one line a space too far gets "did not find expected '-' indicator"
from the parser. The common messages are translated here into what to fix, at the line to fix;
the parser's own words follow in brackets for anyone who wants them.
"""

from __future__ import annotations

import yaml

# (parser's words, what they usually mean in a rule file); libyaml and pure-Python PyYAML word some differently.
_PLAIN = (
    (
        "did not find expected '-' indicator",
        "this list item is not lined up with the items above it: every '- ' of one list starts in the same column",
    ),
    (
        "mapping values are not allowed",
        "a ':' where none can be: either this line is indented deeper than the line above it, or a text "
        "contains ': ' and needs quotes around it",
    ),
    (
        "could not find expected ':'",
        "a line with no 'name: value': a ':' is missing after the name, or a text running on from the line "
        "above is not indented under it",
    ),
    (
        "did not find expected key",
        "this line is not lined up with the names above it: the names of one section start in the same column",
    ),
    ("expected <block end>", "this line is indented more, or less, than the lines of the section it belongs to"),
)
_TAB = "a tab character: indent with spaces only (a tab looks like spaces but YAML does not accept it)"


def plain_yaml_error(error: yaml.MarkedYAMLError, text: str) -> tuple[int, str]:
    """The line to fix and a plain message for a YAML syntax error in ``text``."""
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else 1
    problem = error.problem or str(error)
    lines = text.splitlines()
    tabbed = any("\t" in lines[number - 1] for number in (line, line - 1) if 0 < number <= len(lines))
    if tabbed and ("tab" in problem or "cannot start any token" in problem):
        return line, f"YAML syntax: {_TAB} [{problem}]"
    for words, plain in _PLAIN:
        if words in problem:
            if words == "could not find expected ':'" and error.context_mark is not None:
                line = error.context_mark.line + 1  # the line lacking the ':' is where the scan began
            return line, f"YAML syntax: {plain} [{problem}]"
    return line, f"YAML syntax: {problem}"
