"""The simulator's campaigns: realistic, dated around "now", deterministic for a seed and a
`now`, with Batch's own traps."""

from __future__ import annotations

import copy
import json
import random
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from campaign_sync.domain import CampaignType

SEGMENTS = ["NEW", "ONE_TIME", "ENGAGED", "DORMANT", "IMPORTED"]
LANGUAGES = ["en", "fr", "de", "es", "pt-BR", "ja"]
WORDS = (
    "spring sale summer winter flash offer welcome back reminder cart abandoned loyalty "
    "points premium trial news update weekly digest bonus coupon early access vip"
).split()
IMPOSSIBLE_DATE = "2018-02-29T17:30:00"  # straight from Batch's own documentation
BASE_DATE = datetime(2017, 1, 2, 9, 0, 0)  # where generation starts, before the shift to now
NEWEST_CREATED_AGO = timedelta(hours=1)  # the newest campaign was created this long before now
DATE_FIELDS = (
    "created_date", "push_time", "local_push_time", "start_date", "local_start_date",
    "end_date", "local_end_date",
)  # fmt: skip

LIST_FIELDS: dict[CampaignType, tuple[str, ...]] = {
    CampaignType.PUSH: (
        "campaign_token", "from_api", "dev_only", "created_date", "name", "live",
        "push_time", "local_push_time", "end_date", "recurrence", "capping",
        "deeplink", "custom_payload", "trigger", "x_new_list_field",
    ),
    CampaignType.IN_APP: (
        "campaign_token", "from_api", "dev_only", "created_date", "name", "live",
        "start_date", "local_start_date", "end_date", "local_end_date", "trigger",
        "capping", "x_new_list_field",
    ),
}  # fmt: skip


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")


def _shift(detail: dict[str, Any], delta: timedelta) -> None:
    """Move every date of a generated detail by `delta` (generated dates are all valid)."""
    for key in DATE_FIELDS:
        if key in detail:
            detail[key] = _date(_parse(detail[key]) + delta)
    recurrence = detail.get("recurrence")
    if isinstance(recurrence, dict) and "end_date" in recurrence:
        recurrence["end_date"] = _date(_parse(recurrence["end_date"]) + delta)


def current_time() -> datetime:
    """Now, as the simulator's dates are written: UTC without a zone, to the second."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def list_entry(campaign_type: CampaignType, detail: dict[str, Any]) -> dict[str, Any]:
    """The basic information a list call shows: never messages, landing or segments."""
    entry = {key: detail[key] for key in LIST_FIELDS[campaign_type] if key in detail}
    targeting = detail.get("targeting")
    if isinstance(targeting, dict) and "query" in targeting:
        entry["query"] = targeting["query"]
    return entry


class _Maker:
    """Builds one campaign detail at a time from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def token(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def query(self) -> dict[str, Any]:
        rng = self.rng
        leaves: list[dict[str, Any]] = [
            {"isNear(45.7583907,4.8347867,30km)": True},
            {"countForLabel(e.label_data, 'example')": 0},
            {"c.plan": {"$in": ["premium", "trial"]}},
            {"$not": {"t.opt_out": True}},
        ]
        return {rng.choice(["$or", "$and"]): rng.sample(leaves, rng.randint(1, 3))}

    def targeting(self) -> dict[str, Any]:
        rng = self.rng
        targeting: dict[str, Any] = {"segments": rng.sample(SEGMENTS, rng.randint(1, 3))}
        if rng.random() < 0.4:
            targeting["query"] = self.query()
        if rng.random() < 0.2:
            targeting["lang"] = rng.sample(LANGUAGES[:3], 1)
        if rng.random() < 0.1:
            targeting["region"] = ["FR"]
        return targeting

    def common(self, created: datetime) -> dict[str, Any]:
        rng = self.rng
        return {
            "campaign_token": self.token(),
            "from_api": rng.random() < 0.5,
            "dev_only": rng.random() < 0.1,
            "created_date": _date(created),
            "name": self.words(2, 5).capitalize(),
            "live": rng.random() < 0.7,
        }

    def push(self, created: datetime) -> dict[str, Any]:
        rng = self.rng
        detail = self.common(created)
        when = created + timedelta(hours=rng.randint(1, 300))
        if rng.random() < 0.7:
            detail["push_time"] = _date(when)
        else:
            detail["local_push_time"] = _date(when)
        if rng.random() < 0.3:
            detail["recurrence"] = {
                "end_date": _date(when + timedelta(days=60)),
                "repeat_unit": rng.choice(["DAILY", "WEEKLY", "MONTHLY"]),
                "repeat_frequency": rng.randint(1, 4),
            }
        detail["targeting"] = self.targeting()
        languages = rng.sample(LANGUAGES, rng.randint(1, 3))
        detail["messages"] = [
            {"language": lang, "title": self.words(1, 4).title(), "body": self.words(4, 20)}
            for lang in languages
        ]
        if rng.random() < 0.2:
            detail["messages"][0]["media"] = {"picture": "https://cdn.example.com/p.png"}
        if rng.random() < 0.5:
            detail["deeplink"] = f"myapp://offers/{rng.randint(1, 999)}"
        if rng.random() < 0.4:
            detail["custom_payload"] = json.dumps({"offer_id": rng.randint(1, 99), "ab": "b"})
        if rng.random() < 0.5:
            detail["gcm_collapse_key"] = (
                "default" if rng.random() < 0.5 else {"enabled": True, "key": "offers"}
            )
        if rng.random() < 0.5:
            detail["capping"] = rng.randint(1, 5)
        detail["priority"] = rng.choice(["normal", "high", "NORMAL"])
        if rng.random() < 0.5:
            detail["time_to_live"] = rng.choice([3600, 86400, 604800])
        detail["labels"] = rng.sample(["promo", "retention", "onboarding", "test"], 2)
        if rng.random() < 0.1:
            detail["trigger"] = {}  # an empty trigger marks a trigger automation
        return detail

    def in_app(self, created: datetime) -> dict[str, Any]:
        rng = self.rng
        detail = self.common(created)
        start = created + timedelta(hours=rng.randint(1, 100))
        prefix = "" if rng.random() < 0.8 else "local_"
        detail[f"{prefix}start_date"] = _date(start)
        if rng.random() < 0.7:
            detail[f"{prefix}end_date"] = _date(start + timedelta(days=rng.randint(1, 90)))
        when = rng.choice(["next_session", "NEXT_SESSION", "now", "event"])
        trigger: dict[str, Any] = {"when": when}
        if when == "event":
            trigger["event"] = rng.choice(["e.purchase", "e.login", "e.add_to_cart"])
            if rng.random() < 0.5:
                trigger["label"] = rng.choice(["shoes", "books"])
        if rng.random() < 0.6:
            trigger["capping"] = rng.randint(1, 10)
        if rng.random() < 0.6:
            trigger["grace_period"] = {
                "every": rng.randint(1, 12),
                "unit": rng.choice(["HOURS", "DAYS", "hours"]),
            }
        detail["trigger"] = trigger
        detail["targeting"] = self.targeting()
        contents = []
        for lang in rng.sample(LANGUAGES, rng.randint(1, 2)):
            actions: list[dict[str, Any]] = [{"action": "DISMISS", "label": "Ok"}]
            if rng.random() < 0.5:
                actions.insert(
                    0,
                    {
                        "action": "batch.deeplink",
                        "label": "See offer",
                        "args": {"l": f"myapp://offer/{rng.randint(1, 99)}"},
                    },
                )
            contents.append(
                {
                    "language": lang,
                    "header": self.words(1, 2).upper(),
                    "title": self.words(1, 4).title(),
                    "body": self.words(5, 25),
                    "actions": actions,
                }
            )
        landing: dict[str, Any] = {"theme": f"THEME_{rng.randint(1, 6)}", "contents": contents}
        if rng.random() < 0.3:
            landing["image"] = "https://cdn.example.com/landing.jpg"
        detail["landing"] = landing
        if rng.random() < 0.4:
            detail["capping"] = rng.randint(1, 5)
        detail["priority"] = rng.choice(["normal", "high"])
        detail["labels"] = rng.sample(["promo", "retention", "survey"], 1)
        return detail

    def make(self, campaign_type: CampaignType, created: datetime) -> dict[str, Any]:
        if campaign_type is CampaignType.PUSH:
            return self.push(created)
        return self.in_app(created)


def _plant_traps(campaign_type: CampaignType, details: list[dict[str, Any]]) -> None:
    """The documentation's own traps, on the oldest campaigns (stable under churn)."""
    traps = [
        lambda d: d.update(end_date=IMPOSSIBLE_DATE),
        lambda d: d.update(custom_payload="{not valid json"),
        lambda d: d.update(name="Soldes d'été ☀️🎉 — 日本語 ünïcödé"),
        lambda d: _long_body(campaign_type, d),
        lambda d: _strip_optional(campaign_type, d),
        lambda d: d.update(
            x_new_list_field="added by Batch tomorrow",
            experiment={"variant": "B", "weights": [50, 50]},
        ),
        lambda d: d.update(custom_payload='{"foo" : "bar"}', deeplink="deeplink"),
    ]
    for trap, detail in zip(traps, details, strict=False):
        trap(detail)


def _long_body(campaign_type: CampaignType, detail: dict[str, Any]) -> None:
    body = "Très long texte 🚀 " * 1200
    if campaign_type is CampaignType.PUSH:
        detail["messages"][0]["body"] = body
    else:
        detail["landing"]["contents"][0]["body"] = body


def _strip_optional(campaign_type: CampaignType, detail: dict[str, Any]) -> None:
    keep = {"campaign_token", "from_api", "dev_only", "created_date", "name", "live"}
    for key in list(detail):
        if key not in keep:
            del detail[key]
    if campaign_type is CampaignType.PUSH:
        detail["messages"] = [{"language": "en", "title": "Minimal", "body": "Only the basics"}]


class CampaignStore:
    """One app's campaigns of one type, newest first, safe to change from another thread."""

    def __init__(
        self, campaign_type: CampaignType, rng: random.Random, base_date: datetime = BASE_DATE
    ) -> None:
        self.campaign_type = campaign_type
        self.lock = threading.RLock()
        self.version = 0
        self._maker = _Maker(rng)
        self._rng = rng
        self._order: list[str] = []  # newest first
        self._details: dict[str, dict[str, Any]] = {}
        self._next_created = base_date
        # The store's clock less the real one (`_bulk_create`'s `now` may be another day):
        # what `random_change` dates a campaign it creates by.
        self._clock_offset = timedelta(0)

    def __len__(self) -> int:
        return len(self._order)

    def tokens(self) -> list[str]:
        with self.lock:
            return list(self._order)

    def detail(self, token: str) -> dict[str, Any] | None:
        with self.lock:
            detail = self._details.get(token)
            return copy.deepcopy(detail) if detail is not None else None

    def details(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._details)

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            return [
                list_entry(self.campaign_type, self._details[token])
                for token in self._order[offset : offset + limit]
            ]

    # -- change over time -------------------------------------------------------------

    def create(self, detail: dict[str, Any] | None = None, *, at: datetime | None = None) -> str:
        """Add a campaign, the newest: `detail`, or one made up, created at `at` (naive UTC)
        or, without it, 5-600 minutes after the newest (deterministic for the seed); never
        before the newest, so that the list stays newest first. Returns its token."""
        with self.lock:
            if at is None:
                self._next_created += timedelta(minutes=self._rng.randint(5, 600))
            else:
                self._next_created = max(self._next_created, at)
            detail = detail or self._maker.make(self.campaign_type, self._next_created)
            token = detail["campaign_token"]
            self._details[token] = detail
            self._order.insert(0, token)
            self.version += 1
            return str(token)

    def _bulk_create(self, count: int, now: datetime) -> None:
        """Generate `count` campaigns, then move them in time so that the newest was created
        just before `now`: older ones over the past weeks or months, pushes and end dates
        partly in the coming weeks."""
        details = []
        for _ in range(count):
            self._next_created += timedelta(minutes=self._rng.randint(5, 600))
            details.append(self._maker.make(self.campaign_type, self._next_created))
        delta = now - NEWEST_CREATED_AGO - self._next_created
        self._clock_offset = now - current_time()
        for detail in details:
            _shift(detail, delta)
        self._next_created += delta
        _plant_traps(self.campaign_type, details)
        for detail in details:
            self._details[detail["campaign_token"]] = detail
        self._order = [d["campaign_token"] for d in reversed(details)] + self._order
        self.version += 1

    def rename(self, token: str, name: str | None = None) -> None:
        with self.lock:
            self._details[token]["name"] = name or self._maker.words(2, 5).capitalize()
            self.version += 1

    def change_inside_detail(self, token: str) -> None:
        """A change the list cannot show: a message body or landing content."""
        with self.lock:
            detail = self._details[token]
            text = f"Edited {self._maker.words(3, 8)}"
            if self.campaign_type is CampaignType.PUSH:
                messages = detail.setdefault("messages", [{"language": "en", "title": "T"}])
                messages[0]["body"] = text
            else:
                landing = detail.setdefault("landing", {"contents": [{"language": "en"}]})
                landing.setdefault("contents", [{"language": "en"}])[0]["body"] = text
            self.version += 1

    def replace(self, token: str, detail: dict[str, Any]) -> None:
        with self.lock:
            self._details[token] = detail
            self.version += 1

    def delete(self, token: str) -> None:
        with self.lock:
            self._order.remove(token)
            del self._details[token]
            self.version += 1

    def random_change(self) -> str:
        """One change of a random kind; returns what it did, for logs."""
        with self.lock:
            kind = self._rng.choice(["create", "rename", "inside", "delete"])
            if kind == "create" or not self._order:
                # Created now, by the store's clock: stepping 5-600 minutes from the newest
                # at every change dated churned campaigns days ahead (a review's find).
                return f"created {self.create(at=current_time() + self._clock_offset)}"
            token = self._rng.choice(self._order)
            if kind == "rename":
                self.rename(token)
            elif kind == "inside":
                self.change_inside_detail(token)
            else:
                self.delete(token)
            return f"{kind} {token}"


def generate_store(
    campaign_type: CampaignType, count: int, seed: int, now: datetime | None = None
) -> CampaignStore:
    """`count` campaigns, the same for the same seed and `now` (naive UTC; default: now)."""
    offset = 0 if campaign_type is CampaignType.PUSH else 1_000_003
    store = CampaignStore(campaign_type, random.Random(seed * 7919 + offset))
    store._bulk_create(count, now or current_time())
    return store


# -- push statistics ---------------------------------------------------------------------

STATS_DAYS_AFTER_SEND = 6  # a one-shot push still gathers opens for a few days
AB_TEST_SHARE = 0.3  # share of push campaigns that are A/B tests


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def push_stats(detail: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The stats route's answer for a push campaign at `now` (naive UTC), or None before
    its send time (no stats yet). Deterministic per token: each day's numbers grow
    through that day, then stay; a recurring campaign sends every day until it ends.
    A/B tests (about `AB_TEST_SHARE` of them) give `versions` `a` and `b`, and, as in
    Batch's example, no `sent_optins` on the day itself."""
    token = str(detail.get("campaign_token"))
    send = _parse_date(
        detail.get("push_time") or detail.get("local_push_time") or detail.get("created_date")
    )
    if send is None or send > now:
        return None
    rng = random.Random(f"stats:{token}")
    audience = rng.randint(300, 20_000)
    ab_test = rng.random() < AB_TEST_SHARE
    recurrence = detail.get("recurrence")
    last_day = send.date() + timedelta(days=STATS_DAYS_AFTER_SEND)
    if isinstance(recurrence, dict):
        end = _parse_date(recurrence.get("end_date"))
        last_day = max(last_day, end.date() if end else now.date())
    days = []
    day = send.date()
    while day <= min(last_day, now.date()):
        days.append(_stats_day(token, day, send, now, audience, ab_test, bool(recurrence)))
        day += timedelta(days=1)
    return {"campaign_token": token, "detail": days}


def _stats_day(
    token: str,
    day: date,
    send: datetime,
    now: datetime,
    audience: int,
    ab_test: bool,
    recurring: bool,
) -> dict[str, Any]:
    rng = random.Random(f"stats:{token}:{day.isoformat()}")
    start = max(send, datetime.combine(day, datetime.min.time()))
    end = datetime.combine(day + timedelta(days=1), datetime.min.time())
    progress = min(1.0, (now - start) / (end - start)) if now < end else 1.0
    first_day = day == send.date()
    decay = 1.0 if first_day or recurring else 0.5 ** (day - send.date()).days
    sent_full = int(audience * rng.uniform(0.8, 1.0)) if first_day or recurring else 0
    arms = {"a": 0.5, "b": 0.5} if ab_test else {"all": 1.0}
    versions = {}
    for arm, share in arms.items():
        arm_rng = random.Random(f"stats:{token}:{arm}")
        sent = int(sent_full * share * progress)
        opened_base = int(audience * share * decay * progress)
        versions[arm] = {
            "sent": sent,
            "sent_optins": int(sent * arm_rng.uniform(0.5, 0.9)),
            "direct_open": int(opened_base * arm_rng.uniform(0.01, 0.05)),
            "influenced_open": int(opened_base * arm_rng.uniform(0.005, 0.03)),
            "reengaged": int(opened_base * arm_rng.uniform(0.0, 0.01)),
        }
    names = ("sent", "direct_open", "influenced_open", "reengaged")
    totals: dict[str, Any] = {
        "date": day.isoformat(),
        **{name: sum(v[name] for v in versions.values()) for name in names},
        "errors": int(sum(v["sent"] for v in versions.values()) * 0.002),
    }
    if ab_test:
        totals["versions"] = versions
    else:
        totals["sent_optins"] = versions["all"]["sent_optins"]
    return totals
