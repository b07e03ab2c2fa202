-- Two sources may use the same event id: the dedup key is (source, event_id),
-- not event_id alone (an event of another source with a colliding id used to
-- be dropped as a duplicate). Existing rows already satisfy the new key.
ALTER TABLE events ADD CONSTRAINT events_source_event_id_key UNIQUE (source, event_id);
ALTER TABLE events DROP CONSTRAINT events_event_id_key;
