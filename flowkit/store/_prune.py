"""Keeping the run store small: pruning old runs, by hand or by a retention period."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import datetime, timedelta

__all__ = ["FINAL_TYPES", "MAX_AGE", "parse_age", "prune", "retention"]

FINAL_TYPES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
MAX_AGE = timedelta(days=36500)
"""The longest age taken (about 100 years): beyond it, dates stop being representable."""
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"\s*(\d+)\s*([smhdw])\s*", re.IGNORECASE)


def parse_age(text: str) -> timedelta:
    """An age such as ``90s``, ``30m``, ``12h``, ``30d`` or ``2w``.

    Raises:
        ValueError: ``text`` is not a whole number above 0 followed by one of the units
            ``s``, ``m``, ``h``, ``d``, ``w``, or it is over ``MAX_AGE``.
    """
    match = _AGE.fullmatch(text)
    if match is None or int(match[1]) == 0:
        raise ValueError(
            f"{text!r} is not an age: write a whole number above 0 and a unit, "
            "s, m, h, d or w, such as 30d"
        )
    count, unit = int(match[1]), _UNITS[match[2].lower()]
    if count > MAX_AGE / timedelta(**{unit: 1}):
        raise ValueError(f"{text!r} is longer than flowkit keeps track of (36500d); give less")
    return timedelta(**{unit: count})


def retention() -> timedelta | None:
    """``FLOWKIT_STORE_RETENTION``: how long runs are kept; ``None`` (unset) for ever.

    Raises:
        ValueError: It is set, and not an age ``parse_age`` takes.
    """
    raw = os.environ.get("FLOWKIT_STORE_RETENTION", "")
    if not raw.strip():
        return None
    try:
        return parse_age(raw)
    except ValueError as exc:
        raise ValueError(f"FLOWKIT_STORE_RETENTION: {exc}; or unset it to keep every run") from None


_ROOTS = f"""
    SELECT id FROM runs WHERE parent_id IS NULL AND created < ?
    AND state_type IN ({", ".join(f"'{t}'" for t in FINAL_TYPES)})
"""


def prune(db: sqlite3.Connection, before: datetime) -> int:
    """Delete the finished root runs created before ``before``, with their task runs,
    states, logs and artifacts, and the artifacts made outside any run before then, in
    one transaction. Unfinished runs are kept whatever their age.

    Returns:
        How many root runs (flow runs, and tasks run outside flows) were deleted.

    Raises:
        sqlite3.OperationalError: Another connection held the write lock past the busy
            timeout (nothing was deleted).
    """
    cutoff = (before.timestamp(),)
    db.execute("BEGIN IMMEDIATE")  # one transaction: the roots cannot change under it
    try:
        count: int = db.execute(f"SELECT count(*) FROM ({_ROOTS})", cutoff).fetchone()[0]
        db.execute(f"DELETE FROM states WHERE root_id IN ({_ROOTS})", cutoff)
        db.execute(f"DELETE FROM logs WHERE root_id IN ({_ROOTS})", cutoff)
        db.execute(f"DELETE FROM artifacts WHERE root_id IN ({_ROOTS})", cutoff)
        db.execute("DELETE FROM artifacts WHERE root_id IS NULL AND created < ?", cutoff)
        db.execute(f"DELETE FROM transactions WHERE root_id IN ({_ROOTS})", cutoff)
        db.execute(f"DELETE FROM runs WHERE root_id IN ({_ROOTS})", cutoff)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return count
