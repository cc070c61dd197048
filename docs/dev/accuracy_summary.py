"""The summary at the top of docs/accuracy.md: every predictive capability, its dev set, median and worst error.

Called by docs/dev/vllm_accuracy.py, which computes the `kvcalc fit` rows itself; the other rows are read from
the summaries the other generated pages print (accuracy-quant.md, accuracy-perf.md, accuracy-spec.md,
accuracy-attention.md, validation.md), so regenerate those first. A figure that cannot be read is shown as
"see the page", never guessed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
MISSING = "see the page"
SECTION_1 = "[section 1](#1-complete-start-ups-vllm-v0190-h100-80gb)"
SECTION_9 = "[section 9](#9-recent-releases-v020-and-newer-by-engine-version)"
QUANT = "[accuracy-quant.md](accuracy-quant.md)"


def _read(name: str) -> str:
    path = DOCS / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _cells(text: str, first: str) -> list[str] | None:
    """The cells of the first Markdown table row whose first cell is `first`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] == first:
            return cells
    return None


def _after(text: str, heading: str) -> str:
    """`text` from the line `heading` on (empty when absent)."""
    at = text.find(heading)
    return text[at:] if at >= 0 else ""


def _quant() -> dict[str, str]:
    text = _read("accuracy-quant.md")
    out = {}
    for group in ("gguf", "safetensors", "vllm"):
        cells = _cells(text, group)
        out[group] = f"{cells[1]} rows | {cells[2]} | {cells[3]}" if cells else f"- | {MISSING} | -"
    return out


def _perf() -> dict[str, str]:
    text = _read("accuracy-perf.md")
    summary, held = _after(text, "## Summary"), _after(text, "## Held out")
    out = {}
    for cls in ("TPOT", "TTFT", "throughput"):
        cells, kept = _cells(summary, cls), _cells(held, cls)
        held_median = kept[1].split(",")[1].strip() if kept and "," in kept[1] else MISSING
        out[cls] = (f"{cells[1]} rows | {cells[2]} (held out: {held_median}) | {cells[3]}" if cells
                    else f"- | {MISSING} | -")
    return out


def _spec() -> str:
    cells = _cells(_read("accuracy-spec.md"), "held out (no constant saw them)")
    if not cells:
        return f"- | {MISSING} | -"
    return f"{cells[3]} held-out rows | {cells[1].strip('*').strip()} | {cells[2]}"


def _attention(row: str = "tile model", label: str = "rows") -> str:
    cells = _cells(_read("accuracy-attention.md"), row)
    return f"{cells[1]} {label} | {cells[2]} | {cells[3]}" if cells else f"- | {MISSING} | -"


def _median_worst(cell: str) -> tuple[float, float]:
    """'6.7 % / 49.7 %' -> (6.7, 49.7)."""
    median, worst = (float(part.strip().rstrip("%").strip()) for part in cell.split("/"))
    return median, worst


def _timing(rows: list[tuple[float, float]]) -> str:
    medians = [m for m, _ in rows]
    return (f"{len(rows)} held-out models | {min(medians):.1f}-{max(medians):.1f} % (per model) | "
            f"{max(w for _, w in rows):.1f} %")


def _validation() -> dict[str, str]:
    """Weights and pool bytes (largest |error| over the models) and held-out step-time medians after
    calibration, from validation.md's `kvcalc verify` tables."""
    text = _after(_read("validation.md"), "### Weights and KV cache")
    weights, pools, models = [], [], 0
    for line in text.split("### Timing calibration")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[5].endswith("%") and cells[0] != "model":
            models += 1
            weights.append(abs(float(cells[5].rstrip(" %"))))
            pools.append(abs(float(cells[9].rstrip(" %"))))
    decode: list[tuple[float, float]] = []
    prefill: list[tuple[float, float]] = []
    for line in _after(text, "| model | held out |").splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6:
            break
        if cells[1] == "yes":
            decode.append(_median_worst(cells[3]))
            prefill.append(_median_worst(cells[5]))
    if not models or not decode:
        return {"bytes": f"- | {MISSING} | -", "decode": f"- | {MISSING} | -", "prefill": f"- | {MISSING} | -"}
    return {
        "bytes": f"{models} models | weights {statistics.median(weights):.3f} %, pool "
                 f"{statistics.median(pools):.3f} % | weights {max(weights):.3f} %, pool {max(pools):.3f} %",
        "decode": _timing(decode),
        "prefill": _timing(prefill),
    }


def render_summary(p: Any, v019: dict[str, Any], recent: dict[str, dict[str, list[float]]],
                   extra: dict[str, list[float]]) -> None:
    """Print the summary table. `v019`: rows, median and worst absolute KV-token error of section 1 and the
    text-only figures; `recent`: errors by release and quantity from docs/dev/vllm_recent.py; `extra`: the
    gpt-oss MXFP4 weights and SGLang errors of section 9."""
    tokens = sorted(abs(e) for cell in recent.values() for e in cell["KV tokens"])
    weights = sorted(abs(e) for cell in recent.values() for e in cell["weights"])
    quant, perf, val = _quant(), _perf(), _validation()
    p("## Summary")
    p()
    p("Every figure kvcalc predicts that has been checked against a measurement, with the error of that check "
      "(error = (kvcalc - measured) / measured; median and worst of the absolute errors). Rows marked \"held out\" "
      "informed no constant.")
    p()
    p("| capability (command) | compared with | dev set | median | worst | where |")
    p("|---|---|---|---|---|---|")
    p(f"| KV cache tokens (`fit`, vLLM v0.19.0) | vLLM's \"GPU KV cache size\" | {v019['rows']} H100 start-ups | "
      f"{v019['median']:.2f} % | {v019['worst']:.1f} % (multimodal models, vision tower sized; text models "
      f"of kvcalc's families {v019['plain_worst']:.1f} %) | {SECTION_1} |")
    if tokens:
        p(f"| KV cache tokens (`fit`, vLLM v0.20-v0.31) | start-up logs, decomposed | {len(tokens)} figures "
          f"| {statistics.median(tokens):.2f} % | {tokens[-1]:.2f} % | {SECTION_9} |")
    if weights:
        p(f"| weights per GPU (`fit`, vLLM v0.20-v0.31, text models) | \"Model loading took\" | {len(weights)} logs "
          f"| {statistics.median(weights):.2f} % | {weights[-1]:.2f} % | {SECTION_9} |")
    for name, what, setup in (("gpt-oss MXFP4 weights", "gpt-oss-120b weights per GPU (`fit`, MXFP4 kernel layouts)",
                                "\"Model loading took\" | {n} logs"),
                               ("SGLang", "KV cache tokens (`fit --engine sglang`)", "SGLang's `#tokens` | {n} log")):
        errs = sorted(abs(e) for e in extra.get(name, []))
        if errs:
            median = statistics.median(errs)
            p(f"| {what} | {setup.format(n=len(errs))} | {median:.2f} % | {errs[-1]:.2f} % | {SECTION_9} |")
    p(f"| GGUF file sizes (`quant`, `local`) | published files | {quant['gguf']} | {QUANT} |")
    p(f"| safetensors checkpoint sizes (`quant`) | published checkpoints | {quant['safetensors']} | {QUANT} |")
    p(f"| quantized weights per GPU (`fit --quant`) | vLLM \"Model loading took\" | {quant['vllm']} | {QUANT} |")
    for cls in ("TPOT", "TTFT", "throughput"):
        p(f"| {cls} (`perf`, default coefficients) | published benchmarks | {perf[cls]} | "
          "[accuracy-perf.md](accuracy-perf.md) |")
    p(f"| speedup (`spec`) | published speculative-decoding speedups | {_spec()} | "
      "[accuracy-spec.md](accuracy-spec.md) |")
    p(f"| FlashAttention-2/3 forward time (`attention`) | FA3 paper's H100 figures | {_attention()} | "
      "[accuracy-attention.md](accuracy-attention.md) |")
    p("| FlashAttention-3 forward time (`attention`) | pytorch/benchmark's H100 figures | "
      f"{_attention('held out: pytorch/benchmark FA3', 'held-out rows')} | "
      "[accuracy-attention.md](accuracy-attention.md#held-out-flashattention-3-in-pytorchbenchmark) |")
    p("| FlashAttention-2 forward time (`attention`, `verify`) | torch's flash SDPA on our H100, CUDA-graph replays | "
      f"{_attention('held out: our H100, FA2 graph-timed', 'held-out rows')} | "
      "[accuracy-attention.md](accuracy-attention.md"
      "#held-out-torchs-flashattention-2-on-our-h100-cuda-graph-replays) |")
    p(f"| weights and paged KV pool bytes (`verify`, H100) | bytes allocated by torch | {val['bytes']} | "
      "[validation.md](validation.md) |")
    p(f"| decode step time (`verify`, H100, after calibration) | CUDA-graph replays | {val['decode']} | "
      "[validation.md](validation.md) |")
    p(f"| prefill time (`verify`, H100, after calibration) | CUDA-graph replays | {val['prefill']} | "
      "[validation.md](validation.md) |")
    p()
    p("Not checked against a measurement: `serve` and `plan` costs (arithmetic on `perf`'s figures and dated "
      "prices), `prefix` savings, `local` decode speed beyond the llama.cpp rows of accuracy-perf.md, and "
      "anything on H200 or across several GPUs (validation.md, \"Not run\").")
    p()

