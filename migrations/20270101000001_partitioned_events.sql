-- `events` becomes a table partitioned by month on `occurred_at`, with global
-- dedup kept exact by a claim table.
--
-- Partitions. `events_yYYYYmMM` holds [first instant of the month, first
-- instant of the next) in UTC. Events arrive for any month (late, replayed
-- and historic times are normal), so there is no DEFAULT partition: before a
-- batch, writers call events_ensure_partitions(occurred_at[]) in a short
-- transaction of their own. A missing month is created as
-- `CREATE TABLE ... (LIKE events INCLUDING ALL)` + a CHECK matching the range
-- (so ATTACH skips its validation scan) + `ATTACH PARTITION`, under an
-- advisory lock. ATTACH takes SHARE UPDATE EXCLUSIVE on `events`, which
-- neither inserts nor reports conflict with; `CREATE TABLE ... PARTITION OF`
-- would lock the parent exclusively. No extension is needed.
-- Months are created for years 0000-9999 only, the range the plugin kit
-- parses (RFC 3339 four-digit years): a time outside it is refused as a data
-- error (SQLSTATE 22008), so the collector dead-letters that one event
-- instead of creating absurd partitions.
--
-- Claims. PostgreSQL's unique constraints on a partitioned table must include
-- the partition key, so UNIQUE (source, event_id) cannot stay on `events`:
-- `event_claims` (not partitioned) holds the key. Writers claim and insert in
-- one statement per batch:
--   WITH claimed AS (INSERT INTO event_claims ... ON CONFLICT DO NOTHING
--                    RETURNING source, event_id)
--   INSERT INTO events ... FROM batch JOIN claimed USING (source, event_id)
-- Only rows whose claim is new reach `events` (first valid write wins, across
-- months, batches and collectors), the rollup triggers' transition tables
-- still hold exactly the inserted rows, and a row refused by the database
-- takes its claim down with it (same statement). A claim is deleted only when
-- retention drops the partition holding its event (or `events` is
-- truncated): a deleted event stays claimed, so a redelivery cannot bring it
-- back.
--
-- Retention (events_apply_retention, EVENTS_RETENTION_MONTHS in the
-- collectors) drops whole partitions and the claims of their events. Rollups
-- are kept: dropping a partition fires no DELETE trigger, so reports keep
-- answering from rollups for the dropped range. Events older than the
-- retention horizon are refused afterwards (their month's raw rows and claims
-- are gone, so a re-send could no longer be told from a new event).

-- Nobody reads or writes `events` until the conversion commits.
LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

-- The privileges granted on the table and the view (e.g. a read-only
-- reporter role), given again to their replacements at the end.
CREATE TEMPORARY TABLE events_grants ON COMMIT DROP AS
SELECT c.relname::text AS relname, a.grantee, a.privilege_type, a.is_grantable
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a
WHERE c.oid IN ('events'::regclass, 'events_demographic_facts'::regclass)
  AND a.grantee <> c.relowner;

DROP VIEW events_demographic_facts;
ALTER TABLE events RENAME TO events_unpartitioned;
-- Index names are per schema: the new parent reuses them.
DROP INDEX IF EXISTS events_occurred_at_idx;
DROP INDEX IF EXISTS events_source_occurred_at_idx;
DROP INDEX IF EXISTS events_revenue_idx;
DROP INDEX IF EXISTS events_revenue_campaign_idx;

-- The same columns, in the same order, with the same defaults and checks.
CREATE TABLE events (
    event_id        text        NOT NULL,
    source          text        NOT NULL,
    funnel_stage    text        NOT NULL CONSTRAINT events_funnel_stage_check CHECK (funnel_stage IN ('top', 'bottom')),
    event_type      text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    user_id         text        NOT NULL,
    revenue         numeric     CONSTRAINT events_revenue_check CHECK (revenue >= 0),
    campaign_id     text,
    age             integer,
    gender          text,
    country         text,
    city            text,
    followers       bigint,
    device          text,
    raw             json        NOT NULL,
    plugin_name     text        NOT NULL,
    plugin_version  text        NOT NULL,
    correlation_id  text,
    received_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);

-- The dedup key; `occurred_at` says which partition holds the event.
CREATE TABLE event_claims (
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL
);

-- The retention horizon: events before it are refused (see above). One row
-- at most, written by events_apply_retention; it only moves forward.
CREATE TABLE events_retention (
    only_row  boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    horizon   timestamptz NOT NULL
);

-- The first instant of t's month, in UTC whatever the session's TimeZone.
CREATE FUNCTION events_month(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- `events_y2024m03` for March 2024. Astronomical years: 1 BC is 0000; years
-- before it (`n0001`...) and after 9999 only a converted database can hold.
CREATE FUNCTION events_partition_name(month_start timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT format('events_y%sm%s',
                  CASE WHEN y >= 0 THEN '' ELSE 'n' END || lpad(abs(y)::text, greatest(4, length(abs(y)::text)), '0'),
                  lpad(m::text, 2, '0'))
    FROM (SELECT CASE WHEN y0 < 0 THEN y0 + 1 ELSE y0 END AS y, m
          FROM (SELECT extract(year FROM month_start AT TIME ZONE 'UTC')::integer AS y0,
                       extract(month FROM month_start AT TIME ZONE 'UTC')::integer AS m) AS parts) AS astro
$$;

-- Serializes partition creation and retention (one key for both).
CREATE FUNCTION events_partitions_lock() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('events partitions', 0))
$$;

-- True when the month's partition is attached. Reads the catalogs with the
-- statement's snapshot (not the relation cache), so a partition another
-- session just committed is seen once our advisory lock is granted.
CREATE FUNCTION events_partition_exists(month_start timestamptz) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass
          AND c.relname = events_partition_name(month_start))
$$;

-- Creates and attaches the partition of the month starting at month_start
-- unless it exists; true when it created it. No range or horizon check: the
-- conversion below must keep every stored row; writers go through
-- events_ensure_partitions. Any failure here is the database's state, never
-- a row's: it is re-raised as 55000 so that a writer retries instead of
-- refusing the event.
CREATE FUNCTION events_create_partition(month_start timestamptz) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    part       text := events_partition_name(month_start);
    part_end   timestamptz := month_start + interval '1 month';
    nsp        text;
    name_taken boolean;
BEGIN
    IF month_start IS DISTINCT FROM events_month(month_start) THEN
        RAISE EXCEPTION 'events_create_partition: % is not the start of a month (UTC)', month_start;
    END IF;
    PERFORM events_partitions_lock();
    IF events_partition_exists(month_start) THEN
        RETURN false;
    END IF;
    SELECT n.nspname INTO nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = 'events'::regclass;
    SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = nsp AND c.relname = part) INTO name_taken;
    IF name_taken THEN
        RAISE EXCEPTION 'table %.% exists but is not a partition of events', nsp, part
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'attach it (its rows are not in the rollups) or rename it';
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.events INCLUDING ALL)', nsp, part, nsp);
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                       nsp, part, part || '_range', month_start, part_end);
        EXECUTE format('ALTER TABLE %I.events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       nsp, nsp, part, month_start, part_end);
        -- The partition constraint says the same from now on.
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', nsp, part, part || '_range');
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'creating partition % of events failed: % (SQLSTATE %)', part, SQLERRM, SQLSTATE
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END;
    RETURN true;
END
$$;

-- What writers call before inserting, in a transaction of their own (READ
-- COMMITTED): makes sure every month of `occurred` has a partition. Returns
-- how many it created. Refuses, as data errors (the collector then
-- dead-letters just the event concerned), a month outside years 0000-9999
-- (22008) and a month before the retention horizon (23514).
CREATE FUNCTION events_ensure_partitions(occurred timestamptz[]) RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    missing timestamptz[];
    m       timestamptz;
    horizon timestamptz;
    created integer := 0;
BEGIN
    SELECT array_agg(d.m ORDER BY d.m) INTO missing
    FROM (SELECT DISTINCT events_month(t) AS m FROM unnest(occurred) AS t WHERE t IS NOT NULL) AS d
    WHERE NOT events_partition_exists(d.m);
    IF missing IS NULL THEN
        RETURN 0;
    END IF;
    FOREACH m IN ARRAY missing LOOP
        IF m < timestamptz '0001-01-01 00:00:00+00 BC' OR m >= timestamptz '10000-01-01 00:00:00+00' THEN
            RAISE EXCEPTION 'occurred_at in month % is outside the years 0000-9999 events are stored for', m
                USING ERRCODE = 'datetime_field_overflow';
        END IF;
    END LOOP;
    PERFORM events_partitions_lock();
    SELECT r.horizon INTO horizon FROM events_retention r;
    FOREACH m IN ARRAY missing LOOP
        IF m < horizon THEN
            RAISE EXCEPTION 'occurred_at in month % is before the retention horizon % (EVENTS_RETENTION_MONTHS): that month''s raw events and claims were dropped, so the event cannot be stored exactly', m, horizon
                USING ERRCODE = 'check_violation';
        END IF;
        IF events_create_partition(m) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- Retention: drops every partition lying entirely before the first month
-- that is less than keep_months months old at `now_at` (keep_months = 12 on
-- 2025-06-15 keeps June 2024 onwards), with the claims of its events, in one
-- transaction, and moves the horizon there. Returns the dropped partitions.
-- DROP fires no trigger: the rollups keep the dropped range. DROP TABLE
-- takes ACCESS EXCLUSIVE on `events` for a moment: callers set a
-- lock_timeout and try again later rather than queue everyone behind it.
CREATE FUNCTION events_apply_retention(keep_months integer, now_at timestamptz DEFAULT now())
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    cutoff timestamptz;
    p      record;
BEGIN
    IF keep_months IS NULL OR keep_months < 1 THEN
        RAISE EXCEPTION 'events_apply_retention: keep_months must be at least 1, got %', keep_months;
    END IF;
    cutoff := events_month(now_at - make_interval(months => keep_months));
    PERFORM events_partitions_lock();
    INSERT INTO events_retention AS r (horizon) VALUES (cutoff)
    ON CONFLICT (only_row) DO UPDATE SET horizon = greatest(r.horizon, excluded.horizon);
    FOR p IN
        SELECT b.rel, b.relname
        FROM (SELECT c.oid::regclass AS rel, c.relname,
                     (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz AS upper
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'events'::regclass) AS b
        WHERE b.upper <= cutoff
        ORDER BY b.upper
    LOOP
        -- No insert into it between deleting its claims and dropping it.
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', p.rel);
        EXECUTE format('DELETE FROM event_claims c USING %s e WHERE c.source = e.source AND c.event_id = e.event_id', p.rel);
        EXECUTE format('DROP TABLE %s', p.rel);
        RETURN NEXT p.relname;
    END LOOP;
END
$$;

-- Conversion: one partition per month present (any year: no row is lost),
-- rows and claims copied before the triggers exist (the rollups already
-- count these rows, and stay exactly as they were), indexes built after.
SELECT events_create_partition(m)
FROM (SELECT DISTINCT events_month(occurred_at) AS m FROM events_unpartitioned) AS months
ORDER BY m;

-- And the current and next month, so the first batches of a fresh install
-- find theirs.
SELECT events_create_partition(events_month(now())),
       events_create_partition(events_month(events_month(now()) + interval '32 days'));

INSERT INTO events (event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
                    campaign_id, age, gender, country, city, followers, device, raw,
                    plugin_name, plugin_version, correlation_id, received_at)
SELECT event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
       campaign_id, age, gender, country, city, followers, device, raw,
       plugin_name, plugin_version, correlation_id, received_at
FROM events_unpartitioned;

INSERT INTO event_claims (source, event_id, occurred_at)
SELECT source, event_id, occurred_at FROM events_unpartitioned;

DROP TABLE events_unpartitioned;

ALTER TABLE event_claims ADD CONSTRAINT event_claims_pkey PRIMARY KEY (source, event_id);

-- On the parent: built on every partition now and copied into new ones by
-- LIKE ... INCLUDING ALL. The dedup key lives in event_claims; to find an
-- event by id, read its occurred_at there (one partition to look in).
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_source_occurred_at_idx ON events (source, occurred_at);
CREATE INDEX events_revenue_idx ON events (occurred_at) WHERE revenue IS NOT NULL;
CREATE INDEX events_revenue_campaign_idx
    ON events (campaign_id, occurred_at) WHERE revenue IS NOT NULL AND campaign_id IS NOT NULL;

-- TRUNCATE events empties the claims too: with no event left, a claim would
-- only keep a re-sent event out.
CREATE OR REPLACE FUNCTION reporter_events_truncated() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE rollup_events, rollup_revenue, rollup_revenue_campaigns, rollup_demographics, event_claims;
    RETURN NULL;
END
$$;

-- A rebuild keeps the rollups of what retention dropped: below the horizon
-- (a month start, so every rollup bucket lies wholly on one side) there are
-- no raw events left to recompute them from.
CREATE OR REPLACE FUNCTION reporter_rebuild_rollups() RETURNS void
LANGUAGE plpgsql SET jit = off SET search_path FROM CURRENT AS $$
DECLARE
    stmt    text;
    horizon timestamptz;
BEGIN
    LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;
    SELECT r.horizon INTO horizon FROM events_retention r;
    IF horizon IS NULL THEN
        TRUNCATE rollup_events, rollup_revenue, rollup_revenue_campaigns, rollup_demographics;
    ELSE
        DELETE FROM rollup_events WHERE bucket >= horizon;
        DELETE FROM rollup_revenue WHERE bucket >= horizon;
        DELETE FROM rollup_revenue_campaigns WHERE bucket >= horizon;
        DELETE FROM rollup_demographics WHERE bucket >= horizon;
    END IF;
    FOREACH stmt IN ARRAY reporter_rollup_statements(
        '(SELECT ev.*, 1 AS sign FROM events ev WHERE $1::timestamptz IS NULL OR ev.occurred_at >= $1)')
    LOOP
        EXECUTE stmt USING horizon;
    END LOOP;
END
$$;

-- The rollup triggers, as before, on the partitioned parent: statement-level
-- triggers with transition tables are allowed there, and their transition
-- tables hold the changed rows of every partition (a row an UPDATE moves to
-- another month included). Statements addressing one partition directly do
-- not fire them: write through `events`.
CREATE TRIGGER reporter_rollup_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS reporter_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
CREATE TRIGGER reporter_rollup_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS reporter_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
CREATE TRIGGER reporter_rollup_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS reporter_old_rows NEW TABLE AS reporter_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_changed();
CREATE TRIGGER reporter_rollup_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION reporter_events_truncated();

DO $$
BEGIN
    EXECUTE 'CREATE VIEW events_demographic_facts AS SELECT * FROM '
        || reporter_demographic_facts_sql('(SELECT ev.*, 1 AS sign FROM events ev)')
        || ' AS facts';
END
$$;

DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM events_grants LOOP
        EXECUTE format('GRANT %s ON %I TO %s%s', g.privilege_type, g.relname,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

ANALYZE events;
ANALYZE event_claims;
