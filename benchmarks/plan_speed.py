"""Time `kvcalc plan`'s search in-process (CPU and wall, best of 5): the default catalogue and larger ones.

    python benchmarks/plan_speed.py
"""

from __future__ import annotations

import time

from kvcalc.calc.quant import parse_quant
from kvcalc.calc.serving.mix import fixed_mix
from kvcalc.calc.weights import WeightFormat
from kvcalc.report.plan import DEFAULT_GPUS, PlanReport, plan_search
from kvcalc.report.serve import Workload
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings
from kvcalc.spec.model import ModelSpec

CASES = [("llama-70b", ("auto",)), ("llama-70b", ("bf16", "fp8", "awq")), ("llama-3.1-8b", ("bf16", "fp8", "awq")),
         ("qwen3-30b-a3b", ("bf16", "fp8"))]


WORK = Workload(requests_per_s=12, mix=fixed_mix(2000, 300), ttft_slo_s=1.0, tpot_slo_s=0.06)


def run(model: ModelSpec, formats: list[tuple[str, WeightFormat | None]]) -> PlanReport:
    gpus = [find_gpu(g) for g in DEFAULT_GPUS]
    return plan_search(model, gpus, formats, ["vllm", "sglang"], lambda e: EngineSettings(name=e), WORK)


def main() -> None:
    for name, quants in CASES:
        model = load_model(name)
        formats: list[tuple[str, WeightFormat | None]] = [
            (q, None if q == "auto" else parse_quant(q, None, model=model)) for q in quants]

        run(model, formats)  # imports and first-call caches
        timings = []
        for _ in range(5):
            cpu, wall = time.process_time(), time.perf_counter()
            report = run(model, formats)
            timings.append((time.process_time() - cpu, time.perf_counter() - wall))
        cpu_s, wall_s = min(timings)
        print(f"{name:15s} {','.join(quants):13s} {report.searched:4d} layouts ({report.planned} planned, "
              f"{report.feasible} meet the SLOs): CPU {cpu_s:.3f} s, wall {wall_s:.3f} s")


if __name__ == "__main__":
    main()
