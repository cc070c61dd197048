"""`kvcalc attention`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, GpuFileOpt, GpuOpt, JsonOpt, RevisionOpt

SCHEMA = ("kvcalc.report.attention", "AttentionReport")


def command(
    model: Annotated[
        str | None,
        typer.Argument(help="Profile alias, config.json / model folder / .gguf, or Hub repo id (or use --heads)."),
    ] = None,
    *,
    seq: Annotated[str, typer.Option("--seq", help="Sequence length N: 8192, 32k (=32,000), 32K (=32,768).")],
    heads: Annotated[int | None, typer.Option("--heads", min=1, help="Query heads (without MODEL).")] = None,
    head_dim: Annotated[int | None, typer.Option("--head-dim", min=1, help="Head dimension (without MODEL).")] = None,
    kv_heads: Annotated[
        int | None, typer.Option("--kv-heads", min=1, help="KV heads (GQA/MQA; default --heads).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Sequences in the call.")] = 1,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="Q/K/V dtype: bf16, fp16, fp32, fp8 (default: the model's).")
    ] = None,
    causal: Annotated[bool, typer.Option("--causal/--no-causal", help="Causal mask (decoder prefill).")] = True,
    naive: Annotated[
        str,
        typer.Option("--naive", help="Naive implementation: textbook (S and P in the dtype), eager (transformers: "
                     "fp32 softmax), torch-math (SDPA math backend: fp32 throughout)."),
    ] = "textbook",
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor parallel: heads per GPU = heads / tp.")] = 1,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Naive attention's N x N scores vs FlashAttention's O(N) memory: extra bytes, HBM traffic, FLOPs, time
    at FA2/FA3 rates, and the longest sequence naive attention fits on the GPU."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.attention(model, seq=seq, heads=heads, head_dim=head_dim, kv_heads=kv_heads, batch=batch, gpu=gpu,
                           gpu_file=gpu_file, dtype=dtype, causal=causal, naive=naive, tp=tp, revision=revision,
                           explain=explain, warn=warn)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.attention:render_attention")
