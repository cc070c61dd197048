"""`kvcalc gpus`."""

import sys

from kvcalc.cli.options import JsonOpt


def command(json_out: JsonOpt = False) -> None:
    """The accelerator catalogue (hardware/*.yaml): memory, bandwidth, dense peaks, price."""
    import json

    from kvcalc.cli.output import console
    from kvcalc.sources.hardware import list_gpus
    from kvcalc.spec.base import to_jsonable

    catalogue = list_gpus()
    if json_out:
        sys.stdout.write(json.dumps([to_jsonable(g) for g in catalogue], indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="GPUs (dense peaks; GiB = 2^30 B, TB/s = 1e12 B/s)", title_justify="left")
    for col in ("key", "name", "aliases", "memory GiB", "usable GiB", "TB/s", "bf16 TFLOP/s", "$/h"):
        table.add_column(col, justify="right" if col[0].isupper() or " " in col or col == "$/h" else "left")
    for g in catalogue:
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
    console().print(table)


