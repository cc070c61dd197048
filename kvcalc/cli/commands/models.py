"""`kvcalc models`."""

import sys

from kvcalc.cli.options import JsonOpt


def command(json_out: JsonOpt = False) -> None:
    """The shipped model profiles, with aliases and Hub repo ids."""
    import json

    from kvcalc.cli.output import console
    from kvcalc.sources.profiles import profile_headers

    headers = profile_headers()
    if json_out:
        rows = [
            {"name": h["name"], "aliases": h.get("aliases") or [], "hf_repo": h.get("hf_repo")}
            for h in headers
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="Model profiles (work offline)", title_justify="left")
    for col in ("profile", "aliases", "Hub repo"):
        table.add_column(col)
    for h in headers:
        table.add_row(h["name"], ", ".join(h.get("aliases") or []), h.get("hf_repo") or "")
    console().print(table)


