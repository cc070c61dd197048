"""Cold start: how long a new replica takes to serve, and what that means for scaling up.

    load_s  = replica weight bytes / load bandwidth          (storage or network -> GPU)
    total_s = load_s + engine start-up

The weights of every GPU of the replica come through one link of `load_bytes_per_s` (a node's disk or network
share), the conservative reading. Engine start-up is what vLLM does after loading: memory profiling, KV-cache
allocation, torch.compile (from cache when warm) and CUDA-graph capture.

Defaults, each overridable:
- load bandwidth 1.30e9 B/s: 21.82 GiB of weights loaded in ~18 s from a RunPod node's local disk
  (vllm-project/vllm#44881: 21.82 x 2^30 / 18 = 1.30e9 B/s). Hot page cache reads ~7e9 B/s (Llama-70B-FP8,
  ~70 GB in ~10 s, vllm-project/vllm#19824); object storage is often slower.
- engine start-up 60 s: vLLM with a warm torch.compile cache answered its first request 59 s after start, of
  which weight loading took 0.9 s (vllm-project/vllm#20264); a cold compile of a 70B model at TP 8 adds minutes
  (vllm-project/vllm#19824: ~70 s compile, ~60 s graph capture, ~60 s P2P check).
Scale-up follows: demand that grows faster than replicas can start is served late (autoscale.py).
"""

from __future__ import annotations

from kvcalc.spec.base import record

DEFAULT_LOAD_BYTES_PER_S = 1.30e9
DEFAULT_ENGINE_STARTUP_S = 60.0
LOAD_SOURCE = "vllm-project/vllm#44881: 21.82 GiB in ~18 s from local disk"
STARTUP_SOURCE = "vllm-project/vllm#20264: first response 59 s after start with a warm torch.compile cache"


@record
class ColdStart:
    """Seconds from 'start a replica' to 'serving'."""

    weight_bytes: int
    load_bytes_per_s: float
    load_s: float
    engine_startup_s: float
    total_s: float


def cold_start(weight_bytes: int, load_bytes_per_s: float = DEFAULT_LOAD_BYTES_PER_S,
               engine_startup_s: float = DEFAULT_ENGINE_STARTUP_S) -> ColdStart:
    """`load_s = weight_bytes / load_bytes_per_s`; `total_s = load_s + engine_startup_s`."""
    if load_bytes_per_s <= 0 or engine_startup_s < 0:
        raise ValueError("load bandwidth must be positive and start-up time not negative")
    load_s = weight_bytes / load_bytes_per_s
    return ColdStart(weight_bytes=weight_bytes, load_bytes_per_s=load_bytes_per_s, load_s=load_s,
                     engine_startup_s=engine_startup_s, total_s=load_s + engine_startup_s)
