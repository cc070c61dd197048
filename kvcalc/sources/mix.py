"""Request mixes from a file: one request (or request kind) per row, CSV with a header or JSON lines.

Columns: input length (`input_tokens`, `input`, `prompt_tokens`, `input_len`, `isl`), output length
(`output_tokens`, `output`, `completion_tokens`, `output_len`, `osl`) and optionally a `weight` or `count`.
"""

from __future__ import annotations

from pathlib import Path

from kvcalc.calc.serving.mix import MixSummary, RequestShape, summarize_mix
from kvcalc.errors import InputError
from kvcalc.sources.tabular import number, pick_column, read_rows

INPUT_COLUMNS = ("input_tokens", "input", "prompt_tokens", "input_len", "isl")
OUTPUT_COLUMNS = ("output_tokens", "output", "completion_tokens", "output_len", "osl")
WEIGHT_COLUMNS = ("weight", "count")
MAX_TOKENS = 1 << 30


def load_mix(path: str | Path) -> MixSummary:
    """Read a request-length distribution and summarize it (calc/serving/mix.summarize_mix)."""
    name = str(path)
    rows = read_rows(path, "request mix")
    first = rows[0][1]
    cols = pick_column(first, INPUT_COLUMNS), pick_column(first, OUTPUT_COLUMNS)
    if cols[0] is None or cols[1] is None:
        raise InputError(f"request mix {name}: needs an input column ({', '.join(INPUT_COLUMNS)}) and an output "
                         f"column ({', '.join(OUTPUT_COLUMNS)})")
    weight_col = pick_column(first, WEIGHT_COLUMNS)
    shapes = []
    for line, row in rows:
        where = f"{name}, line {line}"
        tokens = [number(row.get(c), c, where, minimum=1, maximum=MAX_TOKENS) for c in cols if c]
        if any(t != int(t) for t in tokens):
            raise InputError(f"{where}: token counts must be whole numbers")
        weight = number(row.get(weight_col), weight_col, where, maximum=1e12) if weight_col else 1.0
        if weight > 0:
            shapes.append(RequestShape(input_tokens=int(tokens[0]), output_tokens=int(tokens[1]), weight=weight))
    if not shapes:
        raise InputError(f"request mix {name}: every weight is zero")
    return summarize_mix(shapes, name)
