//! The load: the publisher's traffic, then reporter requests.

use std::collections::BTreeMap;

use deploy_tests::env_or;

use super::{stack::secs, Live, Traffic};

impl Live {
    /// The publisher's traffic, then reporter requests (good and bad).
    pub(super) async fn drive_traffic(&mut self) -> Traffic {
        let (client, ports, stack, bins) = (&self.client, &self.ports, &mut self.stack, &self.bins);
        let prom_env: BTreeMap<String, String> = [(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        )]
        .into();
        let publisher_args = env_or(
            "DEPLOY_E2E_PUBLISHER_ARGS",
            "--count 20000 --rate 10000 --no-progress",
        );
        let args: Vec<&str> = publisher_args.split_whitespace().collect();
        let mut pub_env = prom_env.clone();
        pub_env.insert(
            "EVENT_ENDPOINT".into(),
            format!("http://127.0.0.1:{}/webhook", ports["gateway"]),
        );
        pub_env.insert("RUST_BACKTRACE".into(), "1".into());
        let publisher = stack.spawn(
            "publisher",
            &bins["events-publisher"].clone(),
            &args,
            &pub_env,
        );
        let pub_status = stack
            .wait_exit(publisher, secs("DEPLOY_E2E_PUBLISHER_TIMEOUT_SECS", 300))
            .await;
        eprintln!(
            "deploy e2e: publisher {publisher_args:?} finished: {pub_status}\n{}",
            stack.logs(publisher)
        );

        let report_query = env_or(
            "DEPLOY_E2E_REPORT_QUERY",
            "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        );
        let rep_base = format!("http://127.0.0.1:{}", ports["reporter"]);
        let mut report_results = Vec::new();
        for round in 0..2 {
            for report in ["events", "revenue", "demographics"] {
                let url = format!("{rep_base}/api/v1/reports/{report}?{report_query}");
                let status = client.get(&url).send().await.map(|r| r.status().as_u16());
                if round == 0 {
                    report_results.push(format!("GET {url} -> {status:?}"));
                }
            }
        }
        for bad in [
            format!("{rep_base}/api/v1/reports/events?from=not-a-date"),
            format!("{rep_base}/api/v1/openapi.json"),
        ] {
            let status = client.get(&bad).send().await.map(|r| r.status().as_u16());
            report_results.push(format!("GET {bad} -> {status:?}"));
        }
        eprintln!(
            "deploy e2e: reporter requests:\n  {}",
            report_results.join("\n  ")
        );

        Traffic {
            publisher_args,
            pub_status,
            report_results,
        }
    }
}
