-- Questions a marketing analyst asks, each answered by one query on the views
-- (docs/schema.md describes them). Written for PostgreSQL. On SQLite (the demo's
-- database) the views are the same, but the queries that do date arithmetic (2, 6-10,
-- 12, 13, 15) need SQLite's date functions instead of now(), interval, date_trunc and
-- `at time zone`: datetime('now', '-7 days') for now() - interval '7 days',
-- date(x, '-6 days', 'weekday 1') for date_trunc('week', x), strftime('%Y-%m-01', x)
-- for date_trunc('month', x); SQLite keeps times in UTC already.
-- Schedules in v_campaigns are UTC wall clock ('GMT') or the device's ('local'):
-- schedule_zone says which for starts_at, ends_zone for ends_at; hence
-- `now() at time zone 'UTC'` beside them. Days, weeks and months are UTC's whatever the
-- session's time zone: timestamptz columns are truncated `at time zone 'UTC'`.
-- tests/test_queries.py runs every query below on a synced database with two days of
-- history (renames, stops, edits, a deletion): each returns rows there. On a first sync
-- alone, the questions about changes (6, 7, 12) have nothing to answer yet.

-- 1. How many live campaigns does each app have, per type?
select app, campaign_type, count(*) as live_campaigns
from v_campaigns
where live
group by app, campaign_type
order by app, campaign_type;

-- 2. Which live pushes send next week (Monday to Sunday): one-shots due then, and
--    recurring ones already started that still run then?
select app, name, starts_at, schedule_zone, is_recurring, segments
from v_campaigns
where campaign_type = 'push' and live
  and starts_at < date_trunc('week', now() at time zone 'UTC') + interval '2 weeks'
  and (starts_at >= date_trunc('week', now() at time zone 'UTC') + interval '1 week'
       or (is_recurring and (recurrence_end_date is null
           or recurrence_end_date at time zone 'UTC'
              >= date_trunc('week', now() at time zone 'UTC') + interval '1 week')))
order by starts_at;

-- 3. How many messages are written in each language?
select coalesce(language, 'default') as language, campaign_type, count(*) as messages
from v_messages
group by 1, 2
order by messages desc, language;

-- 4. What triggers the in-app campaigns?
select trigger_when, trigger_event, count(*) as campaigns, count(*) filter (where live) as live
from v_campaigns
where campaign_type = 'in_app'
group by trigger_when, trigger_event
order by campaigns desc;

-- 5. Which campaigns target the DORMANT segment?
select app, campaign_type, campaign_name, live
from v_campaign_segments
where segment = 'DORMANT'
order by campaign_name;

-- 6. Which campaigns were renamed or stopped in the last seven days?
select app, campaign_type, name, change, before_value, after_value, seen_at
from v_campaign_changes
where change in ('renamed', 'stopped')
  and seen_at >= now() - interval '7 days'
order by seen_at desc;

-- 7. What did the messages that changed since say yesterday at this time?
--    (Any date D: valid_from <= D and (valid_to is null or valid_to > D).)
--    A message's change is seen when its detail is next fetched, up to
--    CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS (a day) after it was made in Batch (README).
select campaign_token, version, name, message_titles, message_bodies
from v_campaign_versions
where valid_from <= now() - interval '1 day'
  and (valid_to is null or valid_to > now() - interval '1 day')
  and change_kind <> 'deleted'
  and campaign_id in (
    select campaign_id from v_campaign_changes
    where change = 'message_changed' and seen_at > now() - interval '1 day'
  )
order by campaign_token;

-- 8. Which campaigns were deleted this month (UTC) and are still gone?
select c.app, c.campaign_type, c.campaign_token, c.name, c.seen_at as deleted_at
from v_campaign_changes c
join v_campaign_versions v on v.campaign_id = c.campaign_id and v.version = c.version
where c.change = 'deleted' and v.is_current
  and c.seen_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'
order by c.seen_at desc;

-- 9. Which in-app campaigns end in the coming seven days?
select app, name, ends_at, ends_zone
from v_campaigns
where campaign_type = 'in_app'
  and ends_at >= now() at time zone 'UTC'
  and ends_at < now() at time zone 'UTC' + interval '7 days'
order by ends_at;

-- 10. Which live pushes still repeat, how often, and until when?
select app, name, recurrence_repeat_frequency, recurrence_repeat_unit, recurrence_end_date
from v_campaigns
where is_recurring and live and (recurrence_end_date is null or recurrence_end_date >= now())
order by recurrence_end_date nulls last;

-- 11. Which live campaigns carry the 'promo' label?
select app, campaign_type, campaign_name
from v_campaign_labels
where label = 'promo' and live
order by campaign_name;

-- 12. Which campaigns went live in the last seven days?
--     Turned live (went_live), or created live in Batch in that time: a new campaign's
--     first version is 'created', never went_live. Batch's created_date leaves out old
--     campaigns that a first sync of the app stored live.
select app, campaign_type, name, seen_at
from v_campaign_changes
where change = 'went_live' and seen_at >= now() - interval '7 days'
union all
select v.app, v.campaign_type, v.name, v.valid_from
from v_campaign_versions v
join campaigns c on c.id = v.campaign_id
where v.change_kind = 'created' and v.live and v.valid_from >= now() - interval '7 days'
  and c.created_date >= now() - interval '7 days'
order by seen_at desc;

-- 13. How many campaigns were created in the last 30 days, per type and week?
select campaign_type, date_trunc('week', created_date at time zone 'UTC') as week,
       count(*) as created
from v_campaigns
where created_date >= now() - interval '30 days'
group by 1, 2
order by 2, 1;

-- 14. Which in-app messages offer more than one button?
select campaign_name, language, title, button_count
from v_messages
where campaign_type = 'in_app' and button_count > 1
order by campaign_name, position;

-- 15. Which pushes had the best open rates over the last month (push statistics on)?
--     Days of the last month only, recurring pushes included. Deleted pushes left out.
select s.name, s.app, sum(s.sent) as sent,
       round(sum(s.direct_open + s.influenced_open) * 100.0 / sum(s.sent), 1) as open_rate_pct
from v_push_performance s
where s.version = 'all' and s.deleted_at is null
  and s.date >= cast(now() at time zone 'UTC' - interval '1 month' as date)
group by s.campaign_id, s.name, s.app
having sum(s.sent) > 0
order by open_rate_pct desc nulls last
limit 10;
