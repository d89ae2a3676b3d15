"""Protective rules that run before any model: scam and fee talk, and a pensioner's death.

Like the global commands (nlu/rules.py) these are deterministic patterns, but scored:
each cue found adds to a confidence in [0, 1] and the rule fires at :data:`FIRE_AT`.

Scam and fee cues (intent ``scam_warning``):

- a fee or a transfer by name (手续费, 代办费, 保证金, 转账, 汇款): always;
- credentials (验证码, 密码, 银行卡号, 存折) and links (链接, 网址, http): always, except a
  bank card in a question about where the pension is paid;
- a word that is only sometimes about a fee (要钱, 多少钱, 收费, 免费, 交50块): only next to
  a service (认证, 代办, 上门, 社保, 社区) and never in a question about the pension's
  amount or payment date (养老金每月几号发, 养老金涨了多少);
- someone calling, texting, posting in a WeChat group or at the door in the name of
  社保/人社/社区 who wants something (download an app, scan a code, "认证过期要停发").

The answer (a warning, then the current question again) is in handlers/protect.py.
"""

from __future__ import annotations

import re

from bot.core.understanding import IntentScore
from nlu.rules import normalise

SCAM_INTENT = "scam_warning"
BEREAVEMENT_INTENT = "pensioner_died"
FIRE_AT = 0.75


def _words(*words: str) -> str:
    return "|".join(words)


_FEE = re.compile(_words(
    "手续费", "代办费", "服务费", "认证费", "办理费", "工本费", "保证金", "押金", "激活费", "解冻费",
    "会员费", "好处费", "好处", "安全账户", "转到.{0,6}账户", "加急费", "跑腿费", "辛苦费", "茶水费", "审核费", "刷脸费", "建模费", "上门费", "资料费",
    "转账", "转钱", "转款", "汇款", "汇钱", "转了钱", "汇了钱", "打了钱给", "给他转", "给他打钱", "扫码付", "扫码支付",
    "付款码", "收款码", "红包",
    "骗子", "诈骗", "被骗", "骗钱", "骗我", "是骗", "冒充", "假冒", "自称是"))
_CREDENTIAL = re.compile(_words(
    "验证码", "校验码", "动态码", "短信码", "密码", "口令", "银行卡", "存折", "网银", "u盾",
    "安全码", "cvv", "(收到|短信|手机上)的?.{0,4}数字"))
_CARD = re.compile("银行卡|存折")
# One's own card: changed, lost, reissued, or whether certification needs one at all.
_OWN_CARD = re.compile(_words(
    "换了", "换卡", "换成", "新卡", "换新", "挂失", "丢了", "补办", "销户", "要不要", "需不需要", "需要",
    "用不用", "带不带", "带上", "绑定", "哪张卡"))
# Trouble with one's own code or password while logging in (not someone asking for it).
_OWN_TROUBLE = re.compile(_words(
    "收不到", "没收到", "没有收到", "接不到", "不来", "没来", "没反应", "发不过来", "输了好几", "输错",
    "不对", "错误", "过期了", "忘了", "忘记", "记不得", "记不住", "登录不", "登不上", "登录不上", "进不去",
    "重置", "找回"))
_BANK = re.compile("银行|存折|网银|u盾|cvv|卡号")
# Doubting this chat itself ("你们是不是骗子", "这个是真的吗 不会是骗人的吧"), nothing more.
DOUBTS_US = re.compile("(?:你|你们|这个号|这个公众号|公众号|这里|这个|这是|你这)(?:是不是|是|不会是|别是|该不会是|怕是)?"
                       "(?:骗子|骗人的|诈骗的?|假的|冒充的)")
# The official app itself asks for the user's own password or code ("支付宝让我输入密码",
# "人社通登录要输验证码", in a walkthrough "它让我输验证码"): answered with how to do it safely
# (handlers/protect.py), not as a scam. "它" is a thing (the app), never a person (他/她).
APP_ASKS_CODE = re.compile(
    "(?:支付宝|人社通|人设通|人社同|12333|中国领事|app|软件|手机上|页面|屏幕上|它|上面|里面|登录时|登录的时候)[^，,。]{0,6}"
    "(?:让我|要我|叫我|要|提示|需要|弹出)[^，,。]{0,4}(?:输入?|填|设置?)[^，,。]{0,3}(?:密码|验证码|支付密码)")
# Handing a code over to someone: always a warning.
_HAND_OVER = re.compile(_words("告诉", "给他", "给她", "给对方", "发给", "报给", "念给", "说给", "问我要", "要我的",
                               "让我", "叫我", "要我", "提供"))
_LINK = re.compile(_words("链接", "网址", "网页地址", "短链", "http", "www", r"\.cn/", r"\.com",
                          "发了个网站", "发来的网站", "陌生网站", "这个网站", "登录.{0,4}网站"))
_MAYBE_FEE = re.compile(_words(
    "要钱", "收钱", "花钱", "给钱", "掏钱", "出钱", "多少钱", "几块钱", "块钱", "费用", "收费", "免费",
    "交钱", "付钱", "交费", "缴费", "付费", "支付(?!宝)", "打钱", "打款", "要费", "给.{0,3}钱", "收费吗",
    "[交付给收]了?[0-9零一二两三四五六七八九十百千几]+[块元钱]"))
_SERVICE = re.compile(_words(
    "认证", "年审", "年检", "核验", "刷脸", "人脸", "代办", "代认证", "办理", "上门", "建模", "资格", "审核",
    "社保", "人社", "社区", "街道", "村委", "居委", "工作人员", "帮我办", "帮忙办", "给我办"))
# Someone else (not an office the user goes to) asks for it.
_THIRD = re.compile(_words("有人", "他们", "对方", "那个人", "那人", "陌生", "人说", "干部", "他说", "她说", "你们"))
# Questions about the pension itself (amount, payment date) are not about fees.
_PAYOUT = re.compile(
    "(养老金|退休金|退休工资|养老钱|工资|待遇)(每个?月|一个月|每年|今年|一年)?"
    "(几号|哪天|哪一天|什么时候|啥时候|到账|发放|发到|打到|存到|发了|发多少|怎么发|涨|上调|调整|有多少|"
    "能领|领多少|多少钱|是多少|标准|还没)")
# The same without naming the pension: only when no service is named either.
_SOFT_PAYOUT = re.compile("一个月|每个?月|上调|调整")
# Receiving money, whatever else is named.
_RECEIVE = re.compile("涨了?多少|几号发|几号到|到账|发放日|能领|领多少|补发|补多少|补给")
# Contact from someone at a distance, and at the door (where real home visits happen too).
_REMOTE = re.compile(_words(
    "打电话", "来电", "电话里", "电话说", "打来", "接到电话", "接了个电话", "短信", "微信群", "群里", "qq群",
    "加微信", "加我微信", "加好友", "陌生人", "视频通话", "私信", "朋友圈", "抖音"))
_DOOR = re.compile(_words("上门", "来家", "到家", "找上门", "敲门", "家里来了"))
_AUTHORITY = re.compile(_words(
    "社保", "人社", "社区", "街道", "民政", "政府", "工作人员", "公安", "警察", "客服", "居委", "村委", "领导",
    "专员", "养老", "认证", "年审"))
_PRESSURE = re.compile(_words(
    "下载", "安装", "扫码", "扫一扫", "二维码", "共享屏幕", "屏幕共享", "远程", "视频会议", "会议号",
    "过期", "停发", "取消资格", "冻结", "注销", "异常", "失效", "退钱", "退款", "返还", "退还", "补贴",
    "补助金到账", "激活", "解冻", "多领", "退回", "身份证照片", "拍身份证", "录视频", "录个视频", "开通", "领取补贴"))
_ASKS = re.compile(_words("让我", "要我", "叫我", "要求我", "让老人", "叫老人", "让我妈", "让我爸")
                   + "|帮我(做|办)?认证|替我(做|办)?认证|帮你(做|办)?认证")

_STRONG_DEATH = re.compile(_words(
    "去世", "过世", "逝世", "离世", "病逝", "病故", "身故", "亡故", "故去", "仙逝", "辞世", "死亡", "已故", "过身"))
_WEAK_DEATH = re.compile("(走了|不在了|没了|死了|咽气)")
_PERSON = re.compile(_words(
    "父亲", "母亲", "爸", "妈", "爹", "娘", "老伴", "丈夫", "妻子", "老公", "老婆", "爷爷", "奶奶", "外公",
    "外婆", "姥姥", "姥爷", "公公", "婆婆", "岳父", "岳母", "老人", "老头", "老太", "他", "她", "家人",
    "亲人", "阿大", "阿妈", "退休人员", "领养老金的"))
_WHEN = re.compile(_words(
    "已经", "去年", "前年", "上个月", "上月", "前几天", "前些天", "年前", "月前", "天前", "刚", "早就", "那年",
    "今年", "不幸", "突然"))
# "Is certification to make sure the dead get no pension?" is a question about the purpose.
_PURPOSE = re.compile(_words("冒领", "防止", "证明.{0,4}活着", "还活着", "是不是.{0,3}(去世|死)"))


# Tibetan (drafts, like the Tibetan catalog: to be checked by a native speaker): a password
# or code, a bank account, sending or paying money, a fee.
_BO_CREDENTIAL = re.compile(_words("གསང་ཨང", "གསང་གྲངས", "ར་སྤྲོད་ཨང", "ཞིབ་བཤེར་ཨང", "ལག་ཁྱེར་ཨང",
                                   "དངུལ་ཁང་གི་ཨང", "དངུལ་ཁང་ཁ་ཡིག", "དངུལ་ཁང་བྱང་བུ"))
_BO_MONEY = re.compile(_words("དངུལ་སྐྱེལ", "དངུལ་བསྐུར", "དངུལ་གཏོང", "དངུལ་འཇལ",
                              "འགྲོ་གྲོན", "ཞབས་ཞུའི་གླ"))
_BO_DEATH = re.compile(_words("འདས་སོང", "ཚེ་ལས་འདས", "གྲོངས", "ཤི་སོང", "དགོངས་པ་རྫོགས", "སྐུ་གཤེགས"))


def scam_score(text: str) -> float:
    """How clearly the message is about paying, credentials, links or an impersonator (0..1)."""
    cleaned = normalise(text)
    if len(cleaned) < 2:
        return 0.0
    if DOUBTS_US.search(cleaned):  # "你们是不是骗子": a doubt about this chat, answered in protect
        return scam_score(DOUBTS_US.sub("", cleaned))
    if _BO_CREDENTIAL.search(cleaned) or _BO_MONEY.search(cleaned):
        return 0.9  # Tibetan: asked for a code or money (the Chinese nuances are not drafted)
    service = _SERVICE.search(cleaned) is not None
    payout = (_PAYOUT.search(cleaned) is not None or _RECEIVE.search(cleaned) is not None
              or (not service and _SOFT_PAYOUT.search(cleaned) is not None))
    score = 0.0
    if _FEE.search(cleaned):
        score = 0.95
    if _LINK.search(cleaned):
        score = max(score, 0.9)
    credential = _CREDENTIAL.search(cleaned)
    if credential and _OWN_TROUBLE.search(cleaned) and not _HAND_OVER.search(cleaned) \
            and not _THIRD.search(cleaned) and not _BANK.search(cleaned) \
            and not _REMOTE.search(cleaned.replace("短信验证码", "验证码")):
        credential = None  # "验证码收不到", "密码忘了": trouble logging in, nobody asks for it
    if credential and APP_ASKS_CODE.search(cleaned) and not _THIRD.search(cleaned) \
            and not _REMOTE.search(cleaned) and not _LINK.search(cleaned) and not _BANK.search(cleaned) \
            and not re.search("告诉|发给|报给|念给|说给|给他|给她|给对方", cleaned):
        credential = None  # "支付宝让我输入密码": the app asks its own user, nobody else
    if credential and _CARD.fullmatch(credential.group(0)) and _OWN_CARD.search(cleaned) \
            and not _HAND_OVER.search(cleaned) and not _THIRD.search(cleaned) and not _REMOTE.search(cleaned) \
            and not _CREDENTIAL.search(_CARD.sub("", cleaned)):
        credential = None  # "我的银行卡换了", "认证要不要银行卡": their own card, nobody asks for it
    if credential and not (payout and _CARD.fullmatch(credential.group(0)) and not _REMOTE.search(cleaned)):
        score = max(score, 0.9)
    remote = _REMOTE.search(cleaned) is not None
    near = service or remote or _DOOR.search(cleaned) is not None or _THIRD.search(cleaned) is not None
    if _MAYBE_FEE.search(cleaned) and (near or len(cleaned) <= 8) and not payout:
        score = max(score, 0.8)
    if (remote or _DOOR.search(cleaned)) and _AUTHORITY.search(cleaned) and _PRESSURE.search(cleaned):
        score = max(score, 0.8)
    if remote and _AUTHORITY.search(cleaned) and _ASKS.search(cleaned):
        score = max(score, 0.8)
    return score


# Already caught by a scam: a code or password given away, or money sent.
_ALREADY_LOST = re.compile(
    r"(?:已经|刚才|刚刚|早就|都|昨天|今天)[^，,。？?]{0,10}(?:告诉|给了|发给|发了|说了|报给|转了|转过去|汇了|汇过去|交了|付了)|"
    r"(?:告诉|发给|报给|转给)了?(?:他|她|对方|那个人|人家|骗子)|(?:钱|块|元)[^，,。？?]{0,3}(?:转过去了|转了|被骗)|"
    r"被骗了|上当了")


def already_caught(text: str) -> bool:
    """The message says the scam already happened ("我刚才把验证码告诉了…", "钱已经转过去了")."""
    return _ALREADY_LOST.search(text) is not None


def match_scam(text: str) -> IntentScore | None:
    """``scam_warning`` with its score when the rule fires, else None."""
    score = scam_score(text)
    return IntentScore(SCAM_INTENT, score) if score >= FIRE_AT else None


# Any word of death or what follows it: without one, a model's guess of "pensioner_died"
# ("我的银行卡换了 养老金打到哪张卡") must not bring condolences.
_DEATH_CUE = re.compile(_STRONG_DEATH.pattern + "|" + _WEAK_DEATH.pattern + "|" + _BO_DEATH.pattern + "|" + _words(
    "死", "丧", "后事", "殡", "火化", "遗属", "抚恤", "走的", "没的", "咽气", "不在人世", "归西", "老了人"))


def mentions_death(text: str) -> bool:
    """The message has a word of death (or of a funeral, a survivor's benefit) in it."""
    return _DEATH_CUE.search(normalise(text)) is not None


def match_bereavement(text: str) -> IntentScore | None:
    """``pensioner_died`` when the message says that someone (the pensioner) has died."""
    cleaned = normalise(text)
    if _PURPOSE.search(cleaned):
        return None
    if _STRONG_DEATH.search(cleaned) or _BO_DEATH.search(cleaned):
        return IntentScore(BEREAVEMENT_INTENT, 0.95)
    weak = _WEAK_DEATH.search(cleaned)
    if weak and (weak.group(0) == "不在了" or _WHEN.search(cleaned)) and _PERSON.search(cleaned[:weak.start()]):
        return IntentScore(BEREAVEMENT_INTENT, 0.8)
    return None
