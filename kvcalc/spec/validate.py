"""Validate untrusted mappings (YAML, JSON) into records, with one clear message per problem.

A small, fast stand-in for pydantic validation on the CLI's hot path (importing pydantic costs more than the
whole start-up budget). It reads each record's type hints: int, float, str, bool, Literal, X | None,
list[X], dict[str, X], nested records, and `Annotated[T, Gt(0) | Le(bound) | MinLen(1) | Check(fn)]`
constraints. NaN and infinities are never valid numbers. Unknown keys are errors. Problems use pydantic's
wording ("Field required", "Input should be ...").
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class Gt:
    """Value must be greater than `bound`."""

    __slots__ = ("bound",)

    def __init__(self, bound: float) -> None:
        self.bound = bound


class Le:
    """Value must be at most `bound` (a sane bound from `kvcalc.bounds`)."""

    __slots__ = ("bound",)

    def __init__(self, bound: float) -> None:
        self.bound = bound


class MinLen:
    """Length must be at least `length`."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length


class Check:
    """`fn(value)` raises ValueError with the message when the value is wrong."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.fn = fn


class Problem:
    """One validation problem: where (`a.b`), what, and the offending value."""

    __slots__ = ("loc", "message", "value")

    def __init__(self, loc: str, message: str, value: Any = None) -> None:
        self.loc, self.message, self.value = loc, message, value


class RecordError(ValueError):
    """Every problem found, value errors first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.message == "Field required")
        super().__init__(self.problems[0].message)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _join(loc: str, part: str | int) -> str:
    return f"{loc}.{part}" if loc else str(part)


def _convert(tp: Any, value: Any, loc: str, problems: list[Problem]) -> Any:
    """`value` read as type `tp`; each problem found is appended to `problems` (the value is kept as far as
    it goes)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _convert_annotated(tp, value, loc, problems)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(inner[0], value, loc, problems)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append(Problem(loc, "Input should be " + " or ".join(repr(a) for a in allowed), value))
        return value
    if origin is list:
        return _convert_list(tp, value, loc, problems)
    if origin is dict:
        return _convert_dict(tp, value, loc, problems)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, loc, problems)
    return _convert_scalar(tp, value, loc, problems)


def _convert_annotated(tp: Any, value: Any, loc: str, problems: list[Problem]) -> Any:
    """`Annotated[T, rules...]`: T first; the rules only when the value is a T."""
    base, *meta = typing.get_args(tp)
    before = len(problems)
    out = _convert(base, value, loc, problems)
    if len(problems) > before:  # wrong type: the constraints below cannot be checked
        return out
    for rule in meta:
        if isinstance(rule, Gt) and isinstance(out, (int, float)) and not out > rule.bound:
            problems.append(Problem(loc, f"Input should be greater than {rule.bound:g}", value))
        elif isinstance(rule, Le) and isinstance(out, (int, float)) and not out <= rule.bound:
            problems.append(Problem(loc, f"Input should be at most {rule.bound:.4g} (a sane bound)", value))
        elif isinstance(rule, MinLen) and hasattr(out, "__len__") and len(out) < rule.length:
            problems.append(Problem(loc, f"should have at least {rule.length} item(s)", value))
        elif isinstance(rule, Check):
            try:
                rule.fn(out)
            except (ValueError, TypeError, AttributeError) as exc:
                problems.append(Problem(loc, str(exc), value))
    return out


def _convert_list(tp: Any, value: Any, loc: str, problems: list[Problem]) -> Any:
    if not isinstance(value, list):
        problems.append(Problem(loc, "Input should be a valid list", value))
        return []
    (item,) = typing.get_args(tp)
    return [_convert(item, v, _join(loc, i), problems) for i, v in enumerate(value)]


def _convert_dict(tp: Any, value: Any, loc: str, problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(Problem(loc, "Input should be a valid dictionary", value))
        return {}
    key_tp, value_tp = typing.get_args(tp)
    return {
        _convert(key_tp, k, _join(loc, k), problems): _convert(value_tp, v, _join(loc, k), problems)
        for k, v in value.items()
    }


def _convert_scalar(tp: Any, value: Any, loc: str, problems: list[Problem]) -> Any:
    """bool, int (a whole float becomes an int), float (finite; bool is not a number) and str; any other type
    passes the value through."""
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(Problem(loc, "Input should be a valid boolean", value))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
            problems.append(Problem(loc, "Input should be a valid integer", value))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(Problem(loc, "Input should be a valid number", value))
            return value
        number = float(value) if abs(value) < 1e308 else math.inf
        if not math.isfinite(number):
            problems.append(Problem(loc, "Input should be a finite number", value))
        return number
    if tp is str:
        if not isinstance(value, str):
            problems.append(Problem(loc, "Input should be a valid string", value))
        return value
    return value


def _build(cls: Any, data: Any, loc: str, problems: list[Problem]) -> Any:
    if not isinstance(data, dict):
        problems.append(Problem(loc, "Input should be a valid dictionary", data))
        return None
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], _join(loc, f.name), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(Problem(_join(loc, f.name), "Field required"))
    for extra in data.keys() - {f.name for f in dataclasses.fields(cls)}:
        problems.append(Problem(_join(loc, str(extra)), "Extra inputs are not permitted", data[extra]))
    if len(problems) > before:
        return None
    try:
        return cls(**kwargs)
    except ValueError as exc:  # cross-field rules in __post_init__
        problems.append(Problem(loc, str(exc)))
        return None


def build(cls: type[T], data: Any) -> T:
    """Validate `data` into record type `cls`, or raise RecordError listing every problem."""
    problems: list[Problem] = []
    out = _build(cls, data, "", problems)
    if problems:
        raise RecordError(problems)
    return typing.cast(T, out)
