"""The main menu: what the assistant can do, as numbered options.

Each option stands for an intent; the router answers it exactly as if the user had
typed it (a guided dialog where one exists, else the knowledge-base answer).
"""

from __future__ import annotations

from bot.core.i18n import BO, LANGUAGE_OPTIONS, tr
from dialogs.engine import MAIN_MENU, Dialog, DialogContext, Finish, Handoff, Option, State, Step

MENU_ITEMS: list[tuple[str, str, tuple[str, ...]]] = [
    (tr("怎么认证"), "how_to_certify", ("怎么认证", "认证方法", "如何认证")),
    (tr("认证失败了"), "cert_failed", ("认证失败", "失败了", "刷脸不过")),
    (tr("需要带什么材料"), "materials", ("材料", "带什么", "证件")),
    (tr("帮家人认证"), "family_certification", ("帮家人", "家人认证", "替家人")),
    (tr("转人工"), "human_handoff", ("人工", "工作人员")),
]

GREETING = tr("您好！我是青海养老金资格认证小助手，可以一步一步帮您完成每年的养老待遇资格认证。请回复数字选择：")
WELCOME_BACK = tr("您好，欢迎回来！刚才的对话时间有点长，已经结束了，我们重新开始。请回复数字选择：")
MENU_PROMPT = tr("请问您要办什么？回复数字就行：")
# The one list of main-menu labels; the last switches the language (in a Tibetan chat it is
# shown as the option back to Chinese, see Reply.localized).
MENU_LABELS = [label for label, _, _ in MENU_ITEMS] + [LANGUAGE_OPTIONS["bo"]]


def _pick(intent: str) -> object:
    async def run(ctx: DialogContext) -> Step:
        return Finish(then=intent)

    run.__name__ = intent
    return run


def _in_chinese(ctx: DialogContext) -> bool:
    return ctx.conversation.language != BO


def _in_tibetan(ctx: DialogContext) -> bool:
    return ctx.conversation.language == BO


# The language option, last, in both scripts: Tibetan in a Chinese chat and back.
LANGUAGE_ITEMS = [
    Option(LANGUAGE_OPTIONS["bo"], run=_pick("lang_bo"), intents=("lang_bo",), when=_in_chinese),  # type: ignore[arg-type]
    Option(LANGUAGE_OPTIONS["zh"], run=_pick("lang_zh"), intents=("lang_zh",), when=_in_tibetan),  # type: ignore[arg-type]
]

menu = Dialog(
    name="main_menu",
    title="主菜单",
    timeout_s=None,
    states={
        "choose": State(
            prompt=MENU_PROMPT,
            options=[Option(label, run=_pick(intent), intents=(intent,), words=words)  # type: ignore[arg-type]
                     for label, intent, words in MENU_ITEMS] + LANGUAGE_ITEMS,
        ),
    },
)


async def _to_person(ctx: DialogContext) -> Step:
    return Handoff("fallback")


async def to_main_menu(ctx: DialogContext) -> Step:
    """Leave the dialog for the main menu."""
    return Finish(then=MAIN_MENU)


offer_person = Dialog(
    name="offer_person",
    title="转人工确认",
    timeout_s=600,
    states={
        "offer": State(
            prompt=tr("还是没听明白，不好意思。要不要我帮您转给工作人员？"),
            options=[Option(tr("转人工"), run=_to_person, words=("要", "好", "转")),
                     Option(tr("回到主菜单"), run=to_main_menu, words=("不要", "不用", "菜单"))],
        ),
    },
)
