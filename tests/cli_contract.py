"""The CLI contract as code, shared by the contract tests and the fuzz suite.

`run_cli(argv)` runs `kvcalc` in-process (`kvcalc.cli.app.run`, what `main` calls) with stdout and stderr
captured, and `check_contract` asserts what every run must satisfy, whatever its input:

- exit 0 (ok / fits), 1 (does not fit: only commands whose help documents it), 2 (bad input) or 3
  (environment);
  never 70 (a kvcalc bug) and never an exception escaping;
- on 2 or 3: nothing on stdout, one to four lines on stderr, the first starting `kvcalc: error: `, no traceback;
- with `--json` and exit 0 or 1: stdout is exactly one JSON document (or an NDJSON stream of them, one per
  line) with `schema_version`, each validating against `kvcalc schema <command>` (`validate`: the
  `jsonschema` package when installed, else the subset of JSON Schema that pydantic emits, implemented here).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import time
from dataclasses import dataclass
from typing import Any

#: Arguments that make each command answer; a command not listed runs as `COMMAND llama-3.1-8b` when it
#: takes a MODEL, else bare. A command may also declare `EXAMPLES = [[...], ...]` in its module.
EXAMPLES: dict[str, list[list[str]]] = {
    "fit": [["llama-70b", "--gpu", "h100", "--tp", "4"], ["llama-3.1-405b", "--gpu", "h100"]],  # fits; not
    "quant": [["qwen2.5-7b", "--gpu", "l4", "--formats", "bf16,fp8,Q4_K_M"]],
    "local": [["llama-3.1-8b", "--gpu", "rtx-4090", "--ram", "64G"], ["llama-3.1-405b", "--cpu", "--ram", "8G"]],
    "attention-variants": [["deepseek-v3", "--gpu", "h200"]],
    "perf": [["llama-3.1-8b", "--gpu", "h100", "--input", "2k", "--output", "256", "--concurrency", "16"]],
    "batch": [["qwen2.5-1.5b", "--gpu", "l4", "--input", "2k", "--output", "256", "--ttft-slo", "500ms",
               "--tpot-slo", "50ms"]],
    "paged": [["llama-3.1-8b", "--gpu", "h100", "--requests", "1200,350,8000"]],
    "prefix": [["llama-3.1-8b", "--prefix-tokens", "2000", "--requests-per-s", "10"]],
    "attention": [["llama-3.1-8b", "--seq", "8K"]],
    "spec": [["llama-3.1-8b", "--method", "eagle3"]],
    "serve": [["llama-3.1-8b", "--rps", "5", "--input", "2k", "--output", "300"]],
    "plan": [["llama-3.1-8b", "--rps", "5", "--input", "2k", "--output", "300"]],
    "schema": [],  # prints a JSON Schema, not a report (checked below)
}


def examples(name: str) -> list[list[str]]:
    from kvcalc.cli.app import command_module

    module = command_module(name)
    declared = getattr(module, "EXAMPLES", None)
    if declared is not None:
        return [list(args) for args in declared]
    if name in EXAMPLES:
        return EXAMPLES[name]
    import inspect

    takes_model = "model" in inspect.signature(module.command).parameters
    return [["llama-3.1-8b"]] if takes_model else [[]]


@functools.cache
def judges_fit(command: str) -> bool:
    """Whether exit code 1 ("does not fit", "no plan meets the targets") is one of `command`'s answers:
    its help text documents it ("... 1 when ..."), as every command that judges must."""
    import re

    from kvcalc.cli.app import COMMANDS, command_module

    doc = command_module(command).command.__doc__ or "" if command in COMMANDS else ""
    return re.search(r"\b1 when", doc) is not None


@dataclass
class Result:
    argv: list[str]
    code: int
    out: str
    err: str
    seconds: float


def run_cli(argv: list[str]) -> Result:
    """Run kvcalc on `argv` in this process; exceptions that escape `run` propagate (a contract breach)."""
    from kvcalc.cli.app import run

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(argv))
    return Result(list(argv), code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


@functools.cache
def schema_for(command: str) -> dict[str, Any] | None:
    """`kvcalc schema <command>` as a dict (None when the command publishes no schema)."""
    from kvcalc.cli.app import COMMANDS, command_module

    if command not in COMMANDS or not getattr(command_module(command), "SCHEMA", None):
        return None
    result = run_cli(["schema", command])
    assert result.code == 0, result.err
    schema: dict[str, Any] = json.loads(result.out)
    return schema


def check_contract(result: Result) -> None:
    """Assert the contract (module docstring) for one run."""
    command = result.argv[0] if result.argv else ""
    allowed = {0, 2, 3} | ({1} if judges_fit(command) else set())
    assert result.code in allowed, f"exit {result.code} for {result.argv}: {result.err[-800:]}"
    assert "Traceback" not in result.err, result.err
    if result.code in (2, 3):
        assert result.out == "", f"stdout not empty on error for {result.argv}: {result.out[:300]}"
        lines = result.err.strip().splitlines()
        assert 1 <= len(lines) <= 4, f"{len(lines)} stderr lines for {result.argv}: {result.err[:600]}"
        assert lines[0].startswith("kvcalc: error: "), lines[0]
    elif _json_requested(result.argv):
        schema = schema_for(command)
        assert schema is not None, f"{command} prints JSON but publishes no schema"
        for document in documents(result.out):
            assert isinstance(document, dict) and "schema_version" in document, result.out[:200]
            validate(document, schema)


@functools.cache
def _value_options(command: str) -> frozenset[str]:
    """Options of `command` that take a value (the token after them is that value, even `--json`)."""
    from kvcalc.cli.app import COMMANDS, click_command

    if command not in COMMANDS:
        return frozenset()
    params = click_command([command]).commands[command].params  # type: ignore[attr-defined]
    return frozenset(o for p in params if not getattr(p, "is_flag", False) for o in p.opts if o.startswith("-"))


def _json_requested(argv: list[str]) -> bool:
    """Whether `--json` is in effect: a command first, `--json` as a flag (not another option's value), and
    no `--help` anywhere."""
    from kvcalc.cli.app import COMMANDS

    if not argv or argv[0] not in COMMANDS or "--help" in argv:
        return False
    takes_value = _value_options(argv[0])
    skip = False
    found = False
    for token in argv[1:]:
        if skip:
            skip = False
        elif token == "--help":
            return False
        elif token == "--json":
            found = True
        elif token in takes_value:
            skip = True
    return found


def documents(out: str) -> list[Any]:
    """stdout as JSON: one document (json.loads rejects trailing data), else an NDJSON stream of one
    compact document per line."""
    try:
        return [json.loads(out)]
    except json.JSONDecodeError:
        lines = out.splitlines()
        assert len(lines) > 1 and all(line.startswith("{") for line in lines), f"not JSON: {out[:200]}"
        return [json.loads(line) for line in lines]


# --- JSON Schema validation -----------------------------------------------------------------------------


def validate(document: Any, schema: dict[str, Any]) -> None:
    """Raise AssertionError when `document` does not validate against `schema`."""
    try:
        import jsonschema
    except ImportError:
        errors = list(_errors(document, schema, schema, "$"))
        assert not errors, "; ".join(errors[:5])
        return
    jsonschema.validate(document, schema)


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _errors(value: Any, schema: Any, root: dict[str, Any], path: str) -> Any:
    """The JSON Schema (2020-12) keywords pydantic's schemas use: $ref to $defs, type, const, enum,
    anyOf/oneOf/allOf, properties/required/additionalProperties, items/prefixItems, min/max bounds."""
    if schema is True or schema == {}:
        return
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        yield from _errors(value, target, root, path)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            yield f"{path}: {type(value).__name__} is not {kind}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{path}: {value!r} != const {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {value!r} not in {schema['enum']}"
    if "anyOf" in schema and not any(not list(_errors(value, s, root, path)) for s in schema["anyOf"]):
        yield f"{path}: matches none of anyOf"
    if "oneOf" in schema and sum(not list(_errors(value, s, root, path)) for s in schema["oneOf"]) != 1:
        yield f"{path}: does not match exactly one of oneOf"
    for sub in schema.get("allOf", []):
        yield from _errors(value, sub, root, path)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                yield f"{path}: missing required '{name}'"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                yield from _errors(item, props[key], root, f"{path}.{key}")
            elif extra is False:
                yield f"{path}: unexpected property '{key}'"
            elif isinstance(extra, dict):
                yield from _errors(item, extra, root, f"{path}.{key}")
    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if sub is not None:
                yield from _errors(item, sub, root, f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            yield f"{path}: {len(value)} items out of bounds"
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{path}: {value} > maximum {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            yield f"{path}: {value} <= exclusiveMinimum {schema['exclusiveMinimum']}"
