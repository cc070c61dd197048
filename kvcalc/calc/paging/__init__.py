"""Paged KV blocks and prefix caching, simulated the way the engines do it (PagedAttention, Kwon et al. 2023).

One job per module:
- tokens:    token sequences as runs (a shared system prompt, a conversation, unique text), compared exactly;
- groups:    how many blocks a request holds in one vLLM KV-cache group (full, sliding window, chunked, state);
- pool:      vLLM's block pool: reference counts, the free queue in LRU order, cached blocks and eviction;
- reuse:     each engine's reuse rule (vLLM's chain of full-block hashes, SGLang's radix tree) and cache salts;
- managers:  one engine's KV manager over a plan's pool (vLLM blocks per group; SGLang token cells);
- requests:  a static table: blocks, tail waste and contiguous waste per request;
- simulate:  a step-by-step trace (admit, grow, finish, preempt, evict) for an arrival order;
- prefill:   prefill FLOPs of a span of positions (what a cache hit saves);
- economics: prefix caching's cacheable tokens, memory, FLOPs, TTFT and money, tenant isolation, invalidation.
"""
