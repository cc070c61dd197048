"""Start-up time of the CLI against its floor: median wall time of `kvcalc fit llama-70b --gpu h100 --tp 4
--json` and of a bare `python -c "import typer"` (the framework kvcalc is built on), run alternately N times
each (default 21) so both see the same machine load, and their ratio. The standard: ratio <= 1.6.

The CLI runs as `python -m kvcalc` from this checkout's root (so it times this tree, whatever kvcalc is
installed elsewhere), with kvcalc's bytecode compiled first, as `pip install` leaves it.

Usage: python benchmarks/cli_speed.py [N]      (exit 1 when the ratio is above the standard)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

#: kvcalc's start-up may take at most this multiple of `python -c "import typer"`.
MAX_RATIO = 1.6
ROOT = Path(__file__).resolve().parents[1]


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
    return time.perf_counter() - start


def _summary(label: str, times: list[float]) -> str:
    return (
        f"{label}: median {1000 * statistics.median(times):.0f} ms, min {1000 * min(times):.0f} ms, "
        f"max {1000 * max(times):.0f} ms"
    )


def main(runs: int = 21) -> int:
    import compileall

    # pip compiles bytecode at install; do the same so PYTHONDONTWRITEBYTECODE=1 does not time the compiler
    compileall.compile_dir(str(ROOT / "kvcalc"), quiet=1)
    fit = [sys.executable, "-m", "kvcalc", "fit", "llama-70b", "--gpu", "h100", "--tp", "4", "--json"]
    floor = [sys.executable, "-c", "import typer"]
    for command in (fit, floor):  # warm the file cache (and kvcalc's data cache)
        _time(command)
    fit_times, floor_times = [], []
    for _ in range(runs):
        fit_times.append(_time(fit))
        floor_times.append(_time(floor))
    ratio = statistics.median(fit_times) / statistics.median(floor_times)
    print(f"python -m kvcalc {' '.join(fit[3:])} vs python -c 'import typer', {runs} runs each, alternating")
    print(_summary("kvcalc fit", fit_times))
    print(_summary("import typer", floor_times))
    print(f"ratio of medians {ratio:.2f} (standard: <= {MAX_RATIO})")
    return 0 if ratio <= MAX_RATIO else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 21))
