"""Reading a page's campaigns by token: one probe of the unique key per token.

`campaign_token IN (...)` lets PostgreSQL's planner, before the table is first analysed
(an initial pass, which inserts every row), match the key's prefix (app, type) in the
index and filter the tokens: it reads every campaign of the type for every page, which
made the initial load quadratic (EXPLAIN ANALYZE at 10,000 campaigns: 4.4 ms a page,
5,000 rows read to find 100; docs/performance.md). A LATERAL probe per token
uses the whole key whatever the statistics say. SQLite's planner probes the index for an
IN list by itself.

The statements take the app, type and tokens as parameters (`token_parameters`), so that
a caller builds its statement once: building a LATERAL select cost ~0.7 ms of CPU a page,
more than running it (docs/performance.md, "Loading details").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, Select, String, Text, bindparam, func, select, true
from sqlalchemy.sql.elements import ColumnElement

from campaign_sync.db.models import campaigns
from campaign_sync.domain import CampaignType


def by_tokens(
    dialect_name: str, columns: Iterable[ColumnElement[Any]], *where: ColumnElement[bool]
) -> Select[Any]:
    """SELECT `columns` (of `campaigns`, or correlated to it) of the stored campaigns of
    the tokens given at execution (`token_parameters`) that also meet `where`; one row
    per stored token, in no given order."""
    c = campaigns.c
    key = (
        c.app == bindparam("probe_app", type_=Text),
        c.campaign_type == bindparam("probe_type", type_=String(16)),
    )
    if dialect_name != "postgresql":
        tokens = bindparam("page_tokens", expanding=True, type_=Text)
        return select(*columns).where(*key, c.campaign_token.in_(tokens), *where)
    wanted = (
        func.unnest(bindparam("page_tokens", type_=ARRAY(Text)))
        .table_valued("token")
        .render_derived(name="wanted")
    )
    # LIMIT 1 (the key is unique: no row lost) keeps the planner from flattening the probe
    # back into a join of the whole type.
    probe = (
        select(*columns).where(*key, c.campaign_token == wanted.c.token, *where).limit(1).lateral()
    )
    return select(probe).select_from(wanted).join(probe, true())


def token_parameters(
    app: str, campaign_type: CampaignType, tokens: Iterable[str]
) -> dict[str, Any]:
    """The parameters of a `by_tokens` statement."""
    return {"probe_app": app, "probe_type": campaign_type.value, "page_tokens": list(tokens)}
