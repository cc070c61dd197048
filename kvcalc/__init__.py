"""kvcalc: capacity and cost calculator for LLM inference.

`kvcalc.fit`, `kvcalc.inspect`, `kvcalc.quant`, `kvcalc.local`, `kvcalc.attention_variants`, `kvcalc.plan`,
`kvcalc.perf`, `kvcalc.batch`, `kvcalc.paged` and `kvcalc.prefix` (kvcalc/api.py) return the records the CLI
prints with --json (imported lazily so `import kvcalc` stays cheap).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["attention_variants", "batch", "fit", "inspect", "local", "paged", "perf", "plan", "prefix", "quant"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kvcalc import api

        return getattr(api, name)
    raise AttributeError(name)
