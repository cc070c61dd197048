"""How a model is deployed: the parallel layout and the serving engine's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineName = Literal["vllm", "sglang", "trtllm", "llamacpp"]


class Parallel(BaseModel):
    """Parallel degrees. GPUs used = tp * pp * dp * cp; expert parallel (ep) splits experts over the
    tp * dp ranks of one stage instead of slicing every expert (vLLM `--enable-expert-parallel`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(default=1, ge=1, le=1024)
    pp: int = Field(default=1, ge=1, le=1024)
    dp: int = Field(default=1, ge=1, le=1024)
    ep: int = Field(default=1, ge=1, le=4096)
    cp: int = Field(default=1, ge=1, le=1024)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


class EngineSettings(BaseModel):
    """Engine knobs that change the memory budget. `None` means "the engine's default for this GPU/version"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: EngineName = "vllm"
    version: str | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    block_size: int | None = Field(default=None, gt=0)
    enforce_eager: bool = False
    kv_cache_dtype: str | None = None
    usage: Literal["serve", "llm"] = "serve"
    non_torch_bytes: int | None = Field(default=None, ge=0)
    activation_bytes: int | None = Field(default=None, ge=0)
    cuda_graph_bytes: int | None = Field(default=None, ge=0)
    mem_fraction_static: float | None = Field(default=None, gt=0, le=1)
    free_gpu_memory_fraction: float | None = Field(default=None, gt=0, le=1)
