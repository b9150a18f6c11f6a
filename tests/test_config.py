"""Settings: environment, TOML apps, precedence and messages that name what to fix."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from campaign_sync.config import ConfigError, Settings, load_settings, resolve_apps


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///campaign_sync.db"
    assert settings.batch_api_base_url == "https://api.batch.com"
    assert settings.backoff_min_seconds == 5
    assert settings.detail_max_age_seconds == 86400
    assert settings.interval_seconds == 300
    assert settings.concurrency == 8
    assert settings.metrics_port == 9108
    assert settings.metrics_host == "127.0.0.1"


def test_single_app_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_API_KEY", "LIVEKEY")
    monkeypatch.setenv("BATCH_REST_API_KEY", "rest-secret")
    monkeypatch.setenv("CAMPAIGN_SYNC_CONCURRENCY", "3")
    apps = resolve_apps(load_settings())
    assert [(a.name, a.api_key, a.concurrency) for a in apps] == [("default", "LIVEKEY", 3)]
    assert apps[0].rest_api_key.get_secret_value() == "rest-secret"
    assert "rest-secret" not in repr(apps[0])


def test_several_apps_from_toml_with_env_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "apps.toml",
        """
        interval_seconds = 600
        concurrency = 2
        database_url = "sqlite:///from-file.db"
        [[apps]]
        name = "ios"
        api_key = "IOS"
        rest_api_key_env = "IOS_REST"
        interval_seconds = 60
        [[apps]]
        name = "android"
        api_key = "ANDROID"
        concurrency = 5
        """,
    )
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    monkeypatch.setenv("IOS_REST", "ios-secret")
    monkeypatch.setenv("BATCH_REST_API_KEY", "shared-secret")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    settings = load_settings()
    assert settings.database_url == "sqlite:///from-env.db"
    apps = {a.name: a for a in resolve_apps(settings)}
    assert apps["ios"].rest_api_key.get_secret_value() == "ios-secret"
    assert apps["ios"].interval_seconds == 60 and apps["ios"].concurrency == 2
    assert apps["android"].rest_api_key.get_secret_value() == "shared-secret"
    assert apps["android"].interval_seconds == 600 and apps["android"].concurrency == 5


def test_a_bad_config_file_names_the_app_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "bad.toml",
        '[[apps]]\nname = "ios"\napi_key = "X"\n[[apps]]\nname = "web"\nconcurrency = 0\n',
    )
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "apps[1] (app 'web').api_key" in message
    assert "apps[1] (app 'web').concurrency" in message


def test_a_missing_rest_key_names_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "apps.toml", '[[apps]]\nname = "web"\napi_key = "W"\n')
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    with pytest.raises(ConfigError, match="app 'web' has no REST API key"):
        resolve_apps(load_settings())


def test_env_var_named_for_the_rest_key_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "apps.toml",
        '[[apps]]\nname = "web"\napi_key = "W"\nrest_api_key_env = "WEB_REST"\n',
    )
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    with pytest.raises(ConfigError, match="WEB_REST, which is not set"):
        resolve_apps(load_settings())


def test_no_app_at_all_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="set BATCH_API_KEY"):
        resolve_apps(load_settings())


def test_invalid_values_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="CAMPAIGN_SYNC_CONCURRENCY"):
        load_settings()
    monkeypatch.delenv("CAMPAIGN_SYNC_CONCURRENCY")
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()
    broken = write(tmp_path / "broken.toml", "apps = [")
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(broken))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_a_world_readable_file_with_secrets_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = write(
        tmp_path / "apps.toml",
        '[[apps]]\nname = "web"\napi_key = "W"\nrest_api_key = "inline-secret"\n',
        mode=0o644,
    )
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert any("readable by other users" in r.getMessage() for r in caplog.records)
    assert all("inline-secret" not in r.getMessage() for r in caplog.records)
    assert resolve_apps(settings)[0].rest_api_key.get_secret_value() == "inline-secret"


def test_the_batch_floor_is_kept_against_the_real_api(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS", "0.1")
    monkeypatch.setattr("campaign_sync.config._FLOORS_WARNED", set())
    caplog.set_level(logging.WARNING, logger="campaign_sync.config")
    settings = load_settings()
    assert [settings.backoff_floor() for _ in range(3)] == [5, 5, 5]
    below = [r for r in caplog.records if "below Batch's 5 s floor" in r.getMessage()]
    assert len(below) == 1  # once per process, not once per client and pass
    monkeypatch.setenv("BATCH_API_BASE_URL", "http://127.0.0.1:8787")
    assert load_settings().backoff_floor() == 0.1


def test_only_the_documented_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCURRENCY", "2")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.concurrency == 8 and settings.log_level == "INFO"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:hunter2-pass@api.batch.com", "https://***@api.batch.com"),
        ("http://user:hunter2-pass@evil.example", "http://***@evil.example"),
        ("http://127.0.0.1@evil.example/", "http://***@evil.example/"),  # host: evil.example
        ("https://hunter2-pass@api.batch.com/1.1", "https://***@api.batch.com/1.1"),
        ("https://user:1234/hunter2@api.batch.com", "https://***@api.batch.com"),  # port 1234?
        ("http://u:hunter2@pass@evil.example", "http://***@evil.example"),  # up to the last @
    ],
)
def test_a_base_url_holding_a_user_or_password_is_refused_without_showing_it(
    url: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain-http refusal printed such a URL whole, password included; as a base URL it
    would have reached every error naming Batch's address."""
    monkeypatch.setenv("BATCH_API_BASE_URL", url)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"settings: BATCH_API_BASE_URL: {shown} holds an @, as a user or password would: "
        "Batch takes the REST key in a header and no path of its API holds one, and what a "
        "URL holds reaches error messages; leave it out"
    )
    broken_urls = (
        "ftp://u:hunter2-pass@api.batch.com",
        "https://user:hun/ter2@api.batch.com",
        "https://bob:hun#ter2@api.batch.com",
        "https:user:hunter2@api.batch.com",
        "hunter2-token:@api.batch.com",  # no scheme: nothing before the @ is shown
        "https:hunter2-user:pw@api.batch.com",
    )
    for broken in broken_urls:
        monkeypatch.setenv("BATCH_API_BASE_URL", broken)
        with pytest.raises(ConfigError) as refused:
            load_settings()
        assert "hunter2" not in str(refused.value) and "***@api.batch.com'" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:hunter2/batch", "https://user:***/batch"),  # the @ forgotten
        ("https://user:hunter2", "https://user:***"),
        ("https://api.batch.com:44x3", "https://api.batch.com:***"),
        ("https://[::1]:hunter2/", "https://[::1]:***/"),
        ("https://api.batch.com:99999", "https://api.batch.com:99999"),  # a number: shown
        ("not a url", "not a url"),
        ("ftp://api.batch.com", "ftp://api.batch.com"),
        ("https://", "https://"),
        ("api.batch.com", "api.batch.com"),
    ],
)
def test_a_base_url_that_is_no_http_url_is_refused_naming_the_setting(
    url: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shown as written, but for a port that is no number: without its @, a user:password
    reads as host:port, and the refusal quoted it whole."""
    monkeypatch.setenv("BATCH_API_BASE_URL", url)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "settings: BATCH_API_BASE_URL: must be an http(s) URL such as https://api.batch.com, "
        f"got {shown!r}"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://xn--zz.com", "is no URL a request can go to: Invalid A-label"),
        ("https://[::1]x", "is no URL a request can go to: Invalid port: 'x'"),
        ("https://api\x01batch.com", "is no URL a request can go to: Invalid non-printable"),
        ("http://127.0.0.1:8787?x=1", "holds a query or fragment"),
        ("https://api.batch.com/#top", "holds a query or fragment"),
        ("https://api.batch.com?", "holds a query or fragment"),
        ("https://gw.example/batch?api_key=hunter2", "gw.example/batch?*** holds a query"),
    ],
)
def test_a_base_url_httpx_cannot_send_to_is_refused_at_the_start(
    url: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """urlparse accepted these; httpx then refused them in every pass ('unexpected error:
    IDNAError', exit 1; `serve` logged a traceback per pass), or Batch answered 404."""
    monkeypatch.setenv("BATCH_API_BASE_URL", url)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("settings: BATCH_API_BASE_URL: "), str(refused.value)
    assert why in str(refused.value) and "hunter2" not in str(refused.value)


@pytest.mark.parametrize("source", ["variable", "flag", "config file", ".env"])
def test_plain_http_to_another_host_is_named_by_where_the_url_came_from(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal named BATCH_API_BASE_URL even for a URL written in the TOML file."""
    url = "http://batch.example"
    config, flags = None, {}
    if source == "variable":
        monkeypatch.setenv("BATCH_API_BASE_URL", url)
        where = "BATCH_API_BASE_URL"
    elif source == "flag":
        flags = {"batch_api_base_url": url}
        where = "--batch-api-base-url"
    elif source == ".env":
        write(Path(".env"), f"BATCH_API_BASE_URL={url}\n")
        where = "BATCH_API_BASE_URL (in .env)"
    else:
        config = write(tmp_path / "c.toml", f'batch_api_base_url = "{url}"\n')
        where = f"config file {config}, key batch_api_base_url"
    with pytest.raises(ConfigError) as refused:
        load_settings(config, **flags)
    assert str(refused.value) == (
        f"settings: {where}: http://batch.example is plain http to another host: the REST "
        "key would cross the network in clear. Use https, or set "
        "CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP=true (allow_insecure_http = true in the config "
        "file) if that is what you want"
    )
    if config is not None:  # the opt-in written beside it, in the same file
        write(config, f'batch_api_base_url = "{url}"\nallow_insecure_http = true\n')
        assert load_settings(config).batch_api_base_url == url


def test_plain_http_to_another_host_needs_an_explicit_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_API_BASE_URL", "http://batch.example")
    with pytest.raises(ConfigError, match="the REST key would cross the network in clear"):
        load_settings()
    monkeypatch.setenv("CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP", "true")
    assert load_settings().batch_api_base_url == "http://batch.example"
    monkeypatch.delenv("CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP")
    for loopback in ("http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787"):
        monkeypatch.setenv("BATCH_API_BASE_URL", loopback)
        assert load_settings().batch_api_base_url == loopback
    for elsewhere in ("http://batch.localhost:8787", "http://0.0.0.0:8787", "http://127.1"):
        monkeypatch.setenv("BATCH_API_BASE_URL", elsewhere)  # DNS may answer anything
        with pytest.raises(ConfigError, match="is plain http to another host"):
            load_settings()


def test_precedence_flags_environment_dotenv_config_file_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(
        tmp_path / "settings.toml",
        "interval_seconds = 44\nconcurrency = 7\ndetail_max_age_seconds = 70\n"
        "backoff_max_seconds = 99\n",
    )
    (tmp_path / ".env").write_text(
        "CAMPAIGN_SYNC_INTERVAL_SECONDS=33\nCAMPAIGN_SYNC_CONCURRENCY=6\n"
        "CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS=60\n"
    )
    monkeypatch.setenv("CAMPAIGN_SYNC_INTERVAL_SECONDS", "22")
    monkeypatch.setenv("CAMPAIGN_SYNC_CONCURRENCY", "5")
    settings = load_settings(config, interval_seconds=11)
    assert settings.interval_seconds == 11  # flag
    assert settings.concurrency == 5  # environment
    assert settings.detail_max_age_seconds == 60  # .env
    assert settings.backoff_max_seconds == 99  # config file
    assert settings.read_timeout_seconds == 30  # default


def test_the_config_file_can_be_named_in_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "apps.toml", "concurrency = 3\n")
    (tmp_path / ".env").write_text("CAMPAIGN_SYNC_CONFIG=apps.toml\n")
    assert load_settings().concurrency == 3


def test_a_config_flag_naming_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path / "nope.toml")
    assert str(raised.value) == f"--config names {tmp_path / 'nope.toml'}, which does not exist"


def test_the_rest_key_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = write(tmp_path / "rest-key", "file-secret-1234\n")
    monkeypatch.setenv("BATCH_API_KEY", "LIVEKEY")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(secret))
    apps = resolve_apps(load_settings())
    assert apps[0].rest_api_key.get_secret_value() == "file-secret-1234"


def test_an_unreadable_rest_key_file_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        f"BATCH_REST_API_KEY_FILE names {tmp_path / 'missing'}, which cannot be read: "
        "No such file or directory"
    )


def test_secrets_come_from_a_secrets_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    write(secrets / "BATCH_REST_API_KEY", "dir-secret-5678")
    write(secrets / "BATCH_API_KEY", "LIVE-FROM-DIR")
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    with caplog.at_level(logging.DEBUG):
        apps = resolve_apps(load_settings())
    assert [(a.name, a.api_key) for a in apps] == [("default", "LIVE-FROM-DIR")]
    assert apps[0].rest_api_key.get_secret_value() == "dir-secret-5678"
    assert all("dir-secret-5678" not in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(
        ConfigError, match=r"CAMPAIGN_SYNC_SECRETS_DIR names .*, which is not a directory"
    ):
        load_settings()


def test_the_environment_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    write(secrets / "BATCH_REST_API_KEY", "dir-secret")
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("BATCH_REST_API_KEY", "env-secret")
    value = load_settings().batch_rest_api_key
    assert value is not None and value.get_secret_value() == "env-secret"


def test_the_metrics_endpoint_listens_on_loopback_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().metrics_host == "127.0.0.1"
    monkeypatch.setenv("CAMPAIGN_SYNC_METRICS_HOST", "0.0.0.0")
    assert load_settings().metrics_host == "0.0.0.0"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BATCH_API_BASE_URL", "http://127.0.0.1:99999", "BATCH_API_BASE_URL: must be an http(s)"),
        ("BATCH_API_BASE_URL", "http://127.0.0.1:abc", "BATCH_API_BASE_URL: must be an http(s)"),
        ("BATCH_API_BASE_URL", "http://127.0.0.1:1 x", "BATCH_API_BASE_URL: must be an http(s)"),
        ("CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS", "inf", "should be a finite number"),
        ("CAMPAIGN_SYNC_INTERVAL_SECONDS", "1e20", "less than or equal to 315360000"),
        ("DATABASE_URL", "mysql://x@127.0.0.1/y", "DATABASE_URL: campaign-sync stores into"),
        ("DATABASE_URL", "postgresql+psycopg2://x/y", "DATABASE_URL: campaign-sync stores into"),
        ("DATABASE_URL", "postgresql://u:pw@127.0.0.1:notaport/db", "DATABASE_URL: its host"),
        ("DATABASE_URL", "postgresql://u:pw@[::1/db", "DATABASE_URL: its host and port"),
        (  # libpq's multi-host form: named, with the query-string form SQLAlchemy reads
            "DATABASE_URL",
            "postgresql://u:pw@127.0.0.1:1,127.0.0.1:5432/db",
            "DATABASE_URL: several hosts in its host part are libpq's form, which SQLAlchemy "
            "does not read: list them in the query string instead, "
            "postgresql://USER@/DB?host=HOST1:PORT1&host=HOST2:PORT2",
        ),
        ("DATABASE_URL", "postgresql://u:Sec@r3tPW@127.0.0.1:5/db", "DATABASE_URL: its user or"),
        ("DATABASE_URL", "postgres://u@x@127.0.0.1/db?sslmode=require", "holds '@': write it"),
        ("BATCH_REST_API_KEY", "abc\ndef", "BATCH_REST_API_KEY: holds characters no HTTP"),
        ("BATCH_REST_API_KEY", "clé", "BATCH_REST_API_KEY: holds characters no HTTP"),
        ("BATCH_API_KEY", "two words", "BATCH_API_KEY: holds characters no HTTP"),
        ("CAMPAIGN_SYNC_RATE_START_PER_SECOND", "0.001", "greater than or equal to 1"),
        ("CAMPAIGN_SYNC_RATE_START_PER_SECOND", "500", "less than or equal to 200"),
    ],
)
def test_values_no_pass_could_use_are_refused_at_start_naming_the_setting(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    if "KEY" in variable or variable == "DATABASE_URL":
        assert value not in str(refused.value)  # never echo a secret
        assert "r3tPW" not in str(refused.value) and "pw@" not in str(refused.value)


def test_a_key_read_with_its_trailing_newline_is_used_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_API_KEY", " live-key\n")
    monkeypatch.setenv("BATCH_REST_API_KEY", "rest-key\r\n")
    [app] = resolve_apps(load_settings())
    assert app.api_key == "live-key" and app.rest_api_key.get_secret_value() == "rest-key"


def test_a_config_file_naming_an_unknown_setting_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("concurency = 4\n")
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", str(config))
    with pytest.raises(ConfigError, match="unknown setting concurency"):
        load_settings()
    config.write_text("apps = 3\n")
    with pytest.raises(ConfigError, match="apps must be a list"):
        load_settings()


def test_a_dotenv_that_is_not_utf8_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(b"\xff\xfeX=1\n")
    with pytest.raises(ConfigError, match=r"\.env is not UTF-8 text"):
        load_settings()


@pytest.mark.parametrize("schema", ["pg_temp", "pg_catalog", "information_schema"])
def test_postgresqls_own_schemas_are_refused(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_DB_SCHEMA", schema)
    with pytest.raises(ConfigError, match=f"{schema} is one of PostgreSQL's own schemas"):
        load_settings()


def _numeric_settings() -> list[tuple[str, str]]:
    """(field, variable) of every number-valued setting."""
    found = []
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float) and isinstance(field.validation_alias, AliasChoices):
            found.append((name, str(field.validation_alias.choices[0])))
    return found


NUMERIC_SETTINGS = _numeric_settings()


def test_every_numeric_setting_is_found() -> None:
    names = {name for name, _ in NUMERIC_SETTINGS}
    assert {"concurrency", "detail_refresh_per_pass", "retry_max_attempts"} <= names
    assert {"interval_seconds", "rate_increase_per_second", "stats_window_days"} <= names
    assert len(NUMERIC_SETTINGS) >= 18


@pytest.mark.parametrize(("field", "variable"), NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["9223372036854775808", "2147483648", "nan", "-inf", "1e400"])
def test_no_numeric_setting_takes_a_value_past_its_bounds(
    field: str, variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number beyond what any column or loop can use (2**63 reached PostgreSQL as
    `bigint out of range` and SQLite as an OverflowError) is one line naming the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert f"settings: {variable}: Input should be" in str(refused.value)


@pytest.mark.parametrize(
    "variable", ["CAMPAIGN_SYNC_CONNECT_TIMEOUT_SECONDS", "CAMPAIGN_SYNC_READ_TIMEOUT_SECONDS"]
)
@pytest.mark.parametrize("value", ["1e-320", "0.000001", "0.099", "0", "-1"])
def test_an_http_timeout_no_request_can_meet_is_refused(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A denormal (1e-320) was taken, and every request then failed ("got no complete
    answer within 9.99989e-321s", exit 1) instead of naming the setting (a review's find)."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(
        ConfigError, match=f"settings: {variable}: Input should be greater than or equal to 0.1"
    ):
        load_settings()
    monkeypatch.setenv(variable, "0.1")
    assert getattr(load_settings(), variable.removeprefix("CAMPAIGN_SYNC_").lower()) == 0.1


@pytest.mark.parametrize("value", ["0.001", "0.999", "0", "-5"])
def test_serves_interval_is_at_least_a_second_wherever_it_is_set(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_INTERVAL_SECONDS", value)
    with pytest.raises(ConfigError, match="CAMPAIGN_SYNC_INTERVAL_SECONDS: Input should be"):
        load_settings()
    monkeypatch.delenv("CAMPAIGN_SYNC_INTERVAL_SECONDS")
    with pytest.raises(
        ConfigError,
        match=r"^settings: --interval-seconds: Input",
    ):
        load_settings(interval_seconds=float(value))
    config = write(
        tmp_path / "apps.toml",
        f'[[apps]]\nname = "ios"\napi_key = "K"\ninterval_seconds = {value}\n',
    )
    with pytest.raises(ConfigError, match=r"apps\[0\] \(app 'ios'\)\.interval_seconds: Input"):
        load_settings(config)
    assert load_settings(interval_seconds=1).interval_seconds == 1


@pytest.mark.parametrize("value", ["nan", "inf", "1e20"])
def test_an_apps_own_interval_is_finite_and_at_most_ten_years(value: str, tmp_path: Path) -> None:
    config = write(
        tmp_path / "apps.toml",
        f'[[apps]]\nname = "ios"\napi_key = "K"\ninterval_seconds = {value}\n',
    )
    with pytest.raises(ConfigError, match=r"apps\[0\] \(app 'ios'\)\.interval_seconds: Input"):
        load_settings(config)


BOOLEAN_SETTINGS = [
    name for name, field in Settings.model_fields.items() if field.annotation is bool
]


def test_every_boolean_setting_is_found() -> None:
    assert {"allow_insecure_http", "stats"} <= set(BOOLEAN_SETTINGS)


@pytest.mark.parametrize(("field", "variable"), NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["false", "true"])
def test_no_number_setting_takes_a_toml_boolean(
    field: str, variable: str, value: str, tmp_path: Path
) -> None:
    """`detail_refresh_per_pass = false` was read as 0, which means no limit at all."""
    config = write(tmp_path / "settings.toml", f"{field} = {value}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == (
        f"settings: config file {config}, key {field}: expected a number, got the boolean {value}"
    )


@pytest.mark.parametrize("field", BOOLEAN_SETTINGS)
@pytest.mark.parametrize("value", ["0", "1", "2.5"])
def test_no_boolean_setting_takes_a_toml_number(field: str, value: str, tmp_path: Path) -> None:
    config = write(tmp_path / "settings.toml", f"{field} = {value}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == (
        f"settings: config file {config}, key {field}: expected true or false, got the number "
        f"{value}"
    )


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("concurrency = true", "apps[0] (app 'ios').concurrency"),
        ("interval_seconds = false", "apps[0] (app 'ios').interval_seconds"),
    ],
)
def test_an_apps_numbers_take_no_boolean(line: str, key: str, tmp_path: Path) -> None:
    config = write(tmp_path / "apps.toml", f'[[apps]]\nname = "ios"\napi_key = "K"\n{line}\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    value = line.split(" = ")[1]
    assert str(refused.value) == (
        f"settings: config file {config}, key {key}: expected a number, got the boolean {value}"
    )


def test_the_environments_words_for_booleans_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_STATS", "1")
    monkeypatch.setenv("CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP", "false")
    settings = load_settings()
    assert settings.stats is True and settings.allow_insecure_http is False


def test_a_bad_value_is_named_by_the_source_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each source wins over the next (flag, environment, .env, secret file, TOML); the
    message names the one whose value was refused, never the file for an environment value."""
    config = write(tmp_path / "settings.toml", "concurrency = 0\n")
    refused = "Input should be greater than or equal to 1"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, f"config file {config}, key concurrency"),
        ({"secret": "0"}, f"CAMPAIGN_SYNC_CONCURRENCY (secret file {tmp_path}/secrets/"
                          "CAMPAIGN_SYNC_CONCURRENCY)"),
        ({"secret": "0", "dotenv": "0"}, "CAMPAIGN_SYNC_CONCURRENCY (in .env)"),
        ({"secret": "0", "dotenv": "0", "env": "0"}, "CAMPAIGN_SYNC_CONCURRENCY"),
    ]  # fmt: skip
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    for sources, named in cases:
        if "secret" in sources:
            write(secrets / "CAMPAIGN_SYNC_CONCURRENCY", sources["secret"])
        if "dotenv" in sources:
            write(Path(".env"), f"CAMPAIGN_SYNC_CONCURRENCY={sources['dotenv']}\n")
        if "env" in sources:
            monkeypatch.setenv("CAMPAIGN_SYNC_CONCURRENCY", sources["env"])
        with pytest.raises(ConfigError) as error:
            load_settings(config)
        assert str(error.value) == f"settings: {named}: {refused}", sources
    with pytest.raises(ConfigError) as error:
        load_settings(config, concurrency=0)
    assert str(error.value) == (f"settings: --concurrency: {refused}")


@pytest.mark.parametrize("path", ["", "  "])
def test_an_empty_config_path_is_refused_not_ignored(path: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert str(refused.value) == "--config names no file (an empty path): name the TOML file"


@pytest.mark.parametrize(
    ("name", "value"),
    [("concurrency", "0"), ("database_url", "sqlite:////elsewhere.db"), ("apps", "foo")],
)
@pytest.mark.parametrize("where", ["environment", ".env", "secret file"])
def test_only_the_documented_variables_are_read_from_environment_like_sources(
    name: str, value: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field's own name (`concurrency`, `apps`) is a TOML key, not a variable: read from the
    environment, `.env` or a secret file, it changed the settings (or failed every command)."""
    if where == "environment":
        monkeypatch.setenv(name, value)
    elif where == ".env":
        write(Path(".env"), f"{name}={value}\n")
    else:
        write(tmp_path / name, value)
        monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert (settings.concurrency, settings.database_url, settings.apps) == (
        8,
        "sqlite:///campaign_sync.db",
        [],
    )


def test_an_empty_value_in_dotenv_is_named_as_such_not_blamed_on_the_toml_file(
    tmp_path: Path,
) -> None:
    write(Path(".env"), "CAMPAIGN_SYNC_CONCURRENCY=\n")
    config = write(tmp_path / "settings.toml", "concurrency = 4\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == (
        "settings: CAMPAIGN_SYNC_CONCURRENCY (in .env): empty (or only white space): give a "
        "value, or leave it out for the default (8)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "default"),
    [
        ("CAMPAIGN_SYNC_CONCURRENCY", "", "8"),
        ("CAMPAIGN_SYNC_STATS", " ", "false"),
        ("CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS", "", "86400"),
        ("CAMPAIGN_SYNC_LOG_FORMAT", "\t", "auto"),
        ("DATABASE_URL", "", "sqlite:///campaign_sync.db"),
        ("CAMPAIGN_SYNC_RATE_START_PER_SECOND", "  ", "30"),
    ],
)
def test_an_empty_setting_is_refused_saying_it_is_empty_and_what_the_default_is(
    variable: str, value: str, default: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic said "Input should be a valid integer, unable to parse string as an
    integer" for `CAMPAIGN_SYNC_CONCURRENCY=` (what a compose file's `${UNSET}` gives).
    Still refused, not taken as unset: an empty DATABASE_URL must not sync into a SQLite
    file unnoticed."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"settings: {variable}: empty (or only white space): give a value, or leave it out "
        f"for the default ({default})"
    )


@pytest.mark.parametrize(
    ("path", "kind"), [("/tmp", "a directory"), ("/dev/null", "not a regular file")]
)
def test_a_config_path_that_is_no_file_says_what_it_is(
    path: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert str(refused.value) == f"--config names {path}, which is {kind}: name a TOML file"
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", path)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"CAMPAIGN_SYNC_CONFIG names {path}, which is {kind}")


def test_an_empty_config_variable_is_unset_and_a_blank_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", "")
    assert load_settings().apps == []
    monkeypatch.setenv("CAMPAIGN_SYNC_CONFIG", "  ")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "CAMPAIGN_SYNC_CONFIG names no file (an empty path): name the TOML file"
    )


APP_HEAD = '[[apps]]\nname = "ios"\n'
IN_FILE = "config file {file}, key apps[0] (app 'ios')."  # where a key written there is


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        ('api_key = "  "\n', {}, IN_FILE + "api_key is blank: empty or only white space"),
        ('api_key = "two words"\n', {}, IN_FILE + "api_key holds characters no HTTP request"),
        ('api_key = "K"\nrest_api_key = " "\n', {}, IN_FILE + "rest_api_key is blank"),
        ('api_key = "K"\nrest_api_key = "a b"\n', {}, IN_FILE + "rest_api_key holds characters"),
        (
            'api_key = "K"\nrest_api_key_env = "IOS_REST"\n',
            {"IOS_REST": "  "},
            "app 'ios': IOS_REST (its rest_api_key_env) is blank",
        ),
        (
            'api_key = "K"\nrest_api_key_env = "IOS_REST"\n',
            {"IOS_REST": "r\u00e9st"},
            "app 'ios': IOS_REST (its rest_api_key_env) holds characters no HTTP request",
        ),
    ],
)
def test_a_key_no_request_can_carry_is_refused_naming_where_it_came_from(
    toml: str, environ: dict[str, str], message: str, tmp_path: Path
) -> None:
    """A blank key was sent as it was (`/1.1//campaigns/list`, exit 1 instead of 2). A key
    written in the file is named by file and key, as the settings' own errors name them."""
    config = write(tmp_path / "apps.toml", APP_HEAD + toml)
    settings = load_settings(config, batch_rest_api_key="default-rest")
    with pytest.raises(ConfigError) as refused:
        resolve_apps(settings, environ)
    assert str(refused.value).startswith(message.format(file=config)), str(refused.value)
    assert "r\u00e9st" not in str(refused.value) and "two words" not in str(refused.value)


def test_a_key_file_holding_an_unusable_key_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = write(tmp_path / "rest", "two words\n")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(secret))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(
        f"the key in {secret} (BATCH_REST_API_KEY_FILE) holds characters no HTTP request"
    )
    assert "two words" not in str(refused.value)


def test_an_empty_key_file_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", "")
    assert load_settings().batch_rest_api_key_file is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency = " + "9" * 5000, "cannot be read: it holds an integer of more than 4300"),
        ("concurrency = " + "[" * 5000 + "]" * 5000, "cannot be read: arrays or tables nested"),
        ("concurrency = " + "{a=" * 3000 + "1" + "}" * 3000, "cannot be read: arrays or tables"),
        ("\ufeffconcurrency = 4", "is not valid TOML: Invalid statement (at line 1, column 1) "
         "(it starts with a byte order mark: save it as UTF-8 without one)"),
    ],
)  # fmt: skip
def test_a_hostile_toml_file_is_one_line_naming_the_file(
    text: str, message: str, tmp_path: Path
) -> None:
    """These stopped every command with an unexpected ValueError or RecursionError, exit 1."""
    config = write(tmp_path / "settings.toml", text + "\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value).startswith(f"config file {config} {message}"), str(refused.value)


APP_BY_VARIABLE = APP_HEAD + 'api_key = "K"\nrest_api_key_env = "BATCH_REST_API_KEY"\n'


@pytest.mark.parametrize("where", ["environment", ".env", "secret file", "key file"])
def test_an_apps_rest_api_key_env_is_found_wherever_a_variable_may_be(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's own example (`rest_api_key_env = "BATCH_REST_API_KEY"`) failed when the
    key came from `.env`, a secret file or BATCH_REST_API_KEY_FILE."""
    config = write(tmp_path / "apps.toml", APP_BY_VARIABLE)
    if where == "environment":
        monkeypatch.setenv("BATCH_REST_API_KEY", "the-rest-key")
    elif where == ".env":
        write(Path(".env"), "BATCH_REST_API_KEY=the-rest-key\n")
    elif where == "secret file":
        (tmp_path / "secrets").mkdir()
        write(tmp_path / "secrets" / "BATCH_REST_API_KEY", "the-rest-key\n")
        monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(tmp_path / "secrets"))
    else:
        monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(write(tmp_path / "key", "the-rest-key")))
    [app] = resolve_apps(load_settings(config), {})
    assert app.rest_api_key.get_secret_value() == "the-rest-key"


@pytest.mark.parametrize(
    "variable",
    [
        "BATCH_REST_API_KEY_FILE",
        "BATCH_API_KEY",
        "DATABASE_URL",
        "CAMPAIGN_SYNC_CONFIG",
        "CAMPAIGN_SYNC_SECRETS_DIR",
        "CAMPAIGN_SYNC_TEST_PG_URL",
        "HTTPS_PROXY",  # http://user:password@proxy would have been sent as the key
        "https_proxy",
        "ALL_PROXY",
        "SSL_CERT_FILE",
    ],
)
def test_an_apps_rest_api_key_env_naming_another_setting_is_refused(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rest_api_key_env = "BATCH_REST_API_KEY_FILE"` sent the key file's path to Batch as
    the REST key; the live key or the database URL would have gone the same way."""
    config = write(
        tmp_path / "apps.toml", APP_HEAD + f'api_key = "K"\nrest_api_key_env = "{variable}"\n'
    )
    held = {variable: "not-a-rest-key"}
    with pytest.raises(ConfigError) as refused:
        resolve_apps(load_settings(config), held)
    assert str(refused.value).startswith(
        f"app 'ios': rest_api_key_env names {variable}, one of the variables campaign-sync "
        "reads for another purpose, not one holding a REST key"
    ), str(refused.value)
    assert ("BATCH_REST_API_KEY_FILE alone" in str(refused.value)) == (
        variable == "BATCH_REST_API_KEY_FILE"
    )
    assert "not-a-rest-key" not in str(refused.value)


def test_an_empty_rest_key_variable_leaves_the_key_file_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_REST_API_KEY", "")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(write(tmp_path / "key", "from-the-file")))
    monkeypatch.setenv("BATCH_API_KEY", "live-key")
    [app] = resolve_apps(load_settings())
    assert app.rest_api_key.get_secret_value() == "from-the-file"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('rest_api_key = ""', "key apps[0] (app 'ios').rest_api_key is blank"),
        ('rest_api_key_env = "  "', "rest_api_key_env: expected an environment variable's name"),
        ('rest_api_key_env = ""', "rest_api_key_env: expected an environment variable's name"),
    ],
)
def test_an_apps_empty_key_setting_is_refused_not_replaced_by_the_default(
    line: str, message: str, tmp_path: Path
) -> None:
    config = write(tmp_path / "apps.toml", APP_HEAD + f'api_key = "K"\n{line}\n')
    with pytest.raises(ConfigError) as refused:
        resolve_apps(load_settings(config, batch_rest_api_key="default-rest"), {})
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CAMPAIGN_SYNC_LOG_FORMAT", "xml", "auto, json or text, got 'xml'"),
        ("CAMPAIGN_SYNC_LOG_LEVEL", "loud", "debug, info, warning or error, got 'loud'"),
        ("CAMPAIGN_SYNC_DB_SCHEMA", "Batch", "a lower-case PostgreSQL name: a letter or _, "
         "then letters, digits or _ (63 at most), got 'Batch'"),
    ],
)  # fmt: skip
def test_a_setting_that_must_match_a_pattern_says_what_it_expects_in_words(
    variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal quoted the regular expression: "String should match pattern
    '^(auto|json|text)$'"."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == f"settings: {variable}: expected {expected}"


def test_log_format_takes_any_case_as_the_level_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SYNC_LOG_FORMAT", "JSON")
    monkeypatch.setenv("CAMPAIGN_SYNC_LOG_LEVEL", "Debug")
    settings = load_settings()
    assert (settings.log_format, settings.log_level.upper()) == ("json", "DEBUG")


def test_a_config_file_named_in_dotenv_is_named_so() -> None:
    write(Path(".env"), "CAMPAIGN_SYNC_CONFIG=/nonexistent/settings.toml\n")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "CAMPAIGN_SYNC_CONFIG (in .env) names /nonexistent/settings.toml, which does not exist"
    )


@pytest.mark.parametrize("kind", ["silent fifo", "device", "directory", "too large"])
def test_a_key_file_that_is_no_key_file_is_refused_without_reading_it_all(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO no one writes to made check wait forever; /dev/zero ended in a MemoryError."""
    import campaign_sync.config

    monkeypatch.setattr(campaign_sync.config, "KEY_PIPE_WAIT_SECONDS", 0.2)
    path = tmp_path / "key"
    if kind == "silent fifo":
        os.mkfifo(path)
        why = "from which nothing came within 0.2 s (a pipe no one writes to?)"
    elif kind == "device":
        path = Path("/dev/zero")
        why = "which holds more than 65536 bytes: no key is that long"
    elif kind == "directory":
        path.mkdir()
        why = "which is a directory"
    else:
        path.write_text("k" * 70_000)
        why = "which holds more than 65536 bytes: no key is that long"
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(path))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"BATCH_REST_API_KEY_FILE names {path}, {why}")


def test_a_key_file_may_be_a_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`BATCH_REST_API_KEY_FILE=<(echo key)` (a shell's process substitution) works: a
    review saw the regular-file rule refuse it."""
    import threading

    path = tmp_path / "key"
    os.mkfifo(path)

    def write_the_key() -> None:
        with path.open("w") as pipe:
            pipe.write("piped-rest-key\n")

    writer = threading.Thread(target=write_the_key)
    writer.start()
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(path))
    try:
        settings = load_settings()
    finally:
        writer.join(timeout=10)
    assert settings.batch_rest_api_key is not None
    assert settings.batch_rest_api_key.get_secret_value() == "piped-rest-key"


def test_a_secret_file_too_large_to_be_a_setting_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic-settings read a 100 MB secret file whole (11 s, 255 MB) and took it."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "BATCH_REST_API_KEY").write_text("k" * 70_000)
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"settings cannot be read: the secret file {secrets / 'BATCH_REST_API_KEY'} holds "
        "more than 65536 bytes: no setting is that long"
    )


def test_a_key_file_named_in_toml_is_reported_by_its_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    config = write(tmp_path / "settings.toml", f'batch_rest_api_key_file = "{missing}"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == (
        f"config file {config}, key batch_rest_api_key_file names {missing}, which cannot be "
        "read: No such file or directory"
    )


def test_a_key_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "key"
    secret.write_bytes(b"\xff\xfe")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", str(secret))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"BATCH_REST_API_KEY_FILE names {secret}, which cannot be read: it is not UTF-8 text"
    )


@pytest.mark.parametrize("case", ["json", "error level", "refused setting"])
def test_library_warnings_about_settings_are_one_line_each_and_once(
    case: str, tmp_path: Path
) -> None:
    """A `.env` line python-dotenv cannot parse was printed once per reader of `.env` (five
    times for one `check`), without the file's name; a directory in the secrets directory
    named like a variable came as a Python warning quoting pydantic-settings' source. Both
    printed before logging was set up, so in neither the log format nor the level."""
    import json
    import subprocess
    import sys

    concurrency = "CAMPAIGN_SYNC_CONCURRENCY=0\n" if case == "refused setting" else ""
    write(tmp_path / ".env", f"BATCH_API_KEY=live\nthis is not a statement\n{concurrency}")
    (tmp_path / "secrets" / "BATCH_REST_API_KEY").mkdir(parents=True)
    environ = {
        "PATH": os.environ["PATH"],
        "CAMPAIGN_SYNC_SECRETS_DIR": "secrets",
        "CAMPAIGN_SYNC_LOG_FORMAT": "json",
        "DATABASE_URL": "sqlite:///absent.db",
    }
    level = ["--log-level", "error"] if case == "error level" else []
    done = subprocess.run(
        [sys.executable, "-m", "campaign_sync", "status", *level],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = done.stderr.splitlines()
    warned = [
        ".env: python-dotenv could not parse statement starting at line 2",
        'settings: attempted to load secret file "secrets/BATCH_REST_API_KEY" but found a '
        "directory instead.",
    ]
    if case == "json":
        assert [json.loads(line)["message"] for line in lines[:2]] == warned, done.stderr
        assert lines[2].startswith("campaign-sync: the database file absent.db does not exist")
    elif case == "error level":
        assert len(lines) == 1 and "absent.db does not exist" in lines[0], done.stderr
    else:  # before the settings that say how to log: plain lines, then the refusal
        assert lines == [
            *warned,
            "campaign-sync: settings: CAMPAIGN_SYNC_CONCURRENCY (in .env): Input should be "
            "greater than or equal to 1",
        ], done.stderr
    assert "Warning" not in done.stderr and done.returncode == 2


def test_reading_our_settings_leaves_other_env_files_warnings_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The `.env:` label and the once-only rule are for our `.env`, while we read it: a
    program importing us keeps python-dotenv's warnings about its own files."""
    from dotenv import dotenv_values

    write(Path(".env"), "broken line\n")
    load_settings()
    write(tmp_path / "theirs.env", "broken line\n")
    with caplog.at_level(logging.WARNING):
        dotenv_values(tmp_path / "theirs.env")
        dotenv_values(tmp_path / "theirs.env")
    assert [record.getMessage() for record in caplog.records if record.name == "dotenv.main"] == [
        "python-dotenv could not parse statement starting at line 1"
    ] * 2


@pytest.mark.parametrize("whose", ["a setting's", "an app's rest_api_key_env"])
@pytest.mark.parametrize("kind", ["link to nothing", "not UTF-8"])
def test_an_unreadable_secret_file_is_named(
    whose: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic-settings said only 'path does not exist' or a codec's words, and an app's
    rest_api_key_env naming such a file read as 'not set'."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    path = secrets / ("BATCH_REST_API_KEY" if whose == "a setting's" else "IOS_REST")
    if kind == "link to nothing":
        path.symlink_to(tmp_path / "gone")
        why = f"is a link to {tmp_path / 'gone'}, which does not exist"
    else:
        path.write_bytes(b"\xff\xfekey")
        why = "is not UTF-8 text"
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    with pytest.raises(ConfigError) as refused:
        if whose == "a setting's":
            load_settings()
        else:
            toml = APP_HEAD + 'api_key = "K"\nrest_api_key_env = "IOS_REST"\n'
            resolve_apps(load_settings(write(tmp_path / "apps.toml", toml)), {})
    prefix = "settings cannot be read: " if whose == "a setting's" else ""
    assert str(refused.value) == f"{prefix}the secret file {path} {why}"


@pytest.mark.parametrize("given_in", ["the environment", ".env", "a flag"])
def test_a_secret_link_to_nothing_is_passed_over_when_its_variable_is_given(
    given_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment and .env win over the secrets directory; a stale link there for a
    variable set in either stopped every command."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "BATCH_REST_API_KEY").symlink_to(tmp_path / "gone")
    monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(secrets))
    monkeypatch.chdir(tmp_path)
    flags = {}
    if given_in == "the environment":
        monkeypatch.setenv("BATCH_REST_API_KEY", "from-the-environment")
    elif given_in == ".env":
        write(tmp_path / ".env", "BATCH_REST_API_KEY=from-the-environment\n")
    else:
        flags = {"batch_rest_api_key": "from-the-environment"}
    settings = load_settings(**flags)
    assert settings.batch_rest_api_key is not None
    assert settings.batch_rest_api_key.get_secret_value() == "from-the-environment"


@pytest.mark.parametrize(("level", "shown"), [("ERROR", False), ("WARNING", True)])
def test_a_readable_config_file_warning_waits_for_the_log_settings(
    level: str,
    shown: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    """The chmod warning was printed as a plain line before logging was set up, whatever
    CAMPAIGN_SYNC_LOG_FORMAT and --log-level said."""
    import json

    from campaign_sync import logs

    config = write(
        tmp_path / "apps.toml", APP_HEAD + 'api_key = "K"\nrest_api_key = "R"\n', mode=0o644
    )
    logs.hold_until_configured()
    load_settings(config)
    assert capsys.readouterr().err == ""  # held
    logs.setup_logging("json", level)
    lines = capsys.readouterr().err.splitlines()
    expected = (
        f"config file {config} holds secrets and is readable by other users; run chmod 600 {config}"
    )
    assert [json.loads(line)["message"] for line in lines] == ([expected] if shown else [])


def test_a_default_settings_source_is_the_default_and_where_to_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A taken default metrics port was blamed on CAMPAIGN_SYNC_METRICS_PORT, unset."""
    monkeypatch.setenv("CAMPAIGN_SYNC_METRICS_HOST", "0.0.0.0")
    settings = load_settings()
    assert settings.source_of("metrics_port") == (
        "the default (set --metrics-port, CAMPAIGN_SYNC_METRICS_PORT or metrics_port in TOML)"
    )
    assert settings.source_of("metrics_host") == "CAMPAIGN_SYNC_METRICS_HOST"


@pytest.mark.parametrize("given_in", ["the environment", "a secret file"])
def test_an_empty_rest_key_is_named_where_it_is_empty(
    given_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty key said 'has no REST API key: set BATCH_REST_API_KEY', which was set."""
    monkeypatch.setenv("BATCH_API_KEY", "live-key")
    if given_in == "the environment":
        monkeypatch.setenv("BATCH_REST_API_KEY", "   ")
        where = "BATCH_REST_API_KEY"
    else:
        write(tmp_path / "BATCH_REST_API_KEY", "\n")
        monkeypatch.setenv("CAMPAIGN_SYNC_SECRETS_DIR", str(tmp_path))
        where = f"BATCH_REST_API_KEY (secret file {tmp_path / 'BATCH_REST_API_KEY'})"
    with pytest.raises(ConfigError) as refused:
        resolve_apps(load_settings())
    assert str(refused.value) == (
        f"app 'default' has no REST API key: {where} is empty (or only white space)"
    )


def test_an_empty_api_key_is_named_where_it_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BATCH_API_KEY=' ' said 'no app to sync: set BATCH_API_KEY', which was set."""
    monkeypatch.setenv("BATCH_API_KEY", " ")
    monkeypatch.setenv("BATCH_REST_API_KEY", "rest")
    with pytest.raises(ConfigError) as refused:
        resolve_apps(load_settings())
    assert str(refused.value) == "no app to sync: BATCH_API_KEY is empty (or only white space)"


def test_apps_sharing_an_api_key_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two apps with one key synced one Batch app twice, silently (a fresh review)."""
    config = write(
        tmp_path / "apps.toml",
        '[[apps]]\nname = "ios"\napi_key = "SAME-KEY"\n'
        '[[apps]]\nname = "android"\napi_key = "SAME-KEY"\n'
        '[[apps]]\nname = "web"\napi_key = "OTHER-KEY"\n',
    )
    with caplog.at_level(logging.WARNING, logger="campaign_sync.config"):
        apps = resolve_apps(load_settings(config, batch_rest_api_key="rest"), {})
    assert [app.name for app in apps] == ["ios", "android", "web"]
    assert [record.getMessage() for record in caplog.records] == [
        "apps 'ios', 'android' have the same API key: one Batch app, synced under each "
        "name, so every count over the apps counts its campaigns 2 times"
    ]


def test_several_hosts_in_the_query_string_reach_the_database(pg_url: str) -> None:
    """The form the refusal of libpq's `h1:1,h2:5432` names works: the first host refuses,
    the second answers (SQLAlchemy's multiple fallback hosts)."""
    from sqlalchemy import make_url as parse

    from campaign_sync.db.session import make_engine

    url = parse(pg_url)
    hosts = f"host=127.0.0.1:1&host={url.host}:{url.port or 5432}"
    fallback = f"postgresql+psycopg://{url.username}@/{url.database}?{hosts}"
    engine = make_engine(fallback)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar_one() == 1
    finally:
        engine.dispose()


def test_an_app_given_its_rest_key_twice_is_refused(tmp_path: Path) -> None:
    """rest_api_key and rest_api_key_env together: the first won, unsaid (a fresh review)."""
    config = write(
        tmp_path / "apps.toml",
        APP_HEAD + 'api_key = "K"\nrest_api_key = "r"\nrest_api_key_env = "IOS_REST"\n',
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value) == (
        f"settings: config file {config}, key apps[0] (app 'ios'): rest_api_key and "
        "rest_api_key_env both give the REST key: keep one"
    )


@pytest.mark.parametrize(
    ("variables", "toml", "flags", "message"),
    [
        ({"CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS": "200"}, "", {},
         "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS = 200 is above CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS "
         "(the default) = 120"),
        ({"CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS": "10", "CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS": "9.5"},
         "", {}, "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS = 10 is above "
         "CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS = 9.5"),
        ({}, "retry_backoff_initial_seconds = 40\n", {},
         "key retry_backoff_initial_seconds = 40 is above "
         "CAMPAIGN_SYNC_RETRY_BACKOFF_MAX_SECONDS (the default) = 30"),
        ({"CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS": "120.0000001"}, "", {},
         "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS = 120.0000001 is above "
         "CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS (the default) = 120"),
        ({"CAMPAIGN_SYNC_RETRY_BACKOFF_INITIAL_SECONDS": "2"}, "",
         {"retry_backoff_max_seconds": 1},
         "CAMPAIGN_SYNC_RETRY_BACKOFF_INITIAL_SECONDS = 2 is above --retry-backoff-max-seconds "
         "= 1"),
    ],
)  # fmt: skip
def test_a_backoffs_least_wait_above_its_longest_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variables: dict[str, str],
    toml: str,
    flags: dict[str, Any],
    message: str,
) -> None:
    """CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS=200 beside the default maximum of 120 was taken
    silently, the maximum raised to 200 (a hostile review's find); the retry backoff's
    pair alike. Equal bounds are fine."""
    monkeypatch.chdir(tmp_path)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "campaign-sync.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(config, **flags)
    for name in variables:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS", "7")
    monkeypatch.setenv("CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS", "7")
    assert load_settings().backoff_max_seconds == 7


def test_a_longest_wait_below_the_least_default_is_kept_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS=3 alone (the least wait's default is 5) was
    accepted before the order rule, the longest raised to 5: it still is, with a warning,
    so that a working configuration does not stop on upgrade (a review's find)."""
    monkeypatch.setenv("CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS", "3")
    with caplog.at_level(logging.WARNING, logger="campaign_sync.config"):
        assert load_settings().backoff_max_seconds == 3
    assert (
        "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS (the default) = 5 is above "
        "CAMPAIGN_SYNC_BACKOFF_MAX_SECONDS = 3: the longest wait is taken as 5 s"
    ) in caplog.text


def test_a_rest_key_typed_at_a_terminal_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`BATCH_REST_API_KEY_FILE=/dev/stdin` at a terminal: the key was echoed on the screen
    as it was typed (a review's find). Now the terminal's echo is off while it is read, as
    `getpass` does, and back on after."""
    import pty
    import select
    import termios
    import threading
    import time

    leader, follower = pty.openpty()
    name = os.ttyname(follower)
    assert termios.tcgetattr(follower)[3] & termios.ECHO

    def typing() -> None:
        deadline = time.monotonic() + 5
        while termios.tcgetattr(follower)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(leader, b"typed-secret-9876\n\x04")

    monkeypatch.setenv("BATCH_API_KEY", "LIVEKEY")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", name)
    typist = threading.Thread(target=typing)
    typist.start()
    try:
        apps = resolve_apps(load_settings())
        typist.join()
        shown = b""
        while select.select([leader], [], [], 0.2)[0]:
            shown += os.read(leader, 1024)
        echo_after = termios.tcgetattr(follower)[3] & termios.ECHO
    finally:
        typist.join()
        os.close(leader)
        os.close(follower)
    assert apps[0].rest_api_key.get_secret_value() == "typed-secret-9876"
    assert b"typed-secret" not in shown, shown
    assert echo_after, "the terminal's echo was left off"
    assert capfd.readouterr().err == (
        f"campaign-sync: reading {name} from the terminal (not shown): end it with Ctrl-D\n\n"
    )


def test_a_rest_key_typed_before_the_prompt_is_read_not_thrown_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The echo was turned off with TCSAFLUSH (getpass's way), which threw away a key
    typed ahead; the read then waited its whole silence and failed (a review's find)."""
    import pty

    import campaign_sync.config as config

    monkeypatch.setattr(config, "TERMINAL_WAIT_SECONDS", 2.0)
    leader, follower = pty.openpty()
    os.write(leader, b"ahead-secret-4321\n\x04")  # typed before the command asks
    monkeypatch.setenv("BATCH_API_KEY", "LIVEKEY")
    monkeypatch.setenv("BATCH_REST_API_KEY_FILE", os.ttyname(follower))
    try:
        apps = resolve_apps(load_settings())
    finally:
        os.close(leader)
        os.close(follower)
    assert apps[0].rest_api_key.get_secret_value() == "ahead-secret-4321"


@pytest.mark.parametrize(
    ("command", "stop", "returncode"),
    [
        ("sync", "SIGINT", 0),  # the set-up window's clean stop: os._exit, no `finally`
        ("serve", "SIGTERM", 0),
        ("check", "SIGTERM", -15),  # any other command ends by the signal
        ("check", "SIGINT", -2),
        ("check", "SIGHUP", -1),  # the terminal closed
        ("sync", "SIGQUIT", -3),  # Ctrl-\\, inside the window too
    ],
)
def test_a_stop_at_the_rest_keys_prompt_gives_the_terminal_its_echo_back(
    tmp_path: Path, command: str, stop: str, returncode: int
) -> None:
    """A Ctrl-C at the key's prompt of `sync` exited 0 from the set-up window with the
    terminal's echo still off: the shell went on typing blind (a review's find)."""
    import pty
    import signal
    import subprocess
    import sys
    import termios
    import time

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_"))}
    env.update(
        BATCH_API_KEY="LIVEKEY",
        BATCH_REST_API_KEY_FILE=os.ttyname(follower),
        BATCH_API_BASE_URL="http://127.0.0.1:9",  # never reached: stopped at the prompt
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", command], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while termios.tcgetattr(follower)[3] & termios.ECHO:
            assert time.monotonic() < deadline and process.poll() is None, "never asked"
            time.sleep(0.02)
        process.send_signal(getattr(signal, stop))
        _, err = process.communicate(timeout=30)
        echo_after = termios.tcgetattr(follower)[3] & termios.ECHO
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
        os.close(follower)
    assert process.returncode == returncode, err
    if command in ("sync", "serve") and stop in ("SIGINT", "SIGTERM"):  # the window's
        assert f"stopped by {stop} before the work began".encode() in err
    assert echo_after, "the terminal was left without its echo"
