"""A fast yes/doubt check of parsed JSON against a pydantic shape, compiled from the shape itself.

Validating a prefetched Observation with its pydantic shape builds a dozen model instances
(about 30 µs); the service only needs to know whether the value has its R4 shape, and the
reasons only when it does not. ``conforms(shape)`` answers that from the same field
declarations, without building anything (a few µs): True means pydantic would accept the value;
False means "not sure", and the caller asks pydantic, whose error messages it reports. So the
check only has to be sound (never True where pydantic says no); it may be stricter.

What it understands is what the shapes use: ``str``, ``str`` with a ``pattern``, ``Literal`` of
strings, ``X | None``, ``list[X]``, ``dict[str, Any]`` and nested strict models with
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
    if shape.model_config.get("extra") != "ignore" or not shape.model_config.get("strict"):
        raise TypeError(f"{shape.__name__}: only strict shapes that ignore extra fields can be checked fast")
    decorators = shape.__pydantic_decorators__
    if any((decorators.validators, decorators.field_validators, decorators.model_validators)):
        raise TypeError(f"{shape.__name__}: a shape with validators cannot be checked fast")
    # Plain optional strings (most fields) are checked inline; a function call per field would
    # cost as much as pydantic itself.
    optional_strings, optional, present = [], [], []
    for name, field in shape.model_fields.items():
        where = f"{shape.__name__}.{name}"
        if field.alias not in (None, name) or field.validation_alias not in (None, name) or field.metadata:
            raise TypeError(f"{where}: aliases and constraints on the field itself are not supported")
        inner = _optional_part(field.annotation)
        if inner is str:
            optional_strings.append(name)
        elif inner is not None:
            optional.append((name, _check(inner, where)))
        else:  # None is not allowed; absent only if there is a default
            present.append((name, field.is_required(), _check(field.annotation, where)))

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for name in optional_strings:
            item = value.get(name)
            if item is not None and type(item) is not str:
                return False
        for name, item_check in optional:
            item = value.get(name)
            if item is not None and not item_check(item):
                return False
        for name, required, item_check in present:
            if name in value:
                if not item_check(value[name]):
                    return False
            elif required:
                return False
        return True

    return check


def _optional_part(annotation: Any) -> Any:
    """X for ``X | None``, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [option for option in get_args(annotation) if option is not type(None)]
        if len(options) == 1 and len(get_args(annotation)) == 2:
            return options[0]
    return None


def _check(annotation: Any, where: str) -> Check:
    origin = get_origin(annotation)
    if annotation is str:
        return lambda value: type(value) is str
    if annotation is Any:
        return lambda value: True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return conforms(annotation)
    if origin is Literal:
        allowed = frozenset(get_args(annotation))
        if not all(type(option) is str for option in allowed):
            raise TypeError(f"{where}: only Literals of strings are supported")
        return lambda value: type(value) is str and value in allowed
    if origin in (Union, types.UnionType):
        inner_type = _optional_part(annotation)
        if inner_type is None:
            raise TypeError(f"{where}: only X | None unions are supported")
        inner = _check(inner_type, where)
        return lambda value: value is None or inner(value)
    if origin is list:
        (item,) = get_args(annotation)
        inner = _check(item, where)
        return lambda value: type(value) is list and all(map(inner, value))
    if origin is dict:
        key, item = get_args(annotation)
        if key is not str or item is not Any:
            raise TypeError(f"{where}: only dict[str, Any] is supported")
        return lambda value: type(value) is dict  # parsed JSON: the keys are strings
    if origin is Annotated:
        return _constrained(annotation, where)
    raise TypeError(f"{where}: {annotation!r} cannot be checked fast")


def _constrained(annotation: Any, where: str) -> Check:
    base, *metadata = get_args(annotation)
    if base is not str or len(metadata) != 1:
        raise TypeError(f"{where}: only str with one set of constraints is supported")
    (constraints,) = metadata
    if not isinstance(constraints, StringConstraints) or _set_fields(constraints) != {"pattern"}:
        raise TypeError(f"{where}: only a pattern constraint is supported")
    # ASCII classes and a full match: never looser than the Rust regex pydantic uses.
    pattern = re.compile(constraints.pattern, re.ASCII)
    return lambda value: type(value) is str and pattern.fullmatch(value) is not None


def _set_fields(constraints: StringConstraints) -> set[str]:
    return {field.name for field in dataclasses.fields(constraints) if getattr(constraints, field.name) is not None}
