"""`--explain`: each figure with its formula, the numbers substituted, and the source.

Derivations are built by the report builders from the same numbers the report holds, so the explanation
cannot drift from the figures.
"""

from __future__ import annotations

from kvcalc.spec.base import record


@record
class Derivation:
    """One figure: `figure = formula = substituted = value` (source)."""

    figure: str
    formula: str
    substituted: str
    value: str
    source: str = ""

    def line(self) -> str:
        src = f"  [{self.source}]" if self.source else ""
        return f"{self.figure} = {self.formula}\n    = {self.substituted}\n    = {self.value}{src}"
