"""No log line carries the canary REST key or an API key.

Every test uses the same canary REST key and live API key, and conftest's collector keeps
every log line of the session: its session hook fails the run if any line of the whole
suite carried a key, whatever the order. The tests here make lines of their own, so each
proves something when run alone.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from sqlalchemy import Engine, text

from campaign_sync.batch.errors import BatchError, answer_text
from campaign_sync.logs import ContextFilter, JsonFormatter, mask, mask_cut, register_secret
from tests.conftest import (
    API_KEY,
    CANARY_REST_KEY,
    LOG_COLLECTOR,
    leaked_secret_lines,
)
from tests.fake_batch import sync_through
from tests.helpers import batch_error, mock_client, run


@pytest.fixture(autouse=True)
def only_this_tests_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test masks only the keys it registers: the registry is the process's, and a
    key another test of the same worker registered changed what `mask_cut` kept (a
    failure seen under `pytest -n 4` only, by the tests' spread over workers)."""
    from campaign_sync import logs

    monkeypatch.setattr(logs, "_secrets", {})
    monkeypatch.setattr(logs, "_patterns", {})


def test_the_collector_hears_every_log_line() -> None:
    before = len(LOG_COLLECTOR.lines)
    logging.getLogger("campaign_sync.batch.retry").warning("a line for the collector")
    assert LOG_COLLECTOR.lines[before:] == ["a line for the collector"]


def test_a_request_that_fails_and_is_retried_logs_no_key() -> None:
    before = len(LOG_COLLECTOR.lines)
    answers = [
        httpx.Response(503, text=f"echo {CANARY_REST_KEY} {API_KEY}"),
        httpx.Response(200, json=[]),
    ]

    async def call() -> None:
        async with mock_client(lambda request: answers.pop(0)) as client:
            await client.list_push()

    asyncio.run(call())
    made = LOG_COLLECTOR.lines[before:]
    assert any("retrying GET campaigns/list" in line for line in made), made
    assert leaked_secret_lines() == []


def test_errors_and_retry_logs_never_show_the_keys(caplog: pytest.LogCaptureFixture) -> None:
    answers = [httpx.Response(500, text=f"echo {CANARY_REST_KEY}"), batch_error(401, "X", 10)]

    async def call() -> None:
        async with mock_client(lambda r: answers.pop(0)) as client:
            await client.list_push()

    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as raised:
        asyncio.run(call())
    assert API_KEY not in str(raised.value) and CANARY_REST_KEY not in str(raised.value)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


def test_registered_secrets_are_masked_in_formatted_lines() -> None:
    register_secret(CANARY_REST_KEY)
    register_secret(API_KEY, keep_last=4)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "url /1.1/%s/list key %s", (API_KEY, CANARY_REST_KEY), None
    )
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert CANARY_REST_KEY not in line and API_KEY not in line
    assert f"****{API_KEY[-4:]}" in line


def _echoing(status: int, where: str) -> httpx.Response:
    """An error answer that quotes the request's credentials, as a message or as a body."""
    both = f"X-Authorization: {CANARY_REST_KEY}; GET /1.1/{API_KEY}/campaigns/list"
    if where == "message":
        body = {"code": 10, "type": "AUTHENTICATION_INVALID", "message": f"Invalid key {both}"}
        return httpx.Response(status, json=body)
    if where == "type":
        return httpx.Response(status, json={"code": 1, "type": CANARY_REST_KEY, "message": "x"})
    if where == "other case":
        quoted = f"{CANARY_REST_KEY.lower()} {API_KEY.upper()} {CANARY_REST_KEY.swapcase()}"
        return httpx.Response(status, json={"code": 1, "type": "X", "message": quoted})
    if where == "repeated":  # masks are shorter than keys: a copy past the cut moved in
        return httpx.Response(status, text="x" * 12 + f"{CANARY_REST_KEY} " * 40)
    # A proxy's error page: the key lands across the 200 characters kept of a text body.
    return httpx.Response(status, text="<html>" + "." * 180 + both + "</html>")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503])
@pytest.mark.parametrize("where", ["message", "type", "body", "other case", "repeated"])
def test_an_answer_that_quotes_the_keys_never_puts_them_in_an_error(
    status: int, where: str
) -> None:
    """Errors reach the terminal, `sync_runs.error` and `status`, where no log filter
    masks them: the keys are cut where Batch's words enter (`errors.error_from_response`)."""

    async def call() -> None:
        async with mock_client(lambda request: _echoing(status, where), attempts=1) as client:
            await client.list_push()

    with pytest.raises(BatchError) as raised:
        asyncio.run(call())
    error = raised.value
    shown = " ".join(map(str, (error, error.batch_message, error.error_type)))
    for key in (CANARY_REST_KEY, API_KEY):
        assert key[:-1].lower() not in shown.lower() and key[1:].lower() not in shown.lower()
    if where == "message":
        assert "Invalid key X-Authorization: ****; GET /1.1/****b682/campaigns/list" in shown


@pytest.mark.usefixtures("restore_logging")
def test_a_pass_refused_with_the_keys_quoted_stores_and_prints_neither(
    pg_url: str, db: Engine
) -> None:
    results = sync_through(pg_url, lambda request: _echoing(401, "message"))
    assert [str(result.status) for result in results] == ["failed"]
    with db.connect() as conn:
        stored = list(conn.execute(text("select error from sync_runs")).scalars())
    status = run("status", env={"DATABASE_URL": pg_url})
    shown = [*stored, *(str(result.error) for result in results), status.output]
    assert len(stored) == 1 and "Invalid key X-Authorization: ****" in stored[0], stored
    assert "Invalid key X-Authorization: ****" in status.output, status.output
    assert all(CANARY_REST_KEY not in text and API_KEY not in text for text in shown), shown


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("key " + CANARY_REST_KEY, 200, "key ****"),
        ("key " + CANARY_REST_KEY.upper(), 200, "key ****"),
        ("a" * 190 + CANARY_REST_KEY, 200, "a" * 190 + "****"),  # cut inside the key
        ("a" * 195 + CANARY_REST_KEY, 200, "a" * 195 + "****"),  # 5 of its characters
        ("a" * 197 + CANARY_REST_KEY, 200, "a" * 197 + "can"),  # 3: shorter than any mask
        ((CANARY_REST_KEY + " ") * 40, 50, "**** ****"),  # cut first: no copy moves in
        # Percent-encoded at the cut, in full, in part, an escape or a UTF-8 sequence cut short:
        ("a" * 170 + "".join(f"%{ord(c):02X}" for c in CANARY_REST_KEY), 200, "a" * 170 + "****"),
        ("a" * 180 + "c%61nary-REST-key-d41d8", 200, "a" * 180 + "****"),
        ("a" * 188 + "%63%61%6E%61%7", 200, "a" * 188 + "****"),  # "cana" then "%7"
        ("a" * 188 + "%63%61%6E%61%", 200, "a" * 188 + "****"),
        ("a" * 191 + "%63%61%6E", 200, "a" * 191 + "%63%61%6E"),  # 3 characters: kept
        # Not cut: a last word that a key starts with is only a word ("Injected by the
        # simulator" read "Injected by the ****" with a key SIMULATOR_REST_KEY)
        ("an error from the canary", 200, "an error from the canary"),
        ("an error from the CANARY-REST", 200, "an error from the CANARY-REST"),
        ("a" * 188 + "canary-REST", 200, "a" * 188 + "canary-REST"),
    ],
)
def test_mask_cut_leaves_no_part_of_a_key_at_the_cut(text: str, limit: int, shown: str) -> None:
    register_secret(CANARY_REST_KEY)
    assert mask_cut(text, limit) == shown


@pytest.mark.parametrize("cut", [6, 7, 8, 9, 10, 11, 12, 13])
def test_a_key_holding_a_literal_escape_is_masked_at_every_cut(cut: int) -> None:
    """The tail's decoding turned the key's own `%41` into `A`: 11 of its 12 characters
    were left at a cut of 13."""
    register_secret("abc%41def123")
    shown = mask_cut("x abc%41def123 y", cut)
    assert shown == "x ****", shown
    assert mask_cut("x abc%41def123 y", 5) == "x abc"  # 3 characters: shorter than a mask


def test_a_non_ascii_key_cut_inside_an_encoded_character_is_masked() -> None:
    register_secret("clé-de-test-42")
    encoded = "cl%C3%A9-de"  # "clé-de", then the cut falls inside the next escape
    assert mask_cut("x" * 100 + encoded + "%2", 100 + len(encoded) + 2) == "x" * 100 + "****"
    assert mask_cut("x" * 100 + "cl%C3", 105) == "x" * 100 + "cl%C3"  # "cl" and half an é


def test_a_key_is_masked_percent_encoded_too() -> None:
    """A 404 page repeating the request's path shows the live API key percent-encoded."""
    key = "LIVE/KEY+0123=4567?AB"
    register_secret(key, keep_last=4)
    path = "/1.1/LIVE%2FKEY%2B0123%3D4567%3FAB/campaigns/list"
    assert mask(f"no route {path} for {key}") == (
        "no route /1.1/****7?AB/campaigns/list for ****7?AB"
    )


@pytest.mark.parametrize(
    "echo",
    [
        "%4C%49%56%45%2F%4B%45%59%2B%30%31%32%33%3D%34%35%36%37%3F%41%42",  # every character
        "%4c%49VE/KEY%2b0123=4567%3fAB",  # some, lower-case hex
        "live%2Fkey%2B0123%3D4567%3Fab",  # encoded by another library, another case
    ],
)
def test_a_key_is_masked_encoded_in_part_or_in_full(echo: str) -> None:
    """Only the encoding `quote` writes was masked: a server that encodes every character
    (RFC 3986 allows any octet encoded), or only some, showed the key."""
    register_secret("LIVE/KEY+0123=4567?AB", keep_last=4)
    assert mask(f"no route /1.1/{echo}/campaigns/list") == ("no route /1.1/****7?AB/campaigns/list")


@pytest.mark.parametrize(
    "message",
    ["two\nlines\r\nand more", "clear \u001b[2J screen \u001b]0;title\u0007", "\u2028x"],
)
def test_batchs_words_reach_a_message_as_one_plain_line(message: str) -> None:
    answer = httpx.Response(400, content=f'{{"code": 1, "message": "{message}"}}'.encode())

    async def call() -> None:
        async with mock_client(lambda request: answer, attempts=1) as client:
            await client.list_push()

    with pytest.raises(BatchError) as raised:
        asyncio.run(call())
    text = str(raised.value)
    assert text.isprintable() and "\x1b" not in text, repr(text)


def test_a_long_message_is_cut_to_200_characters() -> None:
    answer = httpx.Response(400, json={"code": 1, "type": "T", "message": "m" * 500_000})

    async def call() -> None:
        async with mock_client(lambda request: answer, attempts=1) as client:
            await client.list_push()

    with pytest.raises(BatchError) as raised:
        asyncio.run(call())
    assert raised.value.batch_message == "m" * 200


@pytest.mark.parametrize(
    ("letter", "lookalike"), [("s", "\u017f"), ("i", "\u0131"), ("I", "\u0130")]
)
def test_a_key_echoed_with_unicode_case_lookalikes_is_masked_not_raised(
    letter: str, lookalike: str
) -> None:
    """`ſ` matches `s` and `ı`/`İ` match `i` case-insensitively, but do not lower to them:
    the mask was looked up by the matched text, and the KeyError carried the key."""
    key = "restsecretkeyAAAA1111bbbb2222ccssiI"
    register_secret(key)
    assert mask(f"bad key {key.replace(letter, lookalike)}") == "bad key ****"


def test_mask_cut_masks_the_longest_key_start_at_the_cut() -> None:
    register_secret("abcdREST0123456789restkeyrest0123")
    live = "ZZZZZZabcdLIVE0123456789LIVEKEY99"
    register_secret(live, keep_last=4)
    assert mask_cut("x" * 190 + live, 200) == "x" * 190 + "****EY99"


def test_bidirectional_controls_do_not_reach_a_message() -> None:
    assert answer_text("abc\u202edef\u2066g") == "abc def g"
