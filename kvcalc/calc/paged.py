"""Paged KV cache as vLLM's V1 engine lays it out: page sizes, KV-cache groups, block count, the
"GPU KV cache size" it reports and its "Maximum concurrency" (Kwon et al. 2023, PagedAttention; vLLM
`vllm/v1/core/kv_cache_utils.py`: get_kv_cache_groups, unify_kv_cache_spec_page_size,
_get_kv_cache_groups_uniform_page_size, get_num_blocks, _report_kv_cache_config,
get_max_concurrency_for_kv_cache_config; `vllm/v1/kv_cache_interface.py` for page sizes).

Worked example (gpt-oss-20b, tp=1, bf16 KV, block 16): 12 full + 12 sliding(128) layers, 8 KV heads x 64:
page = 2 x 16 x 8 x 64 x 2 = 32,768 B; two buckets of 12 -> group size S = 12, 2 groups; one block of
the pool costs page x S = 393,216 B, so A bytes give floor(A / 393,216) blocks. A request of L = 131,072
tokens with max_num_batched_tokens 8192 needs ceil(L/16) + ceil(min(127 + 8192, L)/16) + 1 = 8713 blocks.
"""

from __future__ import annotations

from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.layers import LayerSpec
from kvcalc.units import ceil_div


def version_tuple(version: str) -> tuple[int, ...]:
    """'0.19.0' -> (0, 19, 0); 'v0.21' -> (0, 21)."""
    parts = []
    for piece in version.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or (0,)


@record
class KvGroup:
    """One KV-cache group: layers of one spec sharing a block table (`members` are their layer indices)."""

    kind: str
    block_size: int
    window: int | None
    layers: int
    members: tuple[int, ...] = ()
    state_blocks: int = 1


@record
class KvPlan:
    """How the KV memory is cut into blocks, for the whole model."""

    layout: str  # "uniform" | "hybrid" | "none" | "flat" (engines without vLLM-style groups)
    page_bytes: int  # one layer's page (block) after page-size unification
    block_bytes: int  # bytes one block index costs on a worker holding every layer: page x S
    groups: list[KvGroup]
    padding_layers: int = 0

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    @property
    def min_block_size(self) -> int:
        return min(g.block_size for g in self.groups)

    def worker_block_bytes(self, layers: range) -> int:
        """Bytes one block index costs on a worker holding `layers` (a pipeline stage): page x the most
        members of one group on that worker (vLLM get_kv_cache_configs projects the global groups)."""
        if not self.groups:
            return self.block_bytes
        most = max(sum(1 for i in g.members if i in layers) for g in self.groups)
        return self.page_bytes * most


#: What a KV-cache spec is keyed by: the mixer's kind and its window (None: every token).
_Key = tuple[str, int | None]


def _layer_key(layer: LayerSpec) -> _Key:
    assert layer.mixer is not None
    return layer.mixer.kind, layer.mixer.window


def kv_plan(
    layers: list[LayerSpec],
    kv: StorageType,
    state: StorageType,
    conv: StorageType,
    *,
    tp: int,
    block_size: int,
    group_threshold: float = 1.5,
) -> KvPlan:
    """Group the model's KV layers the way vLLM's hybrid KV-cache manager does (kv_cache_utils 4.2):

    1. one spec for every layer -> one group (a block index costs page x layers);
    2. otherwise pages are unified (smaller-page specs get bigger blocks; Mamba pages padded up to the
       attention page after the attention block grows to cover it), layers bucketed by spec, group size
       S = min bucket, or max bucket when max < group_threshold x min (vLLM's version table: 1.0 before v0.12,
       1.25 from v0.12, 1.5 from v0.18; calc/engines/vllm_versions.py), each bucket
       split by striding into ceil(n / S) groups (`layers[i::k]`); a block index costs page x S bytes.
    """
    kv_layers = [layer for layer in layers if layer.mixer is not None]
    if not kv_layers:
        return KvPlan(layout="none", page_bytes=0, block_bytes=0, groups=[])
    attention = [layer for layer in kv_layers if layer.kind not in ("linear", "mamba")]
    recurrent = [layer for layer in kv_layers if layer.kind in ("linear", "mamba")]
    page, blocks = _unified_pages(attention, kv, tp, block_size)
    if recurrent:
        page, blocks = _with_state_pages(recurrent, page, blocks, state, conv, tp, block_size)
    buckets: dict[_Key, list[int]] = {}
    for layer in kv_layers:
        buckets.setdefault(_layer_key(layer), []).append(layer.index)
    if len(buckets) == 1:
        ((key, members),) = buckets.items()
        group = KvGroup(kind=key[0], block_size=blocks[key], window=key[1], layers=len(members),
                        members=tuple(members))
        return KvPlan(layout="uniform", page_bytes=page, block_bytes=page * len(members), groups=[group])
    return _hybrid_plan(buckets, blocks, page, group_threshold)


def _unified_pages(attention: list[LayerSpec], kv: StorageType, tp: int,
                   block_size: int) -> tuple[int, dict[_Key, int]]:
    """(the largest attention page, block size per spec): a spec's page = block_size x its KV bytes per token;
    a smaller page gets a proportionally bigger block so every page is the largest."""
    pages: dict[_Key, int] = {}
    blocks: dict[_Key, int] = {}
    for layer in attention:
        key = _layer_key(layer)
        assert layer.mixer is not None
        pages[key] = max(pages.get(key, 0), block_size * layer.mixer.kv_bytes_per_token(kv, tp))
        blocks[key] = block_size
    page = max(pages.values()) if pages else 0
    for key, p in pages.items():  # unify page sizes by growing the block of smaller pages
        if p and p < page:
            blocks[key] = block_size * page // p
    return page, blocks


def _with_state_pages(recurrent: list[LayerSpec], page: int, blocks: dict[_Key, int], state: StorageType,
                      conv: StorageType, tp: int, block_size: int) -> tuple[int, dict[_Key, int]]:
    """(page, block sizes) once recurrent states share the pages: the attention blocks grow by
    ceil(state page / page) when a state page is larger, and the page is at least the state page."""
    state_page = max(layer.mixer.state_bytes(state, tp, conv) for layer in recurrent if layer.mixer)
    if page and state_page > page:  # attention block grows until its page covers the state page
        scale = ceil_div(state_page, page)
        page *= scale
        blocks = {k: b * scale for k, b in blocks.items()}
    page = max(page, state_page)
    # a state takes one page whatever the length; its nominal block size (for the reported token
    # count) is the attention block it was aligned to
    blocks[(recurrent[0].kind, None)] = max(blocks.values(), default=block_size)
    return page, blocks


def _hybrid_plan(buckets: dict[_Key, list[int]], blocks: dict[_Key, int], page: int,
                 group_threshold: float) -> KvPlan:
    """Group size S = min bucket, or max bucket when max < group_threshold x min; each bucket split by
    striding into ceil(n / S) groups; a block index costs page x S."""
    smallest = min(len(m) for m in buckets.values())
    largest = max(len(m) for m in buckets.values())
    size = largest if largest < group_threshold * smallest else smallest
    groups: list[KvGroup] = []
    padding = 0
    for key, members in buckets.items():
        parts = ceil_div(len(members), size)
        padding += parts * size - len(members)
        for i in range(parts):
            strided = tuple(members[i::parts])
            groups.append(KvGroup(kind=key[0], block_size=blocks[key], window=key[1], layers=len(strided),
                                  members=strided))
    return KvPlan(
        layout="hybrid", page_bytes=page, block_bytes=page * size, groups=groups, padding_layers=padding
    )


def num_blocks(available_bytes: int, plan: KvPlan, layers: range | None = None) -> int:
    """floor(A / bytes per block index on the worker holding `layers` (all layers when None)); 0 when nothing
    is available."""
    per_index = plan.block_bytes if layers is None else plan.worker_block_bytes(layers)
    if per_index == 0 or available_bytes <= 0:
        return 0
    return available_bytes // per_index


def blocks_per_request(group: KvGroup, context: int, max_num_batched_tokens: int, cp: int = 1) -> int:
    """Blocks one request of `context` tokens needs in a group (vLLM `max_memory_usage_bytes` / page):
    full: ceil(L' / B), L' = ceil(L / cp); sliding w: ceil(min(w - 1 + mnbt, L) / B) + 1;
    chunked c: ceil(min(c + mnbt, L) / B); recurrent state: the group's `state_blocks` (vLLM MambaSpec:
    1 + speculative blocks, 2 + speculative blocks in prefix-caching "align" mode)."""
    if group.kind in ("linear", "mamba"):
        return group.state_blocks
    if group.kind == "sliding" and group.window is not None:
        return ceil_div(min(group.window - 1 + max_num_batched_tokens, context), group.block_size) + 1
    if group.kind == "chunked" and group.window is not None:
        return ceil_div(min(group.window + max_num_batched_tokens, context), group.block_size)
    return ceil_div(ceil_div(context, cp), group.block_size)


def request_blocks(plan: KvPlan, context: int, max_num_batched_tokens: int, cp: int = 1) -> int:
    """Blocks one request of `context` tokens needs across every KV group (each group counted once)."""
    return sum(blocks_per_request(g, context, max_num_batched_tokens, cp) for g in plan.groups)


def max_concurrency(
    blocks: int, plan: KvPlan, context: int, max_num_batched_tokens: int, cp: int = 1
) -> float:
    """C = num_blocks / sum over groups of blocks one request needs (each group counted once)."""
    needed = request_blocks(plan, context, max_num_batched_tokens, cp)
    return blocks / needed if needed else 0.0


def reported_tokens(
    blocks: int,
    plan: KvPlan,
    context: int,
    max_num_batched_tokens: int,
    rule: str,
    cp: int = 1,
) -> int:
    """vLLM's "GPU KV cache size: N tokens": rule "groups" (v0.10-v0.20) floor(blocks / groups) x smallest block
    size (x cp); rule "concurrency" (v0.21+, #41069) int(C x L)."""
    if not plan.groups:
        return 0
    if rule == "concurrency":
        return int(max_concurrency(blocks, plan, context, max_num_batched_tokens, cp) * context)
    return blocks // plan.num_groups * plan.min_block_size * cp
