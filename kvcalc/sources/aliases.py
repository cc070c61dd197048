"""Read the one-line `aliases: [a, b, c]` of a profile or hardware file without a YAML parse.

Name look-ups scan every shipped file's aliases; a regex over that one line is much cheaper than a YAML load
per file. Lines that are not a plain flow list of bare names return None, and callers fall back to YAML.
"""

from __future__ import annotations

import re

#: Compiled on first use (re caches it): a warm look-up reads the cached name index and never needs it.
_FLOW_LIST = r"(?m)^aliases:[ \t]*\[([^\]\[\n'\"#{}]*)\][ \t]*(?:#.*)?$"


def aliases_line(text: str) -> list[str] | None:
    """The names of `aliases: [a, b]` in `text`, lower-cased; [] if there is no aliases line; None if the
    line is there but not a simple flow list (quoted names, a block list ...)."""
    match = re.search(_FLOW_LIST, text)
    if match is not None:
        return [name.strip().lower() for name in match.group(1).split(",") if name.strip()]
    return None if re.search(r"^aliases:", text, re.MULTILINE) else []
