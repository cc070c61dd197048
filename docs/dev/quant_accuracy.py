"""Dev check: kvcalc's quantized weight sizes against published file sizes and vLLM's logged weight memory.

Not run in CI (reads the reference measurements in $KVCALC_REFERENCE, which are not part of this
repository). Usage, from the repo root:

    .venv/bin/python docs/dev/quant_accuracy.py [REFERENCE_DIR] [--out docs/accuracy-quant.md]

Three groups of rows:

1. GGUF files (`quant_sizes.tsv`, GGUF rows of models kvcalc has a profile for, or whose architecture is
   public and written below as a config dict): predicted = sum of tensor bytes under the llama.cpp recipe
   (`kvcalc.calc.quant.GgufRecipe`). Published *file* sizes also hold the GGUF header (KV metadata, mostly
   the tokenizer) and <= 31 B alignment per tensor: added as an estimate per tokenizer from
   quant_formats.md section 1 (7.86 MB for Llama-3's 128k vocabulary, calibrated there on two exact-byte
   files; ~6 MB Qwen's 152k; ~12 MB gpt-oss's 201k; ~0.8 MB for 32k SentencePiece vocabularies; DeepSeek's
   129k taken as Llama-3's). llama.cpp prints (`model size`, llama-bench `size`, `model buffer size`) are
   tensor data only: nothing added. A CUDA buffer with `-ngl all` holds every tensor but token_embd
   (kept on the host; quant_formats.md 2.8). bartowski's files are made with an importance matrix (the
   `:imatrix` rule variants), as are rows whose format says so.
2. Safetensors files (GPTQ, AWQ, FP8, bitsandbytes, gpt-oss MXFP4): sum of tensor bytes (headers of a few
   KB to 1 MB not added).
3. vLLM `Model loading took X GiB` (vllm_v019_h100_runs.tsv `weights_gib`, vllm_logs.tsv): weights on one
   rank (`kvcalc.calc.parallel.weights_per_stage`, vocab padded to 64 and sharded) in the checkpoint's
   format, from a literal quantization_config as the repository publishes it. Rotary cos/sin caches
   (max_position x rotary_dim values, 0.03 GiB for 128k-context Llama) are in vLLM's figure, not in the
   prediction: most rows come out 0.1-0.4 % low for that reason.

Published figures are rounded (HF's web UI shows 3 significant figures: up to +-0.5 % by itself); the unit
column says what each one is (GB = 1e9 B, GiB = 2^30 B). Rows marked `excluded` are kept for the record but
left out of the summary, with the reason.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvcalc.calc.parallel import weights_per_stage
from kvcalc.calc.quant import (
    Bnb4Format,
    Fp8Format,
    MxFp4Format,
    PackedIntFormat,
    QuantFormat,
    format_from_quantization_config,
    model_weights_bytes,
    parse_quant,
)
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.model import ModelSpec

REFERENCE = Path(os.environ.get("KVCALC_REFERENCE", "reference"))  # not in this repository

# Architectures without a kvcalc profile, from their published config.json files.
QWEN25_14B: dict[str, Any] = {  # Qwen/Qwen2.5-14B config.json (DeepSeek-R1-Distill-Qwen-14B has its shapes)
    "model_type": "qwen2", "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40,
    "num_key_value_heads": 8, "intermediate_size": 13824, "vocab_size": 152064, "tie_word_embeddings": False,
    "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}
MISTRAL_SMALL_31: dict[str, Any] = {  # mistralai/Mistral-Small-3.1-24B-Instruct-2503 text_config
    "model_type": "mistral", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 32768, "vocab_size": 131072,
    "tie_word_embeddings": False, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}
# Its Pixtral vision encoder + projector (vision_config: hidden 1024, 24 layers, FFN 4096 gated, patch 14;
# spatial merge 2): 24 x (4 x 1024^2 + 3 x 1024 x 4096 + 2 x 1024) + 3 x 14^2 x 1024 + 1024 (ln_pre)
# + 1024 (norm) + 4096 x 1024 (patch merger) + 1024 x 5120 + 5120^2 (projector) = 438,958,080 params, kept
# BF16 by the w8a8 recipe (ignore vision_tower / multi_modal_projector), sharded by TP in vLLM.
MISTRAL_SMALL_31_VISION_PARAMS = (
    24 * (4 * 1024**2 + 3 * 1024 * 4096 + 2 * 1024) + 3 * 14 * 14 * 1024 + 1024 + 1024 + 4096 * 1024
    + 1024 * 5120 + 5120**2
)

#: GGUF header estimate per vocabulary size (bytes), quant_formats.md section 1.
HEADER_BY_VOCAB = {128256: 7_860_000, 152064: 6_000_000, 151936: 6_000_000, 201088: 12_000_000,
                   32000: 800_000, 129280: 7_860_000}

UNITS = {"GB": 1e9, "GiB": 2**30, "MiB": 2**20, "bytes": 1.0}


@dataclass
class Row:
    group: str
    model: str
    fmt: str
    measured: str
    published_bytes: float
    predicted_bytes: float
    source: str
    excluded: str = ""

    @property
    def error(self) -> float:
        return 100 * (self.predicted_bytes - self.published_bytes) / self.published_bytes


def _unit(text: str) -> float:
    if text.startswith("GiB") or '"GiB' in text or text.startswith('"GiB'):
        return UNITS["GiB"]
    for key in ("MiB", "GiB", "bytes", "GB"):
        if key in text:
            return UNITS[key]
    raise ValueError(text)


_MODELS: dict[str, ModelSpec] = {}


def model_for(name: str) -> ModelSpec | None:
    """kvcalc model for a quant_sizes.tsv model cell (same tensor shapes), or None."""
    rules = [
        ("Qwen2.5-14B shapes", "cfg:qwen2.5-14b"), ("Qwen2.5-32B shapes", "qwen2.5-32b"),
        ("Qwen2.5-7B shapes", "qwen2.5-7b"), ("Qwen3-30B-A3B shapes", "qwen3-30b-a3b"),
        ("Qwen2-7B", "qwen2.5-7b"), ("Qwen2.5-7B", "qwen2.5-7b"),
        ("Llama-3.1-70B", "llama-3.1-70b"), ("Llama-3-70B", "llama-3.1-70b"),
        ("Llama-3.1-8B", "llama-3.1-8b"), ("Llama-3-8B", "llama-3.1-8b"),
        ("Llama-2-70B", "llama-2-70b"), ("Llama-2-7B", "llama-2-7b"), ("Llama-2-13B", "llama-2-13b"),
        ("Mixtral-8x7B", "mixtral-8x7b"), ("DeepSeek-V3", "deepseek-v3"),
        ("gpt-oss-120b", "gpt-oss-120b"), ("gpt-oss-20b", "gpt-oss-20b"),
    ]
    for needle, key in rules:
        if needle in name:
            if key not in _MODELS:
                _MODELS[key] = (model_from_config(dict(QWEN25_14B), model_id="qwen2.5-14b")
                                if key == "cfg:qwen2.5-14b" else load_model(key))
            return _MODELS[key]
    return None


def gguf_rows(ref: Path) -> list[Row]:
    rows: list[Row] = []
    with open(ref / "quant_sizes.tsv", newline="") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            fmt_text, variant, value = rec["format"], rec["variant"], rec["published_value"]
            if value == "NA" or any(x in fmt_text for x in ("EXL2", "AQLM", "HQQ")):
                continue
            model = model_for(rec["model"])
            if model is None:
                continue
            published = float(value) * _unit(rec["unit"])
            excluded = ""
            if "GGUF" in fmt_text:
                ftype = "MXFP4_MOE" if variant == "mxfp4" else variant.split()[0].upper()
                # bartowski's quants are all made with an importance matrix (his model cards say so); it
                # changes the IQ4_XS/IQ4_NL ffn_down and IQ3_XXS rules
                imatrix = "imatrix" in fmt_text or "bartowski" in rec["source"]
                fmt = parse_quant(ftype + (":imatrix" if imatrix else ""), model=model)
                tensors = model.all_tensors()
                if "token_embd" in variant:
                    tensors, measured = [t for t in tensors if t.role == "token_embd"], "llama.cpp host buffer"
                elif "CUDA0" in fmt_text:
                    tensors, measured = [t for t in tensors if t.role != "token_embd"], "llama.cpp CUDA buffer"
                elif any(x in fmt_text for x in ("buffer", "print", "llama-bench")):
                    measured = "llama.cpp print (tensor data)"
                else:
                    measured = "file"
                predicted = float(sum(fmt.tensor_bytes(t, t.numel) for t in tensors))
                if measured == "file":
                    predicted += HEADER_BY_VOCAB.get(model.vocab_size, 1_000_000) + 16 * len(tensors)
                if "TheBloke" in fmt_text:
                    excluded = "Dec-2023 llama.cpp rules (Q4_K_M = Q4_K_S then); current rules differ"
                group, name = "gguf", fmt.name
            else:
                sfmt = safetensors_format(fmt_text, variant, model)
                if sfmt is None:
                    continue
                predicted = float(model_weights_bytes(model, sfmt))
                group, name, measured = "safetensors", sfmt.name, "file"
            rows.append(Row(group, rec["model"], name, f"{measured}, {value} {rec['unit'].split('(')[0].strip()}",
                            published, predicted, rec["source"], excluded))
    return rows


def safetensors_format(fmt_text: str, variant: str, model: ModelSpec) -> QuantFormat | None:
    if fmt_text.startswith("GPTQ"):
        bits = int(variant.split("bit")[0])
        group_text = variant.split("g")[-1]
        group = -1 if group_text == "None" else int(group_text)
        return PackedIntFormat("gptq", bits, group, g_idx=True)  # AutoGPTQ files always store g_idx
    if fmt_text.startswith("AWQ"):
        return parse_quant("awq:4:128")
    if fmt_text.startswith("FP8 per-tensor"):
        return Fp8Format("tensor", static_input=True)
    if fmt_text.startswith("bitsandbytes NF4"):
        return Bnb4Format("nf4", double_quant=True)
    if fmt_text.startswith("HF safetensors"):
        return format_from_quantization_config(model)
    return None


# --- vLLM: weights on one rank ----------------------------------------------------------------------------


def _with_qc(model: ModelSpec, qc: dict[str, Any]) -> ModelSpec:
    return replace(model, quantization_config=qc)


CT_FP8_DYNAMIC = {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
                  "config_groups": {"group_0": {"targets": ["Linear"],
                                                "input_activations": {"num_bits": 8, "type": "float",
                                                                      "dynamic": True, "strategy": "token"},
                                                "weights": {"num_bits": 8, "type": "float",
                                                            "strategy": "channel"}}}}
CT_W8A8 = {"quant_method": "compressed-tensors", "format": "int-quantized", "ignore": ["lm_head"],
           "config_groups": {"group_0": {"targets": ["Linear"],
                                         "input_activations": {"num_bits": 8, "type": "int", "dynamic": True},
                                         "weights": {"num_bits": 8, "type": "int", "strategy": "channel",
                                                     "symmetric": True}}}}
GPTQ_4_128 = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
FP8_BLOCK = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
# Meta-Llama-3.1-405B-Instruct-FP8: FP8 (fbgemm, row-wise) for the FFNs only; attention and the first and
# last layers stay BF16 (Llama 3 paper, Dubey et al. 2024, arXiv:2407.21783, section 6.2).
FBGEMM_405B = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0,
               "modules_to_not_convert": [f"model.layers.{i}.self_attn" for i in range(126)]
               + ["model.layers.0.mlp", "model.layers.125.mlp", "lm_head"]}


def vllm_rows(ref: Path) -> list[Row]:
    rows: list[Row] = []
    cases: list[tuple[str, str, dict[str, Any], int, float, str, str, int]] = [
        # (label, model key, quantization_config, tp, weights GiB logged, source, excluded, extra params bf16)
        ("RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic", "llama-3.1-70b", CT_FP8_DYNAMIC, 2, 0, "v019", "", 0),
        ("RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic", "llama-3.1-70b", CT_FP8_DYNAMIC, 4, 0, "v019", "", 0),
        ("RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic", "qwen2.5-7b", CT_FP8_DYNAMIC, 1, 0, "v019", "", 0),
        ("redhatai/Llama-3.3-70B-Instruct-quantized.w8a8", "llama-3.1-70b", CT_W8A8, 2, 0, "v019", "", 0),
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "llama-3.1-8b", GPTQ_4_128, 1, 0, "v019", "", 0),
        ("RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8", "cfg:mistral-small-3.1", CT_W8A8, 1, 0,
         "v019", "", MISTRAL_SMALL_31_VISION_PARAMS),
        ("RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8", "cfg:mistral-small-3.1", CT_W8A8, 2, 0,
         "v019", "", MISTRAL_SMALL_31_VISION_PARAMS),
        ("RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8", "qwen2.5-7b", CT_W8A8, 1, 0, "v019", "", 0),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct-FP8 (V09, v0.5.3)", "llama-3.1-405b", FBGEMM_405B, 8, 57.7520,
         "vllm_logs V09 https://github.com/vllm-project/vllm/issues/6746", "", 0),
        ("Qwen3-30B-A3B-FP8 (V13, inferred model)", "qwen3-30b-a3b", FP8_BLOCK, 1, 29.09,
         "vllm_logs V13 https://github.com/vllm-project/vllm/issues/25350",
         "model identity inferred from the KV size", 0),
        ("openai/gpt-oss-120b (V15, v0.10.1, Marlin)", "gpt-oss-120b", {}, 1, 65.9651,
         "vllm_logs V15 https://github.com/vllm-project/vllm/issues/23278", "", 0),
        ("openai/gpt-oss-120b (V17, v0.14.1, triton)", "gpt-oss-120b", {}, 1, 64.38,
         "vllm_logs V17 https://github.com/vllm-project/vllm/issues/33155",
         "Hopper triton_kernels layout padding: not in vLLM's code, not modelled", 0),
    ]
    logged = _v019_weights(ref)
    for label, key, qc, tp, gib, source, excluded, extra in cases:
        if key == "cfg:mistral-small-3.1":
            model = model_from_config(dict(MISTRAL_SMALL_31), model_id="mistral-small-3.1-24b")
        else:
            model = load_model(key)
        if qc:
            model = _with_qc(model, qc)
        fmt = format_from_quantization_config(model)
        assert fmt is not None, label
        if "Marlin" in label and isinstance(fmt, MxFp4Format):
            fmt = MxFp4Format("marlin", keep_high_precision=fmt.keep).bind(model)
        if not gib:
            gib = logged[(label.lower(), tp)]
            source = "vllm_v019_h100_runs.tsv (v0.19.0, H100)"
        predicted = weights_per_stage(model, Parallel(tp=tp), fmt)[0].weights_bytes + 2 * extra / tp
        rows.append(Row("vllm", label, f"{fmt.name} tp={tp}", f"Model loading took {gib} GiB", gib * 2**30,
                        predicted, source, excluded))
    return rows


def _v019_weights(ref: Path) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    with open(ref / "vllm_v019_h100_runs.tsv", newline="") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            if rec["status"] == "ok" and rec["weights_gib"]:
                out[(rec["model"].lower(), int(rec["tp"]))] = float(rec["weights_gib"])
    return out


# --- report -----------------------------------------------------------------------------------------------


def summary(rows: list[Row]) -> tuple[int, float, float, Row | None]:
    kept = [r for r in rows if not r.excluded]
    if not kept:
        return 0, 0.0, 0.0, None
    errors = [abs(r.error) for r in kept]
    worst = max(kept, key=lambda r: abs(r.error))
    return len(kept), statistics.median(errors), abs(worst.error), worst


def markdown(rows: list[Row]) -> str:
    lines = [
        "# Accuracy: quantized weight sizes",
        "",
        "Generated by `docs/dev/quant_accuracy.py` from the reference measurements in `$KVCALC_REFERENCE` "
        "(not part of this repository: quant_sizes.tsv, "
        "llamacpp_logs.tsv, vllm_logs.tsv, vllm_v019_h100_runs.tsv). Predicted = `kvcalc.calc.quant` "
        "(GGUF: llama.cpp's per-tensor recipe + a header estimate for files; safetensors: tensor bytes; vLLM: "
        "one rank's weights from `weights_per_stage`). Error = (predicted - published) / published.",
        "",
        "| group | rows | median abs error | worst | worst row | target |",
        "|---|---|---|---|---|---|",
    ]
    targets = {"gguf": "2 %", "safetensors": "2 %", "vllm": "3 %"}
    for group in ("gguf", "safetensors", "vllm"):
        n, med, worst, row = summary([r for r in rows if r.group == group])
        where = f"{row.model} {row.fmt}" if row else "-"
        lines.append(f"| {group} | {n} | {med:.2f} % | {worst:.2f} % | {where} | {targets[group]} |")
    lines += ["", "| group | model | format | measured | published B | predicted B | error | source / note |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        note = r.source + (f" — excluded: {r.excluded}" if r.excluded else "")
        lines.append(f"| {r.group} | {r.model} | {r.fmt} | {r.measured} | {r.published_bytes:,.0f} | "
                     f"{r.predicted_bytes:,.0f} | {r.error:+.2f} % | {note} |")
    lines += [
        "",
        "vLLM's MXFP4 layouts per kernel (Marlin, Hopper triton_kernels: gpt-oss-120b logs 64.38 GiB against "
        "60.77 GiB of tensors) are modelled in `kvcalc/calc/quant/mxfp4.py` and checked in accuracy.md section 9. "
        "Not modelled (documented in `kvcalc/calc/quant/__init__.py`): Blackwell NVFP4 scale swizzling, "
        "transformers' BF16 fallbacks; EXL2, AQLM and HQQ rows of quant_sizes.tsv (formats kvcalc does not "
        "offer). Llama-3.1 GGUFs also hold `rope_freqs.weight` (256 B), not counted. llamacpp_logs.tsv rows "
        "L13 and L14 are the R1-Distill-Qwen-32B buffers and the Llama-3.1-8B F16 buffer above; L08 (ollama, "
        "unstated quantization) cannot be checked.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, default=REFERENCE)
    parser.add_argument("--out", type=Path, default=Path("docs/accuracy-quant.md"))
    args = parser.parse_args(argv)
    rows = gguf_rows(args.reference) + vllm_rows(args.reference)
    text = markdown(rows)
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
