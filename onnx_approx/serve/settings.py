"""Batching and request limits of one server (import-light: the CLI reads its defaults for --help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Batching and request limits of one server."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_texts: int = 64
    max_text_chars: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_texts", "max_text_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")

    @property
    def max_body_bytes(self) -> int:
        """Room for max_texts pairs of max_text_chars characters, each JSON-escaped to at most 6 bytes."""
        return self.max_texts * 2 * self.max_text_chars * 6 + 65_536
