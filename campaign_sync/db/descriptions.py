"""What every table and column means, in one place.

`db.models` attaches these to the tables (SQLAlchemy `comment`), migrations write them
into PostgreSQL as `COMMENT ON` (so BI tools show them), and `campaign_sync.schema_doc`
renders them into docs/schema.md. A test checks every column of every table has one.
"""

from __future__ import annotations

CAMPAIGN_ID = "The campaign (campaigns.id)."

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "campaigns": (
        "One row per campaign ever seen, per app and type (push or in-app); deleted ones "
        "stay, with deleted_at set.",
        {
            "id": "Key of the campaign, what the other tables reference.",
            "app": "The app's configured name (one Batch app per platform: ios, android...).",
            "campaign_type": "'push' or 'in_app'.",
            "campaign_token": "Batch's token of the campaign; unique per app and type.",
            "name": "The campaign's name.",
            "live": "Running or completed (true); stopped or draft (false).",
            "from_api": "Created through Batch's API rather than the dashboard.",
            "dev_only": "Sent to development devices only.",
            "created_date": "When the campaign was created in Batch (UTC).",
            "push_time": "When the push is sent, GMT (UTC).",
            "start_date": "When the in-app campaign starts, GMT (UTC).",
            "end_date": "When the in-app campaign ends, GMT (UTC).",
            "local_push_time": "When the push is sent, in each device's wall clock.",
            "local_start_date": "When the in-app campaign starts, device wall clock.",
            "local_end_date": "When the in-app campaign ends, device wall clock.",
            "deeplink": "The push's deeplink.",
            "custom_payload": "The push's custom payload: the parsed JSON document when "
            "Batch's string holds valid JSON, else the string itself.",
            "capping": "How many times the campaign may be shown per user.",
            "priority": "Push priority: normal or high.",
            "time_to_live": "How long (seconds) the push may wait for an offline device.",
            "labels": "The campaign's labels as Batch sent them (JSON, normally an array of "
            "text; a sync_warnings row names anything else, and a number no column holds is "
            "null).",
            "recurrence_repeat_unit": "Recurrence unit of a recurring push (DAILY, WEEKLY...).",
            "recurrence_repeat_frequency": "Every how many units the push repeats.",
            "recurrence_end_date": "When the recurrence stops (UTC).",
            "theme": "In-app landing theme.",
            "landing_image": "In-app landing image URL.",
            "gcm_collapse_key": "Android collapse key, as Batch sent it (JSON).",
            "detail": "The last detail exactly as Batch sent it (JSON).",
            "list_entry": "The campaign's last entry in Batch's list (JSON).",
            "list_hash": "Hash of the list entry: a change means the detail is fetched again.",
            "content_hash": "Hash of the detail: a change means a new version.",
            "first_seen_at": "When campaign-sync first stored it (UTC).",
            "last_seen_at": "When a list last showed it (UTC), to within a day; "
            "campaign_sightings.last_seen_at is exact.",
            "detail_fetched_at": "When its detail was last fetched (UTC).",
            "updated_at": "When its content last really changed (UTC).",
            "deleted_at": "When Batch stopped showing it (a complete sweep missed it or its "
            "detail answered 404); NULL while it exists.",
        },
    ),
    "messages": (
        "Push messages[] and in-app landing.contents[], in order: one row per language.",
        {
            "campaign_id": CAMPAIGN_ID,
            "position": "Order in the campaign, from 0.",
            "language": "The message's language; NULL for the default message.",
            "header": "In-app header.",
            "title": "Title.",
            "body": "Body text.",
            "image": "Image URL.",
        },
    ),
    "message_actions": (
        "In-app buttons, per landing content, in order.",
        {
            "campaign_id": CAMPAIGN_ID,
            "message_position": "The content (messages.position) the button belongs to.",
            "position": "Order of the button, from 0.",
            "action": "What the button does (batch.deeplink, batch.dismiss...).",
            "label": "The button's text.",
            "args": "The action's arguments (JSON).",
        },
    ),
    "triggers": (
        "One row per campaign whose detail has a trigger (in-app, or a trigger automation).",
        {
            "campaign_id": CAMPAIGN_ID,
            "trigger_when": "When it fires: next_session, now, or an event.",
            "event": "The event that triggers it.",
            "label": "The event's label it requires.",
            "capping": "How many times it may fire per user.",
            "grace_period_every": "Minimum wait between two displays, in grace_period_unit.",
            "grace_period_unit": "Unit of the grace period (HOURS, DAYS...).",
        },
    ),
    "targeting": (
        "One row per campaign whose detail has targeting or a query.",
        {
            "campaign_id": CAMPAIGN_ID,
            "segments": "Targeted segments as Batch sent them (JSON array of text: NEW, "
            "ONE_TIME, ENGAGED, DORMANT, IMPORTED; a sync_warnings row names anything else).",
            "query": "The audience query, a nested JSON expression.",
            "lang": "Targeted languages (JSON).",
            "region": "Targeted regions (JSON).",
            "custom_audience": "Targeted custom audiences (JSON).",
            "extra": "Any other targeting field Batch sent (JSON).",
        },
    ),
    "campaign_versions": (
        "The validity history of each campaign: a row when its content changed, it was "
        "deleted or it came back. The version valid at D: valid_from <= D and (valid_to is "
        "null or valid_to > D).",
        {
            "id": "Key of the row.",
            "campaign_id": CAMPAIGN_ID,
            "recorded_at": "When the row was recorded (UTC); the same as valid_from.",
            "run_id": "The sync run that recorded it (sync_runs.id); NULL for a write-back.",
            "content_hash": "Hash of the detail; NULL for a deleted version.",
            "detail": "The detail of this version (JSON) once a later version closed it; "
            "NULL for a deleted version and for the current one, whose detail is "
            "campaigns.detail (each document stored once; v_campaign_versions.detail "
            "shows every version's).",
            "version": "1, 2, ... per campaign.",
            "change_kind": "Why the version began: created, changed, deleted or restored.",
            "valid_from": "When this version began (UTC): when campaign-sync saw it.",
            "valid_to": "When the next version began (UTC); NULL for the current version.",
        },
    ),
    "campaign_sightings": (
        "Bookkeeping: the sweep that last showed each campaign, rewritten every pass in a "
        "narrow table of its own so that an unchanged pass writes nothing to campaigns. A "
        "complete sweep marks deleted the campaigns whose row names an older sweep.",
        {
            "campaign_id": CAMPAIGN_ID,
            "last_sweep_id": "The last sweep (sync_state.sweep_id) whose list showed it.",
            "last_seen_at": "When a list last showed it (UTC), exactly.",
        },
    ),
    "sync_state": (
        "Bookkeeping: the cursor of each app and type, and the pass lock.",
        {
            "app": "The app.",
            "campaign_type": "'push' or 'in_app'.",
            "sweep_id": "Number of the current or last sweep over Batch's list.",
            "sweep_in_progress": "A sweep was stopped midway; the next pass resumes it.",
            "sweep_started_at": "When the sweep began (UTC).",
            "sweep_offset": "Where the sweep resumes in the list.",
            "sweep_anchor_tokens": "Tokens at the end of the last page, to resume safely (JSON).",
            "sweep_full_refresh": "The sweep re-fetches every detail.",
            "last_complete_sweep_at": "When a sweep last reached the end of the list (UTC).",
            "last_run_id": "The last sync run (sync_runs.id).",
            "updated_at": "When the row last changed (UTC).",
            "next_pass_at": "When serve runs the next pass (UTC).",
            "sweep_unidentified_entries": "List entries of this sweep that are no campaign: "
            "while any, nothing is marked deleted.",
            "lock_holder": "Who holds the pass lock (host, pid).",
            "lock_expires_at": "When the pass lock's lease ends (UTC).",
            "last_skipped_at": "When a pass was last skipped because another held the lock.",
            "api_key_fingerprint": "A fingerprint (keyed BLAKE2b, not the key) of the live "
            "API key the campaigns were swept with: a pass with another key is refused.",
        },
    ),
    "sync_runs": (
        "Bookkeeping: one row per pass per app and type, with its counts.",
        {
            "id": "Key of the run.",
            "app": "The app.",
            "campaign_type": "'push' or 'in_app'.",
            "started_at": "When the pass began (UTC).",
            "finished_at": "When it ended (UTC).",
            "status": "running, succeeded, failed or interrupted.",
            "full_refresh": "The pass re-fetched every detail.",
            "sweep_id": "The sweep it worked on.",
            "sweep_complete": "Its sweep reached the end of the list.",
            "list_calls": "List requests made.",
            "detail_calls": "Detail requests made.",
            "retries": "Requests retried.",
            "campaigns_inserted": "Campaigns stored for the first time.",
            "campaigns_updated": "Campaigns whose content changed or that came back.",
            "campaigns_unchanged": "Campaigns seen without change.",
            "campaigns_deleted": "Campaigns marked deleted.",
            "warnings": "Warnings recorded (sync_warnings).",
            "error": "Why the pass failed.",
            "host": "Host that ran it.",
            "pid": "Process that ran it.",
            "stats_calls": "Push statistics requests made.",
            "stats_rows_written": "Rows of campaign_stats_daily written.",
            "stats_failures": "Push statistics requests that failed (asked again next pass).",
        },
    ),
    "sync_warnings": (
        "Bad values kept out of typed columns; the value stays intact in campaigns.detail.",
        {
            "id": "Key of the warning.",
            "run_id": "The sync run (sync_runs.id); NULL for a write-back.",
            "campaign_id": "The campaign, when stored (campaigns.id).",
            "app": "The app.",
            "campaign_type": "'push' or 'in_app'.",
            "campaign_token": "Batch's token of the campaign.",
            "field": "Path of the bad value in the detail (e.g. end_date).",
            "raw_value": "The value as Batch sent it.",
            "message": "What is wrong with it (the latest wording).",
            "created_at": "When it was recorded (UTC).",
            "times_seen": "How many times passes warned of it: a warning identical to one a "
            "pass recorded (app, type, token, campaign, field, raw value) counts here "
            "(db.warnings).",
            "last_seen_at": "When a pass last warned of it (created_at: first); NULL for a "
            "row from before revision 0014.",
            "last_run_id": "The pass that last warned of it (sync_runs.id); NULL for a "
            "write-back's row and one from before revision 0014.",
        },
    ),
    "campaign_stats_daily": (
        "Push statistics: one row per campaign, day and version ('all'; 'a', 'b' in A/B tests).",
        {
            "id": "Key of the row.",
            "campaign_id": "The push campaign (campaigns.id).",
            "date": "The day, as Batch counts it.",
            "version": "'all', or the A/B version 'a' or 'b'.",
            "sent": "Pushes sent that day.",
            "sent_optins": "Pushes sent to opted-in installs (NULL where Batch gives none).",
            "direct_open": "Opens straight from the push.",
            "influenced_open": "App opens the push influenced.",
            "reengaged": "Installs re-engaged.",
            "errors": "Pushes that failed (NULL per A/B version: Batch gives none).",
            "fetched_at": "When Batch last gave these numbers (UTC); they grow for days.",
        },
    ),
    "campaign_stats_fetches": (
        "Bookkeeping: the last push statistics request of each campaign.",
        {
            "campaign_id": "The push campaign (campaigns.id).",
            "attempted_at": "When its stats were last asked for (UTC).",
            "fetched_at": "When Batch last answered, 404 included (UTC).",
            "outcome": "ok, no_stats (a 404: none yet) or failed (asked again next pass).",
            "days": "Days in the last answer.",
            "run_id": "The sync run that asked (sync_runs.id).",
            "error": "Why the last request failed.",
        },
    ),
    "api_pacing": (
        "Bookkeeping: the request rate each app's passes learned from Batch's 429 answers; "
        "the next pass paces from its first request at it.",
        {
            "app": "The app's configured name.",
            "requests_per_second": "The pace the next pass starts at (requests per second).",
            "limit_seen": "A 429 taught this rate (true), or a slow start reached it without "
            "one (false: the next pass goes on climbing from it).",
            "learned_at": "When a pass last stored it (UTC).",
        },
    ),
    "campaign_updates": (
        "Audit trail of write-backs through Batch's in-app update endpoint.",
        {
            "id": "Key of the attempt.",
            "attempted_at": "When it was attempted (UTC).",
            "app": "The app.",
            "campaign_token": "Batch's token of the in-app campaign.",
            "changed_fields": "The fields changed (JSON array).",
            "payload": "The body sent to Batch (JSON).",
            "outcome": "succeeded, refused, conflict, failed or dry_run.",
            "batch_status": "Batch's HTTP status.",
            "batch_code": "Batch's error code.",
            "batch_type": "Batch's error type.",
            "message": "What happened, in words.",
        },
    ),
}
