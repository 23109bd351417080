"""Settings: environment variables (prefix ``HELPCENTER_``) over an optional TOML file.

The TOML file is ``helpcenter.toml`` in the working directory, or the path in
``HELPCENTER_CONFIG``. Environment variables win over the file. A missing or malformed
setting raises :class:`SettingsError` with one line naming it; the CLI prints that line
and exits non-zero, without a traceback.
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as PydanticSettingsError

DEFAULT_CONFIG_FILE = "helpcenter.toml"
TELEGRAM_API_BASE = "https://api.telegram.org/bot"
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def _config_file() -> Path:
    return Path(os.environ.get("HELPCENTER_CONFIG", DEFAULT_CONFIG_FILE))


class Settings(BaseSettings):
    """Everything the bot can be told at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="HELPCENTER_",
        extra="forbid",
        env_nested_delimiter="__",
    )

    token: SecretStr = Field(default=SecretStr(""), description="Bot token from @BotFather.")
    api_base_url: str = Field(
        default=TELEGRAM_API_BASE,
        description="Bot API base URL; a self-hosted server looks like http://127.0.0.1:8081/bot",
    )
    database_url: str = "sqlite+aiosqlite:///helpcenter.db"
    timezone: str = "Europe/Rome"
    default_language: str = "it"
    admin_ids: list[int] = Field(default_factory=list)

    # Inbox: how updates are fetched and handled.
    inbox_max_attempts: int = Field(default=3, ge=1, le=20)
    inbox_concurrency: int = Field(default=8, ge=1, le=256)
    inbox_lease_seconds: int = Field(default=60, ge=5)
    poll_timeout_seconds: int = Field(default=25, ge=0, le=50)

    # Webhook mode.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8080, ge=1, le=65535)

    # Outbox: Telegram's limits, shared by all workers.
    redis_url: str | None = None
    rate_global_per_second: int = Field(default=30, ge=1)
    rate_private_chat_per_second: int = Field(default=1, ge=1)
    rate_group_per_minute: int = Field(default=20, ge=1)
    outbox_max_attempts: int = Field(default=10, ge=1, le=100)
    outbox_lease_seconds: int = Field(default=30, ge=5)
    outbox_concurrency: int = Field(default=16, ge=1, le=256)
    outbox_send_timeout_seconds: float = Field(default=20.0, gt=0)
    # Health and metrics listener (``/healthz``, ``/metrics``): off unless a port is set,
    # and on the loopback interface unless told otherwise (the figures are not public).
    health_host: str = "127.0.0.1"
    health_port: int | None = Field(default=None, ge=1, le=65535)

    # Directory.
    bed_count_stale_hours: float = Field(default=6.0, gt=0)
    bed_reminder_time: time = time(18, 0)
    directory_nearest_count: int = Field(default=3, ge=1, le=10)
    directory_max_distance_km: float = Field(default=15.0, gt=0)

    # Cases and urgent requests.
    public_reports_enabled: bool = False
    escalation_minutes: float = Field(default=5.0, gt=0)
    escalation_repeat_minutes: float = Field(default=10.0, gt=0)
    team_chat_id: int | None = None
    show_operator_as: str = Field(default="first_name", pattern="^(first_name|operator_code)$")
    case_reference_prefix: str = Field(default="BS", pattern="^[A-Z]{1,4}$")

    # Contact database and privacy.
    retention_months: int = Field(default=24, ge=1)
    photo_retention_days: int = Field(default=90, ge=1)
    encryption_key: SecretStr | None = None
    monthly_report_day: int = Field(default=1, ge=1, le=28)
    monthly_report_time: time = time(8, 0)  # local time; the report covers the previous month
    retention_time: time = time(3, 0)  # local time of the daily retention sweep

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from bot.i18n import available_languages

        languages = available_languages()
        if value not in languages:
            raise ValueError(f"no catalogue for {value!r}: use one of {', '.join(languages)}")
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        """A token looks like ``123456:ABC-def_…``; the message never repeats it."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        raw = raw.strip()  # a trailing newline from a secrets file is invisible
        if raw and not TOKEN_SHAPE.fullmatch(raw):
            raise ValueError(
                "not a bot token: it looks like 123456789:AA… as @BotFather gives it "
                "(without 'bot' in front, without quotes)"
            )
        return SecretStr(raw)

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked at start-up, not at the first contact an operator records."""
        if value is None or not value.get_secret_value():
            return value
        from cryptography.fernet import Fernet

        try:
            Fernet(value.get_secret_value().encode())
        except ValueError:
            raise ValueError(
                "not a Fernet key (32 url-safe base64 bytes); make one with "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`'
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)


def load_settings(*, require_token: bool = True, **overrides: object) -> Settings:
    """Read the settings, turning every problem into one readable line."""
    path = _config_file()
    if "HELPCENTER_CONFIG" in os.environ and not path.is_file():
        raise SettingsError(f"HELPCENTER_CONFIG: no such file {path}")
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_first_problem(exc)) from None
    except PydanticSettingsError as exc:  # a value that is not even parseable
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"HELPCENTER_{field.group(1).upper()}" if field else str(path)
        raise SettingsError(f"{name}: malformed value") from None
    except ValueError as exc:  # a TOML file that does not parse
        raise SettingsError(f"{path}: {exc}") from None
    except OSError as exc:  # a TOML file that cannot be read
        raise SettingsError(f"{path}: {exc.strerror}") from None
    if require_token and not settings.token.get_secret_value():
        raise SettingsError("HELPCENTER_TOKEN is missing: set the bot token from @BotFather")
    return settings


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = "_".join(str(part) for part in error["loc"]).upper()
    message = error["msg"].removeprefix("Value error, ")  # our validators' own words
    return f"HELPCENTER_{name}: {message}"
