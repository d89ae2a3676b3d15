"""Certifying in person at a social insurance office or a 邮储银行 branch.

Where to go, what to bring (a checklist by situation), the form, what the staff do, and
the common question whether to bring the household register (户口本), answered in-flow.
"""

from __future__ import annotations

from bot.core.i18n import tr
from dialogs.common import APPLY_HOME_VISIT, finish_option
from dialogs.engine import Dialog, Option, State

WHERE_TEXT = (tr("线下认证可以去这两个地方：\n"
              "1）当地的社保经办机构（社保局、人社服务大厅）；\n"
              "2）邮储银行（中国邮政储蓄银行）的网点。\n"
              "老人行动不便的，也可以请社区、街道帮忙代办。您想先了解哪一项？"))

CHECKLISTS = {
    "normal": (tr("老人自己去办，带这些就够了：\n"
               "✔ 老人的身份证（原件）\n"
               "✔ 社保卡（原件）\n"
               "最好再各带一张复印件，以防要留存。")),
    "ill": (tr("老人生病或残疾、去不了现场的，由家人去办，要带：\n"
            "✔ 老人的身份证、社保卡（原件和复印件）\n"
            "✔ 医院或有关部门开的身体状况证明（比如诊断证明、残疾证）\n"
            "✔ 去办的家人自己的身份证\n"
            "实在困难的，也可以申请工作人员上门认证。")),
    "proxy": (tr("请社区、街道或家人代办的，要带：\n"
              "✔ 老人的身份证、社保卡（原件和复印件）\n"
              "✔ 代办人自己的身份证\n"
              "✔ 说明老人为什么不能自己来（有证明更好）\n"
              "代办前最好先打 12333 或当地社保局电话问一下，各地要求可能略有不同。")),
}

FORM_TEXT = (tr("到了以后，工作人员会给您一张《养老保险认证申请表》，就是一张登记表："
             "填上老人的姓名、身份证号、住址、电话，签个字就行。不会写的字可以请工作人员帮忙。"))
STAFF_TEXT = (tr("工作人员会：看一下身份证和社保卡，核对系统里的信息；"
              "然后当面确认老人本人（有的地方会拍照或刷脸）。一般几分钟就办完，当场就能知道结果。"))
HUKOU_TEXT = (tr("户口本一般不用带，带身份证和社保卡就够了。"
              "个别地方核对信息时可能会要，家里方便的话带上更稳妥。"))


def _hukou() -> Option:
    return Option(tr("要不要带户口本？"), goto="hukou", words=("户口本", "户口簿", "户口"))


def _more(*options: Option) -> list[Option]:
    return [*options, finish_option()]


CHECKLIST_OPTION = Option(tr("要带什么材料"), goto="checklist", intents=("materials",),
                          words=("带什么", "材料", "证件", "要带"))
FORM_OPTION = Option(tr("要填什么表"), goto="form", words=("填什么", "什么表", "申请表", "填表"))
STAFF_OPTION = Option(tr("工作人员会做什么"), goto="staff", words=("工作人员", "怎么办理", "流程"))
OTHER_CASE = Option(tr("换一种情况"), goto="checklist", words=("换一种", "别的情况"))


def _checklist(case: str, *first: Option) -> State:
    """What to bring in one situation, then the form, 户口本 or another situation."""
    return State(prompt=CHECKLISTS[case], options=_more(*first, FORM_OPTION, _hukou(), OTHER_CASE))


offline = Dialog(
    name="offline",
    title="去社保局或银行认证",
    entry_intents=("method_offline", "process_offline"),
    states={
        "where": State(prompt=WHERE_TEXT, options=_more(CHECKLIST_OPTION, FORM_OPTION, STAFF_OPTION,
                                                        _hukou())),
        "checklist": State(
            prompt=tr("要带的东西看情况不同。是哪种情况？"),
            options=[
                Option(tr("老人自己去"), goto="list_normal", words=("自己去", "本人去", "自己")),
                Option(tr("老人生病或残疾，去不了"), goto="list_ill",
                       words=("生病", "残疾", "去不了", "住院", "卧床")),
                Option(tr("请别人代办"), goto="list_proxy", words=("代办", "别人", "家人去", "子女去")),
                _hukou(),
            ]),
        "list_normal": _checklist("normal"),
        "list_ill": _checklist("ill", APPLY_HOME_VISIT),
        "list_proxy": _checklist("proxy"),
        "form": State(prompt=FORM_TEXT, options=_more(STAFF_OPTION, CHECKLIST_OPTION, _hukou())),
        "staff": State(prompt=STAFF_TEXT, options=_more(CHECKLIST_OPTION, FORM_OPTION, _hukou())),
        "hukou": State(prompt=HUKOU_TEXT, options=_more(CHECKLIST_OPTION, FORM_OPTION, STAFF_OPTION)),
    },
)

DIALOGS = (offline,)
