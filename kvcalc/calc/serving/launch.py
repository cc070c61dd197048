"""The engine command line a DeploymentPlan implies: the same layout, weight format, context, memory fraction
and concurrency cap the plan was computed with, so launching it reproduces the plan.

vLLM (`vllm serve`, vllm/engine/arg_utils.py): --tensor-parallel-size, --pipeline-parallel-size,
--enable-expert-parallel, --quantization (fp8 quantizes a 16-bit checkpoint online; awq/gptq need a checkpoint
already in that format, which vLLM detects from its config), --kv-cache-dtype, --max-model-len,
--gpu-memory-utilization, --max-num-seqs.
SGLang (`python -m sglang.launch_server`, python/sglang/srt/server_args.py): --tp-size, --pp-size, --ep-size,
--quantization, --kv-cache-dtype, --context-length, --mem-fraction-static, --max-running-requests.
"""

from __future__ import annotations

from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import record

#: Weight formats an engine can produce from a 16-bit checkpoint at load time.
_ONLINE = {"fp8"}


@record
class Launch:
    command: str
    notes: list[str]


def _quant_flag(plan: DeploymentPlan) -> tuple[str | None, list[str]]:
    """(--quantization value or None, notes): online fp8, or a checkpoint format that must exist."""
    name = plan.weight_format.name.split(":")[0].lower()
    if name in ("bf16", "fp16", "fp32") or plan.model.quantization_config is not None:
        return None, []
    repo = plan.model.hf_repo or plan.model.id
    if name in _ONLINE:
        return name, []
    return name, [f"--quantization {name} needs a {name.upper()} checkpoint of {repo}; point the command at one"]


def _kv_flag(plan: DeploymentPlan, engine: str) -> str | None:
    kv = plan.kv_dtype.lower()
    if kv in ("bf16", "fp16", "fp32", "auto"):
        return None
    return "fp8_e4m3" if engine == "sglang" and kv == "fp8" else kv


def vllm_command(plan: DeploymentPlan, max_num_seqs: int) -> Launch:
    repo = plan.model.hf_repo or plan.model.id
    p = plan.parallel
    args = [f"vllm serve {repo}"]
    args += [f"--tensor-parallel-size {p.tp}"] if p.tp > 1 else []
    args += [f"--pipeline-parallel-size {p.pp}"] if p.pp > 1 else []
    args += ["--enable-expert-parallel"] if p.ep > 1 else []
    quant, notes = _quant_flag(plan)
    args += [f"--quantization {quant}"] if quant else []
    kv = _kv_flag(plan, "vllm")
    args += [f"--kv-cache-dtype {kv}"] if kv else []
    args.append(f"--max-model-len {plan.max_model_len}")
    gmu = plan.assumptions.get("gpu_memory_utilization")
    args += [f"--gpu-memory-utilization {gmu.value:g}"] if gmu is not None else []
    args.append(f"--max-num-seqs {max_num_seqs}")
    return Launch(command=" ".join(args), notes=notes)


def sglang_command(plan: DeploymentPlan, max_num_seqs: int) -> Launch:
    repo = plan.model.hf_repo or plan.model.id
    p = plan.parallel
    args = [f"python -m sglang.launch_server --model-path {repo}"]
    args += [f"--tp-size {p.tp}"] if p.tp > 1 else []
    args += [f"--pp-size {p.pp}"] if p.pp > 1 else []
    args += [f"--ep-size {p.ep}"] if p.ep > 1 else []
    quant, notes = _quant_flag(plan)
    args += [f"--quantization {quant}"] if quant else []
    kv = _kv_flag(plan, "sglang")
    args += [f"--kv-cache-dtype {kv}"] if kv else []
    args.append(f"--context-length {plan.max_model_len}")
    frac = plan.assumptions.get("mem_fraction_static")
    args += [f"--mem-fraction-static {frac.value:g}"] if frac is not None else []
    args.append(f"--max-running-requests {max_num_seqs}")
    return Launch(command=" ".join(args), notes=notes)


def launch_command(plan: DeploymentPlan, max_num_seqs: int) -> Launch | None:
    """The command for the plan's engine (vLLM or SGLang); None for engines without a server command here."""
    if plan.engine == "vllm":
        return vllm_command(plan, max_num_seqs)
    if plan.engine == "sglang":
        return sglang_command(plan, max_num_seqs)
    return None
