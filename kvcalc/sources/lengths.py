"""Request lengths from a file, for `kvcalc perf --lengths-file`: CSV with a header or JSON lines, one request
(or request kind, with a `weight` or `count`) per row, the same columns as a request mix (`kvcalc.sources.mix`):
input (`input_tokens`, `input`, `prompt_tokens`, `input_len`, `isl`) and output (`output_tokens`, `output`,
`completion_tokens`, `output_len`, `osl`).
"""

from __future__ import annotations

from pathlib import Path

from kvcalc.calc.perf.workload import LengthDistribution, empirical_lengths
from kvcalc.errors import InputError
from kvcalc.sources.mix import INPUT_COLUMNS, MAX_TOKENS, OUTPUT_COLUMNS, WEIGHT_COLUMNS
from kvcalc.sources.tabular import number, pick_column, read_rows


def load_lengths(path: str | Path) -> LengthDistribution:
    """The file's rows as an empirical length distribution (InputError naming the file and line)."""
    name = str(path)
    rows = read_rows(path, "lengths file")
    first = rows[0][1]
    cin, cout = pick_column(first, INPUT_COLUMNS), pick_column(first, OUTPUT_COLUMNS)
    if cin is None or cout is None:
        raise InputError(f"lengths file {name}: needs an input column ({', '.join(INPUT_COLUMNS)}) and an output "
                         f"column ({', '.join(OUTPUT_COLUMNS)})")
    cweight = pick_column(first, WEIGHT_COLUMNS)
    inputs: list[int] = []
    outputs: list[int] = []
    weights: list[float] = []
    for line, row in rows:
        where = f"{name}, line {line}"
        i = number(row.get(cin), cin, where, minimum=0, maximum=MAX_TOKENS)
        o = number(row.get(cout), cout, where, minimum=1, maximum=MAX_TOKENS)
        if i != int(i) or o != int(o):
            raise InputError(f"{where}: token counts must be whole numbers")
        w = number(row.get(cweight), cweight, where, maximum=1e12) if cweight else 1.0
        if w > 0:
            inputs.append(int(i))
            outputs.append(int(o))
            weights.append(w)
    if not inputs:
        raise InputError(f"lengths file {name}: every weight is zero")
    return empirical_lengths(inputs, outputs, weights, name)
