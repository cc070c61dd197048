"""MXFP4 (OCP Microscaling) and the layouts engine kernels give it in GPU memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvcalc.calc.quant.base import HIGH_PRECISION_BYTES, QuantFormat, _share, matrix_dims
from kvcalc.errors import InputError
from kvcalc.spec.layers import TensorSpec
from kvcalc.units import ceil_div, round_up


@dataclass(frozen=True)
class Mxfp4Kernel:
    """How one engine kernel lays out MXFP4 MoE experts in GPU memory (vLLM
    `mxfp4_round_up_hidden_size_and_intermediate_size` and `_swizzle_mxfp4`):

    - `intermediate` / `hidden`: the expert intermediate size per TP partition and the hidden size are rounded up
      to these multiples (1 = unpadded);
    - `scale_copy`: the triton_kernels path keeps the loaded uint8 scales *and* a swizzled copy in its
      PrecisionConfig (Mxfp4MoEMethod.process_weights_after_loading deletes w13_weight/w2_weight but not the
      scales); the copy is padded to `scale_rows` rows on the non-MX axis and an even count on the MX axis
      (triton_kernels hopper_scale.py SWIZZLE_ALIGN_M = 2 x num_warps x 2 x 8 = 256 with num_warps 8;
      SWIZZLE_ALIGN_K = 2);
    - `fp32_bias`: expert biases cast bf16 -> fp32 (`layer.w13_bias.to(torch.float32)`).
    """

    name: str
    intermediate: int = 1
    hidden: int = 1
    scale_copy: bool = False
    scale_rows: int = 1
    fp32_bias: bool = False
    source: str = ""


#: MXFP4 MoE kernels by name (notes/engines.md section 2.2; vLLM fused_moe/oracle/mxfp4.py).
MXFP4_KERNELS: dict[str, Mxfp4Kernel] = {
    "checkpoint": Mxfp4Kernel(name="checkpoint", source="bytes as stored (OCP MX v1.0)"),
    "marlin": Mxfp4Kernel(name="marlin", intermediate=128, hidden=256,
                          source="vLLM Marlin MXFP4 MoE: n % 256 == 0 and k % 128 == 0 (mxfp4_utils.py)"),
    "triton-hopper": Mxfp4Kernel(name="triton-hopper", intermediate=64, scale_copy=True, scale_rows=256,
                                 fp32_bias=True,
                                 source="vLLM triton_kernels matmul_ogs on SM90: intermediate to 64, swizzled "
                                 "scale copy (hopper_scale.py), fp32 biases"),
    "triton": Mxfp4Kernel(name="triton", intermediate=64, scale_copy=True, fp32_bias=True,
                          source="vLLM triton_kernels matmul_ogs, strided layout (no swizzle padding)"),
    "flashinfer-trtllm": Mxfp4Kernel(name="flashinfer-trtllm", intermediate=256, hidden=256,
                                     source="vLLM FlashInfer TRT-LLM MXFP4 MoE (Blackwell): both to 256"),
    "flashinfer-cutlass": Mxfp4Kernel(name="flashinfer-cutlass", intermediate=128, hidden=128,
                                      source="vLLM FlashInfer CUTLASS MXFP4 MoE: both to 128"),
    "rocm": Mxfp4Kernel(name="rocm", intermediate=128, hidden=128,
                        source="vLLM ROCm get_padding_alignment() = 128 (gfx950: 256)"),
    "rocm-gfx950": Mxfp4Kernel(name="rocm-gfx950", intermediate=256, hidden=256,
                               source="vLLM ROCm get_padding_alignment() = 256 on gfx950"),
}


class MxFp4Format(QuantFormat):
    """MXFP4 (OCP MX v1.0): E2M1 codes + one E8M0 exponent per 32 values = 17 B per 32 = 4.25 bpw.

    `kernel` sizes what an engine kernel allocates for stacked experts (`Mxfp4Kernel`); `partition` is the
    number of slices each expert's intermediate is cut into (tp without expert parallelism, else 1): the
    padding applies per slice. Per rank with E_r experts, H hidden, I_p = round_up(I / partition, m_i):
        gate_up: E_r x 2 I_p x ceil(H' / 32) x 17 B,  down: E_r x H' x ceil(I_p / 32) x 17 B,  H' = round_up(H, m_h)
        + scale copy (triton): E_r x [round_up(2 I_p, 256) x round_up(H / 32, 2) + round_up(H, 256) x
          round_up(I_p / 32, 2)] B
        + biases (fp32 on triton: 4 B, else 2 B) x E_r x (2 I_p + H').
    gpt-oss-120b on one H100 (triton-hopper): 60.77 GiB of tensors + 3.38 GiB of scale copy + 0.07 GiB of fp32
    biases = 64.22 GiB (+ rotary cache), against vLLM's "Model loading took 64.38 GiB" (#33155).
    """

    family = "mxfp4"
    source = "OCP Microscaling Formats (MX) v1.0; openai/gpt-oss weights.py; vLLM mxfp4.py"

    def __init__(self, engine_padding: str | None = None, keep_high_precision: Iterable[str] | None = None,
                 *, partition: int = 1) -> None:
        kernel = MXFP4_KERNELS.get(engine_padding or "checkpoint")
        if kernel is None:
            raise InputError(f"mxfp4 kernel '{engine_padding}': use one of {', '.join(MXFP4_KERNELS)}")
        suffix = "" if kernel.name == "checkpoint" else f":{kernel.name}"
        super().__init__("mxfp4" + suffix, keep_high_precision)
        self.kernel = kernel
        self.engine_padding = None if kernel.name == "checkpoint" else kernel.name
        self.partition = partition

    def for_kernel(self, kernel: str, partition: int) -> MxFp4Format:
        """The same format laid out by `kernel`, experts sliced `partition` ways."""
        bound = MxFp4Format(kernel, self.keep, partition=partition)
        bound.name = self.name if kernel == "checkpoint" else f"{self.name.split(':')[0]}:{kernel}"
        return bound

    def _expert_rank(self, t: TensorSpec, numel: int) -> tuple[int, int, int]:
        """(experts on this rank, hidden H, intermediate per slice I) of an expert tensor's shard."""
        experts = t.shape[0]
        per_rank = experts * numel * self.partition // t.numel
        if t.role.startswith("ffn_down"):
            hidden, inter = t.shape[1], (t.shape[2] if len(t.shape) > 2 else 0)
        else:
            hidden = t.shape[2] if len(t.shape) > 2 else 0
            inter = t.shape[1] // 2
        return per_rank, hidden, inter // self.partition if inter else 0

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int:
        if not t.role.endswith("_exps") or len(t.shape) < 2:
            return _share(self.full_bytes(t), t, numel)
        k = self.kernel
        experts, hidden, inter = self._expert_rank(t, numel)
        if t.name.endswith(".bias"):
            inter = inter or t.shape[1] // (2 * self.partition)
            rows = round_up(hidden or t.shape[1], k.hidden) if t.role.startswith("ffn_down") else \
                2 * round_up(inter, k.intermediate)
            return experts * rows * (4 if k.fp32_bias else HIGH_PRECISION_BYTES)
        if not self.quantizes(t):
            return _share(self.full_bytes(t), t, numel)
        i_p = round_up(inter, k.intermediate)
        h_p = round_up(hidden, k.hidden)
        if t.role.startswith("ffn_down"):
            values = experts * h_p * ceil_div(i_p, 32) * 17
            copy = experts * round_up(hidden, k.scale_rows) * round_up(ceil_div(i_p, 32), 2)
        else:
            values = experts * 2 * i_p * ceil_div(h_p, 32) * 17
            copy = experts * round_up(2 * i_p, k.scale_rows) * round_up(ceil_div(hidden, 32), 2)
        return values + (copy if k.scale_copy else 0)

    def full_bytes(self, t: TensorSpec) -> int:
        if self.quantizes(t):
            e, n, k = matrix_dims(t)
            return self.matrix_bytes(e, n, k)
        return t.numel * HIGH_PRECISION_BYTES

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        return e * n * ceil_div(k, 32) * 17

    def describe(self) -> str:
        pad = "" if self.kernel.name == "checkpoint" else f"; laid out by {self.kernel.source}"
        return f"MXFP4: E2M1 4-bit + E8M0 scale per 32 (4.25 bpw){pad}; embeddings, lm_head, norms, routers bf16"
