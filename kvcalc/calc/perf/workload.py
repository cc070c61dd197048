"""What a benchmark sends: when each request arrives and how long its prompt and output are.

Arrivals mirror `vllm bench serve` (`vllm/benchmarks/serve.py::get_request`): `--request-rate inf` sends
every request at t = 0; a finite rate R draws each request's delay from a gamma distribution of shape
`burstiness` and scale 1 / (R x burstiness) (burstiness 1: exponential gaps, a Poisson process), sums them,
then rescales the sums so the last request leaves at N / R ("close the gap for stabilizing the throughput
data from different random seeds"). Seeded (numpy's legacy `RandomState`, as the benchmark's
`np.random.seed(seed)`), so one seed always gives one trace.

Request lengths (`LengthDistribution`):
- fixed: every request `input` / `output` tokens (`--dataset-name random`, `--random-range-ratio 0`);
- sharegpt: `vllm bench serve --dataset-name sharegpt`, modelled (the dataset itself is not shipped): the
  first human turn is the prompt, the first reply the output, and pairs are kept only when both have
  >= 4 tokens, the prompt <= 1,024 and prompt + output <= 2,048 (`is_valid_sequence` in
  vllm/benchmarks/datasets.py). Each length is lognormal with sigma 1 (assumed: the dataset's lengths are
  heavy-tailed, Kwon et al. 2023 Fig. 11) and a median chosen so that the kept pairs average the published
  totals of 1,000-prompt runs: ~220 prompt and ~200 output tokens (217,393 / 201,396 tokens for Qwen3,
  gpustack performance-lab qwen3-32b/a100.md; 229,711 / 203,068 for Llama 3.1, vllm-project/vllm PR
  #18566). A `--lengths-file` with the real lengths replaces the model;
- empirical: lengths read from a file (`kvcalc.sources.lengths`), drawn with replacement by weight.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from kvcalc.errors import InputError
from kvcalc.spec.base import record

#: ShareGPT model (module docstring): lognormal sigma and log-medians (natural log of tokens), solved so the
#: kept pairs average 220 prompt / 200 output tokens (tests/test_perf_workload.py checks the means).
SHAREGPT_SIGMA = 1.0
SHAREGPT_LOG_MEDIAN_INPUT = 5.0832
SHAREGPT_LOG_MEDIAN_OUTPUT = 4.8440
SHAREGPT_MIN_TOKENS = 4
SHAREGPT_MAX_PROMPT = 1024
SHAREGPT_MAX_TOTAL = 2048
SHAREGPT_SOURCE = ("vllm bench serve ShareGPT (vllm/benchmarks/datasets.py is_valid_sequence: both >= 4 tokens, "
                   "prompt <= 1,024, total <= 2,048), lognormal sigma 1 (assumed) matched to the published means "
                   "of 1,000-prompt runs: ~220 prompt / ~200 output tokens (gpustack performance-lab; vLLM PR "
                   "#18566)")

DistKind = Literal["fixed", "sharegpt", "empirical"]


@record
class LengthDistribution:
    """How request lengths are drawn (module docstring). `inputs`/`outputs`/`weights`: the empirical table."""

    kind: DistKind
    name: str
    input_tokens: int = 0
    output_tokens: int = 0
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    source: str = ""


def fixed_lengths(input_tokens: int, output_tokens: int) -> LengthDistribution:
    return LengthDistribution(kind="fixed", name=f"fixed {input_tokens}/{output_tokens}",
                              input_tokens=input_tokens, output_tokens=output_tokens,
                              source="every request the same length")


def sharegpt_lengths() -> LengthDistribution:
    return LengthDistribution(kind="sharegpt", name="sharegpt", source=SHAREGPT_SOURCE)


def empirical_lengths(inputs: list[int], outputs: list[int], weights: list[float],
                      name: str) -> LengthDistribution:
    """Lengths from a table (at least one row, positive weights, outputs >= 1)."""
    if not inputs or len(inputs) != len(outputs) or len(inputs) != len(weights):
        raise InputError(f"{name}: needs one input and one output length per row")
    if min(outputs) < 1 or min(inputs) < 0 or min(weights) <= 0:
        raise InputError(f"{name}: lengths must be >= 0 (inputs) and >= 1 (outputs), weights positive")
    return LengthDistribution(kind="empirical", name=name, inputs=tuple(inputs), outputs=tuple(outputs),
                              weights=tuple(weights), source=f"lengths read from {name}")


def _sharegpt(n: int, rng: Any) -> tuple[Any, Any]:
    """n kept (prompt, output) pairs of the ShareGPT model, by rejection as the benchmark filters."""
    import numpy as np

    inputs: list[Any] = []
    outputs: list[Any] = []
    kept = 0
    while kept < n:
        m = 2 * (n - kept) + 16
        i = np.rint(np.exp(SHAREGPT_LOG_MEDIAN_INPUT + SHAREGPT_SIGMA * rng.standard_normal(m)))
        o = np.rint(np.exp(SHAREGPT_LOG_MEDIAN_OUTPUT + SHAREGPT_SIGMA * rng.standard_normal(m)))
        ok = ((i >= SHAREGPT_MIN_TOKENS) & (o >= SHAREGPT_MIN_TOKENS) & (i <= SHAREGPT_MAX_PROMPT)
              & (i + o <= SHAREGPT_MAX_TOTAL))
        inputs.append(i[ok])
        outputs.append(o[ok])
        kept += int(ok.sum())
    return (np.concatenate(inputs)[:n].astype(np.int64), np.concatenate(outputs)[:n].astype(np.int64))


def sample_lengths(dist: LengthDistribution, n: int, seed: int = 0) -> tuple[Any, Any]:
    """(inputs, outputs) of n requests as int64 numpy arrays (seeded)."""
    import numpy as np

    if dist.kind == "fixed":
        return (np.full(n, dist.input_tokens, dtype=np.int64), np.full(n, dist.output_tokens, dtype=np.int64))
    rng = np.random.default_rng(seed)
    if dist.kind == "sharegpt":
        return _sharegpt(n, rng)
    p = np.asarray(dist.weights, dtype=np.float64)
    pick = rng.choice(len(p), size=n, p=p / p.sum())
    return (np.asarray(dist.inputs, dtype=np.int64)[pick], np.asarray(dist.outputs, dtype=np.int64)[pick])


def arrival_times(n: int, rate: float, seed: int = 0, burstiness: float = 1.0) -> Any:
    """Send times (seconds) of n requests at `rate` requests/s as `vllm bench serve` draws them (module
    docstring): zeros for an infinite rate; else cumulative gamma(burstiness, 1 / (rate x burstiness))
    delays rescaled so the last is n / rate."""
    import numpy as np

    if not rate > 0:
        raise InputError(f"--request-rate must be positive (or inf), got {rate}")
    if not burstiness > 0:
        raise InputError(f"--burstiness must be positive, got {burstiness}")
    if math.isinf(rate):
        return np.zeros(n)
    delays = np.random.RandomState(seed).gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    times = np.cumsum(delays)
    return times * (n / rate) / times[-1] if times[-1] > 0 else times


@record
class LengthSummary:
    """Mean and largest lengths of the requests a run sent (tokens)."""

    mean_input_tokens: float
    mean_output_tokens: float
    max_input_tokens: int
    max_output_tokens: int
    max_request_tokens: int


def summarize(inputs: Any, outputs: Any) -> LengthSummary:
    return LengthSummary(mean_input_tokens=float(inputs.mean()), mean_output_tokens=float(outputs.mean()),
                         max_input_tokens=int(inputs.max()), max_output_tokens=int(outputs.max()),
                         max_request_tokens=int((inputs + outputs).max()))
