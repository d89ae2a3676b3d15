"""Cross-cutting steps of the pipeline, in order:

1. ``deduplicate``  - a platform retry of the same message is processed once;
2. ``rate_limit``   - per chat identity, answered politely;
3. ``serialize_user`` - one turn at a time per chat, across processes (Redis lock);
4. ``conversation`` - load the state from Redis, save it after the turn;
5. ``scam_guard``   - a scam or fee warning first, in every state (handlers/protect.py);
6. ``read_language`` - switch to Tibetan or Chinese when asked; Tibetan digits and labels
   read as the Chinese ones (handlers/language.py), also for the queue's and survey's options;
7. ``human_gate``   - while a person is involved the bot stays out of the way;
8. ``understand``   - NLU parse into ranked intents and entities;
9. ``bereavement_guard`` - condolences, never a certification prompt, when the pensioner died;
10. ``answer_neighbours`` - at the menu, questions next to the seed get their knowledge entry.

Signature checks happen in the channel adapters, before a message exists.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time

from bot.core.conversation import Frame, Mode, chat_lock_key
from bot.core.errors import AddressLimited, DatabaseUnavailable, RateLimited, StorageUnavailable
from bot.core.i18n import language_of_state, tr
from bot.core.limits import address_bucket
from bot.core.messages import Reply
from bot.core.pipeline import BatchedStep, Middleware, NextStep, RedisBatch, Turn
from bot.core.storage.redis import REDIS_ERRORS
from dialogs.engine import chat_services
from dialogs.menu import MENU_LABELS
from handlers.language import read_language
from handlers.protect import answer_neighbours, bereavement_guard, scam_guard
from nlu.rules import gives_up_waiting, match_command

log = logging.getLogger(__name__)


class Deduplicate(BatchedStep):
    """Process each (channel, user, message id) once; a retry gets the first answer again.

    The key is scoped to the user: one user's message id never returns another's answer.

    Opening batch: ``SET dedup:... "" NX``. Closing batch: the answer replaces the
    empty marker (``XX``), or the marker is dropped when the turn failed so that the
    platform's retry tries again.
    """

    @staticmethod
    def key(turn: Turn) -> str:
        return f"dedup:{turn.msg.channel}:{turn.msg.user_id}:{turn.msg.message_id}"

    def prepare(self, turn: Turn, batch: RedisBatch) -> None:
        batch.add("dedup_first", "set", self.key(turn), b"", nx=True,
                  ex=turn.services.settings.conversation.dedup_ttl_s)

    async def __call__(self, turn: Turn, next_step: NextStep) -> None:
        if turn.prefetched.get("dedup_first"):
            await next_step()
            return
        turn.outcome = "duplicate"
        try:
            cached = await turn.services.redis.get(self.key(turn))
        except REDIS_ERRORS as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        if cached:
            turn.replies = [Reply.from_json(r) for r in json.loads(cached)]

    def finish(self, turn: Turn, batch: RedisBatch, failed: bool) -> None:
        if not turn.prefetched.get("dedup_first"):
            return
        if failed:
            batch.add(None, "delete", self.key(turn))
            return
        answer = json.dumps([r.to_json() for r in turn.replies], ensure_ascii=False)
        batch.add(None, "set", self.key(turn), answer,
                  ex=turn.services.settings.conversation.dedup_ttl_s, xx=True)


def prefetched_language(turn: Turn) -> str:
    """The chat's language from the opening batch (for steps before ``ConversationState``)."""
    return language_of_state(turn.prefetched.get("conv_raw"))


class RateLimit(BatchedStep):
    """At most ``rate_limit.messages_per_minute`` messages per chat per minute, and
    ``rate_limit.per_address.messages_per_minute`` per client address where the channel
    knows it (the web chat; outcome ``address_limited``, which the web channel answers 429).

    Counted in the opening batch (a platform's retry of one message counts too).
    """

    def prepare(self, turn: Turn, batch: RedisBatch) -> None:
        minute = int(time.time() // 60)
        key = f"rl:msg:{turn.msg.conversation_key}:{minute}"
        batch.add("rate_count", "incr", key)
        batch.add(None, "expire", key, 120)
        if turn.msg.client_address is not None:
            by_address = f"rl:addr:msg:{address_bucket(turn.msg.client_address)}:{minute}"
            batch.add("address_count", "incr", by_address)
            batch.add(None, "expire", by_address, 120)

    async def __call__(self, turn: Turn, next_step: NextStep) -> None:
        limits = turn.services.settings.rate_limit
        by_address = turn.prefetched.get("address_count")
        if by_address is not None and int(by_address) > limits.per_address.messages_per_minute:
            turn.outcome = "address_limited"
            turn.say(AddressLimited.user_message)
            return
        limit = limits.messages_per_minute
        count = int(turn.prefetched["rate_count"])
        if count > limit:
            turn.outcome = "rate_limited"
            if count == limit + 1:  # said before the conversation step: in the language it read
                turn.replies.append(Reply(RateLimited.user_message).localized(prefetched_language(turn)))
            return
        await next_step()


# Delete the lock only when it is still ours (it may have expired and been taken over).
RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class SerializeUser(BatchedStep):
    """Hold a per-chat Redis lock so two processes never interleave one dialog step.

    The lock is tried in the opening batch, before the conversation is read; when another
    turn holds it, this step waits (polling) up to the lock timeout and marks what the batch
    read as stale. It is released in the closing batch, after the conversation is saved.
    """

    poll_s = 0.01

    @staticmethod
    def key(turn: Turn) -> str:
        return chat_lock_key(turn.msg.conversation_key)

    def prepare(self, turn: Turn, batch: RedisBatch) -> None:
        turn.prefetched["lock_token"] = token = secrets.token_hex(16)
        timeout_ms = int(turn.services.settings.conversation.user_lock_timeout_s * 1000)
        batch.add("lock_held", "set", self.key(turn), token, nx=True, px=timeout_ms)

    async def __call__(self, turn: Turn, next_step: NextStep) -> None:
        if not turn.prefetched.get("lock_held"):
            await self._wait_for_lock(turn)
        await next_step()

    async def _wait_for_lock(self, turn: Turn) -> None:
        timeout = turn.services.settings.conversation.user_lock_timeout_s
        token = turn.prefetched["lock_token"]
        deadline = time.monotonic() + timeout
        turn.prefetch_stale = True  # read before the other turn saved
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(self.poll_s)
                if await turn.services.redis.set(self.key(turn), token, nx=True, px=int(timeout * 1000)):
                    turn.prefetched["lock_held"] = True
                    return
        except REDIS_ERRORS as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        raise StorageUnavailable("timed out waiting for the previous message of this chat")

    def finish(self, turn: Turn, batch: RedisBatch, failed: bool) -> None:
        if turn.prefetched.get("lock_held"):
            batch.add(None, "eval", RELEASE_LOCK, 1, self.key(turn), turn.prefetched["lock_token"])


class ConversationState(BatchedStep):
    """Load the conversation, run the rest, append the transcript, save, audit.

    Read in the opening batch (with the lock), written in the closing batch (before the
    lock is released). A turn that raised is not saved.
    """

    def prepare(self, turn: Turn, batch: RedisBatch) -> None:
        for name, method, args in turn.services.conversations.load_commands(turn.msg.conversation_key):
            batch.add(name, method, *args)

    async def __call__(self, turn: Turn, next_step: NextStep) -> None:
        services = chat_services(turn)
        key = turn.msg.conversation_key
        if turn.prefetch_stale:
            turn.conversation = await services.conversations.load(key)
        else:
            turn.conversation = services.conversations.from_results(
                key, turn.prefetched["conv_raw"], turn.prefetched["conv_seen"])
        limit = services.settings.conversation.history_turns
        shown = turn.msg.content or (tr("[照片]") if turn.msg.image is not None else f"[{turn.msg.event}]")
        turn.conversation.log("user", shown, limit)
        try:
            await next_step()
        except DatabaseUnavailable as exc:
            # The database is needed for this action only: say so, keep the conversation.
            log.error("database unavailable during turn", extra={"request_id": turn.request_id})
            turn.say(exc.user_message)
            turn.outcome = "db_unavailable"
        # Every reply in the chat's language (bot.core.i18n), as the user and the staff see it.
        turn.replies = [reply.localized(turn.conversation.language) for reply in turn.replies]
        turn.conversation.turns += 1
        for reply in turn.replies:
            turn.conversation.log("bot", reply.as_plain_text(), limit)
        for event in turn.events:
            action = str(event.pop("action"))
            await services.audit(f"chat:{turn.msg.channel}", action, event.pop("target", None), **event)

    def finish(self, turn: Turn, batch: RedisBatch, failed: bool) -> None:
        if failed or turn.conversation is None:  # not reached (duplicate, limit) or not finished
            return
        for method, args, kwargs in turn.services.conversations.save_commands(turn.conversation):
            batch.add(None, method, *args, **kwargs)


async def human_gate(turn: Turn, next_step: NextStep) -> None:
    """While a person handles (or is about to handle) the chat, the bot stays silent."""
    conv = turn.conversation
    assert conv is not None
    handoff = chat_services(turn).handoff
    if conv.mode == "bot":
        await next_step()
        return
    if conv.mode in ("waiting", "human"):
        matched = match_command(turn.msg.content) if turn.msg.content else None
        command = matched.name if matched else None
        if command is None and turn.msg.content and gives_up_waiting(turn.msg.content):
            command = "cmd_cancel"  # "算了吧", "不等了", "不用了 谢谢": leave the queue (or ask to end)
        replies, turn.outcome = await handoff.staffed_turn(
            conv, turn.msg.content, turn.msg.image, command=command, menu=MENU_LABELS)
        turn.replies.extend(replies)
        return
    # closed: a person finished; the bot is back. The first answer may be the reply to
    # "was this resolved?" (asked when staff closed the case); it is recorded.
    conv.switch_mode(Mode.BOT)
    conv.case_id = None
    survey_case = conv.memory.pop("survey_case", None)
    score = satisfaction_score(turn.msg.content) if survey_case else None
    if survey_case and score is not None:
        await handoff.record_feedback(int(survey_case), score, channel=turn.msg.channel,
                                      conversation_key=conv.key)
        turn.events.append({"action": "handoff_feedback", "target": f"case:{survey_case}",
                            "resolved": score == HELPED, "score": score})
        turn.outcome = "feedback"
        conv.stack = [Frame(dialog="main_menu", state="choose")]
        if score == HELPED:
            turn.say(tr("太好了！谢谢您的反馈。还有什么可以帮您？请回复数字选择："), MENU_LABELS)
        elif score == PARTLY:
            turn.say(tr("谢谢您的反馈。还有没办好的，可以回复“转人工”再找工作人员，或者回复数字选择："),
                     MENU_LABELS)
        else:
            turn.say(tr("抱歉没能帮您解决好。您可以回复“转人工”再找工作人员，或者回复数字选择："),
                     MENU_LABELS)
        return
    await next_step()


# Asked when staff close a case (issue 22): the answer is a satisfaction score, 3 = helped.
SURVEY_QUESTION = tr("这次帮到您了吗？请回复数字：")
SURVEY_OPTIONS = [tr("帮到了"), tr("帮到一部分"), tr("没帮到")]
HELPED, PARTLY, NOT_HELPED = 3, 2, 1
_SURVEY_WORDS = {
    HELPED: {"1", "帮到了", "帮到", "帮到了的", "解决了", "解决", "已解决", "好了", "是", "是的", "嗯", "好",
             "可以了", "满意", "谢谢"},
    PARTLY: {"2", "帮到一部分", "一部分", "部分", "部分解决", "还行", "一般", "差不多"},
    NOT_HELPED: {"3", "没帮到", "没有帮到", "还没解决", "没解决", "没有解决", "没有", "不是", "否", "还没有",
                 "不满意"},
}


def satisfaction_score(text: str) -> int | None:
    """"1"/帮到了 -> 3, "2"/帮到一部分 -> 2, "3"/没帮到 -> 1; anything else -> None."""
    cleaned = text.strip().strip("。！!.，, ").replace("回复", "").strip()
    for score, words in _SURVEY_WORDS.items():
        if cleaned in words:
            return score
    return None


def survey_answer(text: str) -> bool | None:
    """Whether the answer says the problem was solved (None: not an answer)."""
    score = satisfaction_score(text)
    return None if score is None else score == HELPED


async def understand(turn: Turn, next_step: NextStep) -> None:
    """Parse the text into ranked intents and entities."""
    text = turn.msg.content
    if text:
        turn.parse = await turn.services.understand(text)
    await next_step()


# scam_guard sees every message (also while waiting for or talking to a person);
# bereavement_guard and answer_neighbours need the NLU parse. See handlers/protect.py.
DEFAULT_CHAIN: list[Middleware] = [
    Deduplicate(), RateLimit(), SerializeUser(), ConversationState(), scam_guard, read_language, human_gate,
    understand,
    bereavement_guard, answer_neighbours,
]
