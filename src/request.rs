//! The request as the core sees it: method, path and headers, borrowed from the host.

/// Longest `x-request-id` copied into a log line.
const MAX_REQUEST_ID: usize = 128;

/// One HTTP request's view. Header names are expected lowercase (HTTP/2 style, as proxies
/// deliver them); values are raw bytes because clients may send anything.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The request target: path plus optional `?query`.
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> RequestView<'a> {
    /// Every value of header `name` (ASCII case-insensitive).
    pub fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Every value of header `name` under every spelling a backend folds into it: letter case,
    /// and `_` for `-` (CGI/WSGI variables, and Envoy passes underscores by default). `name` is
    /// lowercase with `-`, as configuration validation guarantees.
    pub fn header_values_folded(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| same_header(n, name))
            .map(|(_, v)| *v)
    }

    /// `x-request-id`, printable ASCII only and bounded, for log lines.
    pub fn request_id(&self) -> Option<String> {
        let value = self.header_values("x-request-id").next()?;
        let id: String = value
            .iter()
            .take(MAX_REQUEST_ID)
            .filter(|b| b.is_ascii_graphic())
            .map(|b| char::from(*b))
            .collect();
        (!id.is_empty()).then_some(id)
    }

    /// The path without the query string.
    pub fn path_only(&self) -> &'a str {
        self.path.split_once('?').map_or(self.path, |(p, _)| p)
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.path.split_once('?').map(|(_, q)| q)
    }
}

/// `a` and `b` name the same header for some backend: equal ignoring ASCII case and `_`/`-`.
pub fn same_header(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}
