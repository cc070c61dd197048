"""Regenerate profiles/*.yaml from published config.json files (dev tool; not run in CI).

Usage: python docs/dev/make_profiles.py /path/to/hf-configs
Each profile embeds the config so kvcalc works offline; the header (name, aliases, hf_repo) comes first so
alias look-ups read only the header lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

# file stem in the configs folder -> (profile name, aliases, Hub repo id)
PROFILES: dict[str, tuple[str, list[str], str]] = {
    "meta-llama__Llama-3.1-8B": (
        "llama-3.1-8b",
        ["llama-8b", "llama3-8b", "llama-3-8b", "llama3.1-8b"],
        "meta-llama/Llama-3.1-8B",
    ),
    "meta-llama__Llama-3.1-70B": (
        "llama-3.1-70b",
        ["llama-70b", "llama3-70b", "llama-3-70b", "llama3.1-70b"],
        "meta-llama/Llama-3.1-70B",
    ),
    "meta-llama__Llama-3.1-405B": (
        "llama-3.1-405b",
        ["llama-405b", "llama3-405b", "llama3.1-405b"],
        "meta-llama/Llama-3.1-405B",
    ),
    "meta-llama__Llama-2-7b-hf": ("llama-2-7b", ["llama2-7b"], "meta-llama/Llama-2-7b-hf"),
    "meta-llama__Llama-2-13b-hf": ("llama-2-13b", ["llama2-13b"], "meta-llama/Llama-2-13b-hf"),
    "meta-llama__Llama-2-70b-hf": ("llama-2-70b", ["llama2-70b"], "meta-llama/Llama-2-70b-hf"),
    "meta-llama__Llama-4-Scout-17B-16E-Instruct": (
        "llama-4-scout",
        ["llama4-scout", "llama-4-scout-17b-16e"],
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    ),
    "meta-llama__Llama-4-Maverick-17B-128E-Instruct": (
        "llama-4-maverick",
        ["llama4-maverick", "llama-4-maverick-17b-128e"],
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
    ),
    "Qwen__Qwen2.5-1.5B": ("qwen2.5-1.5b", ["qwen-1.5b"], "Qwen/Qwen2.5-1.5B"),
    "Qwen__Qwen2.5-7B": ("qwen2.5-7b", ["qwen-7b"], "Qwen/Qwen2.5-7B"),
    "Qwen__Qwen2.5-32B": ("qwen2.5-32b", [], "Qwen/Qwen2.5-32B"),
    "Qwen__Qwen2.5-72B": ("qwen2.5-72b", ["qwen-72b"], "Qwen/Qwen2.5-72B"),
    "Qwen__Qwen3-8B": ("qwen3-8b", [], "Qwen/Qwen3-8B"),
    "Qwen__Qwen3-32B": ("qwen3-32b", [], "Qwen/Qwen3-32B"),
    "Qwen__Qwen3-30B-A3B": ("qwen3-30b-a3b", ["qwen3-30b"], "Qwen/Qwen3-30B-A3B"),
    "Qwen__Qwen3-235B-A22B": ("qwen3-235b-a22b", ["qwen3-235b"], "Qwen/Qwen3-235B-A22B"),
    "Qwen__Qwen3-Next-80B-A3B-Thinking": (
        "qwen3-next-80b-a3b",
        ["qwen3-next", "qwen3-next-80b"],
        "Qwen/Qwen3-Next-80B-A3B-Thinking",
    ),
    "Qwen__Qwen3.5-35B-A3B": ("qwen3.5-35b-a3b", ["qwen3.5-35b"], "Qwen/Qwen3.5-35B-A3B"),
    "deepseek-ai__DeepSeek-V3": ("deepseek-v3", ["deepseek"], "deepseek-ai/DeepSeek-V3"),
    "deepseek-ai__DeepSeek-R1": ("deepseek-r1", ["r1"], "deepseek-ai/DeepSeek-R1"),
    "deepseek-ai__DeepSeek-Coder-V2-Lite-Base": (
        "deepseek-v2-lite",
        ["deepseek-coder-v2-lite"],
        "deepseek-ai/DeepSeek-Coder-V2-Lite-Base",
    ),
    "moonshotai__Kimi-K2-Instruct": ("kimi-k2", ["kimi-k2-instruct"], "moonshotai/Kimi-K2-Instruct"),
    "google__gemma-2-9b-it": ("gemma-2-9b", ["gemma2-9b", "gemma-2-9b-it"], "google/gemma-2-9b-it"),
    "google__gemma-4-26B-A4B": ("gemma-4-26b-a4b", ["gemma4-26b", "gemma-4-26b"], "google/gemma-4-26B-A4B"),
    "mistralai__Mistral-7B-Instruct-v0.1": (
        "mistral-7b",
        ["mistral-7b-v0.1", "mistral-7b-instruct"],
        "mistralai/Mistral-7B-Instruct-v0.1",
    ),
    "mistralai__Mixtral-8x7B-v0.1": ("mixtral-8x7b", ["mixtral"], "mistralai/Mixtral-8x7B-v0.1"),
    "mistralai__Mixtral-8x22B-v0.1": ("mixtral-8x22b", [], "mistralai/Mixtral-8x22B-v0.1"),
    "microsoft__Phi-3-mini-4k-instruct": (
        "phi-3-mini",
        ["phi3-mini", "phi-3-mini-4k"],
        "microsoft/Phi-3-mini-4k-instruct",
    ),
    "openai-community__gpt2": ("gpt2", ["gpt-2"], "openai-community/gpt2"),
    "openai__gpt-oss-20b": ("gpt-oss-20b", [], "openai/gpt-oss-20b"),
    "openai__gpt-oss-120b": ("gpt-oss-120b", [], "openai/gpt-oss-120b"),
    "tiiuae__falcon-7b-instruct": ("falcon-7b", ["falcon-7b-instruct"], "tiiuae/falcon-7b-instruct"),
    "tiiuae__falcon-40b": ("falcon-40b", [], "tiiuae/falcon-40b"),
    "ai21labs__Jamba-v0.1": ("jamba-v0.1", ["jamba"], "ai21labs/Jamba-v0.1"),
    "nvidia__Nemotron-H-56B-Base-8K": ("nemotron-h-56b", ["nemotron-h"], "nvidia/Nemotron-H-56B-Base-8K"),
    "nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": (
        "nemotron-3-nano-30b-a3b",
        ["nemotron-3-nano", "nemotron-nano-30b"],
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    ),
}


def main(config_dir: str, out_dir: str = "profiles") -> None:
    out = Path(out_dir)
    out.mkdir(exist_ok=True)
    for stem, (name, aliases, repo) in PROFILES.items():
        config = json.loads((Path(config_dir) / f"{stem}.config.json").read_text())
        header = (
            f"# kvcalc profile: the config.json of {repo}, embedded so kvcalc works offline.\n"
            f"name: {name}\n"
            f"aliases: [{', '.join(aliases)}]\n"
            f"hf_repo: {repo}\n"
            f"source: https://huggingface.co/{repo}/blob/main/config.json\n"
        )
        body = yaml.safe_dump({"config": config}, sort_keys=False, width=120)
        (out / f"{name}.yaml").write_text(header + body)
        print(f"wrote {out / name}.yaml")


if __name__ == "__main__":
    main(*sys.argv[1:])
