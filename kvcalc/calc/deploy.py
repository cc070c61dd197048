"""plan_deployment: one entry point from (model, GPU, layout, engine settings, weight format) to a
DeploymentPlan. Every command that needs memory or capacity calls this and reads the plan; it dispatches to
the engine's module (calc/engines/<name>.py), whose `plan` produces the DeploymentPlan directly.

`settings` is either the engine's own settings record (calc/engines/settings.py) or the engine-neutral
`EngineSettings` the CLI and API take, mapped by calc/engines/options.settings_for (options the engine lacks
become warnings on the plan).
"""

from __future__ import annotations

from kvcalc.calc.engines import engine_module
from kvcalc.calc.engines.common import checkpoint_format
from kvcalc.calc.engines.settings import AnySettings
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.weights import WeightFormat
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec


def default_weight_format(model: ModelSpec, dtype: str) -> WeightFormat:
    """The checkpoint's stored format when its config says it is quantized, else plain `dtype`."""
    return checkpoint_format(model, dtype)[0]


def engine_settings(settings: EngineSettings | AnySettings, *, concurrency: int | None = None
                    ) -> tuple[AnySettings, list[str]]:
    """The engine's own settings (mapped from neutral options when needed) and the mapping's warnings."""
    if isinstance(settings, EngineSettings):
        from kvcalc.calc.engines.options import settings_for

        return settings_for(settings, concurrency=concurrency)
    return settings, []


def plan_deployment(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    engine: EngineSettings | AnySettings,
    *,
    weight_format: WeightFormat | None = None,
    context: int | None = None,
) -> DeploymentPlan:
    """The engine's allocation for this deployment. Weights default to the checkpoint's own format (its
    quantization_config), else its dtype as the engine serves it; the KV cache defaults to the served dtype;
    `context` sets the engine's context length (vLLM --max-model-len, SGLang --context-length, TensorRT-LLM
    max_seq_len, llama.cpp -c per slot), default the model's max_position_embeddings."""
    settings, warnings = engine_settings(engine)
    module = engine_module(settings.name)
    settings = module.with_context(settings, context)
    plan: DeploymentPlan = module.plan(model, weight_format, gpu, parallel, settings)
    if warnings:
        plan = replace(plan, warnings=tuple(warnings) + plan.warnings)
    return plan


def serving_dtype_for(model: ModelSpec, engine: EngineSettings | AnySettings) -> str:
    """The dtype the engine serves a 16/32-bit checkpoint in when the GPU has bf16 (kept for callers written
    against the earlier deploy module; plans carry `serving_dtype`, which also applies the GPU's fallbacks):
    fp32 checkpoints are cast to bf16 by vLLM, SGLang and TensorRT-LLM (`dtype=auto`); llama.cpp keeps the file's."""
    if model.dtype == "fp32" and engine.name != "llamacpp":
        return "bf16"
    return model.dtype if model.dtype in ("bf16", "fp16", "fp32") else "bf16"
