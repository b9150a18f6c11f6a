"""Logging: JSON lines when stderr is not a terminal, readable text when it is; every line
carries the app, campaign type and run id in force; known secrets are masked, and text
lines show control characters as escapes (`printable`)."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

current_app: contextvars.ContextVar[str | None] = contextvars.ContextVar("app", default=None)
current_type: contextvars.ContextVar[str | None] = contextvars.ContextVar("type", default=None)
current_run: contextvars.ContextVar[int | None] = contextvars.ContextVar("run", default=None)

EXTRA_FIELDS = ("route", "status", "attempt", "wait_seconds")
MASK_MIN_LENGTH = 4  # a shorter "secret" would mask ordinary words; real keys are longer
_secrets: dict[str, str] = {}  # lower-cased secret -> its mask
# Built on first use, one named group per secret (g0, g1...), each with its masks by group
# name: the plain spellings, and every spelling with percent-escapes (built only for a text
# holding a `%`: ~5x longer to build, and most lines hold none). Replaced whole, never
# changed in place, so a thread masking a line meanwhile (logging runs in the pass's
# threads) uses one consistent pair.
_patterns: dict[bool, tuple[re.Pattern[str], dict[str, str]]] = {}


# What a terminal acts on instead of showing: the C0 and C1 control characters (ESC begins
# its escape sequences, which can clear the screen or retitle the window; CR and backspace
# overwrite a line; a newline forges one), the bidirectional overrides, isolates and marks
# that reorder what is shown (CVE-2021-42574, "Trojan Source"; LRM, RLM and ALM), and the
# line and paragraph separators some viewers break lines at, and the characters that show
# as nothing (Unicode's Default_Ignorable_Code_Point: ZERO WIDTH SPACE, SOFT HYPHEN, WORD
# JOINER and the invisible operators, the BOM / ZERO WIDTH NO-BREAK SPACE, the Hangul
# fillers, the combining grapheme joiner, the musical and shorthand format controls...):
# a token or name holding one looks like another that does not, and a copied one names
# nothing. Kept, as emoji and several scripts are written with them: ZWJ and ZWNJ
# (U+200C, U+200D), the variation selectors (U+FE00-FE0F, U+E0100-E01EF, Mongolian's
# U+180B-180D and U+180F) and the tag characters (U+E0020-E007F).
# Lone surrogates (Batch's JSON may hold "\ud800") cannot be written at all: printing one
# raised UnicodeEncodeError (update-in-app's dry run of such a campaign, a review's find).
_REORDERING_OR_UNWRITABLE = (
    "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
    # Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt) but what is kept
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u2060-\u2065\u206a-\u206f"
    "\u3164\ufeff\uffa0\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e001f\U000e0080-\U000e00ff\U000e01f0-\U000e0fff"
)
_UNSHOWABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_REORDERING_OR_UNWRITABLE}]")
# The same within JSON text, but the C0 controls: json.dumps escapes them in strings, and
# writes only newlines and spaces between them.
_UNSHOWABLE_IN_JSON = re.compile(f"[\x7f-\x9f{_REORDERING_OR_UNWRITABLE}]")


def printable(text: str) -> str:
    """`text` with every character a terminal would act on instead of showing written as
    its Python escape (`\\x1b`, `\\n`, `\\u202e`): for one line of text output that holds
    values a user or Batch gave (an app name in a TOML file, a campaign token, a name).
    A raw ESC in an app name reached the terminal in an error line (a review's find)."""
    if _UNSHOWABLE.search(text) is None:
        return text
    return _UNSHOWABLE.sub(
        lambda found: found.group().encode("unicode_escape", "backslashreplace").decode(), text
    )


def printable_lines(text: str) -> str:
    """`printable` for each line of a text of several (an outcome and its error line)."""
    return "\n".join(map(printable, text.split("\n")))


def json_printable(text: str) -> str:
    """JSON text (json.dumps's, with ensure_ascii=False) with what a terminal would act on
    written as JSON escapes (`\\u009b`, `\\u202e`): the same JSON value, shown as is.
    update-in-app's dry run and the JSON log lines printed U+202E and C1 controls raw (a
    review's find)."""
    if _UNSHOWABLE_IN_JSON.search(text) is None:
        return text
    return _UNSHOWABLE_IN_JSON.sub(lambda found: _json_escape(found.group()), text)


def _json_escape(character: str) -> str:
    """`character` as JSON's `\\uXXXX` escape: a pair of them (UTF-16's surrogates, RFC 8259
    section 7) beyond U+FFFF, where one escape of five digits read as another character
    and a digit (U+1D173 came back as U+1D17 and "3")."""
    point = ord(character)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    point -= 0x10000
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


def register_secret(value: str, *, keep_last: int = 0) -> None:
    """Mask `value` from now on (keeping its last characters if asked) in every log line and
    wherever `mask` is applied: as it is, in any letter case (Unicode's: `ſ` for `s` too),
    and percent-encoded, wholly or in part (a 404 page repeating the request's path). A
    value shorter than `MASK_MIN_LENGTH` is not masked. A value registered again keeps its
    first mask, so the fuller mask wins when the REST key is registered before the live API
    key and both are the same. The patterns are built when next needed, once for all the
    keys registered since."""
    if not value or len(value) < MASK_MIN_LENGTH:
        return
    tail = value[-keep_last:] if keep_last and len(value) > 2 * keep_last else ""
    if value.lower() not in _secrets:
        _secrets[value.lower()] = f"****{tail}"
        _patterns.clear()


def _compiled(encoded: bool) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """The pattern of every registered secret, the longest first, with (`encoded`) or
    without percent-escapes, and the mask of each of its groups; None while there is no
    secret."""
    found = _patterns.get(encoded)
    if found is None and _secrets:
        secrets = sorted(_secrets, key=len, reverse=True)
        masks = {f"g{index}": _secrets[secret] for index, secret in enumerate(secrets)}
        spell = _any_encoding if encoded else re.escape
        alternatives = (f"(?P<g{i}>{spell(secret)})" for i, secret in enumerate(secrets))
        found = _patterns[encoded] = (re.compile("|".join(alternatives), re.IGNORECASE), masks)
    return found


def _any_encoding(secret: str) -> str:
    """A pattern for `secret` with each character as it is or percent-encoded (`%41` for
    `A`, `%C3%A9` for `é`), in any mix: a server may echo a path encoded in full, or only
    some characters (RFC 3986, 2.1: any octet may be percent-encoded). The pattern is
    matched ignoring case, so the hex digits may be either case."""
    parts = []
    for char in secret:
        spellings = {re.escape(char)} | {  # encoded, of either letter case
            re.escape("".join(f"%{byte:02X}" for byte in cased.encode("utf-8")))
            for cased in (char.lower(), char.upper())
        }
        parts.append(f"(?:{'|'.join(sorted(spellings))})")
    return "".join(parts)


def mask(text: str) -> str:
    """`text` with every registered secret replaced by its mask (see `register_secret`).
    The mask is found by the alternative that matched, never by the matched text (which
    may differ from the secret by more than ASCII case)."""
    compiled = _compiled(encoded="%" in text)
    if compiled is None:
        return text
    pattern, masks = compiled
    return pattern.sub(lambda found: masks[found.lastgroup or ""], text)


def mask_cut(text: str, limit: int) -> str:
    """`text` masked and cut to at most `limit` characters without leaving part of a secret
    at the cut: the text is cut first, then masked (masks are shorter than what they hide,
    so masking first and cutting after would pull unmasked characters in), then the longest
    tail that spells the start of a secret (`MASK_MIN_LENGTH` characters of it or more, as
    they are or percent-encoded, an escape cut short included) is masked as well; only
    when the text was cut: a whole text ending in a word a secret starts with ("Injected
    by the simulator", a key 'SIMULATOR_REST_KEY') holds no part of it."""
    cut = mask(text[:limit])
    if len(text) < limit:  # at the limit it may have been cut before it came
        return cut
    longest, replacement = _secret_begun_at_end(cut)
    return cut[:-longest] + replacement if longest else cut


def _secret_begun_at_end(text: str) -> tuple[int, str]:
    """(how many characters at the end of `text` spell the start of a registered secret,
    that secret's mask), the longest such tail; (0, "") when none does."""
    if not _secrets:
        return 0, ""
    widest = 12 * max(map(len, _secrets))  # a character is at most 4 UTF-8 bytes, as %XX
    firsts = {"%", *(secret[0].casefold() for secret in _secrets)}
    for start in range(max(0, len(text) - widest), len(text) - MASK_MIN_LENGTH + 1):
        if text[start].casefold() not in firsts:
            continue  # no secret's first character, and no escape
        for secret, its_mask in _secrets.items():
            spelled = _spelled_start(text[start:], secret)
            if spelled is not None and MASK_MIN_LENGTH <= spelled < len(secret):
                return len(text) - start, its_mask  # the earliest start: the longest tail
    return 0, ""


def _spelled_start(tail: str, secret: str) -> int | None:
    """How many characters of `secret` the whole of `tail` spells, each as it is (in any
    letter case) or percent-encoded (either hex case), the last one possibly cut inside its
    escape; None when `tail` spells no start of `secret`. A search over the two readings
    a `%` may have (the key's own `%`, or an escape's)."""
    todo, readings = [(0, 0)], []  # (position in tail, characters of secret spelled)
    while todo:
        position, spelled = todo.pop()
        if position == len(tail):
            readings.append(spelled)
            continue
        if spelled == len(secret):
            continue  # the tail goes on past the whole secret: `mask` deals with that
        char = secret[spelled]
        if tail[position].casefold() == char.casefold():
            todo.append((position + 1, spelled + 1))
        rest = tail[position : position + 12].lower()  # an escape: at most 4 x %XX
        for cased in {char.lower(), char.upper()}:
            escape = "".join(f"%{byte:02x}" for byte in cased.encode("utf-8"))
            if rest.startswith(escape):
                todo.append((position + len(escape), spelled + 1))
            elif escape.startswith(rest):
                readings.append(spelled)  # cut inside this character's escape
    return max(readings, default=None)


@contextlib.contextmanager
def log_context(
    app: str | None = None, campaign_type: str | None = None, run_id: int | None = None
) -> Iterator[None]:
    app_token = current_app.set(app) if app is not None else None
    type_token = current_type.set(campaign_type) if campaign_type is not None else None
    run_token = current_run.set(run_id) if run_id is not None else None
    try:
        yield
    finally:
        if run_token is not None:
            current_run.reset(run_token)
        if type_token is not None:
            current_type.reset(type_token)
        if app_token is not None:
            current_app.reset(app_token)


class ContextFilter(logging.Filter):
    """Adds the context fields and masks secrets in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.app = current_app.get()
        record.campaign_type = current_type.get()
        record.run_id = current_run.get()
        message = mask(record.getMessage())
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("app", "campaign_type", "run_id", *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        return json_printable(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        campaign_type = getattr(record, "campaign_type", None)
        if campaign_type == "in_app":
            campaign_type = "in-app"  # as the command line spells it
        where = "/".join(
            str(part) for part in (getattr(record, "app", None), campaign_type) if part
        )
        run = getattr(record, "run_id", None)
        prefix = f"[{where}{f' run {run}' if run else ''}] " if where or run else ""
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        text = printable(f"{stamp} {record.levelname:<7} {prefix}{record.getMessage()}")
        if record.exc_info:  # a traceback keeps its lines; what is within them is escaped
            lines = mask(self.formatException(record.exc_info)).split("\n")
            text += "\n" + "\n".join(map(printable, lines))
        return text


def _ours(handler: logging.Handler) -> bool:
    return bool(getattr(handler, "_campaign_sync", False))


@contextlib.contextmanager
def logging_through(console: Console) -> Iterator[None]:
    """While a live display owns the terminal, log lines go through its console (rich's
    handler), so they print above the display instead of into it; same text as before."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    replaced = [handler for handler in root.handlers if _ours(handler)]
    if not replaced:
        yield
        return
    through = RichHandler(
        console=console,
        show_time=False,
        show_level=False,
        show_path=False,
        markup=False,
        rich_tracebacks=False,
    )
    through.addFilter(ContextFilter())
    through.setFormatter(replaced[0].formatter or TextFormatter())
    through._campaign_sync = True  # type: ignore[attr-defined]
    for handler in replaced:
        root.removeHandler(handler)
    root.addHandler(through)
    try:
        yield
    finally:
        root.removeHandler(through)
        for handler in replaced:
            root.addHandler(handler)


_held: list[tuple[str, str]] | None = None  # (logger, message) while the CLI holds them


def hold_until_configured() -> None:
    """From now until `setup_logging`, `warn_when_configured` holds its warnings: the
    command line's, whose log format and level are settings still being read."""
    global _held
    _held = []


def warn_when_configured(logger: str, message: str) -> None:
    """Log `message` as a warning of `logger`, through the handler `setup_logging` installs
    when the command line holds warnings until then (`hold_until_configured`; a warning
    about reading the settings comes before the settings that say how to log it), else
    at once."""
    if _held is None:
        logging.getLogger(logger).warning("%s", message)
    else:
        _held.append((logger, message))


def release_held() -> None:
    """Print what is still held, one plain line each on stderr, and hold no more: a command
    that ends before setting logging up (a refused setting) still shows its warnings."""
    global _held
    held, _held = _held or [], None
    for _, message in held:
        sys.stderr.write(f"{printable(message)}\n")


# What a write to an output says when no one reads it any more: a pipe's reader ended
# (EPIPE), the terminal hung up (EIO: POSIX `write`, "a hangup occurred").
READER_GONE = frozenset({errno.EPIPE, errno.EIO})


def library_level() -> int:
    """The level (a `logging` number) for the libraries' own loggers (httpx, uvicorn,
    APScheduler, Alembic): WARNING, or ours when ours is higher. A logger's own level wins
    over the root's, so at CAMPAIGN_SYNC_LOG_LEVEL=error uvicorn's warnings ("Invalid HTTP
    request received.", at any TLS probe of the metrics port) still printed while ours
    were hidden (a review's find)."""
    return max(logging.WARNING, logging.getLogger().getEffectiveLevel())


def setup_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Log to stderr as JSON lines (`json`, or `auto` when stderr is no terminal) or text,
    at `level`; then log the warnings held until now (`hold_until_configured`)."""
    global _held
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if _ours(existing):
            root.removeHandler(existing)
    handler._campaign_sync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and our URLs carry the app's API key.
    # apscheduler logs every job run at INFO; our own pass lines say more.
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(library_level())
    held, _held = _held or [], None
    for logger, message in held:
        logging.getLogger(logger).warning("%s", message)
