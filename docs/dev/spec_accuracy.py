"""Regenerate docs/accuracy-spec.md's tables: `kvcalc spec` against published speculative-decoding speedups.

    PYTHONPATH=. python docs/dev/spec_accuracy.py > /tmp/table.md

Each row: the publication, what it measured, the published speedup, kvcalc's prediction and the error
(predicted / published - 1). Nothing is tuned per row. A row passes what its source published about acceptance
(a mean acceptance length, or per-position rates computed from released data) and otherwise uses the method's
default (`kvcalc.calc.drafts.METHODS`). `role` says whether the row informed a constant ("dev"); every other
row is held out. Rows marked * ran engines older than the drafting loops kvcalc models (vLLM before its V1 EAGLE
of April 2025; TensorRT-LLM's two-model EAGLE-3 of mid 2025): they are in the held-out figures and also
reported apart.

Where a source times whole requests (offline `LLM.generate`, throughput including the prefill), the row gives
`input_tokens`/`output_tokens` and kvcalc's end-to-end speedup is compared; else the decode speedup.
The dev rows: vLLM #20780 (12) and SGLang #4247 (3), which `docs/dev/spec_fit.py` fitted the engines'
speculation costs to.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from kvcalc.report.spec import spec_report
from kvcalc.sources.calibration import shipped_calibration
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings

URL_20780 = "https://github.com/vllm-project/vllm/issues/20780"
URL_SDB = "https://specdecode-bench.github.io (arXiv:2601.11580 Fig. 1)"
URL_E3 = "https://arxiv.org/abs/2503.01840 (EAGLE-3, Table 'vLLM' and 'SGLang' throughput by batch)"
URL_4247 = "https://github.com/sgl-project/sglang/pull/4247"
URL_4716 = "https://github.com/sgl-project/sglang/pull/4716"
URL_16035 = "https://github.com/vllm-project/vllm/pull/16035"
URL_16937 = "https://github.com/vllm-project/vllm/pull/16937"
URL_4802 = "https://github.com/NVIDIA/TensorRT-LLM/pull/4802"
URL_TRT2 = ("https://github.com/NVIDIA/TensorRT-LLM/blob/main/docs/source/blogs/tech_blog/"
            "blog2_DeepSeek_R1_MTP_Implementation_and_Optimization.md")
URL_DSV3 = "https://arxiv.org/abs/2412.19437 (s5.4.3)"
URL_SGL_DOCS = "https://docs.sglang.ai/advanced_features/speculative_decoding.html (Performance Highlights)"


@dataclass
class Row:
    group: str
    setup: str
    published: float
    args: dict[str, Any]
    url: str
    role: str = "held-out"
    engine: dict[str, Any] = field(default_factory=dict)
    older_engine: bool = False


def _sweep_20780() -> list[Row]:
    """vLLM #20780: speedup = vanilla TPOT 7.07 ms / TPOT, batch 1, H100, MT-bench (decode context ~512)."""
    sweep = {"eagle": [(2, 2.10, 4.37), (3, 2.29, 4.29), (4, 2.39, 4.48), (5, 2.43, 4.71), (6, 2.45, 4.94),
                       (7, 2.47, 5.20)],
             "eagle3": [(2, 2.36, 4.32), (3, 2.79, 4.09), (4, 3.08, 4.05), (5, 3.32, 4.13), (6, 3.46, 4.20),
                        (7, 3.54, 4.29)]}
    rows = []
    for method, points in sweep.items():
        for k, al, tpot in points:
            rows.append(Row("vLLM #20780 (fit)", f"Llama-3.1-8B {method} K={k}, AL {al}, H100 b1", 7.07 / tpot,
                            dict(model="llama-3.1-8b", gpu="h100", method=method, gamma=k, acceptance_length=al,
                                 context=512), URL_20780, role="dev"))
    return rows


#: SpecDecode-Bench's released acceptance data (github.com/SpecDecode-Bench/simulator data/llama3.1-8B/
#: combined_*.jsonl, field acc_eagle that its eagle3 proposer replays, and acc_ngram): per generated position
#: the tokens a step starting there would accept; walking each request with k = 3 (min(acc_len, 4) tokens per
#: step) gives these conditional per-position rates, and the mean prompt / output lengths; vLLM's n-gram matching
#: rule (a suffix of 3..7 tokens seen earlier, SpecDecode-Bench ran prompt_lookup_min 3, max 7) over the same
#: steps gives the share of steps that draft (`match`).
SDB_DATA = {
    "GSM8K": dict(eagle3=(0.675, 0.647, 0.640), ngram=(0.085, 0.580, 0.615), match=0.21, input=94, output=166),
    "CNN/DM": dict(eagle3=(0.648, 0.637, 0.651), ngram=(0.144, 0.742, 0.774), match=0.28, input=838, output=323),
    "ShareGPT": dict(eagle3=(0.622, 0.613, 0.660), ngram=(0.160, 0.800, 0.830), match=0.30, input=355, output=728),
    "InstructCoder": dict(eagle3=(0.630, 0.667, 0.710), ngram=(0.372, 0.915, 0.924), match=0.59, input=171,
                          output=262),
}
#: Fig. 1 (a)-(d), read off the plot (+-0.02): Llama-3.1-8B on H100, vLLM 0.10.1, k = 3, batches 1 / 64 / 128.
SDB_READ = {
    "GSM8K": dict(eagle3=(1.75, 1.48, 1.22), ngram=(1.17, 1.10, 1.05)),
    "CNN/DM": dict(eagle3=(1.69, 1.40, 1.24), ngram=(1.34, 1.18, 1.12)),
    "ShareGPT": dict(eagle3=(1.71, 1.54, 1.30), ngram=(1.27, 1.20, 1.12)),
    "InstructCoder": dict(eagle3=(2.03, 1.57, 1.31), ngram=(1.89, 1.46, 1.30)),
}


def _specdecode_bench() -> list[Row]:
    rows = []
    for dataset, data in SDB_DATA.items():
        for method in ("eagle3", "ngram"):
            for batch, published in zip((1, 64, 128), SDB_READ[dataset][method], strict=True):
                extra = dict(same_prompt_match=data["match"]) if method == "ngram" else {}
                rows.append(Row(
                    "SpecDecode-Bench (vLLM 0.10.1)", f"Llama-3.1-8B {method} k=3, {dataset}, batch {batch}, "
                    f"{data['input']} in / {data['output']} out", published,
                    dict(model="llama-3.1-8b", gpu="h100", method=method, gamma=3, rates=data[method], batch=batch,
                         input_tokens=data["input"], output_tokens=data["output"], **extra), URL_SDB))
    return rows


#: EAGLE-3 paper, throughput speedup by batch (LLaMA-3.1-8B-Instruct, MT-bench): vLLM on A100 and SGLang on
#: H100, EAGLE(-2) and EAGLE-3 heads. Draft length and tree are not stated: vLLM K = 3 and SGLang's Llama
#: defaults of the time (5 steps, topk 4, 8 draft tokens) assumed; acceptance: the method defaults.
E3_VLLM = {2: (1.30, 1.75), 4: (1.25, 1.68), 8: (1.21, 1.58), 16: (1.10, 1.49), 24: (1.03, 1.42), 32: (0.93, 1.36),
           48: (0.82, 1.21), 56: (0.71, 1.01)}
E3_SGL = {2: (1.40, 1.81), 4: (1.38, 1.82), 8: (1.23, 1.62), 16: (1.02, 1.48), 24: (0.93, 1.39), 32: (0.94, 1.32),
          48: (0.88, 1.38), 56: (0.99, 1.34), 64: (0.99, 1.38)}


def _eagle3_paper() -> list[Row]:
    rows = []
    for batch, (e1, e3) in E3_VLLM.items():
        for method, published in (("eagle", e1), ("eagle3", e3)):
            rows.append(Row("EAGLE-3 paper, vLLM A100", f"Llama-3.1-8B {method}, batch {batch} (K=3 assumed)",
                            published, dict(model="llama-3.1-8b", gpu="a100-80gb", method=method, gamma=3,
                                            batch=batch, context=512), URL_E3, older_engine=True))
    for batch, (e1, e3) in E3_SGL.items():
        for method, published in (("eagle", e1), ("eagle3", e3)):
            rows.append(Row("EAGLE-3 paper, SGLang H100", f"Llama-3.1-8B {method}, batch {batch} (5 steps, "
                            "topk 4, 8 tokens assumed)", published,
                            dict(model="llama-3.1-8b", gpu="h100", method=method, gamma=5, topk=4, verify_tokens=8,
                                 batch=batch, context=512), URL_E3, engine=dict(name="sglang")))
    return rows


def _engine_threads() -> list[Row]:
    """Single measurements in engine PRs, issues and blogs."""
    sgl = dict(name="sglang")
    return [
        Row("SGLang #4247", "Llama-3.1-8B EAGLE-3, 8 steps (topk 8, 64 tokens assumed), AL 5.39, H100 b1; "
            "378.57 vs 158.34 tok/s (docs)", 378.57 / 158.34,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle3", gamma=8, topk=8, verify_tokens=64,
                 acceptance_length=5.39, context=512), URL_4247, role="dev", engine=sgl),
        Row("SGLang #4247", "Llama-3.1-8B EAGLE-3, 5 steps (topk 8, 64 tokens assumed), AL 4.68, H100 b1",
            361.70 / 158.34, dict(model="llama-3.1-8b", gpu="h100", method="eagle3", gamma=5, topk=8,
                                  verify_tokens=64, acceptance_length=4.68, context=512), URL_4247, role="dev",
            engine=sgl),
        Row("SGLang #4247", "Llama-3.1-8B EAGLE-2, 8 steps (topk 8, 64 tokens assumed), AL 3.76, H100 b1",
            230.08 / 158.34, dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=8, topk=8,
                                  verify_tokens=64, acceptance_length=3.76, context=512), URL_4247, role="dev",
            engine=sgl),
        Row("SGLang #4716", "Llama-3.3-70B EAGLE-3, TP8 H100, 8 steps topk 8 64 tokens, AL 5.88, b1; 234.54 vs "
            "88.61 tok/s", 234.54 / 88.61,
            dict(model="llama-3.1-70b", gpu="h100", tp=8, method="eagle3", gamma=8, topk=8, verify_tokens=64,
                 acceptance_length=5.88, context=512), URL_4716, engine=sgl),
        Row("vLLM #16035", "Llama-3-8B EAGLE-1 k=2, AL 1.89, b1 (Apr 2025); 175.49 vs 128.64 tok/s", 175.49 / 128.64,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=2, acceptance_length=1.89, context=512),
            URL_16035),
        Row("vLLM #16035", "Llama-3-8B EAGLE-1 k=4, AL 2.08, b1 (Apr 2025); 165.65 vs 128.64 tok/s", 165.65 / 128.64,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=4, acceptance_length=2.08, context=512),
            URL_16035),
        Row("vLLM #16937", "Llama-3.1-8B EAGLE-1 K=2, H100 b1 (Apr 2025)", 1.51,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=2, context=512), URL_16937),
        Row("vLLM #16937", "Llama-3.1-8B EAGLE-1 K=4, H100 b1", 1.48,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=4, context=512), URL_16937),
        Row("vLLM #16937", "Llama-3.1-8B EAGLE-1 K=7, H100 b1", 1.27,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle", gamma=7, context=512), URL_16937),
        Row("vLLM #16937", "Llama-3.1-8B EAGLE-3 K=2, H100 b1", 1.65,
            dict(model="llama-3.1-8b", gpu="h100", method="eagle3", gamma=2, context=512), URL_16937),
        Row("TensorRT-LLM #4802", "Llama-3.3-70B EAGLE-3 K=3 on vLLM, 8 x H200, batch 8, GSM8K, 256 out; 1430 vs "
            "715 tok/s", 1430 / 715, dict(model="llama-3.1-70b", gpu="h200", tp=8, method="eagle3", gamma=3, batch=8,
                                          input_tokens=128, output_tokens=256), URL_4802),
        Row("TensorRT-LLM #4802", "same on TensorRT-LLM; 1154 vs 876 tok/s", 1154 / 876,
            dict(model="llama-3.1-70b", gpu="h200", tp=8, method="eagle3", gamma=3, batch=8, input_tokens=128,
                 output_tokens=256), URL_4802, engine=dict(name="trtllm"), older_engine=True),
        Row("TensorRT-LLM tech blog 2", "DeepSeek-R1 MTP nextn=3, 8 x B200, batch 1, 1K/2K (FP8 weights here)",
            2.16, dict(model="deepseek-r1", gpu="b200", tp=8, method="mtp", gamma=3, input_tokens=1000,
                       output_tokens=2000), URL_TRT2, engine=dict(name="trtllm")),
        Row("DeepSeek-V3 report", "1 MTP module, '1.8 times TPS', second-token acceptance 0.85-0.90 (0.85 used; "
            "8 x H200 vLLM, batch 1, 4K context)", 1.8,
            dict(model="deepseek-v3", gpu="h200", tp=8, method="mtp", gamma=1, context=4096), URL_DSV3),
    ]


ROWS = _sweep_20780() + _specdecode_bench() + _eagle3_paper() + _engine_threads()


def _same_prompt(model: Any, gpu: Any, engine: Any, match: float, args: dict[str, Any]) -> tuple[float, Any]:
    """SpecDecode-Bench batches B copies of one prompt (scripts/bench_latency.py: `[prompt] * batch_size`), so
    with n-gram every request finds a match at the same steps: a share `match` of the steps verifies
    B (gamma + 1) tokens and the rest B. kvcalc spec at --proposal-rate 1 and 0, weighted:
    (T_prefill + N t_decode) / (T_prefill + N / E x (m t_spec(1) + (1 - m) t_spec(0)))."""
    drafting = spec_report(model, gpu, engine=engine, proposal_rate=1.0, **args)
    idle = spec_report(model, gpu, engine=engine, proposal_rate=0.0, **args)
    x = drafting.end_to_end
    assert x is not None
    step = match * drafting.spec_step_s + (1 - match) * idle.spec_step_s
    e = drafting.expected_tokens_per_pass
    plain = x.prefill_s + x.output_tokens * drafting.target_step_s
    return plain / (x.prefill_s + x.output_tokens / e * step), drafting


def predict(row: Row) -> tuple[float, Any]:
    args = dict(row.args)
    model, gpu = load_model(str(args.pop("model"))), find_gpu(str(args.pop("gpu")))
    if SHIPPED == "none":
        gpu = replace(gpu, calibration=None)
    elif SHIPPED == "file" and gpu.calibration is not None:
        args["calibration"] = shipped_calibration(gpu.key)
    engine = EngineSettings(**row.engine) if row.engine else None
    match = args.pop("same_prompt_match", None)
    if match is not None:
        return _same_prompt(model, gpu, engine, float(match), args)
    r = spec_report(model, gpu, engine=engine, **args)
    value = r.end_to_end.speedup if r.end_to_end is not None else r.speedup
    return value, r


#: How the shipped calibration is used (`--calibration none|default|file`, as docs/dev/perf_accuracy.py).
SHIPPED = sys.argv[sys.argv.index("--calibration") + 1] if "--calibration" in sys.argv else "default"


def _summary(label: str, errors: list[float]) -> str:
    a = [abs(e) for e in errors]
    return f"{label}: median |error| {statistics.median(a):.1%}, worst {max(a):.1%} over {len(a)} rows"


def main() -> None:
    results: dict[str, list[float]] = {}
    groups: dict[str, list[float]] = {}
    acceptance: dict[str, list[float]] = {}
    all_errors: list[float] = []
    print("| role | source | setup | published | kvcalc | error |")
    print("|---|---|---|---|---|---|")
    for row in ROWS:
        value, r = predict(row)
        err = value / row.published - 1
        all_errors.append(err)
        results.setdefault(row.role, []).append(err)
        given = any(k in row.args for k in ("rates", "acceptance_length"))
        acceptance.setdefault("published acceptance" if given else "default acceptance", []).append(err)
        groups.setdefault(row.group, []).append(err)
        star = " *" if row.older_engine else ""
        print(f"| {row.role} | [{row.group}]({row.url.split(' ')[0]}){star} | {row.setup} | {row.published:.2f}x | "
              f"{value:.2f}x (E {r.expected_tokens_per_pass:.2f}) | {err:+.0%} |")
    print()
    for role in ("dev", "held-out"):
        print("- " + _summary(role, results[role]))
    current = [e for row, e in zip(ROWS, all_errors, strict=True) if row.role == "held-out" and not row.older_engine]
    print("- " + _summary("held-out, engines as kvcalc models them (without the * rows)", current))
    for kind, errs in acceptance.items():
        print("- " + _summary(kind, errs))
    for group, errs in groups.items():
        print("- " + _summary(group, errs))


if __name__ == "__main__":
    main()
