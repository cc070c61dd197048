"""kvcalc: capacity and cost calculator for LLM inference.

`kvcalc.fit(...)` and `kvcalc.inspect(...)` return the pydantic reports the CLI prints with --json
(imported lazily so `import kvcalc` stays cheap).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["batch", "fit", "inspect", "paged", "perf", "prefix"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kvcalc import api

        return getattr(api, name)
    raise AttributeError(name)
