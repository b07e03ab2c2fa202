-- The reporter's dead-letters API (`GET /api/v1/dead-letters`): pages
-- newest first by (received_at, id), and filters on a reason's field by
-- jsonb containment (`reasons @> '[{"field": "..."}]'`).
--
-- (received_at, id) serves the keyset pages (a backward range scan) and
-- everything the received_at index did, which it replaces.
CREATE INDEX IF NOT EXISTS dead_letters_received_at_id_idx ON dead_letters (received_at, id);
DROP INDEX IF EXISTS dead_letters_received_at_idx;

-- jsonb_path_ops: smaller than the default GIN operator class and enough
-- for @>. Dead letters are rare, so the insert cost is negligible.
CREATE INDEX IF NOT EXISTS dead_letters_reasons_idx ON dead_letters USING gin (reasons jsonb_path_ops);
