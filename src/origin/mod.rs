//! The origin service (`revguard origin serve`): a durable revocation store with an HTTP API,
//! publishing each committed change as a signed delta or full snapshot within a bounded
//! debounce, serving them with conditional and held GETs, and recording which enforcement
//! point holds which generation. Native only. docs/ORIGIN.md describes it.

pub mod auth;
pub mod config;
pub mod error;
pub mod export;
pub mod feeds;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod publish;
pub mod store;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::snapshot::{SigningKey, MAX_GENERATION};
use config::OriginConfig;
use error::OriginError;
use fleet::Fleet;
use metrics::Metrics;
use publish::Publisher;
use store::Store;

/// Reads the signing key, refusing a file that group or others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: the signing key is readable by group or others (mode {:o}); \
                 run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("{}: not a key file", path.display()))?;
    SigningKey::parse(text).map_err(|e| format!("{}: {e}", path.display()))
}

/// How `serve` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub config: PathBuf,
    /// Overrides the configuration's `export_dir`.
    pub export_dir: Option<PathBuf>,
    /// Accept a store behind what was published (a restored backup) and continue at this
    /// generation, which must be above everything published.
    pub jump_generation_to: Option<u64>,
}

/// Compares the store with what was already published (high-water-mark file, export files)
/// and applies a requested jump. Refuses a store that is behind unless told to jump.
pub fn check_generations(
    store: &Store,
    config: &OriginConfig,
    jump: Option<u64>,
) -> Result<(), String> {
    let stored = store.last_generation().map_err(|e| e.to_string())?;
    let hwm =
        export::read_high_water_mark(&config.high_water_mark_file).map_err(|e| e.to_string())?;
    let exported = config
        .export_dir
        .as_deref()
        .map_or(0, |d| export::exported_generation(d, config));
    let published = hwm.max(exported);
    match jump {
        Some(to) => {
            let floor = published.max(stored);
            if to <= floor || to > MAX_GENERATION {
                return Err(format!(
                    "--jump-generation-to {to}: must be above every generation published or \
                     stored ({floor}) and at most {MAX_GENERATION}"
                ));
            }
            store.set_generation_floor(to).map_err(|e| e.to_string())?;
            eprintln!(
                "revguard origin: jumping to generation {to} (store at {stored}, published up to {published}); \
                 the next publication is a full snapshot"
            );
            Ok(())
        }
        None if published > stored => Err(format!(
            "the store is behind what was already published: its last generation is {stored}, \
             but generation {published} was published (high-water mark {} = {hwm}{}). \
             This is a restored backup or a lost database: gateways would refuse its snapshots \
             as a rollback. Restart with --jump-generation-to N (N > {published}) to continue \
             above it.",
            config.high_water_mark_file.display(),
            match &config.export_dir {
                Some(d) => format!(", export dir {} = {exported}", d.display()),
                None => String::new(),
            }
        )),
        None => Ok(()),
    }
}

/// Runs the origin until SIGINT or SIGTERM.
pub fn serve(opts: ServeOptions) -> Result<(), String> {
    let mut config = config::load(&opts.config)?;
    if opts.export_dir.is_some() {
        config.export_dir = opts.export_dir.clone();
    }
    let config = Arc::new(config);
    let key = load_signing_key(&config.signing_key_file)?;
    let store = Arc::new(
        Store::open(&config.database, config.sqlite_max_page_count).map_err(|e| e.to_string())?,
    );
    check_generations(&store, &config, opts.jump_generation_to)?;
    let metrics = Arc::new(Metrics::new());
    let fleet = Arc::new(Fleet::new(
        config.fleet_live_window_secs,
        config.fleet_max_nodes,
    ));
    let publisher = Arc::new(Publisher::new(
        Arc::clone(&store),
        Arc::clone(&config),
        key.clone(),
        Arc::clone(&metrics),
        Arc::clone(&fleet),
    ));
    publisher.load_stored().map_err(|e| e.to_string())?;
    // A first publication before serving: the jump (if any) takes effect, and a restarted
    // origin is fresh at once. If it cannot publish (say, the clock is behind), it serves
    // what it has and keeps retrying.
    let now = u64::try_from(publish::unix_now_ms() / 1000).unwrap_or(0);
    if let Err(e) = publisher.publish_once(now, true) {
        if opts.jump_generation_to.is_some() {
            return Err(format!("cannot publish the jumped generation: {e}"));
        }
        metrics.publish_error(e.code());
        eprintln!(
            "revguard origin: first publication failed ({}): {e}",
            e.code()
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let changed = Arc::new(Notify::new());
        let state = http::AppState {
            config: Arc::clone(&config),
            store,
            served: publisher.subscribe(),
            publisher: Arc::clone(&publisher),
            changed: Arc::clone(&changed),
            metrics,
            fleet,
            signing_public_key: key.public_key_text(),
            jwks: Arc::new(feeds::jwks_cache::JwksCache::new()),
        };
        tokio::spawn(Arc::clone(&publisher).run(changed));
        println!("revguard origin listening on http://{addr}");
        let _ = std::io::stdout().flush();
        let app = http::router(state);
        let server = axum::serve(listener, app);
        tokio::select! {
            r = server => r.map_err(|e| format!("server failed: {e}")),
            () = shutdown_signal() => {
                eprintln!("revguard origin: shutting down");
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// `revguard origin export`: writes the current files of the store into `dir`.
pub fn export_once(config_path: &Path, dir: &Path) -> Result<u64, String> {
    let config = config::load(config_path)?;
    let store = Store::open_read_only(&config.database).map_err(|e| e.to_string())?;
    let (snapshot, delta) = store.current_files().map_err(|e| e.to_string())?;
    let snapshot = snapshot.ok_or("the store has no published snapshot yet")?;
    export::export(
        dir,
        &config,
        &snapshot.bytes,
        delta.as_ref().map(|d| d.bytes.as_slice()),
    )
    .map_err(|e: OriginError| e.to_string())?;
    Ok(delta.map_or(snapshot.generation, |d| d.generation))
}
