"""The channel-agnostic message types every adapter speaks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.i18n import LANGUAGE_OPTIONS, ZH, Text, number_label, render, render_all, tidy, tr


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
    # The language ``text`` and ``options`` are in (set by ``localized``).
    language: str = ZH

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text, "options": list(self.options)}
        if self.language != ZH:
            data["language"] = self.language
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(text=str(data.get("text", "")), options=[str(o) for o in data.get("options", [])],
                   language=str(data.get("language", ZH)))

    @property
    def unrendered(self) -> bool:
        """Built outside a turn and not rendered yet (catalog texts still to translate)."""
        return self.language == ZH and (isinstance(self.text, Text)
                                         or any(isinstance(o, Text) for o in self.options))

    def localized(self, language: str) -> Reply:
        """This reply with its text and options rendered in ``language`` (bot.core.i18n)."""
        if self.language != ZH:
            return self  # already rendered
        # An option offering the language the chat is already in becomes the one back.
        options = [LANGUAGE_OPTIONS[ZH] if option == LANGUAGE_OPTIONS[language] and language != ZH
                   else option for option in self.options]
        return Reply(tidy(render(self.text, language), language), render_all(options, language), self.image,
                     language)

    def as_plain_text(self) -> str:
        """Render for text-only channels: options become "回复 1 ..." lines."""
        if not self.options:
            return self.text
        lines = [self.text, ""] + [
            render(tr("回复 {number} {label}", number=number_label(i, self.language), label=label),
                   self.language)
            for i, label in enumerate(self.options, 1)]
        return "\n".join(lines)
