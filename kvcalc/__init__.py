"""kvcalc: capacity and cost calculator for LLM inference.

One function per command (kvcalc/api.py), returning the records the CLI prints with --json: `fit`, `inspect`,
`quant`, `local`, `attention_variants`, `plan` (the engine's DeploymentPlan), `perf`, `batch`, `attention`,
`speculative` (`kvcalc spec`), `paged` and `paged_trace`, `prefix`, `serve`, `plan_fleet` (`kvcalc plan`) and
`verify`. Imported lazily so `import kvcalc` stays cheap.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["attention", "attention_variants", "batch", "fit", "inspect", "local", "paged", "paged_trace", "perf",
           "plan", "plan_fleet", "prefix", "quant", "serve", "speculative", "verify"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kvcalc import api

        return getattr(api, name)
    raise AttributeError(name)
