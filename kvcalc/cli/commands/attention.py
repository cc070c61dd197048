"""`kvcalc attention`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, GpuFileOpt, GpuOpt, JsonOpt, RevisionOpt, gpu_arg, tokens_arg

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
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError
    from kvcalc.report.attention import attention_report

    n = tokens_arg(seq, "--seq")
    assert n is not None
    spec = None
    if model is not None:
        if heads is not None or head_dim is not None or kv_heads is not None:
            raise InputError("give MODEL or --heads/--head-dim/--kv-heads, not both")
        from kvcalc.sources.resolve import load_model

        spec = load_model(model, revision=revision, warn=warn)
    report = attention_report(
        gpu_arg(gpu, gpu_file), n, model=spec, heads=heads, head_dim=head_dim, kv_heads=kv_heads, batch=batch,
        dtype=dtype, causal=causal, naive=naive, tp=tp, explain=explain,
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.attention:render_attention")
