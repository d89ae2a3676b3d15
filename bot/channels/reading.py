"""Reading a platform's HTTP answer completely, up to a limit.

aiohttp's ``StreamReader.read(n)`` returns *at most* ``n`` bytes: whatever has arrived so
far. A phone photo is several hundred KB to a few MB and arrives in many network reads, so
one ``read`` gives a part of it (issue 14). :func:`read_limited` loops until the end of
the body, refuses anything over the limit (before reading, when Content-Length says so),
and refuses a body shorter than its Content-Length.
"""

from __future__ import annotations

import aiohttp

from bot.core.errors import ExternalServiceError

CHUNK_BYTES = 64 * 1024


class AnswerTooLarge(ExternalServiceError):
    """The answer is larger than the caller accepts."""

    code = "answer_too_large"


class AnswerIncomplete(ExternalServiceError):
    """The answer ended before its Content-Length (cut off on the way)."""

    code = "answer_incomplete"


async def read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body of ``response``; :class:`AnswerTooLarge` above ``max_bytes``.

    A connection dropped mid-body raises aiohttp's ``ClientPayloadError`` (a
    ``ClientError``); a body that ends short of its Content-Length raises
    :class:`AnswerIncomplete`."""
    expected = response.content_length
    if expected is not None and expected > max_bytes:
        raise AnswerTooLarge(f"Content-Length {expected} > {max_bytes}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise AnswerTooLarge(f"more than {max_bytes} bytes")
    # With a Content-Encoding the length is the compressed one; only compare plain bodies.
    plain = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    if expected is not None and plain and len(body) != expected:
        raise AnswerIncomplete(f"{len(body)} of {expected} bytes")
    return bytes(body)
