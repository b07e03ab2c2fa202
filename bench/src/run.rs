//! `ingest-bench run`: the floors, then each pipeline phase (baseline
//! first when given), then the report on stdout and in the JSON file.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::{copy, copyreal, db, jsfloor, pipeline, report, RunArgs};

const PIPELINE_PHASES: [&str; 3] = ["stream", "post50k", "load"];

pub async fn run(a: RunArgs) -> Result<()> {
    std::fs::create_dir_all(&a.work_dir)?;
    let mut rep = report::Report::new();
    eprintln!(
        "ingest-bench run {}: {} cores, {} MB RAM, loadavg {}",
        a.common.run_id, rep.machine.cores, rep.machine.mem_mb, rep.machine.loadavg_start
    );
    let want = |p: &str| a.phases.iter().any(|x| x == p);
    let pipeline_wanted = PIPELINE_PHASES.iter().any(|p| want(p));
    anyhow::ensure!(
        !pipeline_wanted || (a.host_bin.is_some() && a.publisher_bin.is_some()),
        "the pipeline phases need --host-bin and --publisher-bin"
    );

    if want("copy") || want("copyreal") || want("jsfloor") {
        floor_phases(&a, &want, &mut rep).await?;
    }

    let (true, Some(host_bin), Some(publisher_bin)) =
        (pipeline_wanted, a.host_bin.clone(), a.publisher_bin.clone())
    else {
        return finish(rep, a.out.as_deref());
    };
    let (env, baseline) = pipeline_envs(&a, host_bin, publisher_bin);
    if let Some(b) = &baseline {
        rep.baseline = Some(report::Baseline {
            host_bin: b.host_bin.display().to_string(),
            plugins_dir: b.plugins_dir.display().to_string(),
            current_host_bin: env.host_bin.display().to_string(),
            current_plugins_dir: env.plugins_dir.display().to_string(),
        });
    }
    let envs: Vec<&pipeline::Env> = baseline.iter().chain(std::iter::once(&env)).collect();
    let specs = phase_specs(&a);
    for spec in specs.iter().filter(|s| want(&s.name)) {
        for env in &envs {
            match pipeline::run_phase(env, spec).await {
                Ok(r) => rep.phases.push(r),
                Err(e) => {
                    eprintln!("[{} {}] FAILED: {e:#}", spec.name, env.variant);
                    rep.errors
                        .push(format!("{} ({}): {e:#}", spec.name, env.variant));
                }
            }
        }
    }
    finish(rep, a.out.as_deref())
}

/// The floors the pipeline is compared with: (a) bare COPY, (a") COPY into
/// the real schema, (a') bare JetStream publish, on the same events.
async fn floor_phases(
    a: &RunArgs,
    want: &dyn Fn(&str) -> bool,
    rep: &mut report::Report,
) -> Result<()> {
    let t = std::time::Instant::now();
    let events = copy::generate(a.copy_events, a.seed)?;
    eprintln!(
        "generated {} events in {:.1}s",
        events.len(),
        t.elapsed().as_secs_f64()
    );
    if want("copy") {
        let db = format!("{}copy", db::db_prefix(&a.common.run_id));
        match copy::run(&a.common.pg_url, &db, &events, a.copy_runs).await {
            Ok(r) => rep.copy = Some(r),
            Err(e) => {
                eprintln!("[copy] FAILED: {e:#}");
                rep.errors.push(format!("copy: {e:#}"));
            }
        }
    }
    if want("copyreal") {
        let db = format!("{}copyreal", db::db_prefix(&a.common.run_id));
        let migrations = copyreal::migrations_dir(a.migrations_dir.as_deref());
        match copyreal::run(&a.common.pg_url, &db, &migrations, &events, a.copy_runs).await {
            Ok(r) => rep.copy_real = Some(r),
            Err(e) => {
                eprintln!("[copyreal] FAILED: {e:#}");
                rep.errors.push(format!("copyreal: {e:#}"));
            }
        }
    }
    if want("jsfloor") {
        match jsfloor::run(
            &a.common.nats_url,
            &a.common.run_id,
            &events,
            a.jsfloor_in_flight,
        )
        .await
        {
            Ok(r) => rep.jsfloor = Some(r),
            Err(e) => {
                eprintln!("[jsfloor] FAILED: {e:#}");
                rep.errors.push(format!("jsfloor: {e:#}"));
            }
        }
    }
    Ok(())
}

/// The current host's environment, and the baseline's for a before/after
/// run (the baseline runs first, then the current host, phase by phase).
fn pipeline_envs(
    a: &RunArgs,
    host_bin: PathBuf,
    publisher_bin: PathBuf,
) -> (pipeline::Env, Option<pipeline::Env>) {
    let env = pipeline::Env {
        server_url: a.common.pg_url.clone(),
        nats_url: a.common.nats_url.clone(),
        host_bin: host_bin.clone(),
        publisher_bin,
        plugins_dir: a.plugins_dir.clone(),
        work_dir: a.work_dir.clone(),
        run_id: a.common.run_id.clone(),
        seed: a.seed,
        drain_timeout: Duration::from_secs(a.drain_timeout_secs),
        host_env: a.host_env.clone(),
        variant: "current".into(),
    };
    let baseline = (a.baseline_host_bin.is_some() || a.baseline_plugins_dir.is_some()).then(|| {
        pipeline::Env {
            host_bin: a.baseline_host_bin.clone().unwrap_or(host_bin),
            plugins_dir: a
                .baseline_plugins_dir
                .clone()
                .unwrap_or_else(|| a.plugins_dir.clone()),
            variant: "baseline".into(),
            ..env.clone()
        }
    });
    (env, baseline)
}

/// The pipeline phases: stream (the real publisher's traffic), post50k
/// (large POSTs) and load (more than the pipeline can take).
fn phase_specs(a: &RunArgs) -> [pipeline::PhaseSpec; 3] {
    let s = |v: &[String]| v.to_vec();
    [
        pipeline::PhaseSpec {
            name: "stream".into(),
            label: format!(
                "{}..{} ev/POST, 1 POST/s, {} s",
                a.stream_min_events, a.stream_max_events, a.stream_secs
            ),
            // The real publisher: a POST per second of 1000..50000 events,
            // overlapping, 10 % of POSTs with one corrupted event.
            publisher_args: s(&[
                "--interval-ms".into(),
                "1000".into(),
                "--min-events".into(),
                a.stream_min_events.to_string(),
                "--max-events".into(),
                a.stream_max_events.to_string(),
                "--duration-secs".into(),
                a.stream_secs.to_string(),
            ]),
            warmup_secs: 10.0,
        },
        pipeline::PhaseSpec {
            name: "post50k".into(),
            label: format!(
                "50000 ev/POST every {} ms, {} s",
                a.post50k_interval_ms, a.post50k_secs
            ),
            publisher_args: s(&[
                "--interval-ms".into(),
                a.post50k_interval_ms.to_string(),
                "--min-events".into(),
                "50000".into(),
                "--max-events".into(),
                "50000".into(),
                "--duration-secs".into(),
                a.post50k_secs.to_string(),
            ]),
            warmup_secs: 5.0,
        },
        pipeline::PhaseSpec {
            name: "load".into(),
            label: format!(
                "{} ev at {}/s, {} in flight",
                a.load_count, a.load_rate, a.load_concurrency
            ),
            publisher_args: s(&[
                "--count".into(),
                a.load_count.to_string(),
                "--rate".into(),
                a.load_rate.to_string(),
                "--concurrency".into(),
                a.load_concurrency.to_string(),
            ]),
            warmup_secs: 5.0,
        },
    ]
}

/// Ratios and targets, the table on stdout, the JSON file.
fn finish(mut rep: report::Report, out: Option<&std::path::Path>) -> Result<()> {
    rep.finish();
    println!("{}", rep.table());
    if let Some(out) = out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(&rep)? + "\n")?;
        eprintln!("results: {}", out.display());
    }
    Ok(())
}
