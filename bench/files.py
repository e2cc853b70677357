"""Files every stage writes and reads: atomic writes, and damaged files set aside.

A reader of the output folder never sees half a file (:func:`atomic_write_bytes`).
A file that is whole but cannot be read (a disk error, a hand edit, a file of another
program) is moved aside by :func:`set_aside`, never deleted, so the run it belongs to
is redone while what was in the file stays for a person to inspect.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def set_aside(path: Path, problem: str, consequence: str) -> Path | None:
    """Move the damaged file ``path`` to ``<name>.corrupt-<UTC time>`` beside it and warn.

    Args:
        path: the file that could not be read.
        problem: why, in a few words (the parser's message).
        consequence: what happens instead, e.g. "the run will be trained again".

    Returns:
        Where the file now is, or None when another process moved it first.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    log.warning(
        "%s cannot be read (%s); moved aside to %s (kept for inspection); %s",
        path,
        problem,
        aside.name,
        consequence,
    )
    return aside


def read_problem(error: Exception) -> str:
    """A one-line account of why a file could not be parsed (for :func:`set_aside`)."""
    errors = getattr(error, "errors", None)
    if callable(errors):  # pydantic's ValidationError: name the first bad field
        first = errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        return f"{where}: {first['msg']}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or in the folders it would be created
    in), or None when they can.

    The nearest existing ancestor must be a folder that accepts a new file: a probe file
    is created and removed there, which refuses read-only folders and file systems and
    kernel interfaces such as ``/proc`` whatever the permission bits say (they do not
    stop root).
    """
    existing = Path(os.path.abspath(folder))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".liteseg-bench-probe-"):
            pass
    except OSError as error:
        return f"{existing} does not accept new files ({error.strerror or error})"
    return None
