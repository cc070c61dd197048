"""What ships with kvcalc: the model profiles (`kvcalc models`) and the accelerators (`kvcalc gpus`), as
records (`--json`, `kvcalc schema models|gpus`) and as tables."""

from __future__ import annotations

from typing import Any

from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec


@record
class ModelEntry:
    """One shipped profile: resolvable by `name`, any alias, or its Hub repo id, offline."""

    name: str
    aliases: list[str]
    hf_repo: str | None
    source: str | None
    """Where the embedded config.json was copied from."""


@record
class ModelsReport:
    models: list[ModelEntry]


@record
class GpusReport:
    gpus: list[GpuSpec]
    """Every field of each `hardware/<key>.yaml` (bytes, bytes/s, dense FLOP/s), sorted by key."""


def models_report(headers: list[dict[str, Any]]) -> ModelsReport:
    """The profiles' headers (`sources.profiles.profile_headers`) as a report."""
    return ModelsReport(
        models=[
            ModelEntry(
                name=str(h["name"]),
                aliases=[str(a) for a in h.get("aliases") or []],
                hf_repo=h.get("hf_repo"),
                source=h.get("source"),
            )
            for h in headers
        ]
    )


def render_models(out: Any, report: ModelsReport) -> None:
    from rich.table import Table

    table = Table(title="Model profiles (work offline; the Hub id resolves to the profile too)",
                  title_justify="left")
    for col in ("profile", "aliases", "Hub repo"):
        table.add_column(col, overflow="fold")
    for m in report.models:
        table.add_row(m.name, ", ".join(m.aliases), m.hf_repo or "")
    out.print(table)


def render_gpus(out: Any, report: GpusReport) -> None:
    from rich.table import Table

    table = Table(title="GPUs (dense peaks; GiB = 2^30 B, TB/s = 1e12 B/s; $/h = USD per GPU-hour, its date and "
                        "source in --json)", title_justify="left")
    numeric = ("memory GiB", "usable GiB", "TB/s", "bf16 TFLOP/s", "$/h")
    for col in ("key", "name", "aliases", *numeric):
        table.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
    for g in report.gpus:
        table.add_row(
            g.key,
            g.name,
            ", ".join(g.aliases),
            f"{g.memory_bytes / 2**30:.1f}",
            f"{g.usable_memory_bytes / 2**30:.2f}",
            f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
            f"{g.peak_flops.get('bf16', 0) / 1e12:.0f}",
            f"{g.price.usd_per_gpu_hour:.2f}" if g.price else "-",
        )
    out.print(table)
