"""The ``rasa`` NLU backend: a Rasa 3.6 server's ``/model/parse`` over aiohttp.

The server is trained from the same ``nlu/data/nlu.yml`` (``make rasa``) and started with
``make rasa-serve``. Rasa's ``nlu_fallback`` (FallbackClassifier) means "nothing
confident": it is returned as no intent, so the router goes on to FAQ retrieval and a
clarifying question, exactly as for a low-confidence embedded parse. The vocabulary guard
(nlu/guard.py) runs first, as in the embedded backend: DIET, too, would call 啊啊啊啊 an
intent. ID numbers found by Rasa's regex are re-checked with the GB 11643 checksum.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bot.core.errors import BotError
from bot.core.understanding import Entity, IntentScore, ParseResult
from nlu import training_data
from nlu.entities import id_checksum_ok
from nlu.guard import VocabularyGuard
from nlu.rules import match_command, normalise

FALLBACK_INTENT = "nlu_fallback"


class RasaUnavailableError(BotError, status=503, code="nlu_unavailable"):
    """The Rasa server did not answer in time or answered with an error."""


class RasaNlu:
    """Client of a Rasa NLU server; one aiohttp session per application lifetime."""

    name = "rasa"

    def __init__(self, url: str, timeout_s: float = 2.0, top_k: int = 5,
                 data_path: Path | str = training_data.DATA_DIR / "nlu.yml") -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.top_k = top_k
        self.data_path = Path(data_path)
        self.session: aiohttp.ClientSession | None = None
        self.guard: VocabularyGuard | None = None

    async def start(self) -> None:
        if self.guard is None:
            data = await asyncio.to_thread(training_data.load, self.data_path)
            self.guard = VocabularyGuard.from_training_data(data)
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def parse(self, text: str, *, rules_applied: bool = False) -> ParseResult:
        """Rules first (global commands, unless ``rules_applied``), then the server's ranking
        and entities."""
        command = None if rules_applied else match_command(text)
        if command is not None:
            return ParseResult(text=text, intents=[command], backend=self.name)
        if self.session is None or self.guard is None:
            raise RasaUnavailableError("RasaNlu.start() was not called")
        if not self.guard.known(normalise(text)):
            return ParseResult(text=text, backend=self.name)
        try:
            async with self.session.post(f"{self.url}/model/parse", json={"text": text}) as response:
                if response.status != 200:
                    raise RasaUnavailableError(f"rasa answered HTTP {response.status}")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RasaUnavailableError(f"rasa unreachable: {exc.__class__.__name__}") from exc
        return self.to_result(text, body)

    def to_result(self, text: str, body: dict[str, Any]) -> ParseResult:
        """Our ParseResult from Rasa's parse JSON."""
        result = ParseResult(text=text, backend=self.name)
        top = (body.get("intent") or {}).get("name")
        if top and top != FALLBACK_INTENT:
            ranking = body.get("intent_ranking") or [body["intent"]]
            result.intents = [IntentScore(str(item["name"]), float(item.get("confidence") or 0.0))
                              for item in ranking if item.get("name") != FALLBACK_INTENT][: self.top_k]
        for raw in body.get("entities") or []:
            entity_type = str(raw.get("entity", ""))
            value = str(raw.get("value", ""))
            if entity_type == "id_number":
                value = value.upper()
                if not id_checksum_ok(value):
                    entity_type = "id_number_invalid"
            extra = {"extractor": raw.get("extractor", "")}
            result.entities.append(Entity(entity_type, value, int(raw.get("start") or 0),
                                          int(raw.get("end") or 0), extra))
        return result
