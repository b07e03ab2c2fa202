//! The properties on random data: every report equals the raw computation
//! and every rollup row a recount, through inserts, deletes, updates,
//! truncates and a rebuild.
use super::check_reports;
use super::generators::{load, random_time, seed};
use crate::support::{recount, TestApp};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rust_decimal::Decimal;

#[tokio::test]
async fn reports_equal_the_raw_computation_on_random_data() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let stored = load(&app, &mut rng, 4_000).await;
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 40).await;
    app.cleanup().await;
}

#[tokio::test]
async fn deletes_updates_and_truncates_are_mirrored() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let mut stored = load(&app, &mut rng, 1_500).await;

    // Retention-style delete of a random third.
    stored.shuffle(&mut rng);
    let gone: Vec<String> = stored.drain(..500).map(|e| e.event_id).collect();
    sqlx::query("DELETE FROM events WHERE event_id = ANY($1)")
        .bind(&gone)
        .execute(&app.pool)
        .await
        .expect("delete");
    recount::check_rollup_tables(&app, &stored).await;

    // Corrections: move events in time, change amounts and sources.
    for e in stored.iter_mut().take(200) {
        e.occurred_at = random_time(&mut rng);
        if e.revenue.is_some() {
            e.revenue = Some(Decimal::new(rng.gen_range(0..9_999), 2));
        }
        sqlx::query("UPDATE events SET occurred_at = $2, revenue = $3 WHERE event_id = $1")
            .bind(&e.event_id)
            .bind(e.occurred_at)
            .bind(e.revenue)
            .execute(&app.pool)
            .await
            .expect("update");
    }
    sqlx::query("UPDATE events SET source = 'renamed' WHERE source = 'newsrc'")
        .execute(&app.pool)
        .await
        .expect("rename");
    for e in stored.iter_mut().filter(|e| e.source == "newsrc") {
        e.source = "renamed".into();
    }
    // An update touching no reported column changes nothing.
    sqlx::query("UPDATE events SET correlation_id = 'x'")
        .execute(&app.pool)
        .await
        .expect("noop update");
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 15).await;

    sqlx::query("TRUNCATE events")
        .execute(&app.pool)
        .await
        .expect("truncate");
    recount::check_rollup_tables(&app, &[]).await;
    assert_eq!(app.ok("/api/v1/reports/events").await["totalEvents"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn rebuild_reproduces_the_trigger_maintained_rollups() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let stored = load(&app, &mut rng, 1_000).await;
    sqlx::query("SELECT reporter_rebuild_rollups()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    recount::check_rollup_tables(&app, &stored).await;
    app.cleanup().await;
}
