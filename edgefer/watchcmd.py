"""`edgefer watch` (placeholder; being written)."""

from __future__ import annotations


def watch() -> None:
    """Watch a folder and classify each new image once (not implemented yet)."""
    raise SystemExit(2)
