"""The whole measurement for one model on one card, as a raw JSON-able record (the schema `RAW_SCHEMA`).

Raw numbers only (bytes, seconds, shapes, counts): predictions, errors and the calibration are computed from
this record afterwards (report/verify.py), so a saved record can be re-read when the perf model changes,
without the GPU (`kvcalc verify --from-raw FILE`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kvcalc.bench.attention import measure_attention
from kvcalc.bench.ceilings import measure_ceilings
from kvcalc.bench.hfcheck import hf_check
from kvcalc.bench.memory import free_bytes, measure_paged_kv, measure_weights
from kvcalc.bench.steps import run_guarded, time_decode, time_prefill
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import record
from kvcalc.spec.layers import FullAttention, MLAAttention

RAW_SCHEMA = "kvcalc-verify-raw/1"


@record
class SuiteOptions:
    """What to measure. `stack` = K layers per signature; lengths in tokens."""

    dtype: str = "bf16"
    stack: int = 4
    batches: tuple[int, ...] = (1, 4, 16, 64, 256)
    contexts: tuple[int, ...] = (1024, 4096, 16384)
    prompts: tuple[int, ...] = (256, 1024, 4096, 16384)
    attention_lengths: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768)
    decode_runs: int = 30
    prefill_runs: int = 5
    hf_layers: int = 2
    ceilings: bool = True
    attention: bool = True

    @classmethod
    def quick(cls, **changes: Any) -> SuiteOptions:
        """A run that finishes within two minutes on an H100 for models up to 70B (layer-sliced)."""
        base: dict[str, Any] = dict(stack=2, batches=(1, 16, 64), contexts=(2048,), prompts=(512, 2048),
                                    attention_lengths=(1024, 4096), decode_runs=15, prefill_runs=3)
        base.update(changes)
        return cls(**base)


def _attention_shape(plan: DeploymentPlan) -> tuple[int, int]:
    for layer in plan.model.layers:
        if isinstance(layer.mixer, MLAAttention):
            return layer.mixer.num_heads, layer.mixer.qk_nope_head_dim + layer.mixer.qk_rope_head_dim
        if isinstance(layer.mixer, FullAttention):  # sliding and chunked are FullAttention subclasses
            return layer.mixer.num_heads, layer.mixer.head_dim
    return 32, 128


def decode_gemm_shape(plan: DeploymentPlan) -> tuple[int, int]:
    """(N, K) of the model's largest 2-D weight in its first layer: the decode GEMM the ceilings probe."""
    layer = plan.model.layers[0]
    shapes = [t.shape for t in layer.tensors if len(t.shape) == 2]
    n, k = max(shapes, key=lambda s: s[0] * s[1])
    return int(n), int(k)


def run_suite(plan: DeploymentPlan, options: SuiteOptions, *, device: str, card: dict[str, Any],
              config: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None,
              deadline: float | None = None) -> dict[str, Any]:
    """Every measurement for `plan`'s model and card; failures of one part become notes; timings that would
    start after `deadline` (time.monotonic) are skipped."""
    say = progress or (lambda _m: None)
    started = time.monotonic()
    model = plan.model
    notes: list[str] = []
    limit = plan.max_model_len
    raw: dict[str, Any] = {
        "schema": RAW_SCHEMA, "card": card, "model": model.id, "gpu": plan.gpu.key, "engine": plan.engine,
        "engine_version": plan.engine_version, "dtype": options.dtype, "kv_dtype": plan.kv_dtype,
        "max_model_len": limit, "options": {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in options.__dict__.items() if not k.startswith("_")},
    }
    if options.ceilings:
        say("ceilings: copy bandwidth and GEMM rates")
        raw["ceilings"] = run_guarded("ceilings", lambda: measure_ceilings(
            device, decode_shape=decode_gemm_shape(plan), batches=list(options.batches),
            l2_bytes=int(card.get("l2_cache_bytes") or 0), quick=options.stack <= 2), notes)
    whole = plan.devices[0].weights_bytes < 0.85 * free_bytes(device)
    say("weights: " + ("every layer" if whole else "one layer of each kind, extrapolated"))
    raw["weights"] = run_guarded("weights", lambda: measure_weights(model, options.dtype, device, whole=whole),
                                 notes)
    say("transformers cross-check")
    raw["hf_check"] = run_guarded("hf_check", lambda: hf_check(config, options.hf_layers, device), notes)
    say("paged KV cache")
    raw["paged_kv"] = run_guarded("paged_kv", lambda: measure_paged_kv(
        plan, device, max_bytes=int(0.5 * free_bytes(device))), notes)
    contexts = [c for c in options.contexts if c <= limit] or [min(options.contexts[0], limit)]
    say(f"decode: batches {list(options.batches)} x contexts {contexts}")
    raw["decode"] = run_guarded("decode", lambda: time_decode(
        model, dtype=options.dtype, batches=list(options.batches), contexts=contexts, stack=options.stack,
        device=device, sm_count=int(card.get("sm_count") or 1), runs=options.decode_runs, deadline=deadline),
        notes)
    prompts = [n for n in options.prompts if n <= limit] or [min(options.prompts[0], limit)]
    say(f"prefill: prompts {prompts}")
    raw["prefill"] = run_guarded("prefill", lambda: time_prefill(
        model, dtype=options.dtype, lengths=prompts, stack=options.stack, device=device,
        runs=options.prefill_runs, deadline=deadline), notes)
    if options.attention:
        heads, head_dim = _attention_shape(plan)
        say(f"attention memory: flash vs math, {heads} heads x {head_dim}")
        raw["attention"] = run_guarded("attention", lambda: measure_attention(
            heads, head_dim, list(options.attention_lengths), device), notes)
    raw["notes"] = notes
    raw["elapsed_s"] = round(time.monotonic() - started, 1)
    return raw
