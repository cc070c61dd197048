"""Vision encoders, counted from a `vision_config` exactly as transformers builds them (data only).

Each tower answers the same question (`spec.vision.VisionTower`): its parameters split into the embeddings and
norms outside the encoder layers, one encoder layer and the number of layers, mergers built of linears, and
the parts a checkpoint stores that no wrapper runs (a pooling head, a final norm).
Notation: H hidden, I intermediate, L layers, P patch, C channels, D the text model's hidden size.

Sources (huggingface/transformers `src/transformers/models/<name>/modeling_<name>.py`): SiglipVisionModel,
CLIPVisionModel, PixtralVisionModel, Qwen2VisionTransformerPretrainedModel,
Qwen2_5_VisionTransformerPretrainedModel, Qwen3VLVisionModel (Qwen3.5's
tower is Qwen3-VL's without the deepstack mergers), Kimi-VL's MoonViT (moonshotai/Kimi-VL-A3B-Instruct
modeling_kimi_vl.py; vLLM `model_executor/models/moonvit.py`). Checked against published totals in
tests/test_vision.py.
"""

from __future__ import annotations

from kvcalc.sources.families._build import Cfg
from kvcalc.spec.vision import VisionTower


def vit_layer(h: int, i: int) -> int:
    """A pre-norm ViT layer with biases everywhere (SigLIP, CLIP, MoonViT, Qwen3-VL): two LayerNorms (4H),
    q, k, v, o (4H^2 + 4H), fc1 (HI + I), fc2 (IH + H): 4H^2 + 2HI + I + 9H."""
    return 4 * h * h + 2 * h * i + i + 9 * h


def _merger(h: int, d: int, merge: int, norm: int) -> int:
    """A patch merger: a norm of `norm` params, fc1 [s^2 H -> s^2 H] and fc2 [s^2 H -> D], both biased."""
    hm = h * merge * merge
    return norm + hm * hm + hm + d * hm + d


def siglip(v: Cfg) -> VisionTower:
    """SiglipVisionModel: patch conv with bias (CP^2 H + H), position table (image/P)^2 x H, L ViT layers,
    post_layernorm (2H, run), and the attention-pooling head when `vision_use_head` (default true):
    probe H, in_proj 3H^2 + 3H, out_proj H^2 + H, LayerNorm 2H, MLP 2HI + I + H = 4H^2 + 2HI + I + 8H."""
    h, i, p = v.int("hidden_size", 768), v.int("intermediate_size", 3072), v.int("patch_size", 16)
    positions = (v.int("image_size", 224) // p) ** 2
    head = 4 * h * h + 2 * h * i + i + 8 * h if v.bool("vision_use_head", True) else 0
    embed = v.int("num_channels", 3) * p * p * h + h + positions * h + 2 * h
    return VisionTower(kind="siglip", layers=v.int("num_hidden_layers", 12), layer_params=vit_layer(h, i),
                       embed_params=embed, unused_params=head, hidden_size=h)


def clip(v: Cfg) -> VisionTower:
    """CLIPVisionModel: class embedding H, patch conv without bias CP^2 H, (image/P)^2 + 1 positions,
    pre_layrnorm 2H, L ViT layers, post_layernorm 2H (stored; LLaVA reads hidden states before it)."""
    h, i, p = v.int("hidden_size", 768), v.int("intermediate_size", 3072), v.int("patch_size", 32)
    positions = (v.int("image_size", 224) // p) ** 2 + 1
    embed = h + v.int("num_channels", 3) * p * p * h + positions * h + 2 * h
    return VisionTower(kind="clip", layers=v.int("num_hidden_layers", 12), layer_params=vit_layer(h, i),
                       embed_params=embed, unused_params=2 * h, hidden_size=h)


def intern_vit(v: Cfg) -> VisionTower:
    """InternViT (InternVL, remote code `modeling_intern_vit.py`): class token H, patch conv with bias CP^2 H + H,
    (image/P)^2 + 1 positions; layers of qkv 3H^2 (+ 3H with `qkv_bias`), proj H^2 + H, q/k RMSNorms 2H with
    `qk_normalization`, two norms (LayerNorm 4H or RMSNorm 2H, `norm_type`), MLP 2HI + I + H and the layer scales
    ls1, ls2 2H; no final norm."""
    h, i, p = v.int("hidden_size", 3200), v.int("intermediate_size", 12800), v.int("patch_size", 14)
    norms = 4 * h if v.get("norm_type", "rms_norm") == "layer_norm" else 2 * h
    attention = (3 * h * h + (3 * h if v.bool("qkv_bias", False) else 0) + h * h + h
                 + (2 * h if v.bool("qk_normalization", True) else 0))
    embed = h + v.int("num_channels", 3) * p * p * h + h + ((v.int("image_size", 224) // p) ** 2 + 1) * h
    return VisionTower(kind="intern-vit", layers=v.int("num_hidden_layers", 48),
                       layer_params=attention + norms + 2 * h * i + i + h + 2 * h, embed_params=embed, hidden_size=h,
                       heads=v.int("num_attention_heads", 25), attention_params=attention)


def pixtral(v: Cfg) -> VisionTower:
    """PixtralVisionModel: patch conv without bias CP^2 H, ln_pre RMSNorm H (2-D RoPE: no position table);
    L layers of two RMSNorms 2H, q, k, v, o without bias 4H^2, gated SiLU MLP without bias 3HI."""
    h, i, p = v.int("hidden_size", 1024), v.int("intermediate_size", 4096), v.int("patch_size", 16)
    return VisionTower(kind="pixtral", layers=v.int("num_hidden_layers", 24),
                       layer_params=4 * h * h + 3 * h * i + 2 * h,
                       embed_params=v.int("num_channels", 3) * p * p * h + h, hidden_size=h)


def moonvit(v: Cfg) -> VisionTower:
    """MoonViT (Kimi-VL): patch conv with bias CP^2 H + H, learned position grid init_pos_emb_height x
    init_pos_emb_width x H (plus 2-D RoPE), L ViT layers (wqkv and wo biased), final LayerNorm 2H."""
    h, i, p = v.int("hidden_size", 1152), v.int("intermediate_size", 4304), v.int("patch_size", 14)
    grid = v.int("init_pos_emb_height", 64) * v.int("init_pos_emb_width", 64)
    embed = v.int("num_channels", 3) * p * p * h + h + grid * h + 2 * h
    return VisionTower(kind="moonvit", layers=v.int("num_hidden_layers", 27), layer_params=vit_layer(h, i),
                       embed_params=embed, hidden_size=h)


def qwen2_vl(v: Cfg, text_hidden: int) -> VisionTower:
    """Qwen2-VL: width `embed_dim` (its `hidden_size` is the text model's), Conv3d without bias C x T x P^2 x H;
    ViT layers with LayerNorms and a QuickGELU MLP of mlp_ratio x H; merger LayerNorm 2H + fc1 + fc2 to D."""
    h = v.int("embed_dim", 1280)
    p, t = v.int("patch_size", 14), v.int("temporal_patch_size", 2)
    out = v.int("hidden_size", text_hidden)
    return VisionTower(kind="qwen2-vl", layers=v.int("depth", 32), layer_params=vit_layer(h, h * v.int("mlp_ratio", 4)),
                       embed_params=v.int("in_channels", v.int("in_chans", 3)) * t * p * p * h,
                       merger_params=_merger(h, out, v.int("spatial_merge_size", 2), 2 * h), hidden_size=h)


def qwen2_5_vl(v: Cfg, text_hidden: int) -> VisionTower:
    """Qwen2.5-VL: Conv3d without bias C x T x P^2 x H; blocks of two RMSNorms 2H, qkv 3H^2 + 3H,
    proj H^2 + H, gated SiLU MLP with biases 3HI + 2I + H; merger RMSNorm H + fc1 + fc2 to D."""
    h, i = v.int("hidden_size", 1280), v.int("intermediate_size", 3420)
    p, t = v.int("patch_size", 14), v.int("temporal_patch_size", 2)
    channels = v.int("in_channels", v.int("in_chans", 3))
    out = v.int("out_hidden_size", text_hidden)
    return VisionTower(kind="qwen2.5-vl", layers=v.int("depth", 32),
                       layer_params=4 * h * h + 3 * h * i + 2 * i + 7 * h, embed_params=channels * t * p * p * h,
                       merger_params=_merger(h, out, v.int("spatial_merge_size", 2), h), hidden_size=h)


def qwen3_vl(v: Cfg, text_hidden: int) -> VisionTower:
    """Qwen3-VL and Qwen3.5: Conv3d with bias C x T x P^2 x H + H, position table num_position_embeddings x H,
    ViT layers, merger LayerNorm 2H + fc1 + fc2 to D, and one more merger per `deepstack_visual_indexes` entry
    whose LayerNorm runs after the shuffle (2 x s^2 H)."""
    h, i = v.int("hidden_size", 1152), v.int("intermediate_size", 4304)
    p, t = v.int("patch_size", 16), v.int("temporal_patch_size", 2)
    merge = v.int("spatial_merge_size", 2)
    out = v.int("out_hidden_size", text_hidden)
    deepstack = v.get("deepstack_visual_indexes", [])
    if not isinstance(deepstack, list):
        deepstack = []
    embed = v.int("in_channels", 3) * t * p * p * h + h + v.int("num_position_embeddings", 2304) * h
    mergers = _merger(h, out, merge, 2 * h) + len(deepstack) * _merger(h, out, merge, 2 * h * merge * merge)
    return VisionTower(kind="qwen3-vl", layers=v.int("depth", 27), layer_params=vit_layer(h, i),
                       embed_params=embed, merger_params=mergers, hidden_size=h, deepstack_levels=len(deepstack))


def llama4(v: Cfg, text_hidden: int) -> VisionTower:
    """Llama4VisionModel (defaults: Llama4VisionConfig): patch linear without bias H x CP^2, class embedding H,
    (image/P)^2 + 1 positions, layernorm_pre and layernorm_post 4H, L ViT layers (attention width heads x
    H/heads), vision_adapter fc1 [projector_input_dim -> I] and fc2 [projector_output_dim^2] without bias (the
    projector into the text model is `projectors.llama4`)."""
    h, i = v.int("hidden_size", 768), v.int("intermediate_size", 5632)
    heads, p = v.int("num_attention_heads", 16), v.int("patch_size", 14)
    width = heads * (h // heads)
    layer = 3 * (width * h + width) + (h * width + h) + (i * h + i) + (h * i + h) + 4 * h
    out = v.int("projector_output_dim", 4096)
    embed = h * v.int("num_channels", 3) * p * p + h + ((v.int("image_size", 448) // p) ** 2 + 1) * h + 4 * h
    adapter = v.int("projector_input_dim", 4096) * i + out * out
    return VisionTower(kind="llama4", layers=v.int("num_hidden_layers", 34), layer_params=layer,
                       embed_params=embed, merger_params=adapter, hidden_size=h)


def gemma4(v: Cfg, text_hidden: int) -> VisionTower:
    """Gemma4VisionModel: patch input_proj [H, 3P^2], position table [2, positions, H]; layers of q, k, v, o
    without bias (heads and kv_heads of head_dim), q/k norms, gated MLP 3HI, four norms 4H, and 4 clip scalars
    per linear with `use_clipped_linears`; std_bias/std_scale 2H with `standardize`; the multimodal
    embedder's projection [D, output_proj_dims]."""
    h, i = v.int("hidden_size"), v.int("intermediate_size")
    heads = v.int("num_attention_heads")
    kv_heads, head_dim = v.int("num_key_value_heads", heads), v.int("head_dim", h // heads)
    p = v.int("patch_size")
    layer = (2 * h * heads * head_dim + 2 * h * kv_heads * head_dim + 2 * head_dim + 3 * h * i + 4 * h
             + (4 * 7 if v.bool("use_clipped_linears", False) else 0))
    embed = h * 3 * p * p + 2 * v.int("position_embedding_size") * h + (2 * h if v.bool("standardize", False) else 0)
    return VisionTower(kind="gemma4", layers=v.int("num_hidden_layers"), layer_params=layer, embed_params=embed,
                       merger_params=text_hidden * v.int("output_proj_dims", h), hidden_size=h)
