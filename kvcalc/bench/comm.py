"""Communication between GPUs (issue #14): all-reduce and all-to-all timed over message sizes through
torch.distributed, one process per GPU, started by torchrun (NCCL on GPUs; gloo on CPUs for tests).

Message sizes run from a decode step's activations (batch x hidden x 2 bytes) to a prefill's (tokens x hidden x
2 bytes). Each size: warm-up, then the median over many calls (CUDA events on GPUs), the slowest rank's median
(a collective finishes when its last rank does). On GPUs the all-reduce is also timed inside a CUDA graph (as
engines run decode), where the launch cost is gone.

Bytes on each GPU's link (nccl-tests' "bus bandwidth" convention, doc/PERFORMANCE.md): ring all-reduce
2 (n-1)/n x message, all-to-all (n-1)/n x message; the report fits t = latency + wire bytes / bandwidth.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m kvcalc.bench.comm --out comm.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kvcalc.errors import EnvironmentProblem


def wire_bytes(collective: str, message_bytes: int, ranks: int) -> float:
    """Bytes one GPU puts on its link for one collective of `message_bytes` (nccl-tests bus bytes)."""
    if ranks <= 1:
        return 0.0
    factor = 2.0 * (ranks - 1) / ranks if collective == "all_reduce" else (ranks - 1) / ranks
    return factor * message_bytes


def message_sizes(hidden: int, batches: list[int], prompts: list[int]) -> list[int]:
    """Activation messages of decode steps (batch x hidden x 2 B) and prefills (tokens x hidden x 2 B),
    sorted, each a whole number of 16-byte words."""
    sizes = {max(16, (n * hidden * 2) // 16 * 16) for n in (*batches, *prompts)}
    return sorted(sizes)


def _timer(device: str) -> Any:
    import torch

    if device == "cuda":
        def timed(fn: Any) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
    else:
        def timed(fn: Any) -> float:
            begin = time.perf_counter()
            fn()
            return time.perf_counter() - begin
    return timed


def _slowest(value: float, device: str) -> float:
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def _time_collective(name: str, size: int, device: str, runs: int, warmup: int) -> float:
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    elements = max(world, size // 2 // world * world)  # bf16, divisible by the ranks for all-to-all
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    x = torch.randn(elements, dtype=dtype, device=device)
    out = torch.empty_like(x)
    if name == "all_reduce":
        def fn() -> None:
            dist.all_reduce(x)
    else:
        def fn() -> None:
            dist.all_to_all_single(out, x)
    timed = _timer(device)
    for _ in range(warmup):
        fn()
    dist.barrier()
    samples = [timed(fn) for _ in range(runs)]
    return _slowest(statistics.median(samples), device)


def _time_graph_all_reduce(size: int, runs: int) -> float | None:
    """Median of one all-reduce replayed from a CUDA graph of 10 (None when capture is refused)."""
    import torch
    import torch.distributed as dist

    x = torch.randn(max(1, size // 2), dtype=torch.bfloat16, device="cuda")
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                dist.all_reduce(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(10):
                dist.all_reduce(x)
    except RuntimeError:
        return None
    timed = _timer("cuda")
    graph.replay()
    dist.barrier()
    samples = [timed(graph.replay) / 10 for _ in range(runs)]
    return _slowest(statistics.median(samples), "cuda")


def measure(sizes: list[int], backend: str, runs: int, warmup: int) -> dict[str, Any]:
    """This rank's part of the measurement; rank 0's return value holds everyone's slowest medians."""
    import torch
    import torch.distributed as dist

    device = "cuda" if backend == "nccl" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    world = dist.get_world_size()
    rows = []
    for name in ("all_reduce", "all_to_all"):
        for size in sizes:
            seconds = _time_collective(name, size, device, runs, warmup)
            rows.append({"collective": name, "message_bytes": size, "median_s": seconds,
                         "wire_bytes": wire_bytes(name, size, world), "graph": False})
    if device == "cuda":
        for size in sizes:
            graphed = _time_graph_all_reduce(size, runs)
            if graphed is not None:
                rows.append({"collective": "all_reduce", "message_bytes": size, "median_s": graphed,
                             "wire_bytes": wire_bytes("all_reduce", size, world), "graph": True})
    info: dict[str, Any] = {"backend": backend, "ranks": world, "torch": str(torch.__version__), "rows": rows}
    if device == "cuda":
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        nccl = torch.cuda.nccl.version()
        info["nccl"] = ".".join(str(v) for v in nccl) if isinstance(nccl, tuple) else str(nccl)
    return info


def main(argv: list[str] | None = None) -> None:
    """Worker entry point under torchrun: every rank measures, rank 0 writes --out."""
    import torch.distributed as dist

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", default="nccl", choices=("nccl", "gloo"))
    parser.add_argument("--sizes", default="", help="comma-separated message bytes")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s] or message_sizes(8192, [1, 8, 64, 256], [2048, 16384])
    dist.init_process_group(backend=args.backend)
    try:
        result = measure(sizes, args.backend, args.runs, args.warmup)
        if dist.get_rank() == 0:
            Path(args.out).write_text(json.dumps(result, indent=2))
    finally:
        dist.destroy_process_group()


def launch(ranks: int, sizes: list[int], *, backend: str = "nccl", runs: int = 20, warmup: int = 5,
           timeout_s: float = 900) -> dict[str, Any]:
    """Run `main` in `ranks` processes through torchrun (`python -m torch.distributed.run --standalone`) and
    return rank 0's record; EnvironmentProblem when the processes fail."""
    with tempfile.TemporaryDirectory(prefix="kvcalc-comm-") as folder:
        out = Path(folder) / "comm.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
                   "-m", "kvcalc.bench.comm", "--out", str(out), "--backend", backend,
                   "--sizes", ",".join(str(s) for s in sizes), "--runs", str(runs), "--warmup", str(warmup)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                                           os.environ.get("PYTHONPATH", "")) if p)}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"torchrun with {ranks} processes did not finish in {timeout_s:.0f} s") from None
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EnvironmentProblem(f"torchrun with {ranks} processes ({backend}) failed: {tail[0][:200]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


if __name__ == "__main__":
    main()
