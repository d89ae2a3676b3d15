"""The face verdict of a family member's proxy attempt (代他人认证), after the worker answers.

certify's verdict (:func:`dialogs.certify.apply_verdict`) marks the pensioner certified and
calls :func:`proxy_certified`: it records the outcome in the audit log, tells the family
member the next due date and leaves the chat in the ``family`` dialog's ``reminder`` state.
Failed proxy attempts get certify's own advice and attempt rule.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.core.conversation import Conversation, Frame
from bot.core.i18n import concat
from bot.core.messages import Reply
from bot.records.proxy_links import latest_link_id
from dialogs.common import MENU_OPTIONS, format_date
from dialogs.engine import ChatServices
from dialogs.family import NAME, REMIND_NO, REMIND_QUESTION, REMIND_YES, SUCCESS


async def proxy_certified(services: ChatServices, conv: Conversation, frame: Frame | None,
                          result: dict[str, Any], due: date) -> list[Reply]:
    """Called by certify's verdict for a passed proxy attempt (pensioner already marked).

    Tells the family member the next due date and leaves the chat in ``reminder``.
    """
    pensioner_id = int(result["pensioner_id"])
    slots = frame.slots if frame is not None else {}
    link_id = slots.get("link_id")
    if link_id is None:
        link_id = await latest_link_id(services.db, conv.key, pensioner_id)
    await services.audit(f"face:{result.get('channel')}", "proxy_certified",
                         target=f"pensioner:{pensioner_id}", proxy_key=conv.key,
                         relationship=result.get("relationship"), link_id=link_id,
                         attempt_id=result.get("attempt_id"), next_due=due.isoformat())
    text = SUCCESS.format(due=format_date(due))
    if frame is not None and frame in conv.stack:
        conv.stack.remove(frame)
    if link_id is None or conv.stack:
        return [Reply(text, MENU_OPTIONS)]
    conv.stack.append(Frame(dialog=NAME, state="reminder", slots={
        "pensioner_id": pensioner_id, "link_id": int(link_id), "due": due.isoformat()}))
    question = REMIND_QUESTION.format(days=services.settings.reminders.days_before)
    return [Reply(concat(text, question, sep="\n"), [REMIND_YES, REMIND_NO])]
