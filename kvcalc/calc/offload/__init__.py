"""Local deployment: llama.cpp-style partial offload, decode speed from two bandwidths, 2:4 sparsity, runtimes.

Pure functions over a `ModelSpec` and a weight format; no I/O. `report/local.py` turns the result into the
`kvcalc local` report.

Where llama.cpp puts things (`src/llama-model.cpp::load_tensors`, summarised in the project's
quant_formats.md section 2.8, validated on DeepSeek-R1-Distill-Qwen-32B Q4_K_M: CUDA0 18,508.35 MiB + CPU_Mapped
417.66 MiB = token_embd, llama.cpp issue #11861):

- the input layer (`token_embd`, `pos_embd`) always stays in host memory ("very little benefit to offloading
  the input layer");
- `--n-gpu-layers k` puts the *last* k repeating layers on the GPU (`i_gpu_start = n_layer - k`);
- the output layer (`output_norm` + `output.weight`) goes to the GPU only when k > n_layer, i.e. k = n_layer + 1
  offloads everything (a tied head is then a GPU copy of token_embd, the host keeps the input copy);
- each layer's KV cache lives on that layer's device (`offload_kqv`, default on).

So with k GPU layers (k <= n_layer), per device:

    GPU  = sum over the last k layers of (weights + KV at the context) + compute buffer + overhead
    host = token_embd + the first n_layer - k layers (weights + KV) + output layer + host buffers

Decode speed (`decode.py`): a decode step of one token reads every weight it uses once (MoE: the routed top_k
of E experts) plus the whole KV cache of each layer, from the memory that holds it, so

    time per token = step + GPU layers x per-layer cost
                     + bytes read on the GPU / (B_gpu x e_gpu) + bytes read from RAM / (B_ram x e_ram)
    tokens/s       = 1 / time per token

with B the vendor peak bandwidths (GPU: the hardware file; RAM: `--ram-bandwidth`, default dual-channel
DDR5-5600), e_gpu and the fixed costs the perf model's for llama.cpp on the card, and e_ram
`RAM_DECODE_EFFICIENCY` (an assumption, see its comment). The input embedding reads one row per token and is
left out, as is the GPU<->CPU hand-over of one hidden vector per token.
"""


from kvcalc.calc.offload.decode import DecodeCosts, decode_tokens_per_s, llamacpp_decode_costs
from kvcalc.calc.offload.memory import (
    CUDA_CONTEXT_BYTES,
    DEFAULT_RAM_BANDWIDTH,
    GGML_KV_CACHE_TYPES,
    LLAMACPP_DEFAULT_KV,
    LLAMACPP_FIT_MARGIN_BYTES,
    LLAMACPP_N_UBATCH,
    LLAMACPP_STATE_DTYPE,
    LLAMACPP_SWA_PAD,
    MACOS_RESERVE_BYTES,
    METAL_CONTEXT_BYTES,
    RAM_DECODE_EFFICIENCY,
    Device,
    GlobalBytes,
    compute_buffer_bytes,
    embed_on_host,
    global_bytes,
    gpu_overhead_bytes,
    host_input_buffer_bytes,
    kv_storage,
    layer_kv_bytes,
    layer_kv_cells,
    layer_read_bytes,
    layer_weight_bytes,
)
from kvcalc.calc.offload.planner import (
    OffloadPlan,
    assumptions,
    full_offload_gpu_bytes,
    gpu_bytes_for_layers,
    offload_plan,
    require_positive,
    wired_limit_mb_needed,
)
from kvcalc.calc.offload.sparsity import SparsityEngine, SparsityFootprint, sparsity_footprint

__all__ = [
    "CUDA_CONTEXT_BYTES",
    "DEFAULT_RAM_BANDWIDTH",
    "GGML_KV_CACHE_TYPES",
    "LLAMACPP_DEFAULT_KV",
    "LLAMACPP_FIT_MARGIN_BYTES",
    "LLAMACPP_N_UBATCH",
    "LLAMACPP_STATE_DTYPE",
    "LLAMACPP_SWA_PAD",
    "MACOS_RESERVE_BYTES",
    "METAL_CONTEXT_BYTES",
    "RAM_DECODE_EFFICIENCY",
    "DecodeCosts",
    "Device",
    "GlobalBytes",
    "OffloadPlan",
    "SparsityEngine",
    "SparsityFootprint",
    "assumptions",
    "compute_buffer_bytes",
    "decode_tokens_per_s",
    "embed_on_host",
    "full_offload_gpu_bytes",
    "global_bytes",
    "gpu_bytes_for_layers",
    "gpu_overhead_bytes",
    "host_input_buffer_bytes",
    "kv_storage",
    "layer_kv_bytes",
    "layer_kv_cells",
    "layer_read_bytes",
    "layer_weight_bytes",
    "llamacpp_decode_costs",
    "offload_plan",
    "require_positive",
    "sparsity_footprint",
    "wired_limit_mb_needed",
]
