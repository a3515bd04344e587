"""Context that callers put around runs: ``with flowkit.tags("etl"):``."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from ._engine.runs import current_tags as _tags

__all__ = ["current_tags", "tags"]


@contextmanager
def tags(*new_tags: str) -> Generator[frozenset[str], None, None]:
    """Add tags to every flow and task run started inside the block.

    Contexts nest: an inner block adds to the tags of the outer ones. The tags are
    combined with those given to ``@task(tags=...)`` and ``@flow``.

    Args:
        *new_tags: The tags to add.

    Yields:
        All tags in force inside the block.

    Raises:
        TypeError: A tag is not a string.

    Example:
        >>> with tags("test", "nightly") as current:
        ...     sorted(current)
        ['nightly', 'test']
    """
    for tag in new_tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags() takes strings, got {tag!r}; write tags('a', 'b')")
    combined = _tags.get() | frozenset(new_tags)
    token = _tags.set(combined)
    try:
        yield combined
    finally:
        _tags.reset(token)


def current_tags() -> frozenset[str]:
    """Return the tags set by the enclosing ``tags()`` blocks."""
    return _tags.get()
