//! `serve`: a local HTTP/1.1 gateway on loopback with the filter in front of a backend, as Envoy
//! would run it: several worker VMs (requests spread round-robin), a real clock, the plugin's
//! upstream names mapped to real servers. An admin listener answers `GET /stats` (Envoy-style
//! `name: value` lines) so that black-box tests and operators can read the metrics.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;
use revguard_test_host::{
    CalloutRequest, ClientResponse, Clock, HeaderMap, HttpRequest, HttpResponse, HttpUpstream,
    LogEntry, MetricValue, Outcome, Proxy, ProxyConfig, StreamId, Upstream, UpstreamOutcome,
    UpstreamReply,
};

/// Largest request body the gateway reads.
const MAX_BODY: u64 = 1 << 20;
/// How long a backend may take to answer.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(ClapArgs)]
#[command(
    after_help = "Example:\n  revguard-test-host serve --config policy.json --backend http://127.0.0.1:9000 \\\n    --upstream idp=http://127.0.0.1:9001 --upstream revocation-origin=http://127.0.0.1:9002 --workers 4"
)]
pub struct Args {
    /// The plugin configuration (JSON), as Envoy's `configuration` or Kong's filter `config`.
    #[arg(long)]
    config: PathBuf,
    /// Where allowed requests go.
    #[arg(long, value_name = "URL")]
    backend: String,
    /// Maps an upstream name of the config (Envoy cluster or Kong host:port) to a loopback URL. Repeatable.
    #[arg(long = "upstream", value_name = "NAME=URL")]
    upstreams: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Admin listener (`GET /stats`).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// Worker VMs (Envoy: one per worker thread).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Host behaviour to imitate.
    #[arg(long, value_enum, default_value = "envoy")]
    profile: HostProfile,
    /// The filter module (default: build this repository's filter).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The wasm engine (`wasmtime` or `wasmi`; default: wasmi when built in).
    #[arg(long, value_parser = crate::parse_engine)]
    engine: Option<revguard_test_host::Engine>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum HostProfile {
    Envoy,
    Kong,
}

/// A `http://host:port` URL on this machine, as a socket address.
pub fn loopback_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{url}: the test host only talks to loopback servers"
        ));
    }
    Ok(addr)
}

pub fn run(args: Args) -> Result<(), String> {
    let plugin_configuration =
        std::fs::read(&args.config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let mut config = match args.profile {
        HostProfile::Envoy => ProxyConfig::envoy(),
        HostProfile::Kong => ProxyConfig::kong(),
    };
    config.workers = args.workers;
    config.engine = args.engine.unwrap_or_else(crate::default_engine);
    config.clock = Clock::real();
    // A real gateway's WASI randomness differs per process (tests keep the fixed seed to be
    // reproducible): two gateways must not pick the same node id for the origin's fleet view.
    config.random_seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    config.plugin_configuration = plugin_configuration;
    for spec in &args.upstreams {
        let (name, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("--upstream {spec}: expected NAME=URL"))?;
        let upstream = HttpUpstream::new(loopback_addr(url)?)
            .ok_or_else(|| format!("--upstream {spec}: not a loopback address"))?;
        config = config.upstream(name, upstream as Arc<dyn Upstream>);
    }
    let backend = HttpUpstream::new(loopback_addr(&args.backend)?)
        .ok_or_else(|| format!("--backend {}: not a loopback address", args.backend))?;
    let wasm = crate::wasm::revguard(args.wasm.as_deref())?;
    let proxy = Proxy::new(&wasm, config).map_err(|e| format!("the module was refused: {e}"))?;
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let admin = tiny_http::Server::http(&args.admin)
        .map_err(|e| format!("cannot listen on {}: {e}", args.admin))?;
    // The bound addresses (port 0 picks a free one), for people and for tests that spawn it.
    let bound = |s: &tiny_http::Server, asked: &str| {
        s.server_addr()
            .to_ip()
            .map_or_else(|| asked.to_string(), |a| a.to_string())
    };
    eprintln!(
        "revguard gateway on http://{} -> {} ({} workers); stats on http://{}/stats",
        bound(&server, &args.listen),
        args.backend,
        args.workers,
        bound(&admin, &args.admin)
    );
    Gateway::new(proxy, backend).run(&server, &admin)
}

/// A request on its way through the gateway.
struct InFlight {
    client: tiny_http::Request,
    stream: StreamId,
    backend: Option<Receiver<UpstreamOutcome>>,
}

pub struct Gateway {
    proxy: Proxy,
    backend: Arc<HttpUpstream>,
    inflight: VecDeque<InFlight>,
    next_worker: usize,
}

impl Gateway {
    pub fn new(proxy: Proxy, backend: Arc<HttpUpstream>) -> Gateway {
        Gateway {
            proxy,
            backend,
            inflight: VecDeque::new(),
            next_worker: 0,
        }
    }

    /// Serves until the process is stopped. One thread owns the VMs, as one Envoy worker owns its VM.
    pub fn run(
        mut self,
        server: &tiny_http::Server,
        admin: &tiny_http::Server,
    ) -> Result<(), String> {
        loop {
            let wait = if self.inflight.is_empty() {
                Duration::from_millis(20)
            } else {
                Duration::ZERO
            };
            let mut busy = false;
            if let Ok(Some(request)) = server.recv_timeout(wait) {
                self.accept(request);
                busy = true;
            }
            if let Ok(Some(request)) = admin.try_recv() {
                self.answer_admin(request);
            }
            self.proxy.poll().map_err(|e| e.to_string())?;
            busy |= self.progress();
            print_logs(self.proxy.take_logs());
            if !busy && !self.inflight.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn accept(&mut self, mut client: tiny_http::Request) {
        let host = client
            .headers()
            .iter()
            .find(|h| h.field.equiv("host"))
            .map_or("localhost", |h| h.value.as_str())
            .to_string();
        let mut request = HttpRequest::new(client.method().as_str(), &host, client.url());
        request.headers.replace(b":scheme", b"http");
        for h in client.headers() {
            let name = h.field.as_str().as_str().to_ascii_lowercase();
            if name != "host" {
                request
                    .headers
                    .add(name.as_bytes(), h.value.as_str().as_bytes());
            }
        }
        let mut body = Vec::new();
        if client
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .is_err()
        {
            respond(client, 400, &[], b"unreadable request body".to_vec());
            return;
        }
        if !body.is_empty() {
            request.body = Some(body);
        }
        let worker = self.next_worker % self.proxy.workers();
        self.next_worker = self.next_worker.wrapping_add(1);
        match self.proxy.send_request(worker, request) {
            Ok(stream) => self.inflight.push_back(InFlight {
                client,
                stream,
                backend: None,
            }),
            Err(e) => respond(client, 503, &[], format!("proxy error: {e}").into_bytes()),
        }
    }

    /// Moves every request as far as it can go; true if any finished.
    fn progress(&mut self) -> bool {
        let mut progressed = false;
        for _ in 0..self.inflight.len() {
            let Some(mut item) = self.inflight.pop_front() else {
                break;
            };
            match self.step(&mut item) {
                Some(response) => {
                    progressed = true;
                    let status = response
                        .status()
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(502);
                    let headers: Vec<(Vec<u8>, Vec<u8>)> = response
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect();
                    respond(item.client, status, &headers, response.body);
                }
                None => self.inflight.push_back(item),
            }
        }
        progressed
    }

    /// The client's response once it is known.
    fn step(&mut self, item: &mut InFlight) -> Option<ClientResponse> {
        if let Some(rx) = &item.backend {
            let upstream = match rx.try_recv() {
                Ok(UpstreamOutcome::Response(r)) => {
                    let mut response = HttpResponse::new(200);
                    response.headers = r.headers;
                    response.body = Some(r.body);
                    response
                }
                // Envoy's router answers a backend past its timeout with 504.
                Ok(UpstreamOutcome::Timeout) => {
                    HttpResponse::new(504).body("upstream request timeout")
                }
                Ok(_) | Err(TryRecvError::Disconnected) => HttpResponse::new(503)
                    .body("upstream connect error or disconnect/reset before headers"),
                Err(TryRecvError::Empty) => return None,
            };
            return Some(
                self.proxy
                    .finish(item.stream, upstream)
                    .unwrap_or_else(|e| error_response(502, &format!("proxy error: {e}"))),
            );
        }
        let outcome = match self.proxy.outcome(item.stream) {
            Ok(outcome) => outcome,
            Err(e) => return Some(error_response(502, &format!("proxy error: {e}"))),
        };
        match outcome {
            Outcome::Paused => None,
            Outcome::Continued(forwarded) => {
                let call = CalloutRequest {
                    upstream: "backend".into(),
                    headers: forwarded.headers,
                    body: forwarded.body,
                    trailers: forwarded.trailers,
                    timeout: BACKEND_TIMEOUT,
                };
                match self.backend.call(&call) {
                    UpstreamReply::Pending(rx) => {
                        item.backend = Some(rx);
                        None
                    }
                    _ => Some(error_response(502, "backend call failed")),
                }
            }
            Outcome::LocalReply(reply) => {
                let _ = self.proxy.end_stream(item.stream);
                let mut headers = HeaderMap::new();
                headers.add(b":status", reply.status.to_string().as_bytes());
                for (k, v) in reply.headers.iter() {
                    headers.add(k, v);
                }
                Some(ClientResponse {
                    headers,
                    body: reply.body,
                })
            }
            Outcome::Reset => {
                let _ = self.proxy.end_stream(item.stream);
                Some(error_response(502, "stream reset by the filter"))
            }
        }
    }

    fn answer_admin(&self, client: tiny_http::Request) {
        if client.url() != "/stats" {
            respond(client, 404, &[], b"try /stats\n".to_vec());
            return;
        }
        respond(
            client,
            200,
            &[],
            stats_text(&self.proxy.metrics()).into_bytes(),
        );
    }
}

/// Envoy's `/stats` text format: one `name: value` line per metric (histograms: sample count and P50).
pub fn stats_text(metrics: &[(String, MetricValue)]) -> String {
    let mut out = String::new();
    for (name, value) in metrics {
        let line = match value {
            MetricValue::Counter(v) | MetricValue::Gauge(v) => format!("{name}: {v}\n"),
            MetricValue::Histogram(samples) => {
                let mut sorted = samples.clone();
                sorted.sort_unstable();
                let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
                format!("{name}: count={} P50={p50}\n", sorted.len())
            }
        };
        out.push_str(&line);
    }
    out
}

fn error_response(status: u16, body: &str) -> ClientResponse {
    ClientResponse {
        headers: HeaderMap::from_pairs(&[(":status", status.to_string())]),
        body: body.as_bytes().to_vec(),
    }
}

fn respond(client: tiny_http::Request, status: u16, headers: &[(Vec<u8>, Vec<u8>)], body: Vec<u8>) {
    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
    for (name, value) in headers {
        let hop = [
            b":status".as_slice(),
            b"content-length",
            b"transfer-encoding",
            b"connection",
            b"date",
            b"server",
        ];
        if hop.contains(&name.as_slice()) {
            continue;
        }
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_slice(), value.as_slice()) {
            response.add_header(header);
        }
    }
    // The client may have gone away; nothing to do then.
    let _ = client.respond(response);
}

/// The filter's log lines, as the proxy would write them.
pub fn print_logs(logs: Vec<LogEntry>) {
    for entry in logs {
        eprintln!(
            "[worker {}] {:?} {}",
            entry.worker, entry.level, entry.message
        );
    }
}
