"""Dev check: kvcalc's parameter count vs the one transformers' own modeling code gives, config by config.

Not run in CI (needs torch + transformers). Usage, from the repo root:

    /tmp/tfvenv/bin/python docs/dev/check_params.py [CONFIG_DIR] [--kvcalc-python PATH]

For every `*.json` in CONFIG_DIR (default $KVCALC_REFERENCE/hf-configs; the reference configs are not
part of this repository):

- kvcalc side: `params_total` (text model; MTP and vision excluded), `params_mtp`, `vision_params` and the
  per-layer counts and kinds, computed in a subprocess with kvcalc's own interpreter (default
  `<repo>/.venv/bin/python`), so this venv only needs torch + transformers.
- transformers side: the config class for `model_type` (`from_dict`, as `from_pretrained` does; no
  `trust_remote_code`, `auto_map` is ignored), the text config of multimodal wrappers (`get_text_config()`),
  then `AutoModelForCausalLM.from_config` under `torch.device("meta")` (no memory allocated). Counted: every
  parameter (tied ones once) plus persistent buffers, i.e. what `state_dict()` saves — DeepSeek-V3's
  `e_score_correction_bias` is a persistent buffer in transformers and a tensor of the checkpoint; the note
  column says when buffers were counted. `quantization_config` is dropped (counts are of the unquantized
  model). `kimi_k2` is loaded as `deepseek_v3`, as transformers' Kimi-K2.5 config does for its text part.
  Configs whose model_type has no native transformers class are skipped with a message.
- per layer: each kvcalc layer's count against the same decoder layer of the transformers model (the first
  ModuleList with one entry per layer), and kvcalc's attention kind (full / sliding / chunked) against the
  config's `layer_types` where transformers sets them; a mismatch there counts even if the totals agree.
- vision: where the config has a `vision_config`, the full model class (`architectures[0]`) is built too and
  its count minus the text model's is compared with kvcalc's `vision_params`.

MTP layers are printed for information only (transformers does not build them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("KVCALC_REFERENCE", "reference")) / "hf-configs"
REPO = Path(__file__).resolve().parents[2]

#: model_type aliases transformers resolves itself elsewhere (Kimi_K25Config: kimi_k2 text -> deepseek_v3).
TF_MODEL_TYPE = {"kimi_k2": "deepseek_v3"}

_KVCALC_SNIPPET = r"""
import json, sys
from pathlib import Path
from kvcalc.calc.params import params_mtp, params_total
from kvcalc.sources.hf_config import model_from_config
out = {}
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    try:
        model = model_from_config(json.loads(path.read_text()), model_id=path.name, warn=lambda m: None)
        out[path.name] = {"total": params_total(model), "mtp": params_mtp(model),
                          "vision": model.vision_params, "notes": list(model.notes),
                          "layers": [layer.params for layer in model.layers],
                          "kinds": [layer.kind for layer in model.layers]}
    except Exception as exc:  # report, don't stop
        out[path.name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def kvcalc_counts(config_dir: Path, python: str) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [python, "-c", _KVCALC_SNIPPET, str(config_dir)], capture_output=True, text=True, check=True, cwd=REPO
    )
    result: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    return result


def state_dict_numel(model: Any) -> tuple[int, int]:
    """(parameters, persistent buffers) in elements, each tensor once (tied weights share one Parameter)."""
    params = sum(p.numel() for p in model.parameters())  # parameters() skips duplicates
    seen: set[int] = set()
    buffers = 0
    for module in model.modules():
        for name, buf in module._buffers.items():
            if buf is None or name in module._non_persistent_buffers_set or id(buf) in seen:
                continue
            seen.add(id(buf))
            buffers += buf.numel()
    return params, buffers


def decoder_layers(model: Any, num_layers: int) -> Any:
    """The model's list of decoder layers: the first ModuleList with one entry per layer."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            return module
    return None


#: transformers `layer_types` value -> kvcalc LayerSpec.kind, for the attention layer kinds.
_KINDS = {"full_attention": "full", "sliding_attention": "sliding", "chunked_attention": "chunked"}


def transformers_counts(raw: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    raw = {k: v for k, v in raw.items() if k not in ("quantization_config", "auto_map")}
    model_type = TF_MODEL_TYPE.get(str(raw.get("model_type")), str(raw.get("model_type")))
    if model_type not in CONFIG_MAPPING:
        return {"skip": f"no native transformers class for model_type '{raw.get('model_type')}'"}
    raw["model_type"] = model_type
    config = CONFIG_MAPPING[model_type].from_dict(raw)
    text = config.get_text_config()
    with torch.device("meta"):
        try:
            text_model = AutoModelForCausalLM.from_config(text)
        except ValueError as exc:
            return {"skip": f"no causal-LM class for '{text.model_type}': {exc}"[:160]}
    params, buffers = state_dict_numel(text_model)
    out: dict[str, Any] = {"total": params + buffers, "buffers": buffers, "class": type(text_model).__name__}
    layers = decoder_layers(text_model, int(text.num_hidden_layers))
    if layers is not None:
        out["layers"] = [sum(state_dict_numel(layer)) for layer in layers]
    out["layer_types"] = getattr(text, "layer_types", None)
    if isinstance(raw.get("vision_config"), dict):
        arch = (raw.get("architectures") or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        if cls is None:
            out["vision_skip"] = f"no class {arch}"
        else:
            with torch.device("meta"):
                full = cls(config)
            full_params, full_buffers = state_dict_numel(full)
            out["vision"] = full_params + full_buffers - out["total"]
    return out


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Markdown-style table: model left-aligned, the three number columns right-aligned, then any note."""
    numeric = 4  # model + kvcalc + transformers + diff
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(numeric)]
    for n, row in enumerate([header, *rows]):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:numeric], widths[1:], strict=True)]
        print(" | ".join(cells + list(row[numeric:])))
        if n == 0:
            print("-|-".join(["-" * w for w in widths] + ["-" * 4] * (len(header) - numeric)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--kvcalc-python", default=str(REPO / ".venv" / "bin" / "python"))
    args = parser.parse_args()

    import transformers

    kv = kvcalc_counts(args.config_dir, args.kvcalc_python)
    rows: list[tuple[str, str, str, str, str]] = []
    vision_rows: list[tuple[str, str, str, str]] = []
    mismatches = 0
    for path in sorted(args.config_dir.glob("*.json")):
        name = path.name.removesuffix(".config.json").removesuffix(".json")
        k = kv.get(path.name, {"error": "missing from kvcalc output"})
        try:
            t = transformers_counts(json.loads(path.read_text()))
        except Exception as exc:
            t = {"skip": f"transformers failed: {type(exc).__name__}: {exc}"[:200]}
        k_total = k.get("total")
        t_total = t.get("total")
        notes = []
        if "error" in k:
            notes.append(f"kvcalc: {k['error']}"[:120])
        if "skip" in t:
            notes.append(str(t["skip"]))
        if t.get("buffers"):
            notes.append(f"tf incl. {t['buffers']:,} persistent-buffer elems")
        k_layers, t_layers = k.get("layers"), t.get("layers")
        if k_layers is not None and t_layers is not None:
            bad = [i for i, (a, b) in enumerate(zip(k_layers, t_layers, strict=False)) if a != b]
            if bad or len(k_layers) != len(t_layers):
                notes.append(f"PER-LAYER MISMATCH at {bad[:5]} ({len(k_layers)} vs {len(t_layers)} layers)")
                mismatches += k_total == t_total  # count it even when the totals happen to agree
            else:
                notes.append("per-layer ok")
        t_types = t.get("layer_types")
        if t_types and k.get("kinds"):
            expected = [_KINDS.get(str(x)) for x in t_types]
            pairs = zip(k["kinds"], expected, strict=False)
            bad = [i for i, (a, b) in enumerate(pairs) if b is not None and a != b]
            if bad:
                first = bad[0]
                notes.append(f"LAYER-KIND MISMATCH at {bad[:5]}: {k['kinds'][first]} vs tf {t_types[first]}")
                mismatches += 1
            elif any(b is not None for b in expected):
                notes.append("kinds ok")
        if k.get("mtp"):
            notes.append(f"kvcalc MTP {k['mtp']:,} (not compared)")
        diff = ""
        if k_total is not None and t_total is not None:
            diff = f"{k_total - t_total:+,}" if k_total != t_total else "0"
            mismatches += k_total != t_total
        rows.append(
            (
                name,
                f"{k_total:,}" if k_total is not None else "-",
                f"{t_total:,}" if t_total is not None else "-",
                diff or "-",
                "; ".join(notes),
            )
        )
        if "vision" in t or "vision_skip" in t:
            kvis = k.get("vision")
            tvis = t.get("vision")
            vdiff = f"{kvis - tvis:+,}" if kvis is not None and tvis is not None and kvis != tvis else "0"
            vision_rows.append(
                (
                    name,
                    f"{kvis:,}" if kvis is not None else "-",
                    f"{tvis:,}" if tvis is not None else str(t.get("vision_skip")),
                    vdiff if tvis is not None else "-",
                )
            )

    print(f"transformers {transformers.__version__}; configs from {args.config_dir}\n")
    print_table(("model", "kvcalc", "transformers", "diff", "note"), rows)
    if vision_rows:
        print("\nvision encoder (+ projector)")
        print_table(("model", "kvcalc", "transformers", "diff"), vision_rows)
    print(f"\n{mismatches} text-model mismatch(es)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
