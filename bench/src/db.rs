//! Scratch databases and JetStream streams of one benchmark run.

use anyhow::Result;
use futures::TryStreamExt;
use sqlx::{Connection, Executor, PgConnection, Row};

/// `server_url` is `postgres://user@host:port` (no database).
pub fn url(server_url: &str, db: &str) -> String {
    format!("{}/{db}", server_url.trim_end_matches('/'))
}

async fn admin(server_url: &str) -> Result<PgConnection> {
    Ok(PgConnection::connect(&url(server_url, "postgres")).await?)
}

pub async fn create_database(server_url: &str, db: &str) -> Result<()> {
    let mut c = admin(server_url).await?;
    c.execute(format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#).as_str())
        .await?;
    c.execute(format!(r#"CREATE DATABASE "{db}""#).as_str())
        .await?;
    Ok(())
}

pub async fn drop_database(server_url: &str, db: &str) -> Result<()> {
    let mut c = admin(server_url).await?;
    c.execute(format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#).as_str())
        .await?;
    Ok(())
}

pub fn db_prefix(run_id: &str) -> String {
    format!("bench_ingest_{run_id}_")
}

pub fn stream_prefix(run_id: &str) -> String {
    format!("BENCH_INGEST_{}_", run_id.to_uppercase())
}

/// Drops every database and deletes every stream of run `run_id`.
pub async fn cleanup(server_url: &str, nats_url: &str, run_id: &str) -> Result<()> {
    let prefix = db_prefix(run_id);
    match admin(server_url).await {
        Ok(mut c) => {
            let names: Vec<String> =
                sqlx::query("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
                    .bind(&prefix)
                    .fetch_all(&mut c)
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
            for n in names {
                c.execute(format!(r#"DROP DATABASE IF EXISTS "{n}" WITH (FORCE)"#).as_str())
                    .await?;
                eprintln!("[cleanup] dropped database {n}");
            }
        }
        Err(e) => eprintln!("[cleanup] postgres: {e}"),
    }
    delete_streams(nats_url, &stream_prefix(run_id)).await
}

pub async fn delete_streams(nats_url: &str, prefix: &str) -> Result<()> {
    let client = match async_nats::connect(nats_url).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("[cleanup] nats: {e}");
            return Ok(());
        }
    };
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap_or_default();
    for n in names.into_iter().filter(|n| n.starts_with(prefix)) {
        match js.delete_stream(&n).await {
            Ok(_) => eprintln!("[cleanup] deleted stream {n}"),
            Err(e) => eprintln!("[cleanup] delete stream {n}: {e}"),
        }
    }
    Ok(())
}
