//! wasi:http plumbing: read bodies with a limit, send a request and wait for its response.

use std::io::{Read, Write};

use revguard::http::HttpRequest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};

/// Headers a wasi:http host refuses to take from a guest (hop-by-hop, and `host`, which it derives
/// from the authority).
const FORBIDDEN: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
    "te",
];

/// A response read into memory.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// Why an outbound call failed (the core treats every one as "unreachable").
#[derive(Debug)]
pub enum SendError {
    Http(ErrorCode),
    BadRequest(&'static str),
    Body(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Http(code) => write!(f, "upstream call failed: {code:?}"),
            SendError::BadRequest(what) => write!(f, "request not accepted by the host: {what}"),
            SendError::Body(why) => write!(f, "body: {why}"),
        }
    }
}

/// Reads a whole body, at most `limit` bytes (one more byte marks it as too large).
pub fn read_body(body: IncomingBody, limit: usize) -> Result<Vec<u8>, SendError> {
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| SendError::Body("stream taken".into()))?;
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        stream
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| SendError::Body(format!("read: {e}")))?;
    }
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Writes `bytes` as the whole body.
pub fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), SendError> {
    {
        let mut stream = body
            .write()
            .map_err(|()| SendError::Body("stream taken".into()))?;
        // No flush: once a framed body is complete the host closes the stream; `finish` ends it.
        stream
            .write_all(bytes)
            .map_err(|e| SendError::Body(format!("write: {e}")))?;
    }
    OutgoingBody::finish(body, None).map_err(SendError::Http)
}

/// Header fields without the ones a host refuses.
pub fn fields(headers: &[(String, Vec<u8>)]) -> Fields {
    let fields = Fields::new();
    for (name, value) in headers {
        if !FORBIDDEN.contains(&name.as_str()) {
            // A name or value the host finds invalid is left out rather than failing the call.
            let _ = fields.append(name, value);
        }
    }
    fields
}

pub fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

/// Sends `method authority path` over plain HTTP and reads the response (body up to `limit`).
pub fn send(
    method: &Method,
    authority: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    timeout_ms: u64,
    limit: usize,
) -> Result<Response, SendError> {
    // The body is sent whole: its length frames it (a client's own length header is dropped).
    let mut headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| name != "content-length")
        .cloned()
        .collect();
    if !body.is_empty() {
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let request = OutgoingRequest::new(fields(&headers));
    request
        .set_method(method)
        .map_err(|()| SendError::BadRequest("method"))?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| SendError::BadRequest("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| SendError::BadRequest("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| SendError::BadRequest("path"))?;
    let outgoing = request
        .body()
        .map_err(|()| SendError::Body("body taken".into()))?;
    let options = RequestOptions::new();
    let timeout_ns = timeout_ms.saturating_mul(1_000_000);
    // A host that does not support a timeout keeps its own default.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let future = outgoing_handler::handle(request, Some(options)).map_err(SendError::Http)?;
    write_body(outgoing, body)?;
    Pending { future }.wait(limit)
}

/// A request sent whose response has not been read yet.
pub struct Pending {
    future: FutureIncomingResponse,
}

impl Pending {
    /// Blocks until the response is in, then reads it (body up to `limit`).
    pub fn wait(self, limit: usize) -> Result<Response, SendError> {
        loop {
            if let Some(answer) = self.poll(limit) {
                return answer;
            }
            self.future.subscribe().block();
        }
    }

    /// The response if it is in (then read, body up to `limit`), `None` while it is not:
    /// never blocks on the response head.
    pub fn poll(&self, limit: usize) -> Option<Result<Response, SendError>> {
        // `ready` never blocks; it is what lets the host move the response in (wasmtime's
        // `future-incoming-response.get` alone reports a pending call until it is polled).
        if !self.future.subscribe().ready() {
            return None;
        }
        Some(match self.future.get()? {
            Ok(Ok(response)) => read_response(response, limit),
            Ok(Err(code)) => Err(SendError::Http(code)),
            Err(()) => Err(SendError::BadRequest("response already taken")),
        })
    }
}

/// Starts a request the core asked for and returns without waiting for its response (a held
/// fetch: the origin answers when the data changes, up to `hold_secs` later).
pub fn start_core(request: &HttpRequest) -> Result<Pending, SendError> {
    let (method, path, headers) = core_parts(request);
    let outgoing = OutgoingRequest::new(fields(&headers));
    outgoing
        .set_method(&method)
        .map_err(|()| SendError::BadRequest("method"))?;
    outgoing
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| SendError::BadRequest("scheme"))?;
    outgoing
        .set_authority(Some(&request.upstream))
        .map_err(|()| SendError::BadRequest("authority"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| SendError::BadRequest("path"))?;
    let body = outgoing
        .body()
        .map_err(|()| SendError::Body("body taken".into()))?;
    let options = RequestOptions::new();
    let timeout_ns = request.timeout_ms.saturating_mul(1_000_000);
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(SendError::Http)?;
    write_body(body, &[])?;
    Ok(Pending { future })
}

fn core_parts(request: &HttpRequest) -> (Method, &str, Vec<(String, Vec<u8>)>) {
    let method = method(request.header(":method").unwrap_or("GET"));
    let path = request.header(":path").unwrap_or("/");
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
        .collect();
    (method, path, headers)
}

fn read_response(response: IncomingResponse, limit: usize) -> Result<Response, SendError> {
    let status = response.status();
    let headers = response.headers().entries();
    let etag = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("etag"))
        .and_then(|(_, value)| String::from_utf8(value.clone()).ok());
    let body = response
        .consume()
        .map_err(|()| SendError::Body("response body taken".into()))?;
    let body = read_body(body, limit)?;
    Ok(Response {
        status,
        headers,
        etag,
        body,
    })
}

/// Sends a request the core asked for (key set, snapshot, delta, introspection). `upstream` is
/// the `host:port` to connect to; the pseudo-headers give method and path.
pub fn send_core(request: &HttpRequest, limit: usize) -> Result<Response, SendError> {
    let (method, path, headers) = core_parts(request);
    send(
        &method,
        &request.upstream,
        path,
        &headers,
        &request.body,
        request.timeout_ms,
        limit,
    )
}
