"""Settings, from pydantic-settings' own sources, the first that has a value winning:
command-line flags, the environment, a `.env` file in the working directory, secret files
(a secrets directory such as `/run/secrets`), the TOML file named by `--config` or
`CAMPAIGN_SYNC_CONFIG` (which may list several apps), then the defaults. Problems become one
`ConfigError` line naming the setting (and the app) to fix."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import select
import stat
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, ClassVar, cast, get_args
from urllib.parse import urlparse

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from campaign_sync import logs
from campaign_sync.hosts import has_url_shape, is_loopback, unsendable

log = logging.getLogger(__name__)

BATCH_FLOOR_SECONDS = 5.0  # Batch: "wait for at least 5 seconds" after a 429
_FLOORS_WARNED: set[float] = set()  # settings below the floor already warned about
DEFAULT_DATABASE_URL = "sqlite:///campaign_sync.db"
DEFAULT_DB_SCHEMA = "public"
DB_SCHEMA = r"^[a-z_][a-z0-9_]{0,62}$"  # a plain PostgreSQL name: no quoting anywhere
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
LOG_FORMAT = "(?i)^(auto|json|text)$"  # any case, as the level: taken in lower case
LOG_LEVEL = "(?i)^(debug|info|warning|error)$"
APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_SECRETS_DIR = Path("/run/secrets")  # where Docker and Kubernetes mount secrets
DOTENV_FILE = ".env"
MAX_KEY_FILE_BYTES = 65536  # a REST key is tens of characters; this is a wrong file
KEY_PIPE_WAIT_SECONDS = 10.0  # a file named that is a pipe: how long to wait for what it holds

# The TOML file of the settings being built (a class-level hook cannot take arguments).
_config_file: contextvars.ContextVar[ConfigFile | None] = contextvars.ContextVar(
    "config_file", default=None
)


class ConfigError(Exception):
    """Bad configuration: the message says which setting (and app) to fix."""


MAX_SECONDS = 10 * 365 * 86400  # a duration beyond ten years is a typo (and overflows dates)
MIN_TIMEOUT_SECONDS = 0.1  # an HTTP timeout below this fails every request (TLS takes longer)
MAX_COUNT = 2**31 - 1  # a count or rate beyond this is a typo (and overflows SQL integers)
MIN_INTERVAL_SECONDS = 1.0  # below this, every tick finds the last pass still running


def _no_crossed_kinds(model: type[BaseModel], info: ValidationInfo, value: Any) -> Any:
    """Refuse a TOML boolean for a number setting, and a TOML number for a boolean one
    (ValueError). pydantic's lax mode would take `detail_refresh_per_pass = false` as 0,
    which means no limit, and `stats = 1` as true; the environment's text (`"1"`,
    `"true"`) is not affected."""
    if info.field_name is None:
        return value
    annotation = model.model_fields[info.field_name].annotation
    kinds = set(get_args(annotation)) or {annotation}
    if isinstance(value, bool) and kinds & {int, float}:
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    if bool in kinds and isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got the number {value}")
    return value


def _setting(default: Any, env: str, **constraints: Any) -> Any:
    """A setting read from the variable `env`, else from TOML by its field name. Every
    number has an upper bound: ten years for a duration (`_SECONDS`), `MAX_COUNT` for
    any other, unless `constraints` give a tighter one."""
    if env.endswith("_SECONDS"):
        constraints.setdefault("le", MAX_SECONDS)
    elif isinstance(default, int | float) and not isinstance(default, bool):
        constraints.setdefault("le", MAX_COUNT)
    return Field(default, validation_alias=AliasChoices(env), **constraints)


# For messages: from after a URL's scheme to its last @, what may be a user and password
# (one holding / ? or # ends the URL's authority early, so its parts cannot be trusted).
_UP_TO_LAST_AT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/+)?.*@", re.DOTALL)


_NO_NUMBER_PORT = re.compile(
    r"^([A-Za-z][\w+.-]*://(?:[^/?#\[\]:]*|[^/?#\[\]:]*\[[^\]/?#]*\]):)(?![0-9]*(?:[/?#]|$))[^/?#]+"
)


def _shown_url(value: str) -> str:
    """A refused base URL as messages show it: anything up to its last `@` (a user or
    password), anything from its first `?` or `#` (a query may hold a token) and a port
    that is no number masked, cut to 80 characters."""
    shown = _UP_TO_LAST_AT.sub(lambda found: f"{found[1] or ''}***@", value.strip())
    shown = re.sub(r"([?#]).*", r"\1***", shown, flags=re.DOTALL)
    # A "port" that is no number is a password whose user forgot the @ (user:pw/...).
    return _NO_NUMBER_PORT.sub(r"\1***", shown)[:80]


class AppConfig(BaseModel):
    """One Batch app (iOS, Android, Web…) as listed under `[[apps]]`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=APP_NAME.pattern)
    api_key: str = Field(min_length=1)
    rest_api_key: SecretStr | None = None
    rest_api_key_env: str | None = Field(default=None, pattern=VARIABLE_NAME)
    interval_seconds: float | None = Field(default=None, ge=MIN_INTERVAL_SECONDS, le=MAX_SECONDS)
    concurrency: int | None = Field(default=None, ge=1, le=64)

    @field_validator("*", mode="before")
    @classmethod
    def _kind_as_written(cls, value: Any, info: ValidationInfo) -> Any:
        return _no_crossed_kinds(cls, info, value)

    @model_validator(mode="after")
    def _one_rest_key(self) -> AppConfig:
        if self.rest_api_key is not None and self.rest_api_key_env is not None:
            raise ValueError("rest_api_key and rest_api_key_env both give the REST key: keep one")
        return self


class Settings(BaseSettings):
    """Each setting comes from its environment variable, or by its field name from TOML."""

    # Case-sensitive: only the documented upper-case variables are read from the environment
    # (a stray LOG_LEVEL or CONCURRENCY is not ours); TOML keys are the field names.
    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=True,
        populate_by_name=True,
        env_file=DOTENV_FILE,
        env_file_encoding="utf-8",
        allow_inf_nan=False,  # CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS=inf is a typo, not a wish
    )

    database_url: str = _setting(DEFAULT_DATABASE_URL, "DATABASE_URL")
    db_schema: str = _setting(DEFAULT_DB_SCHEMA, "CAMPAIGN_SYNC_DB_SCHEMA", pattern=DB_SCHEMA)
    batch_api_key: str | None = _setting(None, "BATCH_API_KEY")
    batch_rest_api_key: SecretStr | None = _setting(None, "BATCH_REST_API_KEY")
    # Before the URL: its validator reads the opt-in (pydantic validates in this order).
    allow_insecure_http: bool = _setting(False, "CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP")
    batch_api_base_url: str = _setting("https://api.batch.com", "BATCH_API_BASE_URL")
    backoff_min_seconds: float = _setting(
        BATCH_FLOOR_SECONDS, "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS", ge=0
    )
    backoff_max_seconds: float = _setting(120.0, "CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS", gt=0)
    concurrency: int = _setting(8, "CAMPAIGN_SYNC_CONCURRENCY", ge=1, le=64)
    detail_max_age_seconds: float = _setting(86400, "CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS", ge=0)
    detail_refresh_per_pass: int = _setting(500, "CAMPAIGN_SYNC_DETAIL_REFRESH_PER_PASS", ge=0)
    interval_seconds: float = _setting(
        300, "CAMPAIGN_SYNC_INTERVAL_SECONDS", ge=MIN_INTERVAL_SECONDS
    )
    lock_lease_seconds: float = _setting(60.0, "CAMPAIGN_SYNC_LOCK_LEASE_SECONDS", ge=3)
    metrics_port: int = _setting(9108, "CAMPAIGN_SYNC_METRICS_PORT", ge=0, le=65535)
    metrics_host: str = _setting("127.0.0.1", "CAMPAIGN_SYNC_METRICS_HOST", min_length=1)
    batch_rest_api_key_file: Path | None = _setting(None, "BATCH_REST_API_KEY_FILE")
    rate_increase_per_second: float = _setting(0.02, "CAMPAIGN_SYNC_RATE_INCREASE_PER_SECOND", gt=0)
    # Between the gate's min_rate and max_rate (batch.ratelimit.RatePolicy): 1 to 200.
    rate_start_per_second: float = _setting(
        30.0, "CAMPAIGN_SYNC_RATE_START_PER_SECOND", ge=1.0, le=200.0
    )
    # At least a tenth of a second: below, no request to Batch can be answered (a
    # denormal 1e-320 was taken, and every request failed: a review's find).
    connect_timeout_seconds: float = _setting(
        5.0, "CAMPAIGN_SYNC_CONNECT_TIMEOUT_SECONDS", ge=MIN_TIMEOUT_SECONDS
    )
    read_timeout_seconds: float = _setting(
        30.0, "CAMPAIGN_SYNC_READ_TIMEOUT_SECONDS", ge=MIN_TIMEOUT_SECONDS
    )
    retry_max_attempts: int = _setting(8, "CAMPAIGN_SYNC_RETRY_MAX_ATTEMPTS", ge=1)
    retry_max_seconds: float = _setting(600.0, "CAMPAIGN_SYNC_RETRY_MAX_SECONDS", gt=0)
    retry_backoff_initial_seconds: float = _setting(
        0.5, "CAMPAIGN_SYNC_RETRY_BACKOFF_INITIAL_SECONDS", gt=0
    )
    retry_backoff_max_seconds: float = _setting(
        30.0, "CAMPAIGN_SYNC_RETRY_BACKOFF_MAX_SECONDS", gt=0
    )
    log_format: str = _setting("auto", "CAMPAIGN_SYNC_LOG_FORMAT", pattern=LOG_FORMAT)
    log_level: str = _setting("INFO", "CAMPAIGN_SYNC_LOG_LEVEL", pattern=LOG_LEVEL)
    stats: bool = _setting(False, "CAMPAIGN_SYNC_STATS")
    stats_window_days: float = _setting(30, "CAMPAIGN_SYNC_STATS_WINDOW_DAYS", gt=0, le=3650)
    stats_max_age_seconds: float = _setting(3600, "CAMPAIGN_SYNC_STATS_MAX_AGE_SECONDS", ge=0)
    # A default, not `default_factory=list`: pydantic copies a list default for each
    # instance, and reading a builtin factory's signature tokenizes its text (~3 ms a start).
    apps: list[AppConfig] = Field(default=[])
    # Set by `load_settings`: where each setting's value came from (`source_of`).
    _sources: Callable[[str], str] | None = PrivateAttr(default=None)

    @field_validator("*", mode="before")
    @classmethod
    def _kind_as_written(cls, value: Any, info: ValidationInfo) -> Any:
        return _no_crossed_kinds(cls, info, value)

    @field_validator("log_format")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        return value.lower()

    @field_validator("batch_api_base_url")
    @classmethod
    def _an_http_url(cls, value: str, info: ValidationInfo) -> str:
        """An http(s) URL, without its trailing slash. The REST key travels in a header:
        plain http only to this machine, unless `allow_insecure_http` says so. Checked
        here, not on the model, so that the message names where the URL came from."""
        shown = _shown_url(value)
        if not has_url_shape(value.strip(), ("http", "https")):
            raise ValueError(f"must be an http(s) URL such as https://api.batch.com, got {shown!r}")
        parsed = urlparse(value.strip())
        refused = unsendable(value.strip())
        if refused is not None:
            raise ValueError(f"{shown!r} is no URL a request can go to: {refused}")
        if parsed.query or parsed.fragment or value.strip().endswith(("?", "#")):
            raise ValueError(
                f"{shown} holds a query or fragment: each request appends Batch's path to the "
                "base URL, which must end with its path (https://api.batch.com)"
            )
        if "@" in value:  # anywhere: a password holding / ? or # ends the authority early
            raise ValueError(
                f"{shown} holds an @, as a user or password would: Batch takes the REST key "
                "in a header and no path of its API holds one, and what a URL holds reaches "
                "error messages; leave it out"
            )
        insecure = parsed.scheme == "http" and not is_loopback(parsed.hostname or "")
        # Absent when its own value was refused: that error is the one to read.
        if insecure and not info.data.get("allow_insecure_http", True):
            raise ValueError(
                f"{shown} is plain http to another host: the REST key would "
                "cross the network in clear. Use https, or set "
                "CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP=true (allow_insecure_http = true in the "
                "config file) if that is what you want"
            )
        return value.strip().rstrip("/")

    @field_validator("db_schema")
    @classmethod
    def _not_postgresqls_own(cls, value: str) -> str:
        if value.startswith("pg_") or value == "information_schema":
            raise ValueError(f"{value} is one of PostgreSQL's own schemas: name another")
        return value

    @field_validator("database_url")
    @classmethod
    def _a_database_we_speak(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "campaign-sync stores into PostgreSQL (postgresql://USER@HOST/DB, psycopg 3) or "
                f"SQLite (sqlite:///PATH), got a URL starting {value.split('://', 1)[0][:30]!r}"
            )
        if scheme != "sqlite":
            # Never echo the URL here: it may hold a password.
            authority = re.split(r"[/?#]", value.split("://", 1)[1], maxsplit=1)[0]
            if authority.count("@") > 1:
                raise ValueError(
                    "its user or password holds '@': write it percent-encoded, %40 (a bare "
                    "'@' makes the rest of the password look like the host)"
                )
            try:
                _ = make_url(value).port  # reading it parses it
            except ValueError:
                if "," in authority.rpartition("@")[2]:  # libpq's postgresql://h1:1,h2:2/db
                    raise ValueError(
                        "several hosts in its host part are libpq's form, which SQLAlchemy "
                        "does not read: list them in the query string instead, "
                        "postgresql://USER@/DB?host=HOST1:PORT1&host=HOST2:PORT2 (SQLAlchemy's "
                        "PostgreSQL docs, 'Specifying multiple fallback hosts')"
                    ) from None
                raise ValueError(
                    "its host and port do not parse: HOST[:PORT] with a numeric port, "
                    "or [IPv6]:PORT"
                ) from None
        return value

    @field_validator("batch_rest_api_key_file", mode="before")
    @classmethod
    def _an_empty_path_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("batch_api_key", "batch_rest_api_key", mode="before")
    @classmethod
    def _a_header_safe_key(cls, value: object) -> object:
        return header_safe_key(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init values are the command-line flags; the TOML file loses to everything else.
        view = _variables_view()
        dotenv = cast(DotEnvSettingsSource, dotenv_settings)
        secrets = cast(SecretsSettingsSource, file_secret_settings)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            *map(_VariablesOnly, (
                EnvSettingsSource(view, case_sensitive=True),
                DotEnvSettingsSource(
                    view, env_file=dotenv.env_file, env_file_encoding=dotenv.env_file_encoding,
                    case_sensitive=True,
                ),
                _SecretFiles(view, secrets_dir=secrets.secrets_dir, case_sensitive=True),
            )),
        ]  # fmt: skip
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(config_file.source(settings_cls))
        return tuple(sources)

    def source_of(self, field: str) -> str:
        """Where setting `field` (a field name, e.g. "metrics_port") took its value, as the
        user wrote it: `--metrics-port`, a variable (and
        `.env` or its secret file), a config file's key; for a default value, "the
        default" and where to set it; the variable's name when the settings were not
        built by `load_settings`."""
        if field not in self.model_fields_set:
            flag = "--" + field.replace("_", "-")
            return f"the default (set {flag}, {_variable(field) or field} or {field} in TOML)"
        if self._sources is not None:
            return self._sources(field)
        return _variable(field) or field

    def backoff_floor(self) -> float:
        """Never below Batch's 5 s floor against the real API; lower is for local stand-ins."""
        host = urlparse(self.batch_api_base_url).hostname or ""
        if host.endswith("batch.com") and self.backoff_min_seconds < BATCH_FLOOR_SECONDS:
            if self.backoff_min_seconds not in _FLOORS_WARNED:  # once per process, not per pass
                _FLOORS_WARNED.add(self.backoff_min_seconds)
                log.warning(
                    "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS=%s is below Batch's 5 s floor; using 5",
                    self.backoff_min_seconds,
                )
            return BATCH_FLOOR_SECONDS
        return self.backoff_min_seconds


DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite", "sqlite+pysqlite")


def header_safe_key(value: str) -> str:
    """A key as it travels in a URL path or an HTTP header: surrounding white space (a
    secret file's last newline) removed; anything but visible ASCII refused (ValueError),
    since no request could carry it (RFC 9110, section 5.5)."""
    key = value.strip()
    if key and not all("!" <= char <= "~" for char in key):
        raise ValueError(
            "holds characters no HTTP request can carry (spaces, control or non-ASCII)"
        )
    return key


@dataclass(frozen=True)
class ResolvedApp:
    """An app ready to sync: its REST key found, its interval and concurrency decided."""

    name: str
    api_key: str
    rest_api_key: SecretStr
    interval_seconds: float
    concurrency: int


def _field_name(name: str) -> str | None:
    """The `Settings` field a validation error's location starts with (its variable, as
    pydantic reports it, or its own name); None for none."""
    if name in Settings.model_fields:
        return name
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and name in alias.choices:
            return field_name
    return None


def _variable(field_name: str) -> str | None:
    alias = Settings.model_fields[field_name].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else None


def _describe(
    location: tuple[Any, ...],
    config_file: ConfigFile | None,
    flags: Mapping[str, Any],
    secrets_dir: Path | None,
) -> str:
    """Where a validation error is, as the user wrote it, by the source that gave the
    value (they win in this order): a command-line flag by its flag
    (`--interval-seconds`), a variable by its name
    (and `.env` or the secret file when it came from there), a TOML key by its path (and
    app) in its file."""
    if not location:
        return ""
    field = _field_name(str(location[0]))
    variable = _variable(field) if field is not None else None
    if field is not None and field in flags:
        # Only what the command line gave: the CLI leaves a value click read from the
        # option's variable to the settings, which read that variable and name it.
        return "--" + field.replace("_", "-")
    if variable is not None:
        if variable in os.environ:
            return variable
        if _from_dotenv(variable) is not None:
            return f"{variable} (in {DOTENV_FILE})"
        if secrets_dir is not None and (secrets_dir / variable).is_file():
            return f"{variable} (secret file {secrets_dir / variable})"
    raw = config_file.data if config_file is not None else {}
    if field is None or field not in raw:
        return variable or ".".join(map(str, location))
    parts: list[str] = [field]
    for index, part in enumerate(location[1:], start=1):
        if isinstance(part, int) and location[index - 1] == "apps":
            apps = raw.get("apps")
            name = None
            if isinstance(apps, list) and part < len(apps) and isinstance(apps[part], dict):
                name = apps[part].get("name")
            parts[-1] = f"apps[{part}]" + (f" (app '{name}')" if name else "")
        else:
            parts.append(str(part))
    assert config_file is not None
    return f"config file {config_file.path}, key {'.'.join(parts)}"


class ConfigFile:
    """The TOML file, read by pydantic-settings' `TomlConfigSettingsSource`."""

    def __init__(self, path: Path, named_by: str) -> None:
        self.path = path
        self.named_by = named_by
        self.data: dict[str, Any] = {}

    def source(self, settings_cls: type[BaseSettings]) -> TomlConfigSettingsSource:
        if not self.path.exists():
            raise ConfigError(f"{self.named_by} names {self.path}, which does not exist")
        if not self.path.is_file():
            kind = "a directory" if self.path.is_dir() else "not a regular file"
            raise ConfigError(
                f"{self.named_by} names {self.path}, which is {kind}: name a TOML file"
            )
        import tomllib  # only where a file is named: most runs name none (-1.5 ms a start)

        try:
            source = TomlConfigSettingsSource(settings_cls, toml_file=self.path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            hint = ""
            with contextlib.suppress(OSError):
                if self.path.read_bytes()[:3] == b"\xef\xbb\xbf":
                    hint = " (it starts with a byte order mark: save it as UTF-8 without one)"
            raise ConfigError(f"config file {self.path} is not valid TOML: {error}{hint}") from None
        except ValueError:  # tomllib's int() of a number with more digits than Python reads
            raise ConfigError(
                f"config file {self.path} cannot be read: it holds an integer of more than "
                f"{sys.get_int_max_str_digits()} digits"
            ) from None
        except RecursionError:
            raise ConfigError(
                f"config file {self.path} cannot be read: arrays or tables nested too deeply"
            ) from None
        except OSError as error:
            raise ConfigError(f"config file {self.path} cannot be read: {error.strerror}") from None
        self.data = source.toml_data
        unknown = sorted(set(self.data) - set(settings_cls.model_fields))
        if unknown:  # a misspelled setting must not be silently ignored
            raise ConfigError(
                f"config file {self.path}: unknown setting {', '.join(unknown)} (settings are "
                "the lower-case names of the README's variables, e.g. concurrency)"
            )
        if not isinstance(self.data.get("apps", []), list):
            raise ConfigError(f"config file {self.path}: apps must be a list of [[apps]] tables")
        self._warn_if_secrets_are_readable()
        return source

    def _warn_if_secrets_are_readable(self) -> None:
        apps = self.data.get("apps", [])
        inline = any(isinstance(app, dict) and "rest_api_key" in app for app in apps)
        if (inline or "batch_rest_api_key" in self.data) and self.path.stat().st_mode & (
            stat.S_IRGRP | stat.S_IROTH
        ):
            logs.warn_when_configured(
                log.name,
                f"config file {self.path} holds secrets and is readable by other users; "
                f"run chmod 600 {self.path}",
            )


@cache
def _variables_view() -> type[BaseSettings]:
    """`Settings` as the environment-like sources (the environment, `.env`, secret files)
    see it: its fields by their variables only, `apps` (TOML's) left out, so that nothing
    else is read there (see `_VariablesOnly`)."""
    fields: dict[str, Any] = {
        name: (field.annotation, field)
        for name, field in Settings.model_fields.items()
        if _variable(name) is not None
    }
    return create_model("SettingsVariables", __base__=_VariablesBase, **fields)


class _VariablesBase(BaseSettings):
    """The base of `_variables_view`: read by sources only, never validated (so never built)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, defer_build=True)


class _SecretFiles(SecretsSettingsSource):
    """pydantic-settings' secrets directory, passing over a link to nothing as over a file
    that is not there: pydantic-settings stopped on one ("path does not exist", its own
    assertion) even for a variable the environment sets, which wins over the file. When
    the variable is set nowhere else, `_unreadable_secret_file` names the link first."""

    @classmethod
    def find_case_path(cls, dir_path: Path, file_name: str, case_sensitive: bool) -> Path | None:
        found = super().find_case_path(dir_path, file_name, case_sensitive)
        return None if found is not None and found.is_symlink() and not found.exists() else found


class _VariablesOnly(PydanticBaseSettingsSource):
    """An environment-like source reduced to the documented variables. `Settings` has
    `populate_by_name`, which the TOML file's keys and the flags need, so a field's name
    was read there too: a stray `concurrency=0` or `database_url=...` in the environment or
    `.env` was used (and blamed on CAMPAIGN_SYNC_CONCURRENCY), and `apps=foo` stopped
    every command with a JSON error."""

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self._source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {key: value for key, value in self._source().items() if key in _variables()}


@cache
def _variables() -> frozenset[str]:
    """Every setting's variable (`CAMPAIGN_SYNC_CONCURRENCY`, ...)."""
    return frozenset(
        variable for name in Settings.model_fields if (variable := _variable(name)) is not None
    )


def _from_dotenv(name: str) -> str | None:
    """A variable's value in `.env` (`""` when it is there but empty), None when absent."""
    if not Path(DOTENV_FILE).is_file():
        return None
    from dotenv import dotenv_values

    try:
        with _dotenv_labelled():
            return dotenv_values(DOTENV_FILE, encoding="utf-8").get(name)
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{DOTENV_FILE} is not UTF-8 text ({error.reason}): fix or remove it"
        ) from None


def _secrets_dir() -> Path | None:
    named = os.environ.get("CAMPAIGN_SYNC_SECRETS_DIR") or _from_dotenv("CAMPAIGN_SYNC_SECRETS_DIR")
    if named:
        if not Path(named).is_dir():
            raise ConfigError(f"CAMPAIGN_SYNC_SECRETS_DIR names {named}, which is not a directory")
        return Path(named)
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


def _read_secret_file(settings: Settings, named: str) -> Settings:
    """The REST key from the file BATCH_REST_API_KEY_FILE names, unless a REST key was
    given; `named`: where that path came from (`_describe`), for the messages."""
    path = settings.batch_rest_api_key_file
    given = settings.batch_rest_api_key
    if path is None or (given is not None and given.get_secret_value()):
        return settings  # an empty BATCH_REST_API_KEY gives none: the file is read
    try:
        value = read_named_file(path, MAX_KEY_FILE_BYTES, secret=True).decode("utf-8").strip()
    except UnreadableFile as unreadable:
        hint = {
            "directory": ": name the key's file",
            "too large": ": no key is that long; name the key's file",
        }.get(unreadable.kind, "")
        raise ConfigError(f"{named} names {path}, {unreadable.relative}{hint}") from None
    except UnicodeDecodeError:
        not_text = "which cannot be read: it is not UTF-8 text"
        raise ConfigError(f"{named} names {path}, {not_text}") from None
    if not value:
        raise ConfigError(f"{named} names {path}, which is empty")
    key = _usable_key(value, f"the key in {path} ({named})")
    return settings.model_copy(update={"batch_rest_api_key": SecretStr(key)})


# A terminal named as a file (`/dev/stdin` at a prompt): a person types, so it is waited
# for longer, with a line saying so; still bounded: `docker run -t` gives a terminal no
# one types into (a review: it waited forever, silently).
TERMINAL_WAIT_SECONDS = 120.0


class StalledRead(Exception):
    """Nothing, or only part of a pipe's or terminal's content, came before a silence of
    `KEY_PIPE_WAIT_SECONDS` (`TERMINAL_WAIT_SECONDS` for a terminal): a FIFO no one
    writes to, a writer that keeps the pipe open and stopped. The text says what came."""


class UnreadableFile(Exception):
    """Why a file a user named could not be read whole (`read_named_file`): `str()` says
    it after the file's name ("is a directory", "holds more than 100 bytes", "cannot be
    read: Permission denied", "8 bytes came, then nothing for 10 s (...)"), `relative`
    after "<name>, "; `kind` ("directory", "too large", "stalled", "error") is for the
    caller's hint of what to name instead."""

    def __init__(self, why: str, kind: str) -> None:
        super().__init__(why)
        self.kind = kind

    @property
    def relative(self) -> str:
        return f"from which {self}" if self.kind == "stalled" else f"which {self}"


def read_named_file(path: Path, limit: int, *, secret: bool = False) -> bytes:
    """The whole content of the file `path`, at most `limit` bytes, read by `read_at_most`
    (pipes and terminals without waiting for ever; `secret`: no echo). Raises
    UnreadableFile for a directory, a file longer than `limit` (/dev/zero included), a
    pipe or terminal that went silent (`StalledRead`), or an OSError (its strerror)."""
    try:
        if path.is_dir():
            raise UnreadableFile("is a directory", "directory")
        content = read_at_most(path, limit + 1, secret=secret)
    except StalledRead as stalled:
        raise UnreadableFile(str(stalled), "stalled") from None
    except OSError as error:
        raise UnreadableFile(f"cannot be read: {error.strerror}", "error") from None
    if len(content) > limit:
        raise UnreadableFile(f"holds more than {limit} bytes", "too large")
    return content


def read_at_most(path: Path, limit: int, *, secret: bool = False) -> bytes:
    """Up to `limit` bytes of `path`: a regular file as usual; anything else (a pipe, such
    as `<(echo key)` or /dev/stdin, a device, a terminal) without blocking, giving up
    (`StalledRead`) after a silence of `KEY_PIPE_WAIT_SECONDS` (a terminal:
    `TERMINAL_WAIT_SECONDS`, after a line on stderr asking for Ctrl-D): a FIFO no one
    writes to waited forever, and /dev/zero was read until memory ran out. For every
    file a user names that is read whole (the REST key's, update-in-app's --from-file).
    `secret`: a terminal does not echo what is typed (the REST key was shown on the screen
    as it was typed, as `getpass` would not), and its echo is put back after.
    Raises OSError as `open` does."""
    if path.is_file():
        with path.open("rb") as file:
            return file.read(limit)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks: list[bytes] = []
    try:
        terminal = os.isatty(descriptor)
        wait = TERMINAL_WAIT_SECONDS if terminal else KEY_PIPE_WAIT_SECONDS
        with _echo_off(descriptor) if terminal and secret else contextlib.nullcontext():
            if terminal:  # asked once the echo is off: a key typed at once is not shown
                hidden = " (not shown)" if secret else ""
                asked = f"campaign-sync: reading {path} from the terminal{hidden}: end it with "
                with contextlib.suppress(OSError):
                    os.write(2, f"{logs.printable(asked)}Ctrl-D\n".encode())
            _read_until_silent(descriptor, chunks, limit, wait, terminal)
    finally:
        os.close(descriptor)
    return b"".join(chunks)


@contextlib.contextmanager
def _echo_off(descriptor: int) -> Iterator[None]:
    """The terminal at `descriptor` does not echo while the block runs (as `getpass`);
    its settings are put back after, and a newline is written to stderr in place of the
    one the user typed unseen. Both changes take effect at once (TCSANOW): input typed
    ahead is kept (TCSAFLUSH, getpass's, threw away a key typed before the prompt, and
    the read then waited its whole silence). The ends of the process that skip `finally`
    (a signal in the set-up window) put the settings back too (`startup`)."""
    import signal
    import termios
    import threading

    from campaign_sync import startup

    before = termios.tcgetattr(descriptor)
    quiet = list(before)
    quiet[3] &= ~termios.ECHO  # lflag; canonical mode stays: lines and Ctrl-D as usual
    startup.terminal_changed(descriptor, before)
    # A signal left to its default action ends the process with no `finally` (SIGTERM at
    # `check`'s prompt, after the window; Ctrl-\, a closed terminal's SIGHUP anywhere): it
    # ends it by the signal still, the terminal put back (a review's finds).
    taken: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for stop in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            if signal.getsignal(stop) is signal.SIG_DFL:
                signal.signal(stop, lambda signum, _: startup.die_by_signal(signum))
                taken.append(stop)
    termios.tcsetattr(descriptor, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSANOW, before)
        startup.terminal_changed(descriptor, None)
        for stop in taken:
            signal.signal(stop, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            os.write(2, b"\n")


def _read_until_silent(
    descriptor: int, chunks: list[bytes], limit: int, wait: float, terminal: bool
) -> None:
    """`read_at_most`'s loop over a non-blocking `descriptor`, appending to `chunks`."""
    while sum(map(len, chunks)) < limit:
        ready, _, _ = select.select([descriptor], [], [], wait)
        if not ready:
            came = sum(map(len, chunks))
            if came:
                raise StalledRead(
                    f"{came} bytes came, then nothing for {wait:g} s (a writer that stopped?)"
                )
            raise StalledRead(
                f"nothing came within {wait:g} s "
                + ("(end the input with Ctrl-D)" if terminal else "(a pipe no one writes to?)")
            )
        try:
            chunk = os.read(descriptor, limit - sum(map(len, chunks)))
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)


def load_settings(config_path: str | os.PathLike[str] | None = None, **flags: Any) -> Settings:
    """Settings from every source; `flags` (field names, e.g. from the command line) win.

    The TOML file is `config_path`, else the one `CAMPAIGN_SYNC_CONFIG` names (in the
    environment or `.env`).
    """
    named_by = "--config"
    if config_path is None:
        named_by = "CAMPAIGN_SYNC_CONFIG"
        config_path = os.environ.get(named_by) or None  # "": unset
        if config_path is None:
            config_path = _from_dotenv(named_by) or None
            named_by = f"CAMPAIGN_SYNC_CONFIG (in {DOTENV_FILE})" if config_path else named_by
    if config_path is not None and not str(config_path).strip():
        raise ConfigError(f"{named_by} names no file (an empty path): name the TOML file")
    config_file = ConfigFile(Path(config_path), named_by) if config_path else None
    secrets_dir = _secrets_dir()
    token = _config_file.set(config_file)
    library_warnings: list[warnings.WarningMessage] = []
    flagged = {variable for field in flags if (variable := _variable(field)) is not None}
    unreadable = _unreadable_secret_file(secrets_dir, flagged)
    if unreadable is not None:
        raise ConfigError(f"settings cannot be read: {unreadable}")
    try:
        with warnings.catch_warnings(record=True) as library_warnings, _dotenv_labelled():
            warnings.filterwarnings("always", category=UserWarning, module="pydantic_settings")
            settings = Settings(_secrets_dir=secrets_dir, **flags)  # type: ignore[call-arg]
    except ValidationError as error:
        problems = "; ".join(
            ": ".join(
                part
                for part in (
                    _describe(tuple(e["loc"]), config_file, flags, secrets_dir),
                    _problem(e),
                )
                if part
            )
            for e in error.errors()
        )
        raise ConfigError(f"settings: {problems}") from None
    except (SettingsError, UnicodeDecodeError) as error:  # a .env or secret file unreadable
        cause = error.__cause__ or error
        raise ConfigError(f"settings cannot be read: {cause}") from None
    finally:
        _config_file.reset(token)
        _relay(library_warnings)
    settings._sources = lambda field: _describe((field,), config_file, flags, secrets_dir)
    _ordered_bounds(settings)
    named = settings.source_of("batch_rest_api_key_file")
    return _read_secret_file(settings, named)


# Pairs of settings where the first may not exceed the second, with what happens when only
# the second is set below the first's default: a backoff's first (or
# least) wait and its longest. Raising the longest to the least, as the gate did, made a
# typo a silent 200 s pause.
ORDERED_BOUNDS = (
    ("backoff_min_seconds", "backoff_max_seconds", "the longest wait is taken as {least} s"),
    # tenacity's wait_exponential caps each wait at the maximum (plus the jitter).
    ("retry_backoff_initial_seconds", "retry_backoff_max_seconds", "each wait is {most} s"),
)


def _ordered_bounds(settings: Settings) -> None:
    """Raises ConfigError naming both settings, their values and where each came from,
    when a pair of `ORDERED_BOUNDS` is the wrong way round."""

    def named(field: str) -> str:
        if field not in settings.model_fields_set:
            return f"{_variable(field) or field} (the default)"
        return settings.source_of(field)

    def shown(value: float) -> str:
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)

    for low, high, outcome in ORDERED_BOUNDS:
        least, most = getattr(settings, low), getattr(settings, high)
        if least <= most:
            continue
        said = f"{named(low)} = {shown(least)} is above {named(high)} = {shown(most)}"
        if low not in settings.model_fields_set:
            # Only the longest was set, below the least's default: accepted before this
            # rule (the longest raised to the least), so kept working, and said.
            taken = outcome.format(least=shown(least), most=shown(most))
            log.warning("%s: %s", said, taken)
            continue
        raise ConfigError(
            f"settings: {said}: the least wait cannot exceed the longest; lower the first "
            "or raise the second"
        )


# What each pattern a setting must match means, in words: pydantic's own message quotes
# the regular expression ("String should match pattern '^(auto|json|text)$'").
_PATTERN_MEANING = {
    DB_SCHEMA: "a lower-case PostgreSQL name: a letter or _, then letters, digits or _ (63 "
    "at most)",
    APP_NAME.pattern: "a name of letters, digits, _ . or - (63 at most), starting with a "
    "letter or digit",
    VARIABLE_NAME: "an environment variable's name: letters, digits or _, not starting "
    "with a digit",
    LOG_FORMAT: "auto, json or text",
    LOG_LEVEL: "debug, info, warning or error",
}


def _problem(error: Any) -> str:
    """A validation error's message as the settings' errors say it: an empty value of a
    setting that has a default as such (pydantic said "Input should be a valid integer,
    unable to parse string as an integer" for `CAMPAIGN_SYNC_CONCURRENCY=`, as a compose
    file's `${UNSET}` gives; it stays an error, not the default: an empty `DATABASE_URL`
    must not sync into a SQLite file); a pattern by its meaning, with the value given
    (`_PATTERN_MEANING`); pydantic's words otherwise."""
    loc, given = tuple(error.get("loc") or ()), error.get("input")
    name = _field_name(str(loc[0])) if len(loc) == 1 else None
    field = Settings.model_fields[name] if name is not None else None
    if isinstance(given, str) and not given.strip() and field and not field.is_required():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, bool):
            default = str(default).lower()
        elif isinstance(default, float):
            default = f"{default:g}"
        shown = f" ({default})" if isinstance(default, str | int) and str(default) else ""
        return f"empty (or only white space): give a value, or leave it out for the default{shown}"
    pattern = (error.get("ctx") or {}).get("pattern")
    if error.get("type") == "string_pattern_mismatch" and pattern in _PATTERN_MEANING:
        return f"expected {_PATTERN_MEANING[pattern]}, got {error.get('input')!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def _unreadable_secret_file(
    secrets_dir: Path | None, flagged: set[str] | frozenset[str] = frozenset()
) -> str | None:
    """Which of our variables' files in the secrets directory cannot be read, and why;
    None when they all can (`flagged`: variables a command-line flag sets, which wins).
    Asked before pydantic-settings reads them: its own messages name no file ('path does
    not exist' for a link to nothing, a codec's words for a file that is not UTF-8), and
    it read a 100 MB file whole (11 s, 255 MB) and took it."""
    if secrets_dir is None:
        return None
    problems = (
        _secret_file_problem(
            secrets_dir / variable,
            given=partial(_given_elsewhere, variable, flagged),
        )
        for variable in sorted(_variables())
    )
    return next((problem for problem in problems if problem is not None), None)


def _given_elsewhere(variable: str, flagged: set[str] | frozenset[str]) -> bool:
    """Whether `variable` is set by a flag (`flagged`), in the environment or in `.env`,
    which win over its secret file."""
    return variable in flagged or variable in os.environ or _from_dotenv(variable) is not None


def _secret_file_problem(path: Path, *, given: Callable[[], bool] = lambda: False) -> str | None:
    """Why the secret file `path` cannot be read ("the secret file P is a link to T, which
    does not exist", "... cannot be read: Permission denied", "... is not UTF-8 text"), or
    None: it can be, or there is no such file (a directory is pydantic-settings' warning).
    `given()`: its variable is set where it wins over the file, and pydantic-settings
    passes over a link to nothing, so such a link is no problem then (the others it would
    read); asked only for such a link (it may read `.env`)."""
    if path.is_symlink() and not path.exists():
        if given():
            return None
        return f"the secret file {path} is a link to {os.readlink(path)}, which does not exist"
    if path.is_file():
        try:
            if path.stat().st_size > MAX_KEY_FILE_BYTES:  # not read to find out
                return (
                    f"the secret file {path} holds more than {MAX_KEY_FILE_BYTES} bytes: no "
                    "setting is that long"
                )
            path.read_text(encoding="utf-8")
        except OSError as error:
            return f"the secret file {path} cannot be read: {error.strerror}"
        except UnicodeDecodeError:
            return f"the secret file {path} is not UTF-8 text"
    return None


def _relay(caught: list[warnings.WarningMessage]) -> None:
    """The warnings caught while the settings were read: pydantic-settings' own (a directory
    in the secrets directory named like a variable, say) as one log line each, once each
    (as Python warnings they came with a line of the library's source); any other is
    shown as Python would have shown it."""
    relayed: set[str] = set()
    for caught_one in caught:
        message = str(caught_one.message)
        if issubclass(caught_one.category, UserWarning) and "pydantic_settings" in str(
            caught_one.filename
        ):
            if message not in relayed:
                relayed.add(message)
                logs.warn_when_configured(log.name, f"settings: {message}")
        else:
            warnings.warn_explicit(
                caught_one.message, caught_one.category, caught_one.filename, caught_one.lineno
            )


class _DotenvOnce(logging.Filter):
    """python-dotenv's warnings about our `.env` (a line it cannot parse), once each per
    process and naming the file: `.env` is read by each source and lookup that needs it,
    and each printed the same line again (five times for one `check`). Routed through
    `logs.warn_when_configured`, so they take the configured log format and level."""

    seen: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message not in self.seen:
            self.seen.add(message)
            logs.warn_when_configured(log.name, f"{DOTENV_FILE}: {message}")
        return False


@contextlib.contextmanager
def _dotenv_labelled() -> Iterator[None]:
    """While our `.env` is read: python-dotenv's warnings go through `_DotenvOnce`. Only
    then, so that a program importing us and reading its own env files keeps its own."""
    logger, only_once = logging.getLogger("dotenv.main"), _DotenvOnce()
    logger.addFilter(only_once)
    try:
        yield
    finally:
        logger.removeFilter(only_once)


def resolve_apps(settings: Settings, environ: Mapping[str, str] | None = None) -> list[ResolvedApp]:
    """The apps to sync, each with its REST key; a `ConfigError` names what is missing."""
    environ = os.environ if environ is None else environ
    configured = list(settings.apps)
    if not configured:
        blank = settings.batch_api_key is not None and not settings.batch_api_key.strip()
        if blank and "batch_api_key" in settings.model_fields_set:
            raise ConfigError(
                f"no app to sync: {settings.source_of('batch_api_key')} is empty (or only "
                "white space)"
            )
        if not settings.batch_api_key:
            raise ConfigError(
                "no app to sync: set BATCH_API_KEY (and BATCH_REST_API_KEY), or list apps "
                "in a TOML file named by CAMPAIGN_SYNC_CONFIG"
            )
        configured = [AppConfig(name="default", api_key=settings.batch_api_key)]
    elif settings.batch_api_key:
        log.warning("BATCH_API_KEY is ignored: the config file lists the apps to sync")
    names = [app.name for app in configured]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"app names must be unique; repeated: {', '.join(duplicates)}")
    resolved = []
    listed_in = settings.source_of("apps")  # "config file c.toml, key apps"
    for index, app in enumerate(configured):
        # Where an app's own key was written, as the settings' own errors name it:
        # "config file c.toml, key apps[0] (app 'ios').api_key".
        in_file = f"{listed_in}[{index}] (app '{app.name}')."
        rest_key, rest_from = app.rest_api_key, f"{in_file}rest_api_key"
        if rest_key is None and app.rest_api_key_env:
            _not_another_setting(app.name, app.rest_api_key_env)
            value = _named_variable(app.rest_api_key_env, settings, environ)
            if not value:
                raise ConfigError(
                    f"app '{app.name}': rest_api_key_env names {app.rest_api_key_env}, "
                    "which is not set (in the environment, .env or the secrets directory)"
                )
            rest_key = SecretStr(value)
            rest_from = f"app '{app.name}': {app.rest_api_key_env} (its rest_api_key_env)"
        if rest_key is None:  # the default; an app's own empty key is refused below
            rest_key, rest_from = settings.batch_rest_api_key, "BATCH_REST_API_KEY"
        blank = rest_key is not None and not rest_key.get_secret_value().strip()
        if blank and rest_from == "BATCH_REST_API_KEY":
            raise ConfigError(
                f"app '{app.name}' has no REST API key: "
                f"{settings.source_of('batch_rest_api_key')} is empty (or only white space)"
            )
        if rest_key is None:
            raise ConfigError(
                f"app '{app.name}' has no REST API key: set BATCH_REST_API_KEY (or "
                "BATCH_REST_API_KEY_FILE), or rest_api_key_env (or rest_api_key) for the app "
                "in the config file"
            )
        api_from = f"{in_file}api_key" if settings.apps else "BATCH_API_KEY"
        api_key = _usable_key(app.api_key, api_from)
        rest_key = SecretStr(_usable_key(rest_key.get_secret_value(), rest_from))
        resolved.append(
            ResolvedApp(
                name=app.name,
                api_key=api_key,
                rest_api_key=rest_key,
                interval_seconds=app.interval_seconds or settings.interval_seconds,
                concurrency=app.concurrency or settings.concurrency,
            )
        )
    sharing: dict[str, list[str]] = {}
    for found in resolved:
        sharing.setdefault(found.api_key, []).append(found.name)
    for names in (names for names in sharing.values() if len(names) > 1):
        log.warning(
            "apps %s have the same API key: one Batch app, synced under each name, so "
            "every count over the apps counts its campaigns %d times",
            ", ".join(f"'{name}'" for name in names),
            len(names),
        )
    return resolved


# The variables campaign-sync reads besides its settings' (README, tests/conftest.py,
# benchmarks/), and the standard network ones it reads in either case (proxies, CA bundle).
_OTHER_VARIABLES = frozenset(
    ("CAMPAIGN_SYNC_CONFIG", "CAMPAIGN_SYNC_SECRETS_DIR", "CAMPAIGN_SYNC_DEBUG",
     "CAMPAIGN_SYNC_TEST_PG_URL", "BENCH_ADMIN_DATABASE_URL")
)  # fmt: skip
_NETWORK_VARIABLES = frozenset(
    ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
)


def _not_another_setting(app: str, name: str) -> None:
    """A ConfigError when an app's `rest_api_key_env` names a variable campaign-sync reads
    for another purpose (its settings' other than BATCH_REST_API_KEY, the proxy and CA
    bundle variables in either case): BATCH_REST_API_KEY_FILE holds a path and
    BATCH_API_KEY the app's live key, DATABASE_URL a URL; none is a REST key, and sending
    it as one would show Batch (and its logs) a secret that is not theirs to see."""
    ours = name in _OTHER_VARIABLES or name.upper() in _NETWORK_VARIABLES
    if ours or (name in _variables() and name != "BATCH_REST_API_KEY"):
        hint = (
            " (it holds the key file's path: set BATCH_REST_API_KEY_FILE alone for the "
            "default key, or name a variable that holds the key itself)"
            if name == "BATCH_REST_API_KEY_FILE"
            else ""
        )
        raise ConfigError(
            f"app '{app}': rest_api_key_env names {name}, one of the variables "
            f"campaign-sync reads for another purpose, not one holding a REST key{hint}"
        )


def _named_variable(name: str, settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The value of the variable an app's `rest_api_key_env` names, from the same places
    as the settings' own variables: the environment, `.env`, the secrets directory;
    `BATCH_REST_API_KEY` as the settings resolved it (its key file included)."""
    if environ.get(name):
        return environ[name]
    if name == "BATCH_REST_API_KEY" and settings.batch_rest_api_key is not None:
        return settings.batch_rest_api_key.get_secret_value() or None
    found = _from_dotenv(name)
    if found:
        return found
    secrets = _secrets_dir()
    if secrets is None:
        return None
    problem = _secret_file_problem(secrets / name)
    if problem is not None:
        raise ConfigError(problem)
    if (secrets / name).is_file():
        return (secrets / name).read_text(encoding="utf-8").strip() or None
    return None


def _usable_key(value: str, named: str) -> str:
    """A key as requests carry it (`header_safe_key`); a ConfigError naming where it came
    from (never the key) when it holds what no request can carry, or only white space."""
    try:
        key = header_safe_key(value)
    except ValueError as unusable:
        raise ConfigError(f"{named} {unusable}") from None
    if not key:
        raise ConfigError(f"{named} is blank: empty or only white space")
    return key


def select_apps(apps: list[ResolvedApp], names: Sequence[str]) -> list[ResolvedApp]:
    """The apps with these names (all of them when none is given), or a ConfigError."""
    if not names:
        return apps
    known = {app.name: app for app in apps}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"no app named {', '.join(repr(n) for n in unknown)}; "
            f"configured apps: {', '.join(known)}"
        )
    return [known[name] for name in names]
