"""A fast yes/doubt check of parsed JSON against a pydantic shape, compiled from the shape itself.

Validating a prefetched Observation with its pydantic shape builds a dozen model instances
(about 30 µs); the service only needs to know whether the value has its R4 shape, and the
reasons only when it does not. ``conforms(shape)`` answers that from the same field
declarations, without building anything: True means pydantic would accept the value; False
means "not sure", and the caller asks pydantic, whose error messages it reports. So the check
only has to be sound (never True where pydantic says no); it may be stricter.

The check is generated as straight-line Python, one function per shape (as dataclasses and
pydantic generate code): a generic interpreter of the field declarations calls a function per
field and costs as much as pydantic itself.

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
    names: dict[str, Any] = {"MISSING": _MISSING}
    lines = ["def check(value):", "    if type(value) is not dict:", "        return False"]
    for number, (name, field) in enumerate(_fields(shape).items()):
        where, item = f"{shape.__name__}.{name}", f"item{number}"
        optional = _optional_part(field.annotation)
        if optional is not None:
            test = _expression(optional, item, names, where)
            lines += [f"    {item} = value.get({name!r})", f"    if {item} is not None and not ({test}):"]
        else:  # None is not allowed; absent only if there is a default
            test = _expression(field.annotation, item, names, where)
            lines.append(f"    {item} = value.get({name!r}, MISSING)")
            if field.is_required():
                lines += [f"    if {item} is MISSING:", "        return False"]
            lines.append(f"    if {item} is not MISSING and not ({test}):")
        lines.append("        return False")
    lines.append("    return True")
    exec(compile("\n".join(lines), f"<shape check {shape.__name__}>", "exec"), names)
    return names["check"]


_MISSING = object()


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


def _expression(annotation: Any, item: str, names: dict[str, Any], where: str) -> str:
    """A Python expression that is true only if ``item`` certainly has ``annotation``."""
    origin = get_origin(annotation)
    if annotation is str:
        return f"type({item}) is str"
    if annotation is Any:
        return "True"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"{_named(names, conforms(annotation))}({item})"
    if origin is Literal:
        allowed = frozenset(get_args(annotation))
        if not all(type(option) is str for option in allowed):
            raise TypeError(f"{where}: only Literals of strings are supported")
        return f"type({item}) is str and {item} in {_named(names, allowed)}"
    if origin in (Union, types.UnionType):
        inner = _optional_part(annotation)
        if inner is None:
            raise TypeError(f"{where}: only X | None unions are supported")
        return f"({item} is None or {_expression(inner, item, names, where)})"
    if origin is list:
        (element,) = get_args(annotation)
        if not (isinstance(element, type) and issubclass(element, BaseModel)):
            raise TypeError(f"{where}: only lists of shapes are supported")
        return f"type({item}) is list and all(map({_named(names, conforms(element))}, {item}))"
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str or value is not Any:
            raise TypeError(f"{where}: only dict[str, Any] is supported")
        return f"type({item}) is dict"  # parsed JSON: the keys are strings
    if origin is Annotated:
        return f"type({item}) is str and {_named(names, _pattern(annotation, where))}({item}) is not None"
    raise TypeError(f"{where}: {annotation!r} cannot be checked fast")


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
