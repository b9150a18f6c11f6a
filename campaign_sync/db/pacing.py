"""The request rate each app learned (`api_pacing`): read before a pass, written after.

Handed to and taken from the client as `batch.ratelimit.LearnedRate`, plain numbers, so
the Batch client knows nothing of the database.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from campaign_sync.batch.ratelimit import LearnedRate
from campaign_sync.db.models import api_pacing
from campaign_sync.db.session import database_problem
from campaign_sync.db.types import utcnow

log = logging.getLogger(__name__)


def load_learned_rate(engine: Engine, app: str) -> LearnedRate | None:
    """The rate `app`'s last pass stored; None when there is none, or none usable (not a
    positive finite number): the pass then slow-starts. Never raises for a read that
    fails (it is logged): pacing is an optimisation, never a reason to fail a pass."""
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(api_pacing.c.requests_per_second, api_pacing.c.limit_seen).where(
                    api_pacing.c.app == app
                )
            ).first()
    except SQLAlchemyError as error:
        log.warning(
            "could not read the learned request rate of app '%s': %s", app, database_problem(error)
        )
        return None
    if row is None:
        return None
    rate, limit_seen = row
    if not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        log.warning("ignoring the stored request rate %r of app '%s'", rate, app)
        return None
    return LearnedRate(float(rate), bool(limit_seen))


def save_learned_rate(engine: Engine, app: str, learned: LearnedRate) -> None:
    """Store (replace) `app`'s learned rate; a write that fails is logged, not raised."""
    values = {
        "requests_per_second": learned.requests_per_second,
        "limit_seen": learned.limit_seen,
        "learned_at": utcnow(),
    }
    try:
        with engine.begin() as conn:
            updated = conn.execute(
                api_pacing.update().where(api_pacing.c.app == app).values(**values)
            )
            if not updated.rowcount:
                conn.execute(api_pacing.insert().values(app=app, **values))
    except SQLAlchemyError as error:
        log.warning(
            "could not store the learned request rate of app '%s': %s", app, database_problem(error)
        )
