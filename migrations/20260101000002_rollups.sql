-- Rollups for events-reporter: pre-aggregated counts and sums of `events`,
-- maintained in the writer's own transaction by statement-level triggers, so
-- reports read a few thousand rollup rows instead of millions of events.
--
-- Exactness: the triggers see transition tables, which hold exactly the rows a
-- statement changed. `INSERT ... ON CONFLICT (event_id) DO NOTHING` puts only
-- rows actually inserted there, so duplicates never count; deletes, updates
-- and truncates are mirrored too, so rollups always equal a GROUP BY over
-- `events` as seen by the same snapshot.
--
-- Every rollup row covers [bucket, bucket + width seconds); buckets are
-- aligned on UTC (date_bin from 2000-01-01T00:00:00Z). The reporter
-- decomposes a query window into whole days, hours, ten-minute or minute
-- buckets and reads the sub-bucket edges from `events` itself.

-- No writes to events until this migration commits: the backfill at the end
-- must see every row the triggers will not.
LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;

-- Counts by (source, funnel stage, event type); widths 60, 3600, 86400.
CREATE TABLE rollup_events (
    width         integer     NOT NULL,
    bucket        timestamptz NOT NULL,
    source        text        NOT NULL,
    funnel_stage  text        NOT NULL,
    event_type    text        NOT NULL,
    events        bigint      NOT NULL,
    PRIMARY KEY (width, bucket, source, funnel_stage, event_type)
) WITH (fillfactor = 70); -- room for HOT updates: upserts only touch `events`

-- Revenue by source; widths 60, 3600, 86400.
CREATE TABLE rollup_revenue (
    width         integer     NOT NULL,
    bucket        timestamptz NOT NULL,
    source        text        NOT NULL,
    revenue       numeric     NOT NULL,
    transactions  bigint      NOT NULL,
    PRIMARY KEY (width, bucket, source)
) WITH (fillfactor = 70);

-- Revenue by (source, campaign). Campaign ids can be as many as events, so no
-- minute level (it would be as big as the data); widths 600, 3600, 86400.
CREATE TABLE rollup_revenue_campaigns (
    width         integer     NOT NULL,
    bucket        timestamptz NOT NULL,
    source        text        NOT NULL,
    campaign_id   text        NOT NULL,
    revenue       numeric     NOT NULL,
    transactions  bigint      NOT NULL,
    PRIMARY KEY (width, bucket, source, campaign_id)
) WITH (fillfactor = 70);

-- Event counts per demographic value (see reporter_demographic_facts);
-- widths 600, 3600, 86400 for the same reason as campaigns.
CREATE TABLE rollup_demographics (
    width         integer     NOT NULL,
    bucket        timestamptz NOT NULL,
    source        text        NOT NULL,
    dimension     text        NOT NULL,
    value         text        NOT NULL,
    detail        text        NOT NULL,
    events        bigint      NOT NULL,
    PRIMARY KEY (width, bucket, source, dimension, value, detail)
) WITH (fillfactor = 70);

-- Campaign-filtered revenue at minute granularity has no rollup: read it from
-- this small partial index (revenue rows only) instead of scanning by time.
CREATE INDEX IF NOT EXISTS events_revenue_campaign_idx
    ON events (campaign_id, occurred_at) WHERE revenue IS NOT NULL AND campaign_id IS NOT NULL;

CREATE FUNCTION reporter_age_bucket(age integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN age IS NULL THEN NULL
        WHEN age < 18 THEN '<18'
        WHEN age < 25 THEN '18-24'
        WHEN age < 35 THEN '25-34'
        WHEN age < 45 THEN '35-44'
        WHEN age < 55 THEN '45-54'
        WHEN age < 65 THEN '55-64'
        ELSE '65+'
    END
$$;

CREATE FUNCTION reporter_followers_bucket(followers bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN followers IS NULL THEN NULL
        WHEN followers < 1000 THEN '0-999'
        WHEN followers < 10000 THEN '1K-9.9K'
        WHEN followers < 100000 THEN '10K-99.9K'
        WHEN followers < 1000000 THEN '100K-999.9K'
        ELSE '1M+'
    END
$$;

-- SQL for the demographic facts of a set of event rows: one row per event
-- and dimension it has a value for (columns occurred_at, source, sign,
-- dimension, value, detail). `location` is (country, city), city '' when the
-- event has a country only: topLocations reads the rows with a city,
-- topCountries sums all rows by country, so one dimension serves both.
-- A UNION ALL of one scan per dimension: several times faster than a
-- LATERAL VALUES unpivot, which matters inside the insert trigger.
-- The trigger and the view below (the reporter's raw edges) both expand
-- this one template, so they cannot disagree.
CREATE FUNCTION reporter_demographic_facts_sql(rows_sql text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
SELECT format($q$(
    SELECT r.occurred_at, r.source, r.sign, 'age'::text AS dimension,
           reporter_age_bucket(r.age) AS value, ''::text AS detail
    FROM %1$s AS r WHERE r.age IS NOT NULL
    UNION ALL
    SELECT r.occurred_at, r.source, r.sign, 'gender', r.gender, ''
    FROM %1$s AS r WHERE r.gender IS NOT NULL
    UNION ALL
    SELECT r.occurred_at, r.source, r.sign, 'location', r.country, coalesce(r.city, '')
    FROM %1$s AS r WHERE r.country IS NOT NULL
    UNION ALL
    SELECT r.occurred_at, r.source, r.sign, 'followers', reporter_followers_bucket(r.followers), ''
    FROM %1$s AS r WHERE r.followers IS NOT NULL
    UNION ALL
    SELECT r.occurred_at, r.source, r.sign, 'device', r.device, ''
    FROM %1$s AS r WHERE r.device IS NOT NULL
)$q$, rows_sql)
$fn$;

-- The upserts applying a set of signed event rows to every rollup.
-- `rows_sql` is a FROM item yielding events columns plus `sign` (+1 added,
-- -1 removed); it is trusted SQL written in this file, never user input.
-- Keys are upserted in primary-key order so that concurrent writers lock
-- rollup rows in the same order and cannot deadlock.
CREATE FUNCTION reporter_rollup_statements(rows_sql text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $fn$
SELECT ARRAY[
format($q$
WITH fine AS MATERIALIZED (
    SELECT date_bin('1 minute', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           e.source, e.funnel_stage, e.event_type, sum(e.sign) AS events
    FROM %s AS e
    GROUP BY 1, 2, 3, 4
), levels AS (
    SELECT 60 AS width, bucket, source, funnel_stage, event_type, events FROM fine
    UNION ALL
    SELECT 3600, date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, funnel_stage, event_type, sum(events)
    FROM fine GROUP BY 2, 3, 4, 5
    UNION ALL
    SELECT 86400, date_bin('1 day', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, funnel_stage, event_type, sum(events)
    FROM fine GROUP BY 2, 3, 4, 5
)
INSERT INTO rollup_events AS r (width, bucket, source, funnel_stage, event_type, events)
SELECT * FROM levels WHERE events <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (width, bucket, source, funnel_stage, event_type)
DO UPDATE SET events = r.events + excluded.events
$q$, rows_sql),
format($q$
WITH fine AS MATERIALIZED (
    SELECT date_bin('1 minute', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           e.source, sum(e.sign * e.revenue) AS revenue, sum(e.sign) AS transactions
    FROM %s AS e
    WHERE e.revenue IS NOT NULL
    GROUP BY 1, 2
), levels AS (
    SELECT 60 AS width, bucket, source, revenue, transactions FROM fine
    UNION ALL
    SELECT 3600, date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, sum(revenue), sum(transactions)
    FROM fine GROUP BY 2, 3
    UNION ALL
    SELECT 86400, date_bin('1 day', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, sum(revenue), sum(transactions)
    FROM fine GROUP BY 2, 3
)
INSERT INTO rollup_revenue AS r (width, bucket, source, revenue, transactions)
SELECT * FROM levels WHERE transactions <> 0 OR revenue <> 0
ORDER BY 1, 2, 3
ON CONFLICT (width, bucket, source)
DO UPDATE SET revenue = r.revenue + excluded.revenue, transactions = r.transactions + excluded.transactions
$q$, rows_sql),
format($q$
WITH fine AS MATERIALIZED (
    SELECT date_bin('10 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           e.source, e.campaign_id, sum(e.sign * e.revenue) AS revenue, sum(e.sign) AS transactions
    FROM %s AS e
    WHERE e.revenue IS NOT NULL AND e.campaign_id IS NOT NULL
    GROUP BY 1, 2, 3
), levels AS (
    SELECT 600 AS width, bucket, source, campaign_id, revenue, transactions FROM fine
    UNION ALL
    SELECT 3600, date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, campaign_id, sum(revenue), sum(transactions)
    FROM fine GROUP BY 2, 3, 4
    UNION ALL
    SELECT 86400, date_bin('1 day', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, campaign_id, sum(revenue), sum(transactions)
    FROM fine GROUP BY 2, 3, 4
)
INSERT INTO rollup_revenue_campaigns AS r (width, bucket, source, campaign_id, revenue, transactions)
SELECT * FROM levels WHERE transactions <> 0 OR revenue <> 0
ORDER BY 1, 2, 3, 4
ON CONFLICT (width, bucket, source, campaign_id)
DO UPDATE SET revenue = r.revenue + excluded.revenue, transactions = r.transactions + excluded.transactions
$q$, rows_sql),
format($q$
WITH fine AS MATERIALIZED (
    SELECT date_bin('10 minutes', f.occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           f.source, f.dimension, f.value, f.detail, sum(f.sign) AS events
    FROM %s AS f
    GROUP BY 1, 2, 3, 4, 5
), levels AS (
    SELECT 600 AS width, bucket, source, dimension, value, detail, events FROM fine
    UNION ALL
    SELECT 3600, date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, dimension, value, detail, sum(events)
    FROM fine GROUP BY 2, 3, 4, 5, 6
    UNION ALL
    SELECT 86400, date_bin('1 day', bucket, timestamptz '2000-01-01 00:00:00+00'),
           source, dimension, value, detail, sum(events)
    FROM fine GROUP BY 2, 3, 4, 5, 6
)
INSERT INTO rollup_demographics AS r (width, bucket, source, dimension, value, detail, events)
SELECT * FROM levels WHERE events <> 0
ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (width, bucket, source, dimension, value, detail)
DO UPDATE SET events = r.events + excluded.events
$q$, reporter_demographic_facts_sql(rows_sql))
]
$fn$;

-- Removes rollup rows that deletions brought down to nothing, so that "no
-- row" keeps meaning "no data" (the reporter also ignores zero rows).
CREATE FUNCTION reporter_rollup_prune() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM rollup_events WHERE events = 0;
    DELETE FROM rollup_revenue WHERE transactions = 0 AND revenue = 0;
    DELETE FROM rollup_revenue_campaigns WHERE transactions = 0 AND revenue = 0;
    DELETE FROM rollup_demographics WHERE events = 0;
$$;

-- jit = off: these statements are small and frequent; JIT compilation would
-- cost more than it saves. search_path is pinned to this migration's, so the
-- trigger finds the rollup tables whatever the writer's session sets.
CREATE FUNCTION reporter_events_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off SET search_path FROM CURRENT AS $$
DECLARE
    rows_sql text;
    stmt text;
    changed bigint;
    any_changed boolean := false;
BEGIN
    rows_sql := CASE TG_OP
        WHEN 'INSERT' THEN
            '(SELECT n.*, 1 AS sign FROM reporter_new_rows n)'
        WHEN 'DELETE' THEN
            '(SELECT o.*, -1 AS sign FROM reporter_old_rows o)'
        ELSE
            '(SELECT n.*, 1 AS sign FROM reporter_new_rows n UNION ALL SELECT o.*, -1 AS sign FROM reporter_old_rows o)'
    END;
    FOREACH stmt IN ARRAY reporter_rollup_statements(rows_sql) LOOP
        EXECUTE stmt;
        GET DIAGNOSTICS changed = ROW_COUNT;
        any_changed := any_changed OR changed > 0;
    END LOOP;
    IF TG_OP <> 'INSERT' AND any_changed THEN
        PERFORM reporter_rollup_prune();
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION reporter_events_truncated() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE rollup_events, rollup_revenue, rollup_revenue_campaigns, rollup_demographics;
    RETURN NULL;
END
$$;

-- Recomputes every rollup from `events` (used by the backfill below and after
-- bulk loads that bypassed the triggers). Blocks writers meanwhile so the
-- result is exact.
CREATE FUNCTION reporter_rebuild_rollups() RETURNS void
LANGUAGE plpgsql SET jit = off SET search_path FROM CURRENT AS $$
DECLARE
    stmt text;
BEGIN
    LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;
    TRUNCATE rollup_events, rollup_revenue, rollup_revenue_campaigns, rollup_demographics;
    FOREACH stmt IN ARRAY reporter_rollup_statements('(SELECT ev.*, 1 AS sign FROM events ev)') LOOP
        EXECUTE stmt;
    END LOOP;
END
$$;

CREATE TRIGGER reporter_rollup_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS reporter_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
CREATE TRIGGER reporter_rollup_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS reporter_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
-- (PostgreSQL allows no column list with transition tables: an update of
-- other columns nets to zero deltas, which the HAVING clauses drop.)
CREATE TRIGGER reporter_rollup_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS reporter_old_rows NEW TABLE AS reporter_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
CREATE TRIGGER reporter_rollup_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_truncated();

-- Every event's demographic facts, for the raw edges of a report window.
DO $$
BEGIN
    EXECUTE 'CREATE VIEW events_demographic_facts AS SELECT * FROM '
        || reporter_demographic_facts_sql('(SELECT ev.*, 1 AS sign FROM events ev)')
        || ' AS facts';
END
$$;

SELECT reporter_rebuild_rollups();
