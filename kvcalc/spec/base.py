"""Records: the frozen dataclasses every kvcalc spec and result is made of, and their JSON form.

kvcalc's CLI must answer in well under 150 ms. Importing pydantic and building model schemas alone costs
more than that on a 2-core machine, so the core uses standard-library dataclasses (type-hinted, frozen,
checked in `__post_init__` where a value comes from outside). pydantic stays at the edges, imported only
when needed: it generates the JSON Schema of every report (`kvcalc schema`, a `TypeAdapter` over these
dataclasses) and validates untrusted hardware files.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover
    from typing_extensions import dataclass_transform

T = TypeVar("T")

#: Version of the `--json` documents' layout, printed first in every document and pinned by every schema.
#: Bump the minor number when fields are added, the major one when a field changes meaning or goes away.
SCHEMA_VERSION = "1.0"


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))


def _eq(self: Any, other: Any) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    """Consistent with _eq: equal records hash alike (unhashable fields hash by their repr)."""
    return hash((self.__class__, *(v if v.__hash__ else repr(v) for v in _values(self))))


def _repr(self: Any) -> str:
    fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
    return f"{self.__class__.__qualname__}({fields})"


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    if self.__dict__.get("_record_sealed"):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: type[T]) -> type[T]:
    """Decorator for kvcalc records: frozen, keyword-only dataclasses.

    `dataclasses.dataclass` compiles each generated method (`__init__`, `__eq__`, `__setattr__` ...) with
    `exec`, which costs start-up time for every record type. Records therefore get the dataclass machinery
    (fields, `dataclasses.replace`, pydantic schemas) without generated code: one shared keyword-only
    `__init__` driven by the field list, and shared equality, hashing, repr and immutability. A record is
    sealed once `__init__` (and `__post_init__`) has run; assigning to it afterwards raises
    FrozenInstanceError, as a frozen dataclass does.
    """
    if not cls.__doc__:  # else dataclasses builds one from inspect.signature, which costs ~10 ms at start-up
        cls.__doc__ = f"{cls.__name__} record."
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False, kw_only=True)(cls)
    fields = dataclasses.fields(made)
    missing = dataclasses.MISSING
    names = frozenset(f.name for f in fields)
    defaults = {f.name: f.default for f in fields if f.default is not missing}
    factories = [(f.name, f.default_factory) for f in fields if f.default_factory is not missing]
    count = len(fields)
    post_init = getattr(made, "__post_init__", None)

    def __init__(self: Any, **kwargs: Any) -> None:
        # Dict updates instead of a loop over the fields: records such as TensorSpec are built by the
        # thousand on every start-up.
        if not kwargs.keys() <= names:
            unknown = ", ".join(sorted(kwargs.keys() - names))
            raise TypeError(f"{made.__name__}() got unexpected keyword argument(s) {unknown}")
        values = self.__dict__
        values.update(defaults)
        for name, factory in factories:
            if name not in kwargs:
                values[name] = factory()
        values.update(kwargs)
        if len(values) != count:
            absent = sorted(names - values.keys())
            raise TypeError(f"{made.__name__}() missing required keyword argument(s) {', '.join(absent)}")
        if post_init is not None:
            post_init(self)
        values["_record_sealed"] = True

    made.__init__ = __init__
    made.__setattr__ = _frozen_setattr
    made.__delattr__ = _frozen_delattr
    made.__eq__ = _eq
    made.__hash__ = _hash
    made.__repr__ = _repr
    return typing.cast("type[T]", made)


def replace(obj: T, **changes: Any) -> T:
    """A copy of record `obj` with some fields changed."""
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def to_jsonable(value: Any) -> Any:
    """Records -> dicts (field order kept), tuples -> lists, recursively; what `--json` prints."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def json_schema(cls: type) -> dict[str, Any]:
    """JSON Schema of a `--json` document whose body is record `cls`, generated by pydantic (imported only
    here), with the two rules every document follows (`document_schema`)."""
    from pydantic import TypeAdapter

    schema: dict[str, Any] = TypeAdapter(cls).json_schema(mode="serialization")
    return document_schema(schema)


def document_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as every `--json` document's: `schema_version` first and required (pinned to
    SCHEMA_VERSION), and `explain` optional (it is printed only with `--explain`)."""
    properties = schema.get("properties", {})
    version = {
        "const": SCHEMA_VERSION,
        "type": "string",
        "title": "Schema Version",
        "description": "Version of this document's layout.",
    }
    schema["properties"] = {"schema_version": version, **{k: v for k, v in properties.items() if k != "schema_version"}}
    required = [name for name in schema.get("required", []) if name not in ("explain", "schema_version")]
    schema["required"] = ["schema_version", *required]
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):  # a union of records (NDJSON lines)
        ref = branch.get("$ref", "")
        target = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/$defs/") else branch
        if "required" in target:
            target["required"] = [name for name in target["required"] if name != "explain"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
