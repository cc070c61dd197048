"""Latency and throughput of a DeploymentPlan: prefill, decode, batching under SLOs.

Everything starts from a DeploymentPlan (`kvcalc.calc.deploy.plan_deployment`): the same model, weight
format, layout, KV dtype, KV pool and engine limits as `fit`, so a latency never disagrees with the memory
answer. The API, one job per module:

    model.perf_model(plan) -> PerfModel
        The plan reduced once to per-GPU rates per pipeline stage: dense weight bytes read per step, GEMM
        FLOPs per token by tensor-core dtype, routed-expert groups (bytes, E, top_k), lm_head FLOPs per
        sampled token, and one attention.AttentionGroup per layer kind (pairs, FLOPs per pair, KV bytes).
    step.step_cost(pm, coeffs, decode_contexts=[L1, L2, ...], prefill=[(prior, new), ...]) -> StepCost
        One engine step (decode requests + prefill chunks, mixed as chunked prefill runs them) with every
        term separate: weight_bytes, kv_bytes, gemm_flops, attention_flops, t_weights, t_kv, t_gemm,
        t_attention, t_comm, overhead_s, time_s, bound ("memory" | "compute"), arithmetic_intensity.
        A speculative-decoding verification of gamma drafts is a prefill chunk (context, gamma + 1).
    defaults.default_coefficients(gpu, engine, cuda_graphs=True, online=True) -> PerfCoefficients
        Efficiencies and fixed costs, each with its source (`.sources[name]`).
    coefficients.PerfCoefficients   the coefficient record (kvcalc verify fits it; --calibration loads it,
                                    kvcalc.sources.calibration.load_calibration(path).apply(defaults)).
    moe.experts_touched(E, k, B)    E (1 - (1 - k/E)^B), distinct experts a step of B tokens reads.
    shape.row_efficiency(M, 64), shape.depth_efficiency(K, 720), shape.rows_per_expert(B, E, k)
                                    a GEMM's efficiency by its rows and depth; rows per expert of a grouped GEMM.
    comm.step_comm(...)             TP all-reduce, EP all-to-all, PP hand-off of one step.
    precision.compute_dtype(fmt, tensor, gpu)   the tensor-core rate a weight format's GEMM runs at.

Units: bytes, FLOPs, seconds; figures are per GPU (one TP rank), summed over pipeline stages.
"""
