//! `events-host` apps run inside the test process: `startup::build` on
//! `127.0.0.1:0`, configured from the same environment map a subprocess
//! gets. Each app has its own runtime on its own thread (a test's runtime
//! and its blocking calls never starve it) and logs JSON lines to its own
//! file, as a subprocess does. The only place that uses `startup::App`.
use events_common::{
    config::{LogFilter, Vars},
    service::Listeners,
};
use events_host::{
    config::{HostConfig, Role},
    startup,
};
use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    fs::File,
    net::TcpListener,
    path::Path,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};
use tokio_util::sync::CancellationToken;
use tracing::{dispatcher::DefaultGuard, Dispatch};

/// A running in-process app: stopped gracefully by [`InProcess::stop`],
/// dropped without waiting for in-flight work (as a SIGKILL would).
pub struct InProcess {
    pub port: u16,
    stop: CancellationToken,
    kill: CancellationToken,
    /// Why the app ended by itself (a startup error); `None` while running.
    ended: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Starts `events-host <role>` on `port` (0: any free port) without
    /// waiting for it to be built. `PORT` in `env` is not used; with
    /// `METRICS_PORT`, the metrics listener is on a free port too.
    pub fn start(role: &str, env: &BTreeMap<String, String>, port: u16, log: &Path) -> Self {
        let role = match role {
            "gateway" => Role::Gateway,
            "collector" => Role::Collector,
            "all" => Role::All,
            other => panic!("unknown role {other}"),
        };
        let vars: HashMap<String, String> =
            env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let config = HostConfig::from_vars(role, &Vars::new(&vars))
            .unwrap_or_else(|e| panic!("host configuration: {e}"));
        // Bound here, so the port is known before the app is built.
        let listener = bind(port);
        let metrics = config.metrics_port.map(|_| bind(0));
        let port = listener.local_addr().expect("local addr").port();
        let dispatch = log_dispatch(&config.common.log_level, log);
        let (stop, kill) = (CancellationToken::new(), CancellationToken::new());
        let ended = Arc::new(Mutex::new(None));
        let thread = {
            let (stop, kill, ended) = (stop.clone(), kill.clone(), ended.clone());
            std::thread::spawn(move || {
                let result = run(config, listener, metrics, stop, kill, dispatch);
                let why = result.err().unwrap_or_else(|| "stopped".into());
                *ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            })
        };
        Self {
            port,
            stop,
            kill,
            ended,
            thread: Some(thread),
        }
    }

    /// Why the app is no longer running, if it is not.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Graceful shutdown (as on SIGTERM without a pre-stop delay); waits
    /// until the app has stopped.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        while self.ended().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.kill.cancel();
        self.join();
    }
}

fn bind(port: u16) -> TcpListener {
    let l = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
    l.set_nonblocking(true).expect("non-blocking listener");
    l
}

/// The app's thread: builds it on a runtime of its own, runs it until `stop`
/// (graceful) or `kill` (its tasks dropped where they are).
fn run(
    config: HostConfig,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    stop: CancellationToken,
    kill: CancellationToken,
    dispatch: Dispatch,
) -> Result<(), String> {
    let worker_dispatch = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || set_thread_dispatch(Some(&worker_dispatch)))
        .on_thread_stop(|| set_thread_dispatch(None))
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let result = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            tokio::select! {
                r = serve(config, listener, metrics, stop) => r,
                _ = kill.cancelled() => Ok(()),
            }
        })
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// `startup::build`, then serves until `stop` and shuts down gracefully.
async fn serve(
    config: HostConfig,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    stop: CancellationToken,
) -> Result<(), String> {
    let tokio_listener = |l: TcpListener| tokio::net::TcpListener::from_std(l).expect("listener");
    let listeners = Listeners {
        main: tokio_listener(listener),
        metrics: metrics.map(tokio_listener),
    };
    let build = startup::build(config, listeners);
    let app = tokio::select! {
        app = build => app.map_err(|e| format!("startup failed: {e:#}"))?,
        _ = stop.cancelled() => return Ok(()),
    };
    stop.cancelled().await;
    app.stop().await.map_err(|e| format!("server failed: {e}"))
}

thread_local! {
    static THREAD_DISPATCH: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// Makes `dispatch` the default subscriber of the current runtime thread
/// (`None`: restores the previous one).
fn set_thread_dispatch(dispatch: Option<&Dispatch>) {
    let guard = dispatch.map(tracing::dispatcher::set_default);
    THREAD_DISPATCH.with(|g| *g.borrow_mut() = guard);
}

/// JSON lines to `log` (appended), as `events_common::telemetry` writes them
/// to a subprocess's stderr.
fn log_dispatch(level: &LogFilter, log: &Path) -> Dispatch {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(level.filter())
        .with_writer(Arc::new(file))
        .finish();
    Dispatch::new(subscriber)
}
