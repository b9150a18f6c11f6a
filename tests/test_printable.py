"""What reaches an operator's terminal shows control characters as escapes: error lines
and text log lines hold values a user or Batch gave (logs.printable)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from campaign_sync.logs import JsonFormatter, TextFormatter, json_printable, printable
from tests.test_cli import cli


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("app \x1b[2J", "app \\x1b[2J"),  # ESC: clears the screen
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # retitles the window, then BEL
        ("one\ntwo", "one\\ntwo"),  # a forged second line
        ("done\rfailed", "done\\rfailed"),  # CR overwrites the line
        ("ok\x08\x08no", "ok\\x08\\x08no"),  # backspace
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b2J", "csi\\x9b2J"),  # C1's one-character CSI
        ("next\x85line", "next\\x85line"),  # C1's NEL
        ("tab\there", "tab\\there"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("x\u2066y\u2069", "x\\u2066y\\u2069"),  # isolates
        ("a\u200eb\u200fc\u061cd", "a\\u200eb\\u200fc\\u061cd"),  # LRM, RLM, ALM
        ("one\u2028two\u2029", "one\\u2028two\\u2029"),  # line, paragraph separators
        ("lone \ud800", "lone \\ud800"),  # a lone surrogate: no terminal can be sent one
        # format characters that show as nothing: two tokens would look alike
        ("c\u200b1", "c\\u200b1"),  # ZERO WIDTH SPACE
        ("\ufeffc1", "\\ufeffc1"),  # BOM / ZERO WIDTH NO-BREAK SPACE
        ("a\u2060b\u2063c", "a\\u2060b\\u2063c"),  # WORD JOINER, INVISIBLE SEPARATOR
        ("a\u206ab\u206fc", "a\\u206ab\\u206fc"),  # deprecated shaping controls
        ("a\ufff9b\ufffbc", "a\\ufff9b\\ufffbc"),  # interlinear annotation marks
        ("a\u180eb", "a\\u180eb"),  # MONGOLIAN VOWEL SEPARATOR
        ("A\u3164B\uffa0C\u115fD", "A\\u3164B\\uffa0C\\u115fD"),  # Hangul fillers
        ("a\u034fb\u00adc", "a\\u034fb\\xadc"),  # COMBINING GRAPHEME JOINER, SOFT HYPHEN
        ("a\U0001d173b\U0001bca0c", "a\\U0001d173b\\U0001bca0c"),  # format controls
        ("a\u17b4b\u2065c", "a\\u17b4b\\u2065c"),
        # unchanged: printable text of any script, symbols, the ZERO WIDTH JOINER of emoji
        ("Soldes d'été 🎉 — 50%", "Soldes d'été 🎉 — 50%"),
        ("日本語のキャンペーン", "日本語のキャンペーン"),
        ("👩\u200d💻", "👩\u200d💻"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),  # ZWNJ
        ("\u2764\ufe0f", "\u2764\ufe0f"),  # a variation selector
        (
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        ),  # tags
        ("", ""),
    ],
)
def test_printable_escapes_what_a_terminal_acts_on_and_nothing_else(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_a_text_log_line_is_one_line_and_its_traceback_keeps_its_lines() -> None:
    try:
        raise ValueError("bad \x1b[31mred\nforged line")
    except ValueError:
        record = logging.LogRecord(
            "campaign_sync.x", logging.WARNING, __file__, 1, "token %s", ("a\x1b[2Jb",),
            sys.exc_info(),
        )  # fmt: skip
    text = TextFormatter().format(record)
    first, *traceback = text.split("\n")
    assert first.endswith("WARNING token a\\x1b[2Jb")
    assert traceback[0] == "Traceback (most recent call last):"
    # a traceback's lines cannot be told from a newline within it: only escapes are
    assert traceback[-2:] == ["ValueError: bad \\x1b[31mred", "forged line"]
    assert "\x1b" not in text


def test_an_app_name_with_an_escape_in_a_config_file_is_shown_escaped(tmp_path: Path) -> None:
    """The review's find: a raw ESC in an app name reached the terminal in the error line
    naming the app's key."""
    config = tmp_path / "apps.toml"
    config.write_text('[[apps]]\nname = "ios\\u001b[2J"\napi_key = "KEY"\nconcurrency = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_"))}
    env.update(
        CAMPAIGN_SYNC_CONFIG=str(config),
        BATCH_REST_API_KEY="SECRET-1234",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
    )
    result = cli("check", env=env, timeout=60)
    assert result.returncode == 2
    assert "\x1b" not in result.stderr and "\x1b" not in result.stdout
    assert "apps[0] (app 'ios\\x1b[2J').concurrency" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "Sale \u202eevil",
        "lone\ud800",
        "csi\u009b2J",
        "del\x7f",
        "esc\x1b[2J",
        "rlm\u200f",
        "zwsp\u200b bom\ufeff",
        "beyond the BMP a\U0001d173b\U000e0001c\U0001bca0",
        "plain é 🎉",
        "",
    ],
)
def test_json_printable_writes_json_escapes_and_keeps_the_value(value: str) -> None:
    text = json_printable(json.dumps({"name": value}, ensure_ascii=False, indent=2))
    assert json.loads(text) == {"name": value}
    assert printable(text.replace("\n", "")) == text.replace("\n", "")  # nothing raw left


def test_a_json_log_line_escapes_what_a_terminal_would_act_on() -> None:
    """JSON log lines are read on terminals too (kubectl logs, cat): U+202E and C1
    controls went through raw (ensure_ascii=False escapes only C0)."""
    record = logging.LogRecord(
        "campaign_sync.x", logging.WARNING, __file__, 1, "name %s", ("a\u202eb\u009bc",), None
    )
    line = JsonFormatter().format(record)
    assert "\u202e" not in line and "\u009b" not in line
    assert '"message": "name a\\u202eb\\u009bc"' in line
    assert json.loads(line)["message"] == "name a\u202eb\u009bc"


def test_checks_findings_show_a_paths_escape_escaped(tmp_path: Path) -> None:
    """`check` printed its findings raw: a SQLite path holding ESC ] 0 ; ... BEL retitled
    the terminal's window (a review's find)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_"))}
    env.update(
        BATCH_API_KEY="KEY",
        BATCH_REST_API_KEY="SECRET-1234",
        BATCH_API_BASE_URL="http://127.0.0.1:9",
        DATABASE_URL=f"sqlite:///{tmp_path}/d\x1b]0;owned\x07/x.db",  # no such directory
    )
    result = cli("check", env=env)
    assert result.returncode != 0
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout
    assert "d\\x1b]0;owned\\x07" in result.stdout + result.stderr, result.stdout


def test_a_failed_passs_summary_line_shows_the_url_escaped(tmp_path: Path) -> None:
    """`sync`'s summary printed its error line raw: a base URL holding U+202E reordered
    it on the terminal (a review's find)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_"))}
    env.update(
        BATCH_API_KEY="KEY",
        BATCH_REST_API_KEY="SECRET-1234",
        BATCH_API_BASE_URL="http://127.0.0.1:9/a\u202eb",  # nothing listens on port 9
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
        CAMPAIGN_SYNC_RETRY_MAX_ATTEMPTS="1",
        CAMPAIGN_SYNC_LOG_FORMAT="text",
    )
    for command in ("migrate", "sync"):
        result = cli(command, env=env)
    assert result.returncode == 1, result.stderr
    assert "\u202e" not in result.stdout + result.stderr
    assert "could not reach http://127.0.0.1:9/a\\u202eb (ConnectError" in result.stdout


def test_the_simulators_banner_quotes_and_escapes_the_keys_it_was_given() -> None:
    """`simulate --api-key` printed the key raw and unquoted in its `export` line: ESC
    reached the terminal, and a key with a space broke the line pasted (a review's find)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", "simulate", "--port", "0", "--push", "25",
         "--in-app", "25", "--api-key", "K x;\x1b]0;T\x07", "--rest-api-key", "R\u202eS"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = [process.stderr.readline() for _ in range(3)]
    finally:
        process.terminate()
        process.wait(30)
    export = banner[1]
    assert "\x1b" not in export and "\u202e" not in export
    assert " BATCH_API_KEY='K x;\\x1b]0;T\\x07' BATCH_REST_API_KEY='R\\u202eS' " in export, export
