"""Timing on the GPU the way METHOD.md asks: warm-up first, CUDA events around each run, fresh random inputs
before each run (outside the timed region), the median of many runs. On a CPU device (tests, the gloo
communication test) the same functions time with the host clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from kvcalc.spec.base import record


@record
class Timing:
    """Seconds per run: median, min, max over `runs` timed runs (after `warmup` untimed ones)."""

    median_s: float
    min_s: float
    max_s: float
    runs: int
    warmup: int

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median_s, "min_s": self.min_s, "max_s": self.max_s, "runs": self.runs}


def summarize(samples: list[float], warmup: int) -> Timing:
    """Median, min and max of the timed samples (seconds)."""
    if not samples:
        raise ValueError("no timed runs")
    return Timing(median_s=statistics.median(samples), min_s=min(samples), max_s=max(samples),
                  runs=len(samples), warmup=warmup)


def time_runs(
    run: Callable[[], object],
    *,
    refresh: Callable[[], object] | None = None,
    warmup: int = 3,
    runs: int = 20,
    device: str = "cuda",
) -> Timing:
    """Time `run()` `runs` times after `warmup` untimed calls; `refresh()` (new random inputs) is called before
    every run, outside the timed region. CUDA: one event pair per run, one synchronize at the end."""
    import torch

    for _ in range(warmup):
        if refresh is not None:
            refresh()
        run()
    if device != "cuda":
        samples = []
        for _ in range(runs):
            if refresh is not None:
                refresh()
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        return summarize(samples, warmup)
    torch.cuda.synchronize()
    events = []
    for _ in range(runs):
        if refresh is not None:
            refresh()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        run()
        end.record()
        events.append((begin, end))
    torch.cuda.synchronize()
    return summarize([b.elapsed_time(e) / 1e3 for b, e in events], warmup)


def capture_graph(step: Callable[[], object], warmup: int = 2) -> Any:
    """A CUDA graph of `step()` (its inputs and outputs are the static tensors `step` closes over). Warm-up
    runs on a side stream first, as torch.cuda.graphs asks."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    torch.cuda.synchronize()
    return graph


def time_step(
    step: Callable[[], object],
    *,
    refresh: Callable[[], object] | None,
    device: str,
    warmup: int = 5,
    runs: int = 30,
    graph: bool = True,
) -> Timing:
    """Time `step` as a CUDA-graph replay on CUDA (launch gaps gone, as engines run decode), eagerly elsewhere."""
    if device == "cuda" and graph:
        captured = capture_graph(step)
        return time_runs(captured.replay, refresh=refresh, warmup=warmup, runs=runs, device=device)
    return time_runs(step, refresh=refresh, warmup=warmup, runs=runs, device=device)


def time_graph_or_eager(
    step: Callable[[], object],
    *,
    refresh: Callable[[], object] | None,
    device: str,
    warmup: int,
    runs: int,
    graph: bool = True,
) -> tuple[Timing, bool]:
    """(Timing, whether it ran as a CUDA graph): `time_step` as graph replays on CUDA when `graph`, eager
    calls where capture is refused. A failed capture leaves its capture stream current, so the caller's
    stream is restored before the eager runs; running out of memory is not a refusal and is re-raised."""
    import torch

    if device != "cuda" or not graph:
        return time_step(step, refresh=refresh, device=device, warmup=warmup, runs=runs, graph=False), False
    stream = torch.cuda.current_stream()
    try:
        return time_step(step, refresh=refresh, device=device, warmup=warmup, runs=runs), True
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError:
        torch.cuda.set_stream(stream)
        torch.cuda.synchronize()
        return time_step(step, refresh=refresh, device=device, warmup=warmup, runs=runs, graph=False), False
