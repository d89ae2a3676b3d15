"""Missed the deadline / the pension stopped.

What happened (paused, not cancelled), how to certify now, resumption with back-pay,
and whom to contact.
"""

from __future__ import annotations

from bot.core import facts
from bot.core.i18n import tr
from dialogs.common import certify_here, finish_option
from dialogs.engine import Dialog, DialogContext, Handoff, Option, State, Step

WHAT_TEXT = tr("别着急。过了认证时间还没认证，养老金会先“暂停发放”，不是取消。") + facts.BACKPAY
HOW_TEXT = (tr("现在就可以补认证，和平时认证一样：\n"
            "1）用手机刷脸（青海人社通、掌上12333、支付宝都行）；\n"
            "2）带身份证、社保卡去当地社保局或邮储银行网点；\n"
            "3）老人出不了门，可以申请工作人员上门。\n"
            "认证通过后，社保局会给您恢复发放。"))
BACKPAY_TEXT = facts.BACKPAY + facts.BACKPAY_WHEN
CONTACT_TEXT = (tr("可以打人社服务热线 12333 问，或者到当地社保经办机构（社保局、人社服务大厅）问；"
                "也可以在这里转给工作人员。"))


async def _person(ctx: DialogContext) -> Step:
    return Handoff("user_request")


HOW = Option(tr("现在怎么补认证"), goto="how", words=("怎么补", "补认证", "怎么认证", "现在认证"))
BACKPAY = Option(tr("停发的钱能补吗"), goto="backpay", words=("补发", "补钱", "钱能补", "能补吗", "补回来"))
CONTACT = Option(tr("该找谁"), goto="contact", words=("找谁", "联系", "电话", "问谁"))

missed_deadline = Dialog(
    name="missed_deadline",
    title="错过认证时间、养老金停发",
    entry_intents=("missed_deadline",),
    states={
        "what": State(prompt=WHAT_TEXT, options=[HOW, BACKPAY, CONTACT, finish_option()]),
        "how": State(prompt=HOW_TEXT, options=[
            Option(tr("用手机认证"), start="app_guide", words=("手机", "app", "刷脸")),
            Option(tr("去社保局或银行"), start="offline", words=("社保局", "银行", "线下")),
            Option(tr("申请上门认证"), start="home_visit", words=("上门",)),
            certify_here(),
            BACKPAY]),
        "backpay": State(prompt=BACKPAY_TEXT, options=[HOW, CONTACT, finish_option()]),
        "contact": State(prompt=CONTACT_TEXT, options=[
            Option(tr("转人工"), run=_person, words=("人工",)), HOW, finish_option()]),
    },
)

DIALOGS = (missed_deadline,)
