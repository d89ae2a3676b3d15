"""The channel-agnostic message types every adapter speaks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """One thing a user did: typed text, a photo, a voice transcript or a platform event.

    ``event`` carries platform events in a neutral form, e.g. ``"subscribe"`` or
    ``"menu:FAILED"``. A pressed option button arrives as its label in ``text``.
    ``client_address`` is the sender's network address where the channel sees one (the web
    chat) and per-address limits apply to it; None otherwise (platform webhooks, exempt).
    """

    channel: str
    user_id: str
    message_id: str
    text: str | None = None
    image: bytes | None = None
    voice_transcript: str | None = None
    event: str | None = None
    client_address: str | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def conversation_key(self) -> str:
        return f"{self.channel}:{self.user_id}"

    @property
    def content(self) -> str:
        """The text to understand: typed text, else the voice transcript."""
        return (self.text or self.voice_transcript or "").strip()


@dataclass
class Reply:
    """Something to show the user: text, optional numbered options, optional image."""

    text: str
    options: list[str] = field(default_factory=list)
    image: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "options": list(self.options)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(text=str(data.get("text", "")), options=[str(o) for o in data.get("options", [])])

    def as_plain_text(self) -> str:
        """Render for text-only channels: options become "回复 1 ..." lines."""
        if not self.options:
            return self.text
        lines = [self.text, ""] + [f"回复 {i} {label}" for i, label in enumerate(self.options, 1)]
        return "\n".join(lines)
