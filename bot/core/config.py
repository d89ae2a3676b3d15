"""Configuration: one ``config.yml`` with ``${ENV}`` expansion, validated once at start-up.

``${NAME}`` is replaced by the environment variable NAME (empty when unset) and
``${NAME:-default}`` falls back to ``default``. Empty strings become ``None`` for
optional keys. A bad value raises :class:`bot.core.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from bot.core.errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config.yml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_to_none(cls, value: Any) -> Any:
        return None if value == "" else value


def _not_below(name: str, floor: str) -> Any:
    """A validator: the field ``name`` must not be below the field ``floor`` (declared before it)."""
    def check(cls: type[_Section], value: float, info: ValidationInfo) -> float:
        if floor in info.data and value < info.data[floor]:
            raise ValueError(f"{name} must not be below {floor}")
        return value
    return field_validator(name)(classmethod(check))


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_text_chars: int = Field(2000, ge=1)
    public_base_url: str | None = None


class StorageConfig(_Section):
    data_dir: Path = Path("var")
    redis_url: str | None = None
    database_url: str | None = None
    redis_timeout_s: float = Field(2.0, gt=0)


class ConversationConfig(_Section):
    idle_timeout_s: int = Field(1800, ge=10)
    history_turns: int = Field(40, ge=0)
    dedup_ttl_s: int = Field(86400, ge=60)
    user_lock_timeout_s: float = Field(10.0, gt=0)
    turn_timeout_s: float = Field(20.0, gt=0)


class AddressLimits(_Section):
    """Limits per client address (web chat; see ``web_chat.trusted_proxies``). An IPv6
    client counts as its /64 network. Generous, so that users behind one NAT are not hurt."""

    sessions_per_minute: int = Field(30, ge=1)     # new web chat ids
    messages_per_minute: int = Field(180, ge=1)    # messages from all chats of the address
    id_lookups_per_hour: int = Field(60, ge=1)     # ID number lookups from all its chats
    cases_per_hour: int = Field(10, ge=1)          # staff cases its chats open


class RateLimitConfig(_Section):
    messages_per_minute: int = Field(30, ge=1)
    id_lookups_per_hour: int = Field(10, ge=1)
    id_lookups_global_per_minute: int = Field(120, ge=1)  # no longer used: one client could exhaust it
    name_failures_per_id_per_hour: int = Field(10, ge=1)  # wrong names for one ID number, all chats
    cases_per_chat_per_hour: int = Field(3, ge=1)  # staff cases one chat may open (user requests)
    per_address: AddressLimits = AddressLimits()




class NluConfig(_Section):
    backend: Literal["embedded", "rasa"] = "embedded"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_s: float = Field(2.0, gt=0)
    intent_threshold: float = Field(0.45, ge=0, le=1)
    faq_threshold: float = Field(0.3, ge=0, le=1)


class FaceConfig(_Section):
    deepface_home: Path | None = None
    detector: str = "dlib"
    threshold: float = Field(0.08, gt=0, lt=2)
    # The grey zone (issue 21): accept at or below, reject above, manual review between.
    accept_below: float = Field(0.07, gt=0, lt=2)
    reject_above: float = Field(0.10, gt=0, lt=2)
    challenge: bool = True             # the pose challenge after a matching frontal selfie
    challenge_poses: list[str] = Field(default_factory=lambda: ["left", "right", "up", "mouth"])
    challenge_ttl_s: int = Field(300, ge=30)

    @field_validator("challenge_poses")
    @classmethod
    def _known_poses(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in ("left", "right", "up", "mouth")]
        if unknown or not value:
            raise ValueError(f"poses must be some of left, right, up, mouth (got {value})")
        return value

    _band_in_order = _not_below("reject_above", "accept_below")
    max_attempts_per_day: int = Field(3, ge=1)  # failed selfies per chat and pensioner per day
    # failed selfies per pensioner per day from all chats together; reaching it alerts staff
    max_attempts_per_pensioner_per_day: int = Field(8, ge=1)

    _cap_not_below_chat_limit = _not_below("max_attempts_per_pensioner_per_day", "max_attempts_per_day")
    photo_retention_days: int = Field(30, ge=0)
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    job_timeout_s: float = Field(60, gt=0)
    workers: int = Field(1, ge=0)
    worker_nice: int = Field(10, ge=0, le=19)  # chat turns first: workers yield the CPU to serve
    queue_notice_s: float = Field(20, ge=0)      # tell the place and wait when longer than this
    max_queue_wait_s: float = Field(1800, ge=0)  # longer: not queued, come back later (0 = never)


class WechatConfig(_Section):
    token: str | None = None
    app_id: str | None = None
    app_secret: str | None = None
    aes_key: str | None = None
    # plain: plaintext only; compat: both; safe: encrypted only, every reply encrypted.
    # Unset: compat when aes_key is set, else plain (the behaviour before the setting existed).
    encoding_mode: Literal["plain", "compat", "safe"] | None = None
    api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    max_clock_skew_s: int = Field(300, ge=1)
    passive_reply_budget_s: float = Field(3.0, gt=0)
    menu: list[dict[str, Any]] = Field(default_factory=list)
    # Reminders (issue 20): "template" (message/template/send) or "subscribe" (订阅通知,
    # message/subscribe/bizsend); the template's field names for each value we fill in.
    reminder_mode: Literal["template", "subscribe"] = "template"
    reminder_template_id: str | None = None
    reminder_fields: dict[str, str] = Field(default_factory=lambda: {
        "title": "first", "pensioner": "keyword1", "due_date": "keyword2", "note": "remark"})
    reminder_url: str | None = None

    @property
    def mode(self) -> Literal["plain", "compat", "safe"]:
        """The effective ``encoding_mode``."""
        if self.encoding_mode is not None:
            return self.encoding_mode
        return "compat" if self.aes_key else "plain"


class TelegramConfig(_Section):
    token: str | None = None
    webhook_secret: str | None = None
    api_base: str = "https://api.telegram.org/bot"
    file_base: str = "https://api.telegram.org/file/bot"


class StaffConfig(_Section):
    office_hours: str = "Mon-Fri 09:00-17:30"
    timezone: str = "Asia/Shanghai"
    session_ttl_s: int = Field(8 * 3600, ge=60)
    max_failed_logins: int = Field(5, ge=1)
    lockout_s: int = Field(900, ge=1)
    secure_cookies: bool = False
    ack_interval_s: int = Field(180, ge=1)  # "a person has your message" at most this often
    # A chat in another language than Chinese (Tibetan) waits this long for a colleague who
    # speaks it before anyone may claim it (when such a colleague is active at all).
    language_first_s: int = Field(300, ge=0)


class FamilyConfig(_Section):
    max_pensioners_per_year: int = Field(3, ge=1)
    max_name_attempts: int = Field(3, ge=1)
    reminder_days_before: int = Field(30, ge=1, le=365)


class RemindersConfig(_Section):
    days_before: int = Field(30, ge=8, le=365)        # the first reminder
    second_days_before: int = Field(7, ge=1, le=60)   # the second, if not certified yet
    missed_within_days: int = Field(60, ge=1, le=365)  # after the due date: one reminder, this late at most
    quiet_start: int = Field(21, ge=0, le=23)         # no reminders from this hour ...
    quiet_end: int = Field(8, ge=0, le=23)            # ... until this hour (reminders.timezone)
    timezone: str = "Asia/Shanghai"
    max_attempts: int = Field(4, ge=1, le=20)         # then the delivery is send_failed
    retry_base_s: int = Field(600, ge=1)              # backoff: base * 3^(attempt-1)
    check_every_minutes: int = Field(15, ge=1, le=60)


class MetricsConfig(_Section):
    token: str | None = None


class WebChatConfig(_Section):
    session_secret: str | None = Field(None, min_length=16)  # None: one kept in Redis
    secure_cookie: bool = False
    history_messages: int = Field(100, ge=0)
    history_ttl_s: int = Field(7 * 86400, ge=60)
    # Reverse proxies whose X-Forwarded-For is believed (CIDRs). Empty: the TCP peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Client addresses without per-address limits (CIDRs), e.g. loopback for `make bench`.
    address_limits_exempt: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies", "address_limits_exempt", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        """A YAML list or a comma-separated string (from the environment); None: empty."""
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", "address_limits_exempt")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
        return value


class Settings(_Section):
    """The whole validated configuration."""

    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    conversation: ConversationConfig = ConversationConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    nlu: NluConfig = NluConfig()
    face: FaceConfig = FaceConfig()
    wechat: WechatConfig = WechatConfig()
    telegram: TelegramConfig = TelegramConfig()
    staff: StaffConfig = StaffConfig()
    family: FamilyConfig = FamilyConfig()
    reminders: RemindersConfig = RemindersConfig()
    metrics: MetricsConfig = MetricsConfig()
    web_chat: WebChatConfig = WebChatConfig()
    demo: bool = False

    @property
    def redis_embedded(self) -> bool:
        return not self.storage.redis_url

    @property
    def database_url(self) -> str:
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite+aiosqlite:///{(self.storage.data_dir / 'bot.sqlite3').resolve()}"


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string of a YAML tree."""
    env = dict(os.environ) if env is None else env
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand_env(item, env) for item in value]
    if isinstance(value, dict):
        return {key: expand_env(item, env) for key, item in value.items()}
    return value


def load_settings(path: Path | str | None = None, *, env: dict[str, str] | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Read, expand and validate the config file. Raises ConfigError naming the bad key."""
    config_path = Path(path or os.environ.get("BOT_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {config_path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping at the top level")
    data = expand_env(raw, env)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {config_path}: {problems}") from exc


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
