//! A message out of deliveries (`COLLECTOR_MAX_DELIVER`) while the
//! database hangs: dead-lettered on its last delivery, or recovered from
//! JetStream's advisory when the collector died during it.
use crate::support::pipeline::{assert_exact_answer, post, wait_until, Pipeline};
use events_publisher::{Batch, Generator, GeneratorConfig};
use std::{collections::HashSet, time::Duration};

/// Makes every statement that writes `table` sleep (a write that never ends)
/// until `release_writes`.
async fn hang_writes(p: &Pipeline, table: &str) {
    sqlx::raw_sql(&format!(
        "CREATE OR REPLACE FUNCTION hang() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(600); RETURN NULL; END $$;
         CREATE TRIGGER hang_{table} BEFORE INSERT ON {table}
           FOR EACH STATEMENT EXECUTE FUNCTION hang();"
    ))
    .execute(&p.db.pool)
    .await
    .unwrap();
}

/// Ends the statements sleeping in a hang (a killed client's backend would
/// sleep on, holding its table lock), then drops the hang on `table`. Only
/// called while no collector runs, so no new statement starts sleeping.
async fn release_writes(p: &Pipeline, table: &str) {
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event = 'PgSleep';",
    )
    .execute(&p.db.pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!("DROP TRIGGER hang_{table} ON {table};"))
        .execute(&p.db.pool)
        .await
        .unwrap();
}

async fn wait_hanging(p: &Pipeline, n: i64) {
    wait_until("writes hanging", Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(&p.db.pool)
        .await
        .is_ok_and(|c| c >= n)
    })
    .await;
}

/// One POST of valid events, answered 200, with nothing stored yet.
async fn posted_batch(p: &Pipeline, seed: u64) -> Batch {
    let gw = p.start("gateway", "gateway", &[]).await;
    let batch = Generator::new(GeneratorConfig {
        seed: Some(seed),
        corrupt_post_rate: 0.0,
        ..Default::default()
    })
    .next_batch(40);
    let (status, reply) = post(&p.http, &gw.url("/webhook"), batch.body(), &[])
        .await
        .unwrap();
    assert_exact_answer(status, &reply, &batch);
    batch
}

/// Sources in `batch`: one slice, hence one hanging write, each.
fn sources(batch: &Batch) -> i64 {
    let s: HashSet<&str> = batch
        .events
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    s.len() as i64
}

/// Every event of `batch` is a `delivery` dead letter saying it reached
/// max_deliver, nothing is in `events`, and the stream is empty.
async fn all_dead_lettered_for_max_deliver(p: &Pipeline, batch: &Batch) {
    let n = batch.len() as i64;
    wait_until(
        "every event dead-lettered",
        Duration::from_secs(60),
        || async { p.db.count("dead_letters").await == n && p.streams.backlog().await == Some(0) },
    )
    .await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT stage, reasons::text, raw FROM dead_letters")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    for (stage, reasons, _) in &rows {
        assert_eq!(stage, "delivery");
        assert!(reasons.contains("COLLECTOR_MAX_DELIVER"), "{reasons}");
    }
    let mut raws: Vec<String> = rows.into_iter().map(|(_, _, raw)| raw).collect();
    let mut sent: Vec<String> = batch.events.iter().map(|e| e.to_string()).collect();
    raws.sort();
    sent.sort();
    assert_eq!(raws, sent, "each event kept with its exact bytes");
    assert_eq!(p.db.count("events").await, 0);
}

const MAX_DELIVER_2: [(&str, &str); 2] = [
    ("COLLECTOR_MAX_DELIVER", "2"),
    ("COLLECTOR_ACK_WAIT_MS", "1000"),
];

/// A batch whose write never ends, delivered up to `max_deliver` times
/// (the collector killed each time): on its last delivery its events are
/// dead-lettered instead of processed, and the message is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_on_its_last_delivery_is_dead_lettered() {
    let p = Pipeline::shared("max_deliver").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let batch = posted_batch(&p, 51).await;
    hang_writes(&p, "events").await;
    let mut col = p
        .start_process("collector", "collector", &MAX_DELIVER_2)
        .await;
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "events").await;
    hang_writes(&p, "events").await;
    col.restart().await;
    all_dead_lettered_for_max_deliver(&p, &batch).await;
    let m = col.metrics().await;
    assert!(
        m.sum(
            "collector_max_deliveries_total",
            &[("path", "last_delivery")]
        ) > 0.0
    );
    release_writes(&p, "events").await;
}

/// The backstop: the process dies during the last delivery too. nats-server
/// then keeps the message unseen in the work queue and announces it; a
/// collector fetches it by sequence, dead-letters it and deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_max_deliver_is_recovered_from_the_advisory() {
    let p = Pipeline::shared("max_deliver_adv").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let batch = posted_batch(&p, 52).await;
    hang_writes(&p, "events").await;
    hang_writes(&p, "dead_letters").await;
    let mut col = p
        .start_process("collector", "collector", &MAX_DELIVER_2)
        .await;
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "events").await;
    release_writes(&p, "dead_letters").await;
    hang_writes(&p, "events").await;
    hang_writes(&p, "dead_letters").await;
    col.restart().await;
    // The last delivery's dead letters hang too.
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "dead_letters").await;
    release_writes(&p, "events").await;
    hang_writes(&p, "events").await;
    col.restart().await;
    all_dead_lettered_for_max_deliver(&p, &batch).await;
    let m = col.metrics().await;
    assert!(m.sum("collector_max_deliveries_total", &[("path", "advisory")]) > 0.0);
    release_writes(&p, "events").await;
}
