"""Measurements on a real GPU for `kvcalc verify` (needs torch: the `bench` extra, `pip install '.[bench]'`).

Nothing here is imported by the analytic commands. Modules that need torch import it themselves; this package
and `bench.env` import nothing heavy, so the CLI can check for torch and a GPU first and fail in one line.

- env: is torch there, is a GPU there, what card/driver/torch (one-line EnvironmentProblem otherwise);
- timing: CUDA-event medians over fresh random inputs, CUDA-graph replays;
- modules: the model's layers as small torch modules built from kvcalc's own ModelSpec (random weights);
- ceilings: copy bandwidth, dense GEMM FLOP/s (bf16, FP8) at large and decode shapes, the ridge point;
- memory: weights and KV-cache bytes as allocated (the engine's paged layout, sliding and MLA layers);
- steps: decode steps (CUDA graphs) and prefills of K real layers, extrapolated to the whole model;
- attention: SDPA flash vs math backends, peak memory and time;
- comm: all-reduce / all-to-all timings under torchrun (issue #14);
- suite: runs the whole measurement and returns the raw JSON-able record that calc/verify/ and report/verify.py
  compare with their predictions.
"""
