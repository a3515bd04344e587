"""Prefect's ``prefect.utilities`` paths, for the names flowkit has: ``annotations``."""

from . import annotations as annotations

__all__ = ["annotations"]
