"""`kvcalc quant`: one model on one deployment under each weight format (report models, builder, renderer).

Each row reads the DeploymentPlan of the same deployment with the format's weights, so weight bytes, the KV
cache left and the concurrency it buys are what `kvcalc fit --quant FORMAT` prints. Quality notes quote a
published figure and its source where one exists; they describe other models than yours and are a guide,
not a prediction.
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.deploy import engine_settings, plan_deployment
from kvcalc.calc.engines.settings import AnySettings
from kvcalc.calc.parallel import check_parallel
from kvcalc.calc.quant import (
    QuantFormat,
    bits_per_weight,
    format_from_quantization_config,
    model_weights_bytes,
    parse_quant,
)
from kvcalc.errors import KvcalcError
from kvcalc.report.explain import Derivation
from kvcalc.report.fit import GpuReport, fit_verdict
from kvcalc.report.inspect import ModelReport, model_report
from kvcalc.spec.base import record
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

#: The formats `kvcalc quant` compares by default, from 16-bit to 2-bit.
DEFAULT_FORMATS: tuple[str, ...] = (
    "bf16", "fp8", "int8", "gptq:4:128", "awq:4:128", "nf4", "nvfp4", "mxfp4",
    "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K", "IQ4_XS",
)

_KURTIC = "Kurtic et al. 2024, \"Give Me BF16 or Give Me Death?\", arXiv:2411.02355 (ACL 2025)"
_LLAMACPP = "llama.cpp tools/quantize/quantize.cpp QUANT_OPTIONS (wikitext-2 perplexity vs F16)"

#: Quality note per format (or family): a short published figure, and its source. "no published figure"
#: where none was found. Details: Kurtic et al. evaluate W8A8-FP8 / W8A8-INT8 / W4A16-INT (GPTQ) on the whole
#: Llama-3.1 family (>500k evaluations): FP8 "effectively lossless", INT8 1-3 % loss, INT4 weight-only
#: rivalling INT8. GPTQ's own Table 3: OPT-175B 4-bit WikiText-2 perplexity 8.37 vs 8.34. AWQ Table 4:
#: Llama-2-7B INT4-g128 5.60 vs 5.47 FP16. QLoRA: NF4 (+ double quant) gives lower perplexity than FP4 and
#: Int4 and NF4 fine-tuning matches 16-bit; no inference-only delta on current models. llama.cpp's quantize
#: tool lists the WikiText-2 perplexity increase of each file type on Llama-3-8B (no figure for IQ types).
QUALITY: dict[str, tuple[str, str]] = {
    "bf16": ("reference", "-"),
    "fp16": ("reference", "-"),
    "fp32": ("reference", "-"),
    "fp8": ("lossless (Llama-3.1 8B-405B)", _KURTIC),
    "int8": ("1-3% accuracy loss (Llama-3.1)", _KURTIC),
    "bnb-int8": ("no loss up to 175B (zero-shot)", "Dettmers et al. 2022 (LLM.int8()), arXiv:2208.07339"),
    "gptq": ("INT4 rivals W8A8-INT8 (Llama-3.1)", f"{_KURTIC}; Frantar et al. 2023 (GPTQ), arXiv:2210.17323"),
    "awq": ("Llama-2-7B ppl 5.60 vs 5.47 fp16", "Lin et al. 2024 (AWQ, MLSys), arXiv:2306.00978 Table 4"),
    "bitsandbytes": ("NF4 > FP4/Int4; no inference delta", "Dettmers et al. 2023 (QLoRA), arXiv:2305.14314"),
    "nvfp4": ("<= 1% drop vs FP8 (DeepSeek-R1)", "NVIDIA Technical Blog, Introducing NVFP4, 2025-06-24"),
    "mxfp4": ("no published figure (PTQ)", "gpt-oss ships MXFP4 experts natively: OpenAI gpt-oss model card 2025"),
    "Q8_0": ("+0.0026 ppl @ Llama-3-8B", _LLAMACPP),
    "Q6_K": ("+0.0217 ppl @ Llama-3-8B", _LLAMACPP),
    "Q5_K_M": ("+0.0569 ppl @ Llama-3-8B", _LLAMACPP),
    "Q5_K_S": ("+0.1049 ppl @ Llama-3-8B", _LLAMACPP),
    "Q4_K_M": ("+0.1754 ppl @ Llama-3-8B", _LLAMACPP),
    "Q4_K_S": ("+0.2689 ppl @ Llama-3-8B", _LLAMACPP),
    "Q3_K_L": ("+0.5562 ppl @ Llama-3-8B", _LLAMACPP),
    "Q3_K_M": ("+0.6569 ppl @ Llama-3-8B", _LLAMACPP),
    "Q3_K_S": ("+1.6321 ppl @ Llama-3-8B", _LLAMACPP),
    "Q2_K": ("+3.5199 ppl @ Llama-3-8B", _LLAMACPP),
    "Q2_K_S": ("+3.1836 ppl @ Llama-3-8B", _LLAMACPP),
    "F16": ("+0.0020 ppl @ Mistral-7B", _LLAMACPP),
    "BF16": ("-0.0050 ppl @ Mistral-7B", _LLAMACPP),
    "gguf": ("no published figure", "-"),
}


def quality_note(fmt: QuantFormat) -> tuple[str, str]:
    """(note, source) for a format: by exact name, then GGUF file type, then family."""
    if fmt.name.endswith("(checkpoint)"):
        return ("as published by the model's authors", "-")
    key = fmt.name.split(":")[0] if fmt.family == "gguf" else fmt.name
    for candidate in (fmt.name, key, fmt.family):
        if candidate in QUALITY:
            return QUALITY[candidate]
    return ("no published figure", "-")


@record
class QuantRow:
    """One format: whole-model weights, what one GPU holds, and the capacity left for the KV cache."""

    format: str
    family: str
    layout: str
    weights_bytes: int
    bits_per_weight: float
    weights_per_gpu_bytes: int
    fits: bool
    reason: str | None
    kv_cache_tokens: int
    max_concurrency: float
    quality: str
    quality_source: str
    layout_source: str
    kernel: str | None = None


@record
class QuantReport:
    model: ModelReport
    gpu: GpuReport
    parallel: Parallel
    engine: AnySettings
    context: int
    rows: list[QuantRow]
    notes: list[str]
    explain: list[Derivation]


def quant_report(
    model: ModelSpec, gpu: GpuSpec, parallel: Parallel, engine: EngineSettings | AnySettings, *,
    context: int | None = None, formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
    keep_high_precision: frozenset[str] | None = None,
) -> QuantReport:
    """One plan per format (calc/deploy.plan_deployment, the same as `kvcalc fit --quant FORMAT`); each row reads
    its plan: weights per GPU as the engine's kernel lays them out, the KV tokens and the concurrency."""
    check_parallel(model, parallel)  # a bad layout is an input error for every row alike: raise it once
    settings, warnings = engine_settings(engine)
    rows: list[QuantRow] = []
    explain: list[Derivation] = []
    params = sum(t.numel for t in model.all_tensors())
    ctx = context
    candidates: list[QuantFormat] = []
    stored = format_from_quantization_config(model)
    if stored is not None:  # a pre-quantized checkpoint: its own layout first
        stored.name = f"{stored.name} (checkpoint)"
        candidates.append(stored)
    candidates.extend(parse_quant(name, keep_high_precision, model=model) for name in formats)
    for fmt in candidates:
        weights = model_weights_bytes(model, fmt)
        bpw = bits_per_weight(model, fmt)
        try:
            plan = plan_deployment(model, gpu, parallel, settings, weight_format=fmt, context=context)
        except KvcalcError as err:
            rows.append(_row(fmt, weights, bpw, 0, False, str(err), 0, 0.0, None))
            continue
        fits, reason = fit_verdict(plan, 1)
        ctx = plan.max_model_len
        per_gpu = plan.binding_device.weights_bytes
        kernel = plan.assumptions.get("weight_kernel")
        rows.append(_row(fmt, weights, bpw, per_gpu, fits, reason, plan.kv_cache_tokens, plan.max_concurrency,
                         str(kernel.value) if kernel is not None else None))
        explain.append(Derivation(
            figure=f"{fmt.name} bits per weight",
            formula="8 x sum of tensor bytes (scales, zeros, 16-bit embeddings/head included) / parameters",
            substituted=f"8 x {weights:,} / {params:,}",
            value=f"{bpw:.3f} bits/weight; {weights / 2**30:.2f} GiB; per GPU {per_gpu / 2**30:.2f} GiB as "
            f"{plan.engine} loads it -> {plan.kv_cache_tokens:,} KV tokens",
            source=fmt.source,
        ))
    notes = [
        "Each row is `kvcalc fit --quant FORMAT` with the same GPU, parallel layout, engine and context.",
        "GGUF rows follow llama.cpp's per-tensor recipe; other formats keep embeddings, lm_head, norms and "
        "routers in bf16 (see `--keep-fp16`). GiB is the file's bytes; GiB/GPU what the engine's kernel holds.",
        "Quality notes quote published figures for other models; check your own model on your own tasks.",
        *([f"GiB counts the text model; the vision tower and projector ({model.vision_params:,} parameters) stay "
           f"in {model.dtype} in quantized checkpoints that list them as ignored, as most do, and are in GiB/GPU "
           "(--language-model-only drops them)."] if model.vision is not None else []),
        *warnings,
    ]
    return QuantReport(
        model=model_report(model, stored), gpu=GpuReport(name=gpu.name, key=gpu.key, count=parallel.gpus,
                                                         memory_bytes=gpu.memory_bytes,
                                                         usable_memory_bytes=gpu.usable_memory_bytes),
        parallel=parallel, engine=settings, context=ctx or model.max_position_embeddings or 4096, rows=rows,
        notes=notes, explain=explain,
    )


def _row(fmt: QuantFormat, weights: int, bpw: float, per_gpu: int, fits: bool, reason: str | None, tokens: int,
         concurrency: float, kernel: str | None) -> QuantRow:
    note, source = quality_note(fmt)
    return QuantRow(
        format=fmt.name, family=fmt.family, layout=fmt.describe(), weights_bytes=weights,
        bits_per_weight=round(bpw, 4), weights_per_gpu_bytes=per_gpu, fits=fits, reason=reason,
        kv_cache_tokens=tokens, max_concurrency=round(concurrency, 4), quality=note, quality_source=source,
        layout_source=fmt.source, kernel=kernel,
    )


def render_quant(out: Any, report: QuantReport) -> None:
    """Two Rich tables: capacity per format, then the published quality figure per format with its source."""
    from rich.table import Table

    p = report.parallel
    table = Table(
        title=f"{report.model.id} on {report.gpu.count} x {report.gpu.name} (tp={p.tp} pp={p.pp}), "
        f"{report.context:,}-token context, {report.engine.name} accounting",
        title_justify="left",
    )
    table.add_column("format", overflow="fold")
    for col in ("GiB", "bits/w", "GiB/GPU", "fits", "KV tokens", "conc."):
        table.add_column(col, justify="left" if col == "fits" else "right", no_wrap=True, min_width=len(col))
    for r in report.rows:
        table.add_row(
            r.format, f"{r.weights_bytes / 2**30:.2f}", f"{r.bits_per_weight:.2f}",
            f"{r.weights_per_gpu_bytes / 2**30:.2f}", "yes" if r.fits else "no", f"{r.kv_cache_tokens:,}",
            f"{r.max_concurrency:.2f}x",
        )
    out.print(table)
    sources: list[str] = []
    quality = Table(title="Quality (published figures, other models)", title_justify="left")
    quality.add_column("format", no_wrap=True)
    quality.add_column("figure")
    quality.add_column("src", justify="right", no_wrap=True)
    for r in report.rows:
        mark = "-"
        if r.quality_source != "-":
            if r.quality_source not in sources:
                sources.append(r.quality_source)
            mark = f"[{sources.index(r.quality_source) + 1}]"
        quality.add_row(r.format, r.quality, mark)
    out.print(quality)
    for i, source in enumerate(sources, 1):
        out.print(f"[{i}] {source}", markup=False)
    for note in report.notes:
        out.print(f"note: {note}", markup=False)
