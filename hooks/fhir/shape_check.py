"""A fast yes/doubt check of parsed JSON against a pydantic shape, compiled from the shape itself.

Validating a prefetched Observation with its pydantic shape builds a dozen model instances
(about 30 µs); the service only needs to know whether the value has its R4 shape, and the
reasons only when it does not. ``conforms(shape)`` answers that from the same field
declarations, without building anything: True means pydantic would accept the value; False
means "not sure", and the caller asks pydantic, whose error messages it reports. So the check
only has to be sound (never True where pydantic says no); it may be stricter.

The check is generated as straight-line Python (as dataclasses and pydantic generate code), one
function per top-level shape with its nested shapes and lists written inline: a generic
interpreter of the field declarations costs as much as pydantic itself, and a call per nested
part cost a third more than inline statements (one genotype Observation: 32.6k -> 23.7k
instructions).

What it understands is what the shapes use: ``str``, ``str`` with a ``pattern``, ``Literal`` of
strings, ``X | None``, lists of shapes, ``dict[str, Any]`` and nested strict models with
``extra="ignore"`` and no validators. Anything else raises ``TypeError`` when the check is built,
so a shape that grows a new kind of field cannot be checked wrongly.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, StringConstraints

Check = Callable[[Any], bool]


@cache
def conforms(shape: type[BaseModel]) -> Check:
    """A function telling whether a parsed JSON value certainly has ``shape`` (False: maybe not)."""
    code = _Code()
    code.model(shape, "value", 1, ())
    source = "\n".join(["def check(value):", *code.lines, "    return True"])
    exec(compile(source, f"<shape check {shape.__name__}>", "exec"), code.names)
    return code.names["check"]


_MISSING = object()


class _Code:
    """The statements of one check: nested shapes inline, so a resource costs one call, not one per part."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"MISSING": _MISSING, "STR_OR_NONE": frozenset({str, type(None)})}
        self._items = 0

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def item(self) -> str:
        self._items += 1
        return f"item{self._items}"

    def model(self, shape: type[BaseModel], value: str, indent: int, outer: tuple[type, ...]) -> None:
        """Statements returning False unless ``value`` certainly has ``shape``."""
        if shape in outer:
            raise TypeError(f"{shape.__name__}: recursive shapes are not supported")
        self.emit(indent, f"if type({value}) is not dict:")
        self.emit(indent + 1, "return False")
        for name, field in _fields(shape).items():
            where, item = f"{shape.__name__}.{name}", self.item()
            optional = _optional_part(field.annotation)
            if optional is str:  # the commonest field: one test, no name bound
                self.emit(indent, f"if type({value}.get({name!r})) not in STR_OR_NONE:")
                self.emit(indent + 1, "return False")
            elif optional is not None:
                self.emit(indent, f"{item} = {value}.get({name!r})")
                self.emit(indent, f"if {item} is not None:")
                self.annotation(optional, item, indent + 1, (*outer, shape), where)
            else:  # None is not allowed; absent only if there is a default
                self.emit(indent, f"{item} = {value}.get({name!r}, MISSING)")
                if field.is_required():
                    self.emit(indent, f"if {item} is MISSING:")
                    self.emit(indent + 1, "return False")
                self.emit(indent, f"if {item} is not MISSING:")
                self.annotation(field.annotation, item, indent + 1, (*outer, shape), where)

    def annotation(self, annotation: Any, item: str, indent: int, outer: tuple[type, ...], where: str) -> None:
        """Statements returning False unless ``item`` certainly has ``annotation``."""
        origin = get_origin(annotation)
        if annotation is Any:
            self.emit(indent, "pass")
            return
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            self.model(annotation, item, indent, outer)
            return
        if origin in (Union, types.UnionType):
            inner = _optional_part(annotation)
            if inner is None:
                raise TypeError(f"{where}: only X | None unions are supported")
            self.emit(indent, f"if {item} is not None:")
            self.annotation(inner, item, indent + 1, outer, where)
            return
        if origin is list:
            (element,) = get_args(annotation)
            if not (isinstance(element, type) and issubclass(element, BaseModel)):
                raise TypeError(f"{where}: only lists of shapes are supported")
            self.emit(indent, f"if type({item}) is not list:")
            self.emit(indent + 1, "return False")
            each = self.item()
            self.emit(indent, f"for {each} in {item}:")
            self.model(element, each, indent + 1, outer)
            return
        self.emit(indent, f"if not ({self.scalar(annotation, item, where)}):")
        self.emit(indent + 1, "return False")

    def scalar(self, annotation: Any, item: str, where: str) -> str:
        """An expression that is true only if ``item`` certainly has ``annotation`` (a leaf: str, Literal, dict)."""
        origin = get_origin(annotation)
        if annotation is str:
            return f"type({item}) is str"
        if origin is Literal:
            allowed = frozenset(get_args(annotation))
            if not all(type(option) is str for option in allowed):
                raise TypeError(f"{where}: only Literals of strings are supported")
            return f"type({item}) is str and {item} in {_named(self.names, allowed)}"
        if origin is dict:
            key, value = get_args(annotation)
            if key is not str or value is not Any:
                raise TypeError(f"{where}: only dict[str, Any] is supported")
            return f"type({item}) is dict"  # parsed JSON: the keys are strings
        if origin is Annotated:
            return f"type({item}) is str and {_named(self.names, _pattern(annotation, where))}({item}) is not None"
        raise TypeError(f"{where}: {annotation!r} cannot be checked fast")


def _fields(shape: type[BaseModel]) -> dict[str, Any]:
    if shape.model_config.get("extra") != "ignore" or not shape.model_config.get("strict"):
        raise TypeError(f"{shape.__name__}: only strict shapes that ignore extra fields can be checked fast")
    decorators = shape.__pydantic_decorators__
    if any((decorators.validators, decorators.field_validators, decorators.model_validators)):
        raise TypeError(f"{shape.__name__}: a shape with validators cannot be checked fast")
    for name, field in shape.model_fields.items():
        if field.alias not in (None, name) or field.validation_alias not in (None, name) or field.metadata:
            raise TypeError(f"{shape.__name__}.{name}: aliases and constraints on the field itself are not supported")
    return shape.model_fields


def _named(names: dict[str, Any], value: Any) -> str:
    """A name for ``value`` in the generated code's namespace."""
    name = f"n{len(names)}"
    names[name] = value
    return name


def _optional_part(annotation: Any) -> Any:
    """X for ``X | None``, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [option for option in get_args(annotation) if option is not type(None)]
        if len(options) == 1 and len(get_args(annotation)) == 2:
            return options[0]
    return None


def _pattern(annotation: Any, where: str) -> Callable[[str], Any]:
    base, *metadata = get_args(annotation)
    if base is not str or len(metadata) != 1:
        raise TypeError(f"{where}: only str with one set of constraints is supported")
    (constraints,) = metadata
    if not isinstance(constraints, StringConstraints) or _set_fields(constraints) != {"pattern"}:
        raise TypeError(f"{where}: only a pattern constraint is supported")
    # ASCII classes and a full match: never looser than the Rust regex pydantic uses.
    return re.compile(constraints.pattern, re.ASCII).fullmatch


def _set_fields(constraints: StringConstraints) -> set[str]:
    return {field.name for field in dataclasses.fields(constraints) if getattr(constraints, field.name) is not None}
