"""Cross-cutting steps of the pipeline, in order:

1. ``deduplicate``  - a platform retry of the same message is processed once;
2. ``rate_limit``   - per chat identity, answered politely;
3. ``serialize_user`` - one turn at a time per chat, across processes (Redis lock);
4. ``conversation`` - load the state from Redis, save it after the turn;
5. ``human_gate``   - while a person is involved the bot stays out of the way;
6. ``understand``   - NLU parse into ranked intents and entities.

Signature checks happen in the channel adapters, before a message exists.
"""

from __future__ import annotations

import json
import logging
import time

from redis.exceptions import LockError

from bot.errors import DatabaseUnavailable, RateLimited, StorageUnavailable
from bot.messages import Reply
from bot.storage.redis import REDIS_ERRORS
from dialogs.menu import MENU_ITEMS
from handlers.pipeline import Middleware, NextStep, Turn
from nlu.rules import match_command

log = logging.getLogger(__name__)


async def deduplicate(turn: Turn, next_step: NextStep) -> None:
    """Process each (channel, message id) once; a retry gets the first answer again."""
    redis = turn.services.redis
    key = f"dedup:{turn.msg.channel}:{turn.msg.message_id}"
    ttl = turn.services.settings.conversation.dedup_ttl_s
    try:
        first = await redis.set(key, b"", nx=True, ex=ttl)
        if not first:
            cached = await redis.get(key)
            turn.outcome = "duplicate"
            if cached:
                turn.replies = [Reply.from_json(r) for r in json.loads(cached)]
            return
    except REDIS_ERRORS as exc:
        raise StorageUnavailable(f"redis: {exc}") from exc
    try:
        await next_step()
    except BaseException:
        try:
            await redis.delete(key)  # let the platform's retry try again
        except REDIS_ERRORS:
            log.error("could not release the de-duplication key")
        raise
    try:
        await redis.set(key, json.dumps([r.to_json() for r in turn.replies], ensure_ascii=False),
                        ex=ttl, xx=True)
    except REDIS_ERRORS as exc:
        log.error("could not store the answer for de-duplication: %s", exc.__class__.__name__)


async def rate_limit(turn: Turn, next_step: NextStep) -> None:
    """At most ``rate_limit.messages_per_minute`` messages per chat per minute."""
    limit = turn.services.settings.rate_limit.messages_per_minute
    window = int(time.time() // 60)
    key = f"rl:msg:{turn.msg.conversation_key}:{window}"
    try:
        async with turn.services.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
    except REDIS_ERRORS as exc:
        raise StorageUnavailable(f"redis: {exc}") from exc
    if int(count) > limit:
        turn.outcome = "rate_limited"
        if int(count) == limit + 1:
            turn.say(RateLimited.user_message)
        return
    await next_step()


async def serialize_user(turn: Turn, next_step: NextStep) -> None:
    """Hold a per-chat Redis lock so two processes never interleave one dialog step."""
    timeout = turn.services.settings.conversation.user_lock_timeout_s
    lock = turn.services.redis.lock(f"lock:{turn.msg.conversation_key}", timeout=timeout,
                                    blocking_timeout=timeout, sleep=0.01)
    try:
        acquired = await lock.acquire()
    except REDIS_ERRORS as exc:
        raise StorageUnavailable(f"redis: {exc}") from exc
    if not acquired:
        raise StorageUnavailable("timed out waiting for the previous message of this chat")
    try:
        await next_step()
    finally:
        try:
            await lock.release()
        except (LockError, *REDIS_ERRORS):  # type: ignore[misc]
            log.warning("user lock expired before release")


async def conversation(turn: Turn, next_step: NextStep) -> None:
    """Load the conversation, run the rest, append the transcript, save, audit."""
    services = turn.services
    turn.conversation = await services.conversations.load(turn.msg.conversation_key)
    limit = services.settings.conversation.history_turns
    shown = turn.msg.content or ("[照片]" if turn.msg.image is not None else f"[{turn.msg.event}]")
    turn.conversation.log("user", shown, limit)
    try:
        await next_step()
    except DatabaseUnavailable as exc:
        # The database is needed for this action only: say so, keep the conversation.
        log.error("database unavailable during turn", extra={"request_id": turn.request_id})
        turn.say(exc.user_message)
        turn.outcome = "db_unavailable"
    turn.conversation.turns += 1
    for reply in turn.replies:
        turn.conversation.log("bot", reply.as_plain_text(), limit)
    await services.conversations.save(turn.conversation)
    for event in turn.events:
        action = str(event.pop("action"))
        await services.audit(f"chat:{turn.msg.channel}", action, event.pop("target", None), **event)


async def human_gate(turn: Turn, next_step: NextStep) -> None:
    """While a person handles (or is about to handle) the chat, the bot stays silent."""
    conv = turn.conversation
    assert conv is not None
    if conv.mode == "bot":
        await next_step()
        return
    handoff = turn.services.handoff
    cancel = turn.msg.content and match_command(turn.msg.content)
    if conv.mode == "waiting":
        if cancel and cancel.name == "cmd_cancel":
            await handoff.cancel(conv)
            turn.say("好的，已经取消排队。还有什么可以帮您？", [label for label, _, _ in MENU_ITEMS])
            turn.outcome = "handoff_cancelled"
            return
        if turn.msg.content or turn.msg.image is not None:
            await handoff.record_user_message(conv, turn.msg.content or "[照片]")
        position = await handoff.position(conv.case_id) if conv.case_id else None
        text = "您已在排队等人工服务"
        if position:
            text += f"，前面还有 {position - 1} 位，大约等 {handoff.expected_wait_minutes(position)} 分钟"
        if not handoff.in_office_hours():
            text += f"。现在不是工作时间，{handoff.office_hours_text()}，工作人员上班后会第一时间回复您"
        turn.say(text + "。不想等了请回复“算了”。")
        turn.outcome = "waiting"
        return
    if conv.mode == "human":
        await handoff.record_user_message(conv, turn.msg.content or "[照片]")
        turn.outcome = "relayed"
        return
    # closed: a person finished; the next message goes to the bot again.
    conv.mode = "bot"
    conv.case_id = None
    await next_step()


async def understand(turn: Turn, next_step: NextStep) -> None:
    """Parse the text into ranked intents and entities."""
    text = turn.msg.content
    if text:
        turn.parse = await turn.services.understand(text)
    await next_step()


DEFAULT_CHAIN: list[Middleware] = [
    deduplicate, rate_limit, serialize_user, conversation, human_gate, understand,
]
