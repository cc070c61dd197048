"""Writing files atomically: a reader (or a crash) never sees half a file.

The text goes to a temporary file in the target's own folder (same file system, so the rename is atomic),
is flushed and fsync'ed, then `os.replace`d over the target (POSIX rename(2); on Windows MoveFileEx with
replace). On any failure the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str | bytes, *, mode: int = 0o644) -> Path:
    """Write `text` (str as UTF-8, or bytes) to `path` atomically; create missing parent folders.

    Returns the path written. Raises OSError when the folder cannot be written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(target.parent)
    return target


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: fsync the directory); a no-op where that is not possible."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
