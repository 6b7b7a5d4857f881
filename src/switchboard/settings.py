"""Process settings, read from ``SWITCHBOARD_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/switchboard.db"
_ON_OFF = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}


class Settings(BaseSettings):
    """Everything the process reads from its environment, except provider API keys, which the
    model factory reads from the variables the config names (they are never stored)."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None  # shares provider limits across processes and machines
    # Without Redis: keep provider limits in the database, shared by every process using it
    # (``serve --workers N`` turns it on for its workers). Off: limits per process (fastest).
    shared_limits: bool = False
    admin_key: SecretStr | None = None
    metrics_token: SecretStr | None = None  # may read /metrics (and nothing else)
    # The console (/ui) signs its session cookie with this secret; unset, it is derived from
    # the admin key (rotating the admin key then ends every console session), and without an
    # admin key either, a random one per process (sessions end at restart and are not shared
    # between --workers). Set it when serving with several workers and no admin key.
    console_secret: SecretStr | None = None
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Mark the console cookie Secure (HTTPS only). "auto": when the request came over HTTPS.
    console_secure_cookie: Literal["auto", "always", "never"] = "auto"

    # Pool settings (PostgreSQL; SQLite uses the same queue pool).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)
    db_pool_pre_ping: bool = True
    db_pool_recycle_s: int = Field(default=1800, ge=-1)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    db_echo: bool = False

    # Whole-unit-of-work retry on transient database errors.
    db_retry_attempts: int = Field(default=5, ge=1)
    db_retry_base_s: float = Field(default=0.05, ge=0)
    db_retry_max_total_s: float = Field(default=1.5, ge=0)

    ledger_sweep_interval_s: float = Field(default=30.0, gt=0)
    # Each process holds a lease in the database, renewed every heartbeat; its pending ledger
    # rows are swept to ``interrupted`` only once its lease has expired (it died).
    ledger_lease_ttl_s: float = Field(default=30.0, gt=0)
    ledger_heartbeat_interval_s: float = Field(default=10.0, gt=0)

    # Runs: how long an Idempotency-Key is kept (then released by the sweep), and how often a
    # process looks for stop requests and queue turns made by other processes.
    run_idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    run_poll_interval_s: float = Field(default=0.25, gt=0, le=10)
    # Admission at the door: at most this many runs execute at once in a process (default: 128
    # on SQLite, whose single writer saturates first; 256 on PostgreSQL); up to
    # ``run_queue_max`` more wait for a place, each at most ``run_queue_timeout_s``. Beyond
    # that a request gets 503 SERVER_BUSY with Retry-After — before anything is written or
    # any provider is called.
    max_active_runs: int | None = Field(default=None, ge=1)
    run_queue_max: int = Field(default=1000, ge=0)
    run_queue_timeout_s: float = Field(default=60.0, gt=0)
    # Writes made after a provider call (its settlement, the run's events and finish) retry
    # transient database errors this long instead of failing the paid-for turn.
    db_insist_max_s: float = Field(default=600.0, gt=0)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_import_bytes: int = Field(default=64 * 1_048_576, ge=1024)  # entries:import bodies
    embedder: Literal["auto", "minilm", "none"] = "auto"  # semantic directory search
    # Logs (switchboard/logs.py): auto = human-readable on a terminal, one JSON object per line
    # otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Traces (switchboard/telemetry.py; needs the ``otel`` extra): "auto" = on when an OTLP
    # endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The
    # exporter reads the standard OTEL_* variables itself (endpoint, headers, service name,
    # sampler); OTEL_SDK_DISABLED=true turns traces off whatever this says.
    otel_enabled: Literal["auto", "on", "off"] = "auto"
    # Prompts, replies and tool arguments/results on the spans (off: models, tokens, ids, costs).
    otel_include_content: bool = False
    config_dir: Path = Path("configs")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # /mcp answers 421 to a Host (403 to an Origin) not listed here: DNS-rebinding protection.
    # Comma-separated; "host:*" allows any port. Add the public host name behind a proxy.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    mcp_allowed_origins: Annotated[list[str], NoDecode] = [
        "http://127.0.0.1:*",
        "http://localhost:*",
        "http://[::1]:*",
    ]

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "database_url must start with 'sqlite+aiosqlite://' or 'postgresql+asyncpg://'"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_enabled", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str):
            text = value.strip().lower()
            return _ON_OFF.get(text, text)
        return value

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> Settings:
        if self.ledger_heartbeat_interval_s >= self.ledger_lease_ttl_s:
            raise ValueError("ledger_heartbeat_interval_s must be shorter than ledger_lease_ttl_s")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
