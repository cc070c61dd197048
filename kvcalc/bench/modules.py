"""The model's layers as small torch modules, built from kvcalc's own ModelSpec with random weights.

Each tensor's shape is derived from the layer's structural spec (heads, head dims, MLA ranks, MLP and expert
sizes, `expected_shapes`), not copied from the tensor list, so a builder and a family mapper that disagree
show up as a shape mismatch (tests compare them for several architectures). Only which optional tensors
exist (biases, q/k norms, sinks, fused projections, shared experts) is read from the tensor list. Recurrent
mixers (linear attention, Mamba) have no structural derivation here: their tensors are allocated with the
spec's shapes (weights are measured) and the layer cannot be timed (`unsupported_reason`).

The forward passes are what a serving engine runs, written with stock torch ops:
- GQA/MQA/MHA decode: the query heads of one KV head packed as a short query (FlashAttention's
  "seqlenq_ngroups_swapped"), over a KV cache split into `splits` chunks when the batch is too small to fill
  the GPU (flash-decoding: partial softmax per chunk, combined with the log-sum-exp);
- MLA decode: the absorbed form (DeepSeek-V2 paper s2.1.2; vLLM's MLA decode, FlashMLA): queries mapped into
  the latent space, attention over the 576-wide latent cache, values mapped back per head;
- prefill: causal `scaled_dot_product_attention`; sliding layers attend block-locally (window-sized blocks
  over their own and the previous block); MLA expands the latent to per-head K/V (vLLM's MLA prefill);
- MoE: top-k routing, tokens sorted by expert, one grouped GEMM per projection (`torch._grouped_mm`: only
  the experts some token chose are read), weighted scatter back; shared experts as a dense MLP.
Sinks (gpt-oss) are held but not applied (a per-head bias of the softmax: no bytes or FLOPs of note).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kvcalc.spec.layers import LayerSpec, MLAAttention, MoEMLP
from kvcalc.spec.model import ModelSpec

Shape = tuple[int, ...]
NORM_EPS = 1e-6
INIT_STD = 0.02

_MIXER_NORMS = ("attn_q_norm", "attn_k_norm", "attn_q_a_norm", "attn_kv_a_norm")


def suffix(name: str, index: int) -> str:
    """`blk.3.attn_q.weight` -> `attn_q.weight`."""
    prefix = f"blk.{index}."
    return name[len(prefix):] if name.startswith(prefix) else name


def _attention_shapes(mixer: Any, hidden: int) -> dict[str, Shape]:
    """(out, in) of each projection of a softmax-attention mixer from its heads and head sizes."""
    nh, nkv, hd = mixer.num_heads, mixer.num_kv_heads, mixer.head_dim
    vd = mixer.value_dim
    return {
        "attn_q": (nh * hd, hidden), "attn_k": (nkv * hd, hidden), "attn_v": (nkv * vd, hidden),
        "attn_qkv": ((nh + nkv) * hd + nkv * vd, hidden), "attn_output": (hidden, nh * vd),
        "attn_q_norm": (hd,), "attn_k_norm": (hd,), "attn_sinks": (nh,),
    }


def _mla_shapes(mixer: MLAAttention, hidden: int) -> dict[str, Shape]:
    """MLA projections (DeepSeek-V2 s2.1): q (or q_a -> q_b through the q rank), the joint KV down-projection
    to kv_lora_rank + rope, the up-projection to per-head nope K and V, the output from n_heads x v."""
    nh, qk = mixer.num_heads, mixer.qk_nope_head_dim + mixer.qk_rope_head_dim
    q_rank = mixer.q_lora_rank or 0
    return {
        "attn_q": (nh * qk, hidden), "attn_q_a": (q_rank, hidden), "attn_q_a_norm": (q_rank,),
        "attn_q_b": (nh * qk, q_rank), "attn_kv_a_mqa": (mixer.kv_lora_rank + mixer.qk_rope_head_dim, hidden),
        "attn_kv_a_norm": (mixer.kv_lora_rank,),
        "attn_kv_b": (nh * (mixer.qk_nope_head_dim + mixer.v_head_dim), mixer.kv_lora_rank),
        "attn_output": (hidden, nh * mixer.v_head_dim),
    }


def _mlp_shapes(layer: LayerSpec, hidden: int) -> dict[str, Shape]:
    mlp = layer.mlp
    if mlp is None:
        return {}
    if isinstance(mlp, MoEMLP):
        e, i, s = mlp.num_experts, mlp.expert_intermediate_size, mlp.shared_intermediate_size
        return {
            "ffn_gate_inp": (e, hidden), "exp_probs_b": (e, 1), "ffn_gate_exps": (e, i, hidden),
            "ffn_up_exps": (e, i, hidden), "ffn_gate_up_exps": (e, 2 * i, hidden), "ffn_down_exps": (e, hidden, i),
            "ffn_gate_shexp": (s, hidden), "ffn_up_shexp": (s, hidden), "ffn_down_shexp": (hidden, s),
            "ffn_gate_inp_shexp": (1, hidden),
        }
    i = mlp.intermediate_size
    return {"ffn_gate": (i, hidden), "ffn_up": (i, hidden), "ffn_gate_up": (2 * i, hidden), "ffn_down": (hidden, i)}


def expected_shapes(layer: LayerSpec, hidden: int) -> dict[str, Shape | None]:
    """Each tensor of `layer` (by suffix) -> its shape derived from the layer's structure, or None where the
    structure does not determine it (recurrent mixers' own tensors). A bias is its weight's shape less the
    input dimension; norms are `hidden` wide unless they are a mixer's own (q/k norms, MLA ranks)."""
    weights: dict[str, Shape] = {}
    if isinstance(layer.mixer, MLAAttention):
        weights.update(_mla_shapes(layer.mixer, hidden))
    elif layer.mixer is not None and hasattr(layer.mixer, "num_kv_heads"):
        weights.update(_attention_shapes(layer.mixer, hidden))
    weights.update(_mlp_shapes(layer, hidden))
    out: dict[str, Shape | None] = {}
    for t in layer.tensors:
        name = suffix(t.name, layer.index)
        base, _, kind = name.rpartition(".")
        shape = weights.get(base)
        if shape is None and base.endswith("_norm") and base not in _MIXER_NORMS and not base.startswith("ssm"):
            shape = (hidden,)
        if shape is not None and kind == "bias":
            shape = shape[:-1] if len(shape) > 1 else shape
        out[name] = shape
    return out


def unsupported_reason(layer: LayerSpec) -> str | None:
    """Why `layer` cannot be timed here (None when it can)."""
    if layer.mixer is not None and layer.kind in ("linear", "mamba"):
        return (f"layer {layer.index} is a {layer.kind} (recurrent) mixer: kvcalc has no torch reference for it; "
                "its weights are measured, its time is not")
    return None


def _init_(p: torch.Tensor, name: str) -> None:
    """Random, never zero: norms near 1, everything else N(0, 0.02)."""
    if name.endswith("_norm.weight"):
        p.normal_(1.0, INIT_STD)
    else:
        p.normal_(0.0, INIT_STD)


#: Projections engines run as one GEMM over weights stored together (vLLM QKVParallelLinear,
#: MergedColumnParallelLinear, fused_moe's w13): fused name -> the tensors it concatenates along their
#: output rows. The spec's tensors become views of one buffer: the same bytes, one kernel instead of several.
FUSIONS: dict[str, tuple[str, ...]] = {
    "attn_qkv": ("attn_q", "attn_k", "attn_v"),
    "ffn_gate_up": ("ffn_gate", "ffn_up"),
    "ffn_gate_up_shexp": ("ffn_gate_shexp", "ffn_up_shexp"),
    "ffn_gate_up_exps": ("ffn_gate_exps", "ffn_up_exps"),
}


def _fusable(shapes: list[Shape], dim: int) -> bool:
    """Same rank and the same size in every dimension but `dim`."""
    first = shapes[0]
    return all(len(s) == len(first) and all(a == b for i, (a, b) in enumerate(zip(s, first, strict=True))
                                            if i != dim) for s in shapes)


def _params(named: list[tuple[str, Shape]], dtype: torch.dtype, device: Any
            ) -> tuple[nn.ParameterDict, dict[str, torch.Tensor]]:
    """One parameter per tensor (named by suffix), random; tensors in FUSIONS are views of one buffer (the
    buffers are returned by fused name, e.g. `attn_qkv.weight`)."""
    shapes = dict(named)
    params = nn.ParameterDict()
    fused: dict[str, torch.Tensor] = {}
    for target, members in FUSIONS.items():
        for kind in ("weight", "bias"):
            names = [f"{m}.{kind}" for m in members]
            if not all(n in shapes for n in names):
                continue
            dim = len(shapes[names[0]]) - (2 if kind == "weight" else 1)
            if not _fusable([shapes[n] for n in names], dim):
                continue
            total = list(shapes[names[0]])
            total[dim] = sum(shapes[n][dim] for n in names)
            buffer = _tensor(tuple(total), f"{target}.{kind}", dtype, device)
            offset = 0
            for n in names:
                params[n.replace(".", "__")] = nn.Parameter(buffer.narrow(dim, offset, shapes[n][dim]),
                                                            requires_grad=False)
                offset += shapes[n][dim]
                del shapes[n]
            fused[f"{target}.{kind}"] = buffer
    for name, shape in shapes.items():
        params[name.replace(".", "__")] = nn.Parameter(_tensor(shape, name, dtype, device), requires_grad=False)
    return params, fused


def _tensor(shape: Shape, name: str, dtype: torch.dtype, device: Any) -> torch.Tensor:
    p = torch.empty(shape, dtype=dtype, device=device)
    if p.device.type != "meta":
        with torch.no_grad():
            _init_(p, name)
    return p


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on the last dim (rotate-half form): x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return torch.addcmul(x * cos, rotated, sin)


def rope_tables(positions: torch.Tensor, dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [len(positions), dim] (theta 10000)."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim))
    angles = positions.float()[:, None] * inv[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class _Weights(nn.Module):
    """A parameter bag addressed by tensor suffix (`attn_q.weight`), plus fused buffers (`attn_qkv.weight`)."""

    params: nn.ParameterDict
    fused: dict[str, torch.Tensor]

    def w(self, name: str) -> torch.Tensor | None:
        key = name.replace(".", "__")
        if key in self.params:
            return self.params[key]
        return self.fused.get(name)

    def has(self, name: str) -> bool:
        return name.replace(".", "__") in self.params or name in self.fused

    def linear(self, x: torch.Tensor, base: str) -> torch.Tensor:
        weight = self.w(f"{base}.weight")
        assert weight is not None, base
        return F.linear(x, weight, self.w(f"{base}.bias"))

    def norm(self, x: torch.Tensor, base: str) -> torch.Tensor:
        weight = self.w(f"{base}.weight")
        assert weight is not None, base
        bias = self.w(f"{base}.bias")
        if bias is not None:
            return F.layer_norm(x, (x.shape[-1],), weight, bias, NORM_EPS)
        return F.rms_norm(x, (x.shape[-1],), weight, NORM_EPS)


class BenchLayer(_Weights):
    """One decoder layer with random weights of the spec's shapes; decode and prefill forwards."""

    def __init__(self, layer: LayerSpec, hidden: int, dtype: torch.dtype, device: Any) -> None:
        super().__init__()
        self.spec = layer
        self.hidden = hidden
        shapes = expected_shapes(layer, hidden)
        named = []
        for t in layer.tensors:
            name = suffix(t.name, layer.index)
            shape = shapes[name]
            named.append((name, shape if shape is not None else tuple(t.shape)))
        self.params, self.fused = _params(named, dtype, device)
        self.unsupported = unsupported_reason(layer)

    # ---- attention ---------------------------------------------------------------------------------------
    def _qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [.., nh, d], k [.., nkv, d] (normed where the model has q/k norms, rotated), v [.., nkv, dv];
        one GEMM over the fused QKV weights, one rotary over q and k together where there are no q/k norms."""
        m = self.spec.mixer
        nh, nkv, hd, vd = m.num_heads, m.num_kv_heads, m.head_dim, m.value_dim  # type: ignore[union-attr]
        qkv = self.linear(x, "attn_qkv")
        qk, v = qkv.split([(nh + nkv) * hd, nkv * vd], dim=-1)
        v = v.unflatten(-1, (nkv, vd))
        if self.has("attn_q_norm.weight"):
            q, k = qk.unflatten(-1, (nh + nkv, hd)).split([nh, nkv], dim=-2)
            return rope(self.norm(q, "attn_q_norm"), cos, sin), rope(self.norm(k, "attn_k_norm"), cos, sin), v
        q, k = rope(qk.unflatten(-1, (nh + nkv, hd)), cos, sin).split([nh, nkv], dim=-2)
        return q, k, v

    def _gqa_decode(self, x: torch.Tensor, cache: dict[str, torch.Tensor], cos: torch.Tensor,
                    sin: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        nh, nkv, hd = m.num_heads, m.num_kv_heads, m.head_dim  # type: ignore[union-attr]
        b = x.shape[0]
        q, k, v = self._qkv(x, cos, sin)  # [B, heads, d]
        kc, vc = cache["k"], cache["v"]  # [B, S, nkv, Ts, d]
        splits, chunk = kc.shape[1], kc.shape[3]
        last = splits * chunk - 1
        kc[:, last // chunk, :, last % chunk] = k
        vc[:, last // chunk, :, last % chunk] = v
        packed = q.reshape(b, nkv, nh // nkv, hd)  # the query heads of one KV head as a short query
        out = split_kv_attention(packed, kc, vc, 1.0 / math.sqrt(hd))
        return self.linear(out.reshape(b, -1), "attn_output")

    def _mla_q(self, x: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        assert isinstance(m, MLAAttention)
        if self.has("attn_q_a.weight"):
            q = self.linear(self.norm(self.linear(x, "attn_q_a"), "attn_q_a_norm"), "attn_q_b")
        else:
            q = self.linear(x, "attn_q")
        return q.unflatten(-1, (m.num_heads, m.qk_nope_head_dim + m.qk_rope_head_dim))

    def _mla_latent(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        assert isinstance(m, MLAAttention)
        ckv = self.linear(x, "attn_kv_a_mqa")
        c = self.norm(ckv[..., : m.kv_lora_rank], "attn_kv_a_norm")
        return torch.cat((c, rope(ckv[..., m.kv_lora_rank:], cos, sin)), dim=-1)

    def _mla_decode(self, x: torch.Tensor, cache: dict[str, torch.Tensor], cos: torch.Tensor,
                    sin: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        assert isinstance(m, MLAAttention)
        nope, r, rank = m.qk_nope_head_dim, m.qk_rope_head_dim, m.kv_lora_rank
        q = self._mla_q(x)  # [B, nh, nope + rope]
        q_rope = rope(q[..., nope:], cos[..., :r], sin[..., :r])
        latent = cache["latent"]  # [B, T, rank + rope]
        latent[:, -1] = self._mla_latent(x, cos[..., :r], sin[..., :r])
        w_kv_b = self.w("attn_kv_b.weight").view(m.num_heads, nope + m.v_head_dim, rank)  # type: ignore[union-attr]
        q_latent = torch.bmm(q[..., :nope].transpose(0, 1), w_kv_b[:, :nope]).transpose(0, 1)  # [B, nh, rank]
        q_full = torch.cat((q_latent, q_rope), dim=-1)
        scores = torch.bmm(q_full, latent.transpose(1, 2)) * (1.0 / math.sqrt(nope + r))
        probs = torch.softmax(scores.float(), dim=-1).to(x.dtype)
        o_latent = torch.bmm(probs, latent[..., :rank])  # [B, nh, rank]
        o = torch.bmm(o_latent.transpose(0, 1), w_kv_b[:, nope:].transpose(1, 2)).transpose(0, 1)
        return self.linear(o.reshape(x.shape[0], -1), "attn_output")

    def _gqa_prefill(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        q, k, v = self._qkv(x, cos[:, None], sin[:, None])  # [N, heads, d]
        group = m.num_heads // m.num_kv_heads  # type: ignore[union-attr]
        if group > 1:  # expand K/V to every query head so that the flash kernel runs
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))
        window = m.window  # type: ignore[union-attr]
        if window is not None and x.shape[0] > window:
            out = local_attention(q, k, v, window)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.linear(out[0].transpose(0, 1).reshape(x.shape[0], -1), "attn_output")

    def _mla_prefill(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        m = self.spec.mixer
        assert isinstance(m, MLAAttention)
        n, nope, r, vd = x.shape[0], m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim
        q = self._mla_q(x)
        r_cos, r_sin = cos[:, None, :r], sin[:, None, :r]
        q = torch.cat((q[..., :nope], rope(q[..., nope:], r_cos, r_sin)), dim=-1)
        latent = self._mla_latent(x, cos[:, :r], sin[:, :r])
        c = latent[:, : m.kv_lora_rank]
        kv = self.linear(c, "attn_kv_b").unflatten(-1, (m.num_heads, nope + vd))
        k = torch.cat((kv[..., :nope], latent[:, None, m.kv_lora_rank:].expand(n, m.num_heads, r)), dim=-1)
        v = F.pad(kv[..., nope:], (0, nope + r - vd))  # V padded to the QK width, as vLLM does for flash
        q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)[..., :vd]
        return self.linear(out[0].transpose(0, 1).reshape(n, -1), "attn_output")

    # ---- MLP ---------------------------------------------------------------------------------------------
    def _dense(self, x: torch.Tensor, gate: str, up: str, fused: str, down: str) -> torch.Tensor:
        if self.has(f"{fused}.weight"):
            g, u = self.linear(x, fused).chunk(2, dim=-1)
            a = F.silu(g) * u
        elif self.has(f"{gate}.weight"):
            a = F.silu(self.linear(x, gate)) * self.linear(x, up)
        else:
            a = F.gelu(self.linear(x, up))
        return self.linear(a, down)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Top-k routing of x's tokens, sorted by expert: (routed rows xs, each expert's end offset, each row's
        expert, each row's token, each row's router weight [rows, 1])."""
        mlp = self.spec.mlp
        assert isinstance(mlp, MoEMLP)
        e, k = mlp.num_experts, mlp.top_k
        logits = self.linear(x, "ffn_gate_inp").float()
        top, idx = torch.topk(logits, k, dim=-1)
        weights = torch.softmax(top, dim=-1).to(x.dtype).flatten()
        flat = idx.flatten()
        order = torch.argsort(flat, stable=True)
        token = torch.div(order, k, rounding_mode="floor")
        ones = torch.ones_like(flat, dtype=torch.int32)
        offs = torch.cumsum(torch.zeros(e, dtype=torch.int32, device=x.device).scatter_add_(0, flat, ones), 0,
                            dtype=torch.int32)
        return x.index_select(0, token), offs, flat[order], token, weights[order, None]

    def _moe(self, x: torch.Tensor) -> torch.Tensor:
        xs, offs, chosen, token, weights = self.route(x)
        if self.has("ffn_gate_up_exps.weight"):
            g, u = self._experts(xs, "ffn_gate_up_exps", offs, chosen).chunk(2, dim=-1)
        else:
            g, u = self._experts(xs, "ffn_gate_exps", offs, chosen), self._experts(xs, "ffn_up_exps", offs, chosen)
        y = self._experts(F.silu(g) * u, "ffn_down_exps", offs, chosen) * weights
        out = torch.zeros_like(x).index_add_(0, token, y)
        if self.has("ffn_gate_shexp.weight") or self.has("ffn_up_shexp.weight"):
            out = out + self._dense(x, "ffn_gate_shexp", "ffn_up_shexp", "ffn_gate_up_shexp", "ffn_down_shexp")
        return out

    def _experts(self, xs: torch.Tensor, base: str, offs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        weight = self.w(f"{base}.weight")  # [E, out, in]
        assert weight is not None
        y = grouped_mm(xs, weight, offs)
        bias = self.w(f"{base}.bias")
        return y if bias is None else y + bias.index_select(0, chosen)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.spec.mlp, MoEMLP):
            return self._moe(x)
        return self._dense(x, "ffn_gate", "ffn_up", "ffn_gate_up", "ffn_down")

    # ---- the layer ---------------------------------------------------------------------------------------
    def _block(self, x: torch.Tensor, mixer_out: Any) -> torch.Tensor:
        h = self.norm(x, "attn_norm") if self.has("attn_norm.weight") else x
        a = mixer_out(h)
        if self.has("post_attention_norm.weight"):
            a = self.norm(a, "post_attention_norm")
        if self.spec.mlp is None:
            return x + a
        if self.has("ffn_norm.weight"):
            x = x + a
            m = self._mlp(self.norm(x, "ffn_norm"))
        else:  # parallel attention and MLP on one norm (Falcon, GPT-J)
            m = self._mlp(h)
            m = m + a
        if self.has("post_ffw_norm.weight"):
            m = self.norm(m, "post_ffw_norm")
        return x + m

    def decode(self, x: torch.Tensor, cache: dict[str, torch.Tensor], cos: torch.Tensor,
               sin: torch.Tensor) -> torch.Tensor:
        """One decode step for a batch: x [B, hidden] -> [B, hidden]; the cache gets the new token."""
        if isinstance(self.spec.mixer, MLAAttention):
            return self._block(x, lambda h: self._mla_decode(h, cache, cos, sin))
        if self.spec.mixer is None:
            return self._block(x, lambda h: torch.zeros_like(h))
        return self._block(x, lambda h: self._gqa_decode(h, cache, cos, sin))

    def prefill(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """A prompt of N tokens: x [N, hidden] -> [N, hidden] (causal attention over the prompt)."""
        if isinstance(self.spec.mixer, MLAAttention):
            return self._block(x, lambda h: self._mla_prefill(h, cos, sin))
        if self.spec.mixer is None:
            return self._block(x, lambda h: torch.zeros_like(h))
        return self._block(x, lambda h: self._gqa_prefill(h, cos, sin))

    def rope_dim(self) -> int:
        m = self.spec.mixer
        if isinstance(m, MLAAttention):
            return m.qk_rope_head_dim
        return int(getattr(m, "head_dim", 2))

    def new_cache(self, batch: int, context: int, splits: int = 1) -> dict[str, torch.Tensor]:
        """The decode cache of this layer for `batch` sequences of `context` tokens, random (never zeros):
        GQA [B, S, n_kv, T/S, d] for K and for V, T = min(context, window); MLA one latent [B, T, rank + rope]."""
        p = next(iter(self.params.values()))
        m = self.spec.mixer
        if isinstance(m, MLAAttention):
            return {"latent": torch.randn(batch, context, m.latent_dim, dtype=p.dtype, device=p.device)}
        if m is None:
            return {}
        tokens = cached_tokens(self.spec, context)
        chunk = tokens // splits
        shape_k = (batch, splits, m.num_kv_heads, chunk, m.head_dim)  # type: ignore[union-attr]
        shape_v = (batch, splits, m.num_kv_heads, chunk, m.value_dim)  # type: ignore[union-attr]
        return {"k": torch.randn(shape_k, dtype=p.dtype, device=p.device),
                "v": torch.randn(shape_v, dtype=p.dtype, device=p.device)}


def cached_tokens(layer: LayerSpec, context: int) -> int:
    """Tokens the layer keeps for a sequence of `context` tokens (kvcalc's own rule in spec/layers.py)."""
    return layer.mixer.cached_tokens(context) if layer.mixer is not None else 0


def split_kv_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of q [B, H, g, d] over a cache split in S chunks, k/v [B, S, H, T/S, d] -> [B, H, g, dv].

    S = 1: one scaled_dot_product_attention. S > 1 (flash-decoding, Dao et al. 2023): each chunk's partial
    output o_s with its log-sum-exp l_s, combined as sum_s softmax_s(l_s) o_s.
    """
    b, s, h, t, d = k.shape
    if s == 1:
        return F.scaled_dot_product_attention(q, k[:, 0], v[:, 0], scale=scale)
    g = q.shape[2]
    qs = q[:, None].expand(b, s, h, g, d).reshape(b * s, h, g, d)
    partial, lse = partial_attention(qs, k.view(b * s, h, t, d), v.view(b * s, h, t, v.shape[-1]), scale)
    weights = torch.softmax(lse.view(b, s, h, g).float(), dim=1)
    combined = (partial.reshape(b, s, h, g, -1).float() * weights[..., None]).sum(dim=1)
    return combined.to(q.dtype)


def partial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output and the log-sum-exp of each query's scores, [B, H, g, dv] and [B, H, g]: the flash
    kernel's own on CUDA (`_scaled_dot_product_flash_attention` returns it), written out elsewhere."""
    if q.is_cuda:
        out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)
        return out[0], out[1]
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    lse = torch.logsumexp(scores, dim=-1)
    return (torch.exp(scores - lse[..., None]) @ v.float()).to(q.dtype), lse


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal sliding-window attention, q/k/v [1, H, N, d]: query i sees keys j with i - window < j <= i.

    Blocks of `window` queries attend to their own block and the previous one (2 x window keys) under a band
    mask, so the work is O(N x window) rather than O(N^2)."""
    _, h, n, d = q.shape
    blocks = -(-n // window)
    pad = blocks * window - n
    q = F.pad(q, (0, 0, 0, pad))
    k = F.pad(k, (0, 0, window, pad))
    v = F.pad(v, (0, 0, window, pad))
    qb = q[0].view(h, blocks, window, d).transpose(0, 1)  # [blocks, H, w, d]
    kb = k[0].unfold(1, 2 * window, window).permute(1, 0, 3, 2)  # [blocks, H, 2w, d]
    vb = v[0].unfold(1, 2 * window, window).permute(1, 0, 3, 2)
    i = torch.arange(window, device=q.device)[:, None]
    j = torch.arange(2 * window, device=q.device)[None, :]
    band = (j > i) & (j <= i + window)  # key j of the (previous, own) pair is within the window of query i
    mask = band[None].repeat(blocks, 1, 1)
    mask[0, :, :window] = False  # the first block has no previous block (its keys are padding)
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask[:, None])
    return out.transpose(0, 1).reshape(1, h, blocks * window, -1)[:, :, :n]


def grouped_mm(xs: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """Rows of xs (sorted by expert; expert e owns rows offs[e-1]:offs[e]) times their expert's weight
    [E, out, in]^T, through torch._grouped_mm; a per-expert loop where it is missing or refuses."""
    if GROUPED["ok"]:
        try:
            return torch._grouped_mm(xs, weight.transpose(1, 2), offs=offs)
        except (RuntimeError, NotImplementedError) as exc:
            if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                raise
            GROUPED["ok"] = False
            GROUPED["why"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    ends = offs.tolist()
    out = xs.new_empty(xs.shape[0], weight.shape[1])
    start = 0
    for e, end in enumerate(ends):
        if end > start:
            out[start:end] = xs[start:end] @ weight[e].T
        start = end
    return out


#: whether torch._grouped_mm works here (set False on the first refusal, with the reason).
GROUPED: dict[str, Any] = {"ok": hasattr(torch, "_grouped_mm"), "why": ""}


class BenchHead(_Weights):
    """The model's global tensors: embeddings, final norm, LM head (tied: the embedding matrix)."""

    def __init__(self, model: ModelSpec, dtype: torch.dtype, device: Any) -> None:
        super().__init__()
        self.model = model
        named = [(t.name, tuple(t.shape)) for t in model.global_tensors]
        self.params, self.fused = _params(named, dtype, device)

    def _head_weight(self) -> torch.Tensor:
        weight = self.w("output.weight")
        if weight is None:
            weight = self.w("token_embd.weight")
        assert weight is not None
        return weight

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        table = self.w("token_embd.weight")
        assert table is not None
        return F.embedding(tokens, table)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x, "output_norm") if self.has("output_norm.weight") else x
        return F.linear(h, self._head_weight())

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """The non-layer part of a decode step: final norm, LM head, greedy pick, next token's embedding."""
        return self.embed(torch.argmax(self.logits(x), dim=-1))


def dtype_of(name: str) -> torch.dtype:
    """kvcalc dtype name -> torch dtype (bf16, fp16, fp32, fp8 = float8_e4m3fn)."""
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "fp8": torch.float8_e4m3fn,
             "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
    if name not in table:
        raise ValueError(f"no torch dtype for '{name}'")
    return table[name]
