"""What a user passes, checked and converted into kvcalc's units, the same for the CLI's text and the API's Python
values: token counts (8192, 1e6, "32k" = 32,000, "32K" = 32,768, "1M"), sizes ("0.5GiB"), durations ("500ms",
"2m", 0.5 = seconds), rates, fractions, whole numbers, flags and comma-separated lists. Every bad value is an
InputError naming the argument, never a TypeError. Parsing only: no arithmetic beyond unit conversion.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from kvcalc.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\s*(us|ms|s|m|min|h)?\s*$", re.IGNORECASE)
_DURATION_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_WEEK_S = 7 * 86400


def text(value: Any, what: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def user_path(value: Any, what: str = "path") -> Path:
    """A path as the user typed it with `~` / `~user` expanded; an unknown user's home is an InputError (pathlib
    raises RuntimeError)."""
    from pathlib import Path

    path = Path(value)
    try:
        return path.expanduser()
    except RuntimeError:
        raise InputError(f"{what} '{value}': no home directory for '{path.parts[0]}'; give the full path") from None


def optional_text(value: Any, what: str) -> str | None:
    return None if value is None else text(value, what)


#: Characters git refuses in a ref name (`git check-ref-format`), plus whitespace and the backslash.
_REF_FORBIDDEN = frozenset("~^:?*[\\ \t\n\r")


def revision(value: Any) -> str | None:
    """A Hub revision (`--revision`): a branch, a tag (`v1.0`, `refs/pr/1`) or a commit hash, as git names refs:
    no '..', no leading or trailing '/', no empty component, none of ~^:?*[\\ or whitespace or control
    characters. huggingface_hub joins it onto its cache folder (`refs/<revision>`), so an absolute path or a '..'
    would read any file on the machine."""
    if value is None:
        return None
    name = text(value, "revision")
    bad = (".." in name or name.startswith("/") or name.endswith("/") or "//" in name or len(name) > 256
           or any(c in _REF_FORBIDDEN or ord(c) < 32 or ord(c) == 127 for c in name))
    if bad:
        raise InputError(f"--revision {name!r}: not a Hub revision; give a branch, tag or commit hash "
                         "(main, v1.0, refs/pr/1, a 40-character sha)")
    return name


def count(value: Any, what: str) -> int:
    """A whole number: an int, an integral float, or its text ('4')."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return value


def optional_count(value: Any, what: str) -> int | None:
    return None if value is None else count(value, what)


def number(value: Any, what: str, *, low: float = 0.0, high: float = 1e18, low_open: bool = True) -> float:
    """A finite number (or its text) in (low, high] (or [low, high] with `low_open=False`)."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    above = result > low if low_open else result >= low
    if not math.isfinite(result) or not above or result > high:
        bracket = "(" if low_open else "["
        raise InputError(f"{what} must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
    return result


def fraction(value: Any, what: str) -> float:
    """A number in (0, 1] (`number`, with one message whatever is wrong)."""
    try:
        return number(value, what, low=0.0, high=1.0)
    except InputError:
        raise InputError(f"{what} must be a number in (0, 1], got {value!r}") from None


def tokens(value: Any, what: str = "context") -> int | None:
    """None, a whole number (8192, 1e6) or the CLI's text ('32k' = 32,000, '32K' = 32,768, '1M')."""
    from kvcalc.units import parse_tokens

    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{what} must be a token count such as 8192, 1e6, '32K' or '1M', got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{what} {value!r} is not a whole number of tokens")
        value = int(value)
    if not isinstance(value, (int, str)):
        raise InputError(f"{what} must be a token count such as 8192, 1e6, '32K' or '1M', got {value!r}")
    return parse_tokens(value, what)


def size(value: Any, what: str, minimum: int = 0) -> int | None:
    """None, bytes (an int) or a size such as '0.5GiB' or '80GB'."""
    from kvcalc.units import parse_bytes

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{what} must be bytes (an int) or a size such as '0.5GiB', got {value!r}")
    return parse_bytes(value, what, minimum=minimum)


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be True or False, got {value!r}")
    return value


def seconds(value: Any, what: str, *, allow_zero: bool = False) -> float:
    """A duration: '500ms', '1s', '2m', '1h', '50us', or a number of seconds; above 0 (or 0 with
    `allow_zero`) and at most a week."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a duration such as 500ms or 2s, got {value!r}")
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise InputError(f"{what} '{value}' is not a duration; use e.g. 500ms, 1s, 2m or 0.5 (seconds)")
        result = float(match.group(1)) * _DURATION_SCALE[(match.group(2) or "").lower()]
    if not math.isfinite(result) or result > _WEEK_S or (result <= 0 and not allow_zero) or result < 0:
        raise InputError(f"{what} '{value}' must be {'' if allow_zero else 'above 0 and '}at most a week")
    return result


def optional_seconds(value: Any, what: str, *, allow_zero: bool = False) -> float | None:
    return None if value is None else seconds(value, what, allow_zero=allow_zero)


def rate(value: Any, what: str = "--request-rate") -> float | None:
    """Requests per second: a positive number, or 'inf' / infinity (every request at once)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return float("inf")
    if isinstance(value, float) and value == float("inf"):
        return value
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number of requests/s or 'inf', got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} '{value}' is not a number of requests/s or 'inf'") from None
    if not 0 < result < float("inf"):
        raise InputError(f"{what} must be positive (or inf), got '{value}'")
    return result


def bandwidth(value: Any, what: str = "--ram-bandwidth") -> float | None:
    """A bandwidth in GB/s (1e9 B/s): a number or text such as '89.6' or '120GB/s'; bytes/s out."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) * 1e9
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:GB/s|GB|G)?\s*", str(value), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"{what} '{value}' is not a bandwidth in GB/s (e.g. 89.6 or 120GB/s)")
    return float(match.group(1)) * 1e9


def names(value: Any, what: str) -> list[str] | None:
    """'h100,h200' or ['h100', 'h200'] -> ['h100', 'h200']; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{what} must be a comma-separated list or a list of names, got {value!r}")
    out = [text(item, what) for item in items if not (isinstance(item, str) and not item.strip())]
    if not out:
        raise InputError(f"{what} is empty; give a comma-separated list")
    return out


def rates_list(value: Any, what: str = "--acceptance") -> tuple[float, ...] | None:
    """'0.8,0.6,0.4' or a sequence of numbers -> (0.8, 0.6, 0.4)."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(float(part) for part in parts if not (isinstance(part, str) and not part.strip()))
    except (TypeError, ValueError):
        raise InputError(f"{what} takes rates separated by commas, like 0.8,0.6,0.4; got '{str(value)[:40]}'") from None


def positive_ints(value: Any, what: str) -> tuple[int, ...] | None:
    """'1,8,32' (token counts allowed: '2k') or a sequence of whole numbers -> (1, 8, 32), all positive."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    numbers = tuple(tokens(p.strip() if isinstance(p, str) else p, what) or 0 for p in parts
                    if not (isinstance(p, str) and not p.strip()))
    if not numbers or min(numbers) <= 0:
        raise InputError(f"{what} needs positive whole numbers separated by commas, e.g. 1,8,32; got '{value}'")
    return numbers


#: Most requests `--requests` may list (longer workloads go through --trace).
MAX_REQUESTS = 10_000


def requests(value: Any, what: str = "--requests") -> list[tuple[int, int]]:
    """'1200,350,8000' (total tokens) or '1000:200,300:50' (prompt:output), or a list of totals / (prompt,
    output) pairs -> [(prompt, output)]."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{what} needs token counts, e.g. 1200,350,8000 or 1000:200,300:50")
    out = [_request(item, what) for item in items if not (isinstance(item, str) and not item.strip())]
    if not out:
        raise InputError(f"{what} needs token counts, e.g. 1200,350,8000 or 1000:200,300:50")
    if len(out) > MAX_REQUESTS:
        raise InputError(f"{what} lists {len(out):,} requests; at most {MAX_REQUESTS:,} (use --trace)")
    return out


def _request(item: Any, what: str) -> tuple[int, int]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        prompt, output = item
        return tokens(prompt, what) or 0, 0 if output in (0, "0") else tokens(output, f"{what} output") or 0
    if isinstance(item, str) and ":" in item:
        prompt, _, output = item.strip().partition(":")
        return tokens(prompt, what) or 0, 0 if output.strip() in ("", "0") else tokens(output, f"{what} output") or 0
    return tokens(item.strip() if isinstance(item, str) else item, what) or 0, 0
