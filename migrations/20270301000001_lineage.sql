-- Exact lineage (issue 13): every stored event and plugin-stage dead letter
-- records, next to the plugin's name and version, the SHA-256 of the
-- component file that produced it (`plugin_digest`, lowercase hex, 64
-- characters) and the WIT contract version it spoke (`wit_version`, e.g.
-- `0.2.0` or `0.1.0`).
--
-- Nullable: rows written before this version have neither, and dead letters
-- refused before any plugin ran (the gateway's, delivery failures without a
-- plugin) have none.
--
-- `events` is partitioned: the ALTER on the parent adds the columns to every
-- partition, and `events_create_partition` builds new ones with
-- `LIKE events INCLUDING ALL`, so they get them too. No function lists the
-- columns of `events` or `dead_letters` (the rollup triggers read only the
-- columns they count), so none needs replacing.
ALTER TABLE events ADD COLUMN IF NOT EXISTS plugin_digest text,
                   ADD COLUMN IF NOT EXISTS wit_version text;

ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS plugin_digest text,
                         ADD COLUMN IF NOT EXISTS wit_version text;
