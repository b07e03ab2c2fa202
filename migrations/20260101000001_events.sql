-- Stored events: one row per unique valid event (first valid write wins).
-- Typed columns carry everything the reports filter or group by; `raw` keeps
-- the event exactly as the publisher sent it (json, not jsonb: byte-exact and
-- cheaper to insert).
CREATE TABLE IF NOT EXISTS events (
    event_id        text        NOT NULL,
    source          text        NOT NULL,
    funnel_stage    text        NOT NULL CHECK (funnel_stage IN ('top', 'bottom')),
    event_type      text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    user_id         text        NOT NULL,
    revenue         numeric     CHECK (revenue >= 0),
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
    received_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS events_occurred_at_idx ON events (occurred_at);
CREATE INDEX IF NOT EXISTS events_source_occurred_at_idx ON events (source, occurred_at);
CREATE INDEX IF NOT EXISTS events_revenue_idx ON events (occurred_at) WHERE revenue IS NOT NULL;

-- Everything that was refused, at any stage, kept with its reasons.
-- stage: 'gateway' (envelope check), 'plugin' (validation by the source
-- plugin), 'delivery' (kept failing past max_deliver, or the plugin trapped
-- on it alone).
CREATE TABLE IF NOT EXISTS dead_letters (
    id              bigserial   PRIMARY KEY,
    stage           text        NOT NULL,
    source          text,
    event_id        text,
    reasons         jsonb       NOT NULL,
    raw             text        NOT NULL,
    plugin_name     text,
    plugin_version  text,
    correlation_id  text,
    -- The JetStream message a dead letter came from (`stream:sequence`), so
    -- a redelivered message is not recorded twice.
    dedup_key       text        UNIQUE,
    received_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS dead_letters_received_at_idx ON dead_letters (received_at);
CREATE INDEX IF NOT EXISTS dead_letters_event_id_idx ON dead_letters (event_id);
