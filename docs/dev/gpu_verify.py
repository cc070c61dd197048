"""Raw measurements for docs/validation.md (dev script; run on a CUDA machine, not in CI).

One process measures, for each model, what `kvcalc verify` measures (bench/suite.py: weights, paged KV,
decode and prefill stacks, the transformers cross-check; the card's ceilings and the attention memory once),
after checking the benchmark's own kernels against references (bench/selfcheck.py). It writes the raw record
after every model, so a run cut short keeps what it measured. Predictions, errors and the calibration are
computed afterwards, without the GPU, by docs/dev/gpu_verify_report.py.

Usage: PYTHONPATH=. python3 docs/dev/gpu_verify.py OUT_DIR [--budget SECONDS] [--device cuda|cpu] [MODEL ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: (model, suite option changes). The first five are the issue's; the rest widen the held-out set.
#: The calibration set (gpu_verify_report.CALIBRATE) first, so a run cut short by its budget can still be fitted.
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("llama-3.1-8b", {"ceilings": True, "attention": True}),
    ("qwen3-30b-a3b", {}),
    ("gemma-2-9b", {}),
    ("mixtral-8x7b", {"stack": 2}),
    ("deepseek-v2-lite", {}),
    ("gpt-oss-20b", {}),
    ("llama-3.1-70b", {"stack": 2}),
    ("qwen3-8b", {}),
    ("mistral-7b", {}),
    ("phi-3-mini", {}),
]


def smi() -> str:
    """Clocks, power and temperature as nvidia-smi reads them (the card's state during the run)."""
    query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("models", nargs="*")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds; later models are skipped")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_intermixed_args()
    started = time.monotonic()
    deadline = started + args.budget

    import torch

    from kvcalc.bench.env import card_info, hardware_key_for
    from kvcalc.bench.selfcheck import run_checks
    from kvcalc.bench.suite import RAW_SCHEMA, SuiteOptions, run_suite
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.profiles import find_profile, load_profile
    from kvcalc.sources.resolve import load_model, read_config_file
    from kvcalc.spec.deployment import EngineSettings, Parallel

    device = args.device
    card = card_info() if device == "cuda" else {"name": "cpu", "sm_count": 1, "l2_cache_bytes": 0,
                                                 "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    card["nvidia_smi_start"] = smi()
    key = hardware_key_for(card["name"]) if device == "cuda" else "h100-sxm"  # CPU runs: any file will do
    if key is None:
        sys.exit(f"no hardware file describes {card['name']}; the suite needs one")
    gpu = find_gpu(key)
    out_path = Path(args.out_dir) / f"verify-{gpu.key}.json"
    wanted = [(m, {}) for m in args.models] if args.models else MODELS
    specs = {name: load_model(name) for name, _ in wanted}
    doc: dict[str, Any] = {"schema": RAW_SCHEMA, "card": card, "gpu": gpu.key, "command": " ".join(sys.argv),
                           "selfcheck": run_checks(list(specs.values()), device), "models": []}
    print(f"{card['name']} ({gpu.key}), torch {card.get('torch')}; selfcheck {doc['selfcheck']}", flush=True)
    for index, (name, changes) in enumerate(wanted):
        if time.monotonic() > deadline:
            doc["models"].append({"model": name, "skipped": "time budget"})
            continue
        options = SuiteOptions(**{"ceilings": index == 0, "attention": index == 0, **changes})
        plan = plan_deployment(specs[name], gpu, Parallel(), EngineSettings(), weight_format=PlainFormat("bf16"))
        profile = find_profile(name)
        config = dict(load_profile(profile)["config"]) if profile else read_config_file(Path(name))
        t0 = time.monotonic()
        raw = run_suite(plan, options, device=device, card=card, config=config, deadline=deadline,
                        progress=lambda m, n=name: print(f"[{time.monotonic() - started:6.1f}s] {n}: {m}", flush=True))
        print(f"{name}: {time.monotonic() - t0:.1f} s, notes {raw['notes']}", flush=True)
        doc["models"].append(raw)
        doc["elapsed_s"] = round(time.monotonic() - started, 1)
        out_path.write_text(json.dumps(doc, indent=1))
    card["nvidia_smi_end"] = smi()
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    out_path.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out_path} after {doc['elapsed_s']} s", flush=True)


if __name__ == "__main__":
    main()
