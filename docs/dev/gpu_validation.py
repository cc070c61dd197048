"""Predicted vs measured on a real GPU (dev script; run on the device machine, not in CI).

For each model profile: build the architecture with transformers on the GPU in bf16 (random weights, the
real shapes), read torch.cuda.memory_allocated, and compare with kvcalc's weight bytes; then run one
forward of a prompt with the cache on and sum the bytes of the cache tensors transformers keeps, against
kvcalc's bytes for that sequence (transformers 5.x caches MLA as the latent, as vLLM does).

Usage: PYTHONPATH=. python docs/dev/gpu_validation.py [OUT_DIR]   (writes validation.json there)
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ("llama-3.1-8b", "qwen3-8b", "mistral-7b", "gemma-2-9b", "phi-3-mini", "deepseek-v2-lite",
          "gpt-oss-20b", "qwen3-30b-a3b", "nemotron-3-nano-30b-a3b", "falcon-7b")
PROMPT_TOKENS = 1024


def cache_bytes(cache: Any) -> int:
    """Bytes of every tensor a transformers cache object holds (walks its attributes and layers)."""
    import torch

    seen: set[int] = set()
    total = 0

    def walk(obj: Any, depth: int) -> None:
        nonlocal total
        if depth > 4 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, depth + 1)
        elif hasattr(obj, "__dict__"):
            for item in vars(obj).values():
                walk(item, depth + 1)

    walk(cache, 0)
    return total


def measure(name: str) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from kvcalc.calc.kv import bytes_per_sequence
    from kvcalc.calc.params import params_total
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.report.inspect import model_weights_bytes
    from kvcalc.sources.profiles import find_profile, load_profile
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.dtypes import storage_type

    spec = load_model(name)
    config = dict(load_profile(find_profile(name))["config"])  # type: ignore[arg-type]
    config.pop("quantization_config", None)  # random bf16 weights: size the unquantized architecture
    model_type = config.pop("model_type")
    if model_type == "kimi_k2":
        model_type = "deepseek_v3"
    hf_config = AutoConfig.for_model(model_type, **config)
    predicted_weights = model_weights_bytes(spec, PlainFormat("bf16"))
    row: dict[str, Any] = {"model": name, "params_kvcalc": params_total(spec), "weights_kvcalc": predicted_weights}
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)
    model.eval()
    torch.cuda.synchronize()
    row["build_s"] = round(time.perf_counter() - start, 1)
    after = torch.cuda.memory_allocated()
    row["weights_measured"] = after - before
    row["params_torch"] = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    row["buffers_bytes"] = buffers
    ids = torch.randint(0, spec.vocab_size, (1, PROMPT_TOKENS), device="cuda")
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    row["kv_measured"] = cache_bytes(out.past_key_values)
    row["kv_kvcalc"] = bytes_per_sequence(spec, PROMPT_TOKENS, storage_type("bf16"))
    del out, model, ids
    gc.collect()
    torch.cuda.empty_cache()
    return row


def main(out_dir: str = ".") -> None:
    import torch

    rows = []
    device = torch.cuda.get_device_name(0)
    for name in MODELS:
        try:
            rows.append(measure(name))
        except Exception as exc:  # a model transformers here cannot build is reported, not fatal
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            gc.collect()
            torch.cuda.empty_cache()
        print(json.dumps(rows[-1]), flush=True)
    import transformers

    result = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
              "prompt_tokens": PROMPT_TOKENS, "rows": rows}
    Path(out_dir, "validation.json").write_text(json.dumps(result, indent=2))
    print(f"\n{device}, torch {torch.__version__}, transformers {transformers.__version__}")
    print("| model | params kvcalc | params torch | weights kvcalc (B) | allocated (B) | err | KV kvcalc (B) | "
          "KV cache (B) | err |")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['error']} |")
            continue
        werr = 100 * (r["weights_kvcalc"] - r["weights_measured"]) / r["weights_measured"]
        kerr = 100 * (r["kv_kvcalc"] - r["kv_measured"]) / r["kv_measured"] if r["kv_measured"] else float("nan")
        print(f"| {r['model']} | {r['params_kvcalc']:,} | {r['params_torch']:,} | {r['weights_kvcalc']:,} | "
              f"{r['weights_measured']:,} | {werr:+.3f} % | {r['kv_kvcalc']:,} | {r['kv_measured']:,} | "
              f"{kerr:+.2f} % |")


if __name__ == "__main__":
    main(*sys.argv[1:])
