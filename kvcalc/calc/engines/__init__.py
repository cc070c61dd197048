"""Serving engines: one module per engine (`vllm`, `sglang`, `trtllm`, `llamacpp`), each with its own settings
record (`settings.py`), its version table, and one entry point

    plan(model, weight_format, hardware, layout, settings) -> DeploymentPlan

`calc/deploy.plan_deployment` dispatches to them by name. A module is imported only when its engine is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kvcalc.calc.plan import Assumption

__all__ = ["ENGINE_MODULES", "Assumption", "engine_module"]

#: Engine name -> module implementing it.
ENGINE_MODULES: dict[str, str] = {
    "vllm": "kvcalc.calc.engines.vllm",
    "sglang": "kvcalc.calc.engines.sglang",
    "trtllm": "kvcalc.calc.engines.trtllm",
    "llamacpp": "kvcalc.calc.engines.llamacpp",
}


def engine_module(name: str) -> ModuleType:
    """The module of engine `name` (imported on first use)."""
    from kvcalc.errors import InputError

    path = ENGINE_MODULES.get(name)
    if path is None:
        raise InputError(f"unknown engine '{name}'; use {', '.join(ENGINE_MODULES)}")
    return importlib.import_module(path)
