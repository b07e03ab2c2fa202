//! What earlier versions left behind: a database migrated before `events`
//! was partitioned, with its rows, goes through the full migrator.
use super::check_reports;
use super::generators::{seed, spread_event};
use super::tables::{count, only, partition_names, partitions, raw_rows, rollup_rows};
use crate::support::{recount, Event, TestApp};
use chrono::TimeDelta;
use rand::{rngs::StdRng, Rng, SeedableRng};
use sqlx::Connection;
use std::collections::BTreeMap;

/// A database at the version before partitioning, holding events, goes
/// through the full migrator: every row is kept byte for byte, each gets its
/// claim, the rollups are exactly what they were (and what a rebuild gives),
/// the reports are exact, and a stored event re-sent for another month is
/// still a duplicate.
/// A row written before the lineage migration as it reads after it: the
/// same text with `plugin_digest` and `wit_version` appended, null.
fn with_null_lineage(row: &str) -> String {
    let body = row.strip_suffix('}').expect("a JSON object");
    format!(r#"{body},"plugin_digest":null,"wit_version":null}}"#)
}

#[tokio::test]
async fn partitioning_an_existing_database_keeps_every_row_and_exact_reports() {
    let mut rng = StdRng::seed_from_u64(seed());
    let db = crate::support::create_database().await;
    let url = format!("{}/{db}", crate::support::base_url());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("pool");
    let all = &events_common::db::MIGRATOR;
    let first_new = all
        .iter()
        .position(|m| m.version == 20270101000001)
        .expect("the partitioning migration");
    let before = sqlx::migrate::Migrator {
        migrations: all.migrations[..first_new].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before
        .run(&pool)
        .await
        .expect("migrations before partitioning");

    let events: Vec<Event> = (0..1_500).map(|i| spread_event(&mut rng, i)).collect();
    let mut kept = BTreeMap::new();
    for chunk in events.chunks(300) {
        let mut batch = chunk.to_vec();
        batch.push(events[rng.gen_range(0..events.len())].clone());
        crate::support::insert_before_partitioning(&pool, &batch).await;
        for e in batch {
            kept.entry(e.event_id.clone()).or_insert(e);
        }
    }
    let stored: Vec<Event> = kept.into_values().collect();
    // A read-only role's grants outlive the table's replacement.
    let role = format!("reporter_ro_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role}"),
        format!("GRANT SELECT ON events, events_demographic_facts TO {role}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    let rows_before = raw_rows(&pool).await;
    let rollups_before = rollup_rows(&pool).await;
    assert_eq!(rows_before.len(), stored.len());
    pool.close().await;

    // The reporter's start-up applies the rest.
    let app = TestApp::spawn_in(db, &[]).await;
    // Kept byte for byte; the lineage columns added since read null.
    let rows_expected: Vec<String> = rows_before.iter().map(|r| with_null_lineage(r)).collect();
    assert_eq!(
        raw_rows(&app.pool).await,
        rows_expected,
        "rows kept as they were"
    );
    assert_eq!(
        rollup_rows(&app.pool).await,
        rollups_before,
        "rollups untouched"
    );
    assert_eq!(count(&app.pool, "event_claims").await, stored.len() as i64);
    let months = partition_names(stored.iter().map(|e| e.occurred_at));
    assert!(months.len() >= 4, "{months:?}");
    assert_eq!(only(partitions(&app.pool).await, &months), months);
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 15).await;
    sqlx::query("SELECT reporter_rebuild_rollups()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    assert_eq!(
        rollup_rows(&app.pool).await,
        rollups_before,
        "equal to a rebuild"
    );

    // Claims dedup pre-migration rows, whatever month a re-send claims.
    let mut again = stored[0].clone();
    again.occurred_at -= TimeDelta::days(400);
    assert_eq!(app.insert(&[again]).await, 0);
    assert_eq!(count(&app.pool, "events").await, stored.len() as i64);

    let granted: (bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'events', 'SELECT'), \
                has_table_privilege($1, 'events_demographic_facts', 'SELECT')",
    )
    .bind(&role)
    .fetch_one(&app.pool)
    .await
    .expect("privileges");
    assert_eq!(granted, (true, true));
    app.cleanup().await;
    let mut admin =
        sqlx::PgConnection::connect(&format!("{}/postgres", crate::support::base_url()))
            .await
            .expect("admin");
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .expect("drop role");
}
