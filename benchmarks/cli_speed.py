"""Median wall time of `kvcalc fit llama-70b --gpu h100 --tp 4 --json` over N runs (default 20), run through
the installed `kvcalc` console script next to this Python (else `python -m kvcalc`).

Usage: python benchmarks/cli_speed.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def main(runs: int = 20) -> None:
    import compileall

    import kvcalc

    # pip compiles bytecode at install; do the same so PYTHONDONTWRITEBYTECODE=1 does not time the compiler
    compileall.compile_dir(str(Path(kvcalc.__file__).parent), quiet=1)
    script = Path(sys.executable).with_name("kvcalc")  # the console script, as a user runs it
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "kvcalc"]
    command = [*launcher, "fit", "llama-70b", "--gpu", "h100", "--tp", "4", "--json"]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    print(
        f"median {1000 * statistics.median(times):.0f} ms, min {1000 * min(times):.0f} ms, "
        f"max {1000 * max(times):.0f} ms over {runs} runs"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
