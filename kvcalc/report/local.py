"""`kvcalc local`: one model on one consumer GPU, an Apple Silicon Mac, or a CPU-only machine (report + renderer).

The numbers come from `calc/offload.py` (llama.cpp-style layer split, decode speed from the two memory
bandwidths, 2:4 sparsity footprint, runtime rule table); this module only assembles them, writes the
verdict and the `--explain` derivations, and renders the tables (Rich is imported inside `render_local`).
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.offload import (
    DEFAULT_RAM_BANDWIDTH,
    LLAMACPP_N_UBATCH,
    MACOS_RESERVE_BYTES,
    Device,
    OffloadPlan,
    SparsityFootprint,
    assumptions,
    embed_on_host,
    global_bytes,
    kv_storage,
    llamacpp_decode_costs,
    offload_plan,
    sparsity_footprint,
    wired_limit_mb_needed,
)
from kvcalc.calc.plan import Assumption
from kvcalc.calc.quant import GgufRecipe, bits_per_weight
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.report.runtimes import RuntimeChoice, recommend_runtimes
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import MoEMLP
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB, fmt_gib


@record
class AppleMemory:
    """Unified memory on a Mac: how much the GPU may wire by default, and the sysctl that raises it."""

    memory_bytes: int
    default_wired_limit_bytes: int
    default_share: float
    wired_limit_mb_needed: int
    raise_command: str | None
    note: str


@record
class LocalReport:
    """Does MODEL run on this machine, with how many layers on the GPU, how much RAM, and how fast."""

    fits: bool
    fits_on_gpu: bool
    verdict: str
    reason: str | None
    model: str
    format: str
    format_layout: str
    bits_per_weight: float
    weights_bytes: int
    device: Device
    hardware: str
    hardware_key: str | None
    gpu_usable_bytes: int
    gpu_budget_bytes: int
    ram_bytes: int | None
    context: int
    users: int
    kv_dtype: str
    n_gpu_layers: int
    num_layers: int
    layers_on_gpu: int
    output_on_gpu: bool
    gpu_bytes: int
    host_bytes: int
    kv_bytes: int
    compute_buffer_bytes: int
    gpu_breakdown: dict[str, int]
    host_breakdown: dict[str, int]
    decode_tokens_per_s: float
    decode_tokens_per_s_empty_context: float
    decode_tokens_per_s_all_users: float
    gpu_bandwidth_bytes_per_s: int
    ram_bandwidth_bytes_per_s: int
    bandwidth_sources: dict[str, str]
    command: str | None
    apple: AppleMemory | None
    sparsity: SparsityFootprint
    runtimes: list[RuntimeChoice]
    assumptions: dict[str, Assumption]
    notes: list[str]
    explain: list[Derivation]


def _command(model: ModelSpec, fmt: WeightFormat, plan: OffloadPlan, users: int) -> str | None:
    """The llama-server line for this plan (GGUF formats only)."""
    if not isinstance(fmt, GgufRecipe):
        return None
    parts = [f"llama-server -m {model.id}-{fmt.name.split(':')[0]}.gguf", f"-c {plan.context * users}",
             f"-ngl {plan.n_gpu_layers}"]
    if users > 1:
        parts.append(f"-np {users}")
    if plan.kv_dtype not in ("fp16",):
        parts.append(f"-ctk {plan.kv_dtype} -ctv {plan.kv_dtype} -fa on")
    return " ".join(parts)


def _verdict(plan: OffloadPlan, hardware: str) -> str:
    n = plan.num_layers
    if not plan.fits:
        return f"DOES NOT FIT on {hardware}: {plan.reason}"
    if plan.device == "cpu":
        return f"FITS IN RAM (CPU only): {fmt_gib(plan.host_bytes)} of host RAM"
    if plan.fits_on_gpu:
        return (f"FITS ON THE GPU: all {n} layers + output on {hardware} (--n-gpu-layers {plan.n_gpu_layers}), "
                f"{fmt_gib(plan.gpu_bytes)} of {fmt_gib(plan.gpu_budget_bytes)}")
    ram = "" if plan.ram_checked else " (RAM not checked: pass --ram)"
    return (f"FITS WITH OFFLOAD: {plan.layers_on_gpu} of {n} layers on {hardware} (--n-gpu-layers "
            f"{plan.n_gpu_layers}), {n - plan.layers_on_gpu} layers + output in RAM: {fmt_gib(plan.host_bytes)} of "
            f"host RAM{ram}")


def local_report(
    model: ModelSpec,
    fmt: WeightFormat,
    *,
    device: Device,
    gpu: GpuSpec | None,
    ram_bytes: int | None,
    context: int,
    kv_dtype: str | None = None,
    users: int = 1,
    ram_bandwidth: float | None = None,
) -> LocalReport:
    """Build the `kvcalc local` report: the offload plan on `gpu` (None for `device="cpu"`), the Apple wired
    limit, the 2:4 footprint, the runtime table, notes and derivations."""
    if device != "cpu" and gpu is None:
        raise InputError("a GPU or Apple plan needs the hardware spec")
    if device == "cpu" and ram_bytes is None:
        raise InputError("--cpu needs --ram SIZE (e.g. --ram 64G): CPU-only means everything lives in RAM")
    if device == "apple" and ram_bytes is None and gpu is not None:
        ram_bytes = gpu.memory_bytes
    ram_bw = _ram_bandwidth(device, gpu, ram_bandwidth)
    card = gpu if device != "cpu" else None
    costs = llamacpp_decode_costs(card)
    plan = offload_plan(
        model, fmt, card.usable_memory_bytes if card is not None else 0, ram_bytes, context, kv_dtype,
        device=device, sequences=users, ram_bandwidth=ram_bw,
        gpu_bandwidth=float(card.memory_bandwidth_bytes_per_s) if card is not None else 0.0, costs=costs,
    )
    hardware = card.name if card is not None else "CPU"
    apple = _apple_memory(model, fmt, plan, gpu, context, kv_dtype, users) if device == "apple" else None
    runtimes = recommend_runtimes(device, fmt, plan.fits_on_gpu, plan.n_gpu_layers, users,
                                  gpu.vendor if gpu is not None else "")
    sparsity = sparsity_footprint(model, fmt)
    return LocalReport(
        fits=plan.fits, fits_on_gpu=plan.fits_on_gpu, verdict=_verdict(plan, hardware), reason=plan.reason,
        model=model.id, format=getattr(fmt, "name", "?"),
        format_layout=fmt.describe() if hasattr(fmt, "describe") else getattr(fmt, "name", "?"),
        bits_per_weight=round(bits_per_weight(model, fmt), 4), weights_bytes=plan.weights_bytes, device=device,
        hardware=hardware, hardware_key=card.key if card is not None else None,
        gpu_usable_bytes=plan.gpu_usable_bytes, gpu_budget_bytes=plan.gpu_budget_bytes, ram_bytes=plan.ram_bytes,
        context=context, users=users, kv_dtype=kv_storage(kv_dtype).name, n_gpu_layers=plan.n_gpu_layers,
        num_layers=plan.num_layers, layers_on_gpu=plan.layers_on_gpu, output_on_gpu=plan.output_on_gpu,
        gpu_bytes=plan.gpu_bytes, host_bytes=plan.host_bytes, kv_bytes=plan.kv_bytes,
        compute_buffer_bytes=plan.gpu_compute_bytes + plan.host_compute_bytes,
        gpu_breakdown={"weights": plan.gpu_weights_bytes, "kv_cache": plan.gpu_kv_bytes,
                       "compute_buffer": plan.gpu_compute_bytes, "reserved_overhead": plan.gpu_overhead_bytes},
        host_breakdown={"weights": plan.host_weights_bytes, "kv_cache": plan.host_kv_bytes,
                        "buffers": plan.host_compute_bytes},
        decode_tokens_per_s=round(plan.decode_tokens_per_s, 2),
        decode_tokens_per_s_empty_context=round(plan.decode_tokens_per_s_empty, 2),
        decode_tokens_per_s_all_users=round(plan.decode_tokens_per_s * users, 2),
        gpu_bandwidth_bytes_per_s=plan.gpu_bandwidth_bytes_per_s,
        ram_bandwidth_bytes_per_s=plan.ram_bandwidth_bytes_per_s,
        bandwidth_sources=_bandwidth_sources(device, gpu, ram_bw, ram_bandwidth),
        command=_command(model, fmt, plan, users), apple=apple, sparsity=sparsity,
        runtimes=runtimes, assumptions=assumptions(device, ram_bw, bool(ram_bandwidth), costs),
        notes=_notes(model, fmt, plan, device), explain=_derivations(model, fmt, plan, context, users, sparsity),
    )


def _ram_bandwidth(device: Device, gpu: GpuSpec | None, given: float | None) -> float:
    """--ram-bandwidth, else an Apple SoC's unified memory bandwidth, else DEFAULT_RAM_BANDWIDTH."""
    if given:
        return float(given)
    if device == "apple" and gpu is not None:
        return float(gpu.memory_bandwidth_bytes_per_s)  # unified memory: the SoC's bandwidth
    return float(DEFAULT_RAM_BANDWIDTH)


def _bandwidth_sources(device: Device, gpu: GpuSpec | None, ram_bw: float, given: float | None) -> dict[str, str]:
    return {
        "gpu": (f"{gpu.key} hardware file: {gpu.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s vendor peak"
                if gpu is not None and device != "cpu" else "no GPU"),
        "ram": (f"--ram-bandwidth {ram_bw / 1e9:,.1f} GB/s" if given else
                f"{gpu.key} unified memory {ram_bw / 1e9:,.0f} GB/s (CPU cores reach less)"
                if device == "apple" and gpu is not None else
                "dual-channel DDR5-5600: 2 x 8 B x 5,600e6 = 89.6 GB/s (JEDEC JESD79-5; AMD Ryzen 9000 spec)"),
    }


def _apple_memory(model: ModelSpec, fmt: WeightFormat, plan: OffloadPlan, gpu: GpuSpec | None, context: int,
                  kv_dtype: str | None, users: int) -> AppleMemory | None:
    """macOS's GPU wired-memory limit against what every layer on the GPU needs, and the sysctl to raise it."""
    if gpu is None:
        return None
    need_mb = wired_limit_mb_needed(model, fmt, context, kv_dtype, users)
    can_raise = need_mb * MIB <= gpu.memory_bytes - MACOS_RESERVE_BYTES
    return AppleMemory(
        memory_bytes=gpu.memory_bytes, default_wired_limit_bytes=gpu.usable_memory_bytes,
        default_share=round(gpu.usable_memory_bytes / gpu.memory_bytes, 4), wired_limit_mb_needed=need_mb,
        raise_command=None if plan.fits_on_gpu else f"sudo sysctl iogpu.wired_limit_mb={need_mb}",
        note=("macOS lets the GPU wire about 2/3 of RAM on Macs with <= 36 GB and 3/4 above "
              "(Metal recommendedMaxWorkingSetSize); the sysctl raises it until reboot. "
              + ("Not needed: every layer fits under the default limit." if plan.fits_on_gpu else
                 f"Raising it to {need_mb} MiB puts every layer on the GPU"
                 + (f" and still leaves {fmt_gib(gpu.memory_bytes - need_mb * MIB)} to macOS."
                    if can_raise else f", but that leaves under {fmt_gib(MACOS_RESERVE_BYTES)} to macOS: "
                    "use a smaller format or context."))),
    )


def _notes(model: ModelSpec, fmt: WeightFormat, plan: OffloadPlan, device: Device) -> list[str]:
    """What the plan leaves out or the user should know (embedding on the host, offload speed, MoE, RAM)."""
    notes: list[str] = []
    if embed_on_host(fmt) and device != "cpu":
        glob = global_bytes(model, fmt)
        notes.append(f"llama.cpp keeps token_embd ({fmt_gib(glob.input_bytes)}) in host RAM whatever --n-gpu-layers "
                     "is; the output layer joins the GPU only at --n-gpu-layers = layers + 1.")
    if not isinstance(fmt, GgufRecipe):
        notes.append(f"{getattr(fmt, 'name', '?')} is not a GGUF type: the layer split is sized as llama.cpp would "
                     "split it; vLLM/SGLang need every weight on the GPU.")
    if device != "cpu" and not plan.fits_on_gpu and plan.fits:
        notes.append("Layers in RAM run on the CPU at RAM bandwidth: they dominate the time per token.")
    if any(isinstance(layer.mlp, MoEMLP) for layer in model.layers) and not plan.fits_on_gpu and device != "cpu":
        notes.append("MoE: llama.cpp's --n-cpu-moe N (or -ot exps=CPU) keeps routed experts in RAM and everything "
                     "else on the GPU, often faster than splitting whole layers; not modelled here.")
    if not plan.ram_checked:
        notes.append(f"RAM not checked: the plan needs {fmt_gib(plan.host_bytes)} of host RAM (pass --ram SIZE).")
    if plan.kv_dtype not in ("fp16", "bf16", "fp32"):
        notes.append(f"A {plan.kv_dtype} V cache needs flash attention in llama.cpp (-fa on).")
    notes.append("Decode speed: every weight used and the whole KV cache read once per token at the stated "
                 "bandwidths x efficiency, plus llama.cpp's step and per-GPU-layer costs (kvcalc perf's terms for "
                 "the card); compute is not modelled (decode at a few tokens per step reads far more than it "
                 "computes).")
    if isinstance(fmt, GgufRecipe):
        notes.append("Host weights are memory-mapped from the GGUF file (page cache); leave RAM for the OS and "
                     "apps.")
    if model.vision_params:
        notes.append(f"The vision encoder ({model.vision_params:,} parameters) is a separate mmproj file in "
                     "llama.cpp (--mmproj): not sized here.")
    return notes


def _derivations(model: ModelSpec, fmt: WeightFormat, plan: OffloadPlan, context: int, users: int,
                 sparsity: SparsityFootprint) -> list[Derivation]:
    out = _size_derivations(model, fmt, plan, context, users)
    if plan.device != "cpu":
        out += _gpu_derivations(plan)
    out += [_host_derivation(plan), _decode_derivation(plan, context), _sparsity_derivation(sparsity)]
    return out


def _size_derivations(model: ModelSpec, fmt: WeightFormat, plan: OffloadPlan, context: int,
                      users: int) -> list[Derivation]:
    """Weights per layer W_i, KV per layer KV_i and the compute buffer C."""
    weights = plan.layer_weights_bytes
    kvs = plan.layer_kv_bytes
    name = getattr(fmt, "name", "?")
    n = plan.num_layers
    return [
        Derivation(
            figure="Weights per layer W_i",
            formula=f"sum of the layer's tensors in {name} (GGUF: llama.cpp's per-tensor type)",
            substituted=f"min {min(weights, default=0):,} B, max {max(weights, default=0):,} B over {n} layers; "
            f"output layer {plan.output_layer_bytes:,} B",
            value=f"{fmt_gib(sum(weights))} in layers",
            source=getattr(fmt, "source", ""),
        ),
        Derivation(
            figure="KV per layer KV_i",
            formula="KV bytes per token x cells (full: context x users; window: pad(min(n_ctx, window x users + "
            "512), 256))",
            substituted=f"max {max(kvs, default=0):,} B at {context:,} tokens x {users} ({plan.kv_dtype})",
            value=fmt_gib(sum(kvs)),
            source="llama.cpp llama-kv-cache(-iswa).cpp",
        ),
        Derivation(
            figure="Compute buffer C",
            formula="n_ubatch x (n_vocab + 2 x n_embd) x 4 B (flash attention on)",
            substituted=f"{LLAMACPP_N_UBATCH} x ({model.vocab_size:,} + 2 x {model.hidden_size:,}) x 4",
            value=f"{plan.compute_buffer_bytes:,} B",
            source="fitted to published llama.cpp load logs (ollama #6398)",
        ),
    ]


def _gpu_derivations(plan: OffloadPlan) -> list[Derivation]:
    """The GPU budget and the --n-gpu-layers it allows: max k with gpu(k) <= budget."""
    k = plan.n_gpu_layers
    return [
        Derivation(
            figure="GPU budget",
            formula="usable memory - CUDA context (Metal: 0) - llama.cpp --fit margin",
            substituted=f"{plan.gpu_usable_bytes:,} - {plan.gpu_overhead_bytes:,}",
            value=f"{plan.gpu_budget_bytes:,} B",
            source="hardware file; llama.cpp --fit-target default",
        ),
        Derivation(
            figure="--n-gpu-layers",
            formula="max k with gpu(k) = sum_{last k layers}(W_i + KV_i) + C (+ output layer if k = n + 1) <= budget",
            substituted=f"gpu({k}) = {plan.gpu_bytes:,} B <= {plan.gpu_budget_bytes:,} B",
            value=f"{k} ({plan.layers_on_gpu} of {plan.num_layers} layers"
            f"{', output too' if plan.output_on_gpu else ''})",
            source="llama.cpp llama-model.cpp load_tensors (i_gpu_start = n_layer - k)",
        ),
    ]


def _host_derivation(plan: OffloadPlan) -> Derivation:
    return Derivation(
        figure="Host RAM",
        formula="input layer + CPU layers (W_i + KV_i) + output layer if on the CPU + host buffers",
        substituted=f"{plan.host_weights_bytes:,} + {plan.host_kv_bytes:,} + {plan.host_compute_bytes:,}",
        value=fmt_gib(plan.host_bytes),
        source="llama.cpp buffer placement (llama-model.cpp load_tensors: token_embd on the host)",
    )


def _decode_derivation(plan: OffloadPlan, context: int) -> Derivation:
    """tokens/s = 1 / (step + GPU layers x layer cost + GPU bytes / (B_gpu x e_gpu) + host bytes / (B_ram x
    e_ram)), a bytes term 0 when nothing is read (calc/offload/decode.py)."""
    gpu_term = (f"{plan.gpu_read_bytes_per_token:,} / ({plan.gpu_bandwidth_bytes_per_s:,} x {plan.gpu_efficiency})"
                if plan.gpu_read_bytes_per_token else "0")
    host_term = (f"{plan.host_read_bytes_per_token:,} / ({plan.ram_bandwidth_bytes_per_s:,} x {plan.ram_efficiency})"
                 if plan.host_read_bytes_per_token else "0")
    fixed = f"{plan.step_s:g} + {plan.layers_on_gpu} x {plan.gpu_layer_s:g}"
    return Derivation(
        figure="Decode tokens/s",
        formula="1 / (step + GPU layers x layer cost + bytes read on GPU / (B_gpu x e_gpu) + bytes read from RAM / "
        "(B_ram x e_ram)); bytes read = weights used per token (MoE: top_k/E of the experts) + KV at the context",
        substituted=f"1 / ({fixed} + {gpu_term} + {host_term})",
        value=f"{plan.decode_tokens_per_s:.2f} tokens/s at {context:,} tokens ({plan.decode_tokens_per_s_empty:.2f} "
        "with an empty cache)",
        source="calc/offload/decode.py: kvcalc perf's llama.cpp terms for the card (see assumptions); RAM "
        "efficiency an assumption",
    )


def _sparsity_derivation(sp: SparsityFootprint) -> Derivation:
    return Derivation(
        figure="2:4 sparse weights",
        formula="dense - values/2 + 1 bit per pruned-matrix weight (2-bit index per kept value)",
        substituted=f"{sp.dense_bytes:,} B dense, {sp.prunable_params:,} prunable weights",
        value=f"{fmt_gib(sp.sparse_bytes)} ({sp.saving_fraction:.1%} less)",
        source="NVIDIA A100 whitepaper (2:4); vLLM compressed_tensors_24.py; compressed-tensors sparse_24_bitmask",
    )


def render_local(out: Any, report: LocalReport) -> None:
    """Verdict line, memory table (GPU vs host), speed, Apple wired limit, runtimes, sparsity, notes."""
    style = "green" if report.fits_on_gpu else ("yellow" if report.fits else "red")
    out.print(f"[bold {style}]{report.verdict}[/bold {style}]")
    out.print(f"{report.model}, {report.format} ({report.bits_per_weight:.2f} bits/weight, "
              f"{fmt_gib(report.weights_bytes)}), {report.context:,}-token context x {report.users}, "
              f"KV {report.kv_dtype}", markup=False)
    out.print(_memory_table(report))
    out.print(_speed_table(report))
    for key, text in report.bandwidth_sources.items():
        out.print(f"bandwidth {key}: {text}", markup=False)
    if report.command:
        out.print(f"run: {report.command}", markup=False)
    if report.apple is not None:
        a = report.apple
        out.print(f"Apple unified memory: the GPU may wire {a.default_wired_limit_bytes / GIB:.0f} GiB of "
                  f"{a.memory_bytes / GIB:.0f} GiB ({a.default_share:.0%}) by default"
                  + (f"; to raise it: {a.raise_command}" if a.raise_command else
                     " (raise it with sudo sysctl iogpu.wired_limit_mb=N)"), markup=False)
        out.print(a.note, markup=False)
    _render_runtimes(out, report)
    sp = report.sparsity
    out.print(f"2:4 sparsity: {fmt_gib(sp.dense_bytes)} -> {fmt_gib(sp.sparse_bytes)} ({sp.saving_fraction:.1%} less; "
              f"{sp.layout})", markup=False)
    for e in sp.engines:
        out.print(f"  {e.engine}: {'uses it' if e.uses_it else 'no'} - {e.detail}", markup=False)
    for note in report.notes:
        out.print(f"note: {note}", markup=False)


def _memory_table(report: LocalReport) -> Any:
    from rich.table import Table

    mem = Table(title="Memory plan (llama.cpp layer split)", title_justify="left")
    mem.add_column("part")
    for col in ("GPU GiB", "host RAM GiB"):
        mem.add_column(col, justify="right")
    gb, hb = report.gpu_breakdown, report.host_breakdown
    mem.add_row("weights", f"{gb['weights'] / GIB:.2f}", f"{hb['weights'] / GIB:.2f}")
    mem.add_row("KV cache", f"{gb['kv_cache'] / GIB:.2f}", f"{hb['kv_cache'] / GIB:.2f}")
    mem.add_row("compute / host buffers", f"{gb['compute_buffer'] / GIB:.2f}", f"{hb['buffers'] / GIB:.2f}")
    mem.add_row("total", f"{report.gpu_bytes / GIB:.2f}", f"{report.host_bytes / GIB:.2f}")
    if report.device != "cpu":
        mem.add_row("reserved (context + --fit margin)", f"{gb['reserved_overhead'] / GIB:.2f}", "")
        mem.add_row("available", f"{report.gpu_usable_bytes / GIB:.2f}",
                    f"{report.ram_bytes / GIB:.2f}" if report.ram_bytes is not None else "not given")
    else:
        mem.add_row("available", "", f"{report.ram_bytes / GIB:.2f}" if report.ram_bytes is not None else "")
    return mem


def _speed_table(report: LocalReport) -> Any:
    from rich.table import Table

    speed = Table(title="Decode speed (memory-bandwidth bound)", title_justify="left", show_header=False)
    speed.add_column("what")
    speed.add_column("value", justify="right")
    if report.device != "cpu":
        speed.add_row("--n-gpu-layers", f"{report.n_gpu_layers} ({report.layers_on_gpu} of {report.num_layers} "
                      f"layers{', output too' if report.output_on_gpu else ''})")
        speed.add_row("GPU bandwidth", f"{report.gpu_bandwidth_bytes_per_s / 1e9:,.0f} GB/s")
    speed.add_row("RAM bandwidth", f"{report.ram_bandwidth_bytes_per_s / 1e9:,.1f} GB/s")
    per = " per user" if report.users > 1 else ""
    speed.add_row(f"tokens/s{per} at {report.context:,} tokens", f"{report.decode_tokens_per_s:.2f}")
    speed.add_row(f"tokens/s{per}, empty cache", f"{report.decode_tokens_per_s_empty_context:.2f}")
    if report.users > 1:
        speed.add_row(f"tokens/s, {report.users} users decoding together",
                      f"{report.decode_tokens_per_s_all_users:.2f}")
    return speed


def _render_runtimes(out: Any, report: LocalReport) -> None:
    """The runtime table, each container image's source numbered below it."""
    from rich.table import Table

    rt = Table(title="Runtimes", title_justify="left")
    for col in ("runtime", "verdict", "reason", "image"):
        rt.add_column(col, overflow="fold", no_wrap=col in ("runtime", "verdict"))
    sources: list[str] = []
    for r in report.runtimes:
        image = "-"
        if r.image is not None:
            if r.image.source not in sources:
                sources.append(r.image.source)
            image = f"{r.image.image}: {r.image.size} [{sources.index(r.image.source) + 1}]"
        rt.add_row(r.runtime, r.verdict, r.reason, image)
    out.print(rt)
    for i, source in enumerate(sources, 1):
        out.print(f"[{i}] {source}", markup=False)
