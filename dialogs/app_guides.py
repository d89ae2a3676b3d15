"""Step-by-step walkthroughs of the official apps, one step per message.

Every step offers 下一步 / 上一步 / 没看懂; "下载好了" or "然后呢" also move on and
"没看懂" says the same step another way. The last step offers 做完了 / 还是不行
(which leads into the failure diagnosis).
"""

from __future__ import annotations

from bot.core.i18n import tr
from dialogs.common import GuideStep, certify_here, fact, finish_option, heard, walkthrough
from dialogs.engine import Dialog, DialogContext, Goto, Option, StartDialog, State, Step, once


@once("_phone_asked")
async def _phone_known(ctx: DialogContext) -> Step | None:
    """"苹果手机怎么下载…" already says which phone."""
    phone = heard(ctx).get("phone_type") or fact(ctx, "phone_type")
    if not phone:
        return None
    ctx.slots["phone_type"] = phone
    return Goto("download")


@once("_app_asked")
async def _app_known(ctx: DialogContext) -> Step | None:
    """"教我用青海人社通认证" already names the app."""
    app = heard(ctx).get("app")
    return StartDialog(str(app)) if app else None



def _download_text(ctx: DialogContext) -> str:
    phone = ctx.slots.get("phone_type")
    if phone == "ios":
        return (tr("在苹果手机上打开“App Store”（蓝色图标，上面一个“A”），点下面的“搜索”，"
                "输入“青海人社通”，点“获取”下载安装。下载好了回复“下载好了”。"))
    if phone == "android":
        return (tr("在手机的应用商店（比如“应用宝”“华为应用市场”）里搜索“青海人社通”，"
                "点“安装”。下载好了回复“下载好了”。"))
    return (tr("打开手机自带的应用商店（苹果手机叫“App Store”，其他手机一般叫“应用市场”或“应用商店”），"
            "搜索“青海人社通”，点下载安装。也可以用微信扫官方的二维码下载。下载好了回复“下载好了”。"))


def _download_again(ctx: DialogContext) -> str:
    return (tr("应用商店就是手机上专门下载软件的那个图标。找到它、点开，在最上面的搜索框里打“青海人社通”"
            "四个字，出来的第一个就是，点旁边的“安装”或“获取”。"
            "实在找不到，可以请家里年轻人帮忙装一下。"))


# The two apps the method chooser offers too.
APP_QINGHAI = Option(tr("青海人社通（推荐）"), start="app_qinghai", words=("青海人社通", "人社通"))
APP_ALIPAY = Option(tr("支付宝"), start="app_alipay", intents=("method_alipay",), words=("支付宝",))

PHONE_TYPE = State(
    on_enter=_phone_known,
    prompt=tr("先看看您的手机是哪种？（手机背面有个苹果标志的就是苹果手机）"),
    options=[
        Option(tr("安卓手机（华为、小米、OPPO、vivo等）"), goto="download", set={"phone_type": "android"},
               words=("安卓", "华为", "小米", "oppo", "vivo", "荣耀")),
        Option(tr("苹果手机（iPhone）"), goto="download", set={"phone_type": "ios"},
               words=("苹果", "iphone", "ios")),
        Option(tr("不知道"), goto="download", set={"phone_type": "unknown"},
               words=("不知道", "不清楚", "不确定")),
    ],
)

app_qinghai = walkthrough(
    "app_qinghai", tr("青海人社通刷脸认证"),
    [
        GuideStep("download", _download_text, _download_again),
        GuideStep("open",
                  tr("打开“青海人社通”，第一次用要注册：按提示输入手机号、收验证码，再设个密码登录。"),
                  tr("点开刚装好的“青海人社通”。它会让您填手机号，然后手机会收到一条短信，"
                  "里面有几位数字（验证码），把数字填进去就能登录了。")),
        GuideStep("find",
                  tr("在首页找到“养老待遇资格认证”这个图标，点进去。"),
                  tr("登录后看到的第一页就是首页。在一排排小图标里找写着“养老待遇资格认证”的那个，"
                  "没看到的话点“更多”或者在上面搜索框里打“认证”。")),
        GuideStep("id",
                  tr("输入老人的身份证号，或者点“扫描身份证”，用手机拍一下身份证，号码会自动填好。"),
                  tr("身份证号就是身份证正面最下面那一行18位数字。可以一个一个输进去；"
                  "也可以点“扫描身份证”，把身份证放在桌上，用手机对着拍，号码就自己出来了。")),
        GuideStep("face",
                  tr("点“开始认证”，让老人正对手机，按提示眨眨眼、张张嘴，等它显示认证成功。"),
                  tr("点“开始认证”后，手机会打开前面的摄像头。请老人坐在亮一点的地方，摘下帽子和眼镜，"
                  "脸放在圆圈里，手机提示眨眼就眨眼、提示张嘴就张嘴，几秒钟就好。")),
    ],
    entry_intents=("app_download",),
    intro=PHONE_TYPE,
)

app_12333 = walkthrough(
    "app_12333", tr("掌上12333 / 国家社会保险公共服务平台认证"),
    [
        GuideStep("download",
                  tr("在手机应用商店搜索“掌上12333”下载安装。不想装软件的，也可以用电脑打开"
                  "“国家社会保险公共服务平台”网站（si.12333.gov.cn）。"),
                  tr("“掌上12333”是人社部的官方软件，在手机的应用商店里搜“掌上12333”就能找到。"
                  "用电脑的话，在浏览器里打开 si.12333.gov.cn 也行，步骤差不多。")),
        GuideStep("login",
                  tr("打开后按提示注册、登录（要用老人的身份证号和手机号）。"),
                  tr("第一次用要注册一个账号：填老人的名字、身份证号和手机号，收到短信验证码填进去，就注册好了。")),
        GuideStep("find",
                  tr("找到“社保待遇资格认证”（有的地方叫“待遇资格认证”），点进去，参保地选“青海”。"),
                  tr("在首页的服务里找带“资格认证”字样的那个入口。进去后会问在哪里领养老金，选青海省和您所在的市县。")),
        GuideStep("face",
                  tr("点“开始认证”，让老人正对手机刷脸，按提示眨眼或张嘴，看到“认证成功”就好了。"),
                  tr("刷脸时找个亮堂的地方，老人摘下帽子眼镜，脸正对手机屏幕，跟着提示做动作，几秒钟就完成。")),
    ],
)

app_alipay = walkthrough(
    "app_alipay", tr("支付宝电子社保卡认证"),
    [
        GuideStep("open",
                  tr("打开支付宝，在首页点“更多”，再点“城市服务”。"),
                  tr("支付宝就是蓝色图标、上面写“支”字的那个软件。打开后首页有一排小图标，"
                  "最后一个通常是“更多”，点进去就能看到“城市服务”。")),
        GuideStep("shebao",
                  tr("在城市服务里点“社保”，再点“电子社保卡”。"),
                  tr("城市服务里有很多项，找写着“社保”的那一项点开，里面有“电子社保卡”。")),
        GuideStep("card",
                  tr("按提示点“同意协议并领取”，系统会先核对老人的实体社保卡。"),
                  tr("第一次用要先领电子社保卡：点页面上“同意协议并领取”这类按钮，它会自动核对您手里那张社保卡。")),
        GuideStep("face",
                  tr("接着刷脸：老人正对手机，按提示做动作，等它通过。"),
                  tr("找个亮的地方，脸对着手机屏幕中间的圆圈，提示眨眼就眨眼，提示张嘴就张嘴。")),
        GuideStep("password",
                  tr("最后设置并输入电子社保卡的密码，点“完成”。领好电子社保卡后，在里面找“资格认证”就能认证。"),
                  tr("密码是给电子社保卡用的，请设一个好记的6位数字，记下来。领好卡之后，"
                  "在电子社保卡页面里找“待遇资格认证”，点进去刷脸就完成了。")),
    ],
    entry_intents=("method_alipay",),
)

app_consular = walkthrough(
    "app_consular", tr("中国领事 App 认证（住在国外）"),
    [
        GuideStep("download",
                  tr("在手机应用商店搜索“中国领事”（外交部的官方软件），下载安装。"),
                  tr("不管在哪个国家，苹果手机在“App Store”、其他手机在应用商店里搜“中国领事”就能找到，"
                  "图标上有国徽。")),
        GuideStep("register",
                  tr("打开后用手机号或邮箱注册，并按提示完成实名认证（要拍护照或身份证）。"),
                  tr("第一次用要注册账号，再做“实名认证”：按提示拍一下护照，再刷一下脸，证明是本人。")),
        GuideStep("find",
                  tr("在首页找到“养老金资格核验”（养老金领取资格认证）这一项，点进去。"),
                  tr("登录后在首页的服务列表里找带“养老金”字样的那一项，点进去就是认证页面。")),
        GuideStep("face",
                  tr("按提示填好信息，选择领取养老金的地方（青海），然后刷脸，等它提交成功。"
                  "提交后由青海参保地的社保经办机构审核，审核结果可以在APP里查。"),
                  tr("页面会问您在国内哪里领养老金，选青海省和您的市县；再对着手机刷一下脸，看到提交成功就行。")),
    ],
    entry_intents=("method_abroad",),
    for_someone_else=(tr("老人在国外的话，要他本人在国外刷脸认证，家人在国内不能替他刷脸。"
                         "可以让他用手机装“中国领事”APP自己认证：下面的步骤您可以一步一步转告他，"
                         "或者截图发给他。")),
)

app_guide = Dialog(
    name="app_guide",
    title="用手机刷脸认证",
    entry_intents=("method_face_app", "process_online"),
    states={
        "which": State(
            on_enter=_app_known,
            prompt=tr("用手机刷脸认证有这几个官方办法，哪个都行。您想用哪个？"),
            options=[
                APP_QINGHAI,
                Option(tr("掌上12333 或国家社保平台网站"), start="app_12333",
                       words=("12333", "掌上", "网站", "国家社保", "公共服务平台")),
                APP_ALIPAY,
                Option(tr("中国领事（住在国外）"), start="app_consular", intents=("method_abroad",),
                       words=("中国领事", "国外", "领事")),
                certify_here(),
                finish_option(),
            ]),
    },
)

DIALOGS = (app_guide, app_qinghai, app_12333, app_alipay, app_consular)
