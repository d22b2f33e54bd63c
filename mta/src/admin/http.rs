//! Just enough HTTP/1.1 (RFC 9112) for the admin API, sans-IO: bytes in, typed values out.
//!
//! The server parses requests with [`parse_request`], which tells "read more"
//! ([`Parsed::Incomplete`]) apart from "invalid" ([`HttpError`], each with the status to answer).
//! The client writes requests with [`write_request`] and parses the whole response, read until
//! the server closes, with [`parse_response`].
//!
//! Deliberately narrow: one request per connection (`Connection: close`), bodies framed only by
//! `Content-Length` (a `Transfer-Encoding` is refused, which also rules out CL/TE smuggling),
//! lines ended by CRLF only, no obsolete line folding (RFC 9112 §5.2). Nothing here panics on
//! any input: no indexing that is not checked first.

use std::fmt;

/// Largest request head (request line and header fields, with the blank line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body; larger ones are answered `413`. Endpoints may allow more (see
/// [`parse_request_with`]).
pub const MAX_BODY: usize = 64 * 1024;

/// The outcome of parsing a buffer that may hold only the start of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole message, and how many bytes of the buffer it took.
    Complete(T, usize),
    /// The buffer ends before the message does: read more.
    Incomplete,
}

/// Why a request cannot be served; [`HttpError::status`] is the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head exceeds [`MAX_HEAD`] (RFC 6585 §5: `431`).
    HeadTooLarge,
    /// `Content-Length` exceeds the endpoint's limit (`413`).
    BodyTooLarge,
    /// The request or status line is malformed.
    BadStartLine,
    /// An HTTP version other than 1.0 or 1.1 (`505`).
    BadVersion,
    /// A header line is malformed (no colon, space before it, folding, not UTF-8).
    BadHeader,
    /// `Content-Length` is not a number, or given twice with different values
    /// (RFC 9112 §6.3 rule 5).
    BadContentLength,
    /// A `Transfer-Encoding` was sent; we frame bodies by length only (`501`).
    TransferEncoding,
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::BadVersion => 505,
            HttpError::TransferEncoding => 501,
            HttpError::BadStartLine | HttpError::BadHeader | HttpError::BadContentLength => 400,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::HeadTooLarge => "request header fields too large (16 KiB at most)",
            HttpError::BodyTooLarge => "request body too large for this endpoint (64 KiB at most; table imports 16 MiB)",
            HttpError::BadStartLine => "malformed request line",
            HttpError::BadVersion => "only HTTP/1.1 and HTTP/1.0 are supported",
            HttpError::BadHeader => "malformed header field",
            HttpError::BadContentLength => "malformed Content-Length",
            HttpError::TransferEncoding => "Transfer-Encoding is not supported; send Content-Length",
        })
    }
}

impl std::error::Error for HttpError {}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The path of the origin-form target, still percent-encoded, without any query.
    pub path: String,
    /// The query after `?`, still percent-encoded; empty without one (see [`query_pairs`]).
    pub query: String,
    /// Header fields in order; names as sent (compare them with [`Request::header`]).
    pub headers: Vec<(String, String)>,
    /// The body (empty without `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// A message's head: start line and header fields.
struct Head<'a> {
    start: &'a str,
    headers: Vec<(String, String)>,
    /// Its length in the buffer, blank line included.
    len: usize,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn header_in<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// Parse a request from the start of `buf`, with bodies up to [`MAX_BODY`].
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request>, HttpError> {
    parse_request_with(buf, &|_| MAX_BODY)
}

/// Parse a request from the start of `buf`; `body_limit` sees the request without its body
/// (method, path, headers) and says how large a body it may have, so one endpoint can take
/// more than the others without every connection being allowed to buffer that much.
pub fn parse_request_with(buf: &[u8], body_limit: &dyn Fn(&Request) -> usize) -> Result<Parsed<Request>, HttpError> {
    let Some(Head { start, headers, len: head_len }) = parse_head(buf, MAX_HEAD)? else {
        return Ok(Parsed::Incomplete);
    };
    let (method, target, version) = split3(start).ok_or(HttpError::BadStartLine)?;
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(HttpError::BadStartLine);
    }
    // Only origin-form (RFC 9112 §3.2.1): we are nobody's proxy.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::BadStartLine);
    }
    check_version(version)?;
    let len = body_length(&headers)?.unwrap_or(0);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // A fragment is never sent (RFC 9112 §3.2.1); drop one rather than take it as query.
    let query = query.split('#').next().unwrap_or_default();
    let mut request = Request { method: method.to_owned(), path: path.to_owned(), query: query.to_owned(), headers, body: Vec::new() };
    if len > body_limit(&request) {
        return Err(HttpError::BodyTooLarge);
    }
    let Some(body) = buf.get(head_len..head_len + len) else {
        return Ok(Parsed::Incomplete);
    };
    request.body = body.to_vec();
    Ok(Parsed::Complete(request, head_len + len))
}

/// Parse a whole response, read until the server closed the connection. Without
/// `Content-Length` the body is everything after the head (RFC 9112 §6.3 rule 8).
pub fn parse_response(buf: &[u8], max_body: usize) -> Result<Parsed<Response>, HttpError> {
    let Some(Head { start, headers, len: head_len }) = parse_head(buf, MAX_HEAD)? else {
        return Ok(Parsed::Incomplete);
    };
    let (version, code, _reason) = split3(start).ok_or(HttpError::BadStartLine)?;
    check_version(version)?;
    let status = match code.as_bytes() {
        [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => code.parse().map_err(|_| HttpError::BadStartLine)?,
        _ => return Err(HttpError::BadStartLine),
    };
    let rest = buf.get(head_len..).unwrap_or_default();
    let len = body_length(&headers)?.unwrap_or(rest.len());
    if len > max_body {
        return Err(HttpError::BodyTooLarge);
    }
    match rest.get(..len) {
        Some(body) => Ok(Parsed::Complete(Response { status, body: body.to_vec() }, head_len + len)),
        None => Ok(Parsed::Incomplete),
    }
}

/// Split the head off `buf`; `None` when its blank line has not arrived yet (and `max` is not
/// exceeded).
fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head<'_>>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= max { Err(HttpError::HeadTooLarge) } else { Ok(None) };
    };
    let head_len = end + 4;
    if head_len > max {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(buf.get(..end).unwrap_or_default()).map_err(|_| HttpError::BadHeader)?;
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    if start.contains(['\r', '\n']) {
        return Err(HttpError::BadStartLine);
    }
    let mut headers = Vec::new();
    for line in lines {
        // A bare CR or LF inside a line, folding (RFC 9112 §5.2) and whitespace before the
        // colon (§5.1) are all refused rather than guessed at.
        if line.contains(['\r', '\n']) || line.starts_with([' ', '\t']) {
            return Err(HttpError::BadHeader);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::BadHeader)?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HttpError::BadHeader);
        }
        headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }
    Ok(Some(Head { start, headers, len: head_len }))
}

/// `Content-Length` if present; repeated fields must agree. Any `Transfer-Encoding` is refused.
fn body_length(headers: &[(String, String)]) -> Result<Option<usize>, HttpError> {
    if header(headers, "transfer-encoding").is_some() {
        return Err(HttpError::TransferEncoding);
    }
    let mut length = None;
    for (_, value) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::BadContentLength);
            }
            // More digits than usize holds is certainly too large, not malformed.
            let n: usize = part.parse().map_err(|_| HttpError::BodyTooLarge)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn split3(line: &str) -> Option<(&str, &str, &str)> {
    let (a, rest) = line.split_once(' ')?;
    let (b, c) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((a, b, c))
}

fn check_version(version: &str) -> Result<(), HttpError> {
    match version {
        "HTTP/1.1" | "HTTP/1.0" => Ok(()),
        v if v.starts_with("HTTP/") => Err(HttpError::BadVersion),
        _ => Err(HttpError::BadStartLine),
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The reason phrase for the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A whole response: status line, the headers every answer carries, `extra` headers, body.
/// `Connection: close` because each connection serves one request. A body is JSON unless
/// `extra` names another `Content-Type`.
pub fn write_response(status: u16, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if !body.is_empty() && header_in(extra, "content-type").is_none() {
        out.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A whole request with a bearer token; `path` must already be percent-encoded. A body is
/// sent as `content_type`.
pub fn write_request(method: &str, path: &str, host: &str, token: &str, content_type: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n");
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Percent-encode a path segment: everything but RFC 3986 §2.3 unreserved characters, so
/// `/`, `%`, `?` and `@` in a user name survive the trip.
pub fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `name=value` pairs of a query, both percent-decoded (`+` is a plus sign, as our client
/// encodes spaces as `%20`); a pair without `=` has an empty value. `None` when an escape is
/// broken.
pub fn query_pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

/// Decode a percent-encoded path segment; `None` for a broken escape or a result that is
/// not UTF-8.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GET: &[u8] = b"GET /users?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc\r\n\r\n";

    fn request(buf: &[u8]) -> Request {
        match parse_request(buf) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("not a complete request: {other:?}"),
        }
    }

    #[test]
    fn a_complete_request_is_parsed() {
        let r = request(GET);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/users");
        assert_eq!(r.query, "x=1");
        assert_eq!(r.header("AUTHORIZATION"), Some("Bearer abc"));
        assert!(r.body.is_empty());
        assert_eq!(parse_request(GET), Ok(Parsed::Complete(r, GET.len())));
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let full = b"POST /users HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for n in 0..full.len() {
            assert_eq!(parse_request(&full[..n]), Ok(Parsed::Incomplete), "prefix of {n} bytes");
        }
        let r = request(full);
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn bytes_after_the_body_are_not_consumed() {
        let buf = b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET";
        match parse_request(buf).unwrap() {
            Parsed::Complete(r, used) => {
                assert_eq!(r.body, b"hi");
                assert_eq!(used, buf.len() - 3);
            }
            Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn too_long_headers_are_refused_with_or_without_the_blank_line() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse_request(&long), Err(HttpError::HeadTooLarge));
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&long), Err(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status(), 431);
        // Just under the limit is fine.
        let mut fits = b"GET / HTTP/1.1\r\nX: ".to_vec();
        fits.extend(std::iter::repeat_n(b'a', MAX_HEAD - fits.len() - 4));
        fits.extend_from_slice(b"\r\n\r\n");
        assert_eq!(fits.len(), MAX_HEAD);
        assert!(matches!(parse_request(&fits), Ok(Parsed::Complete(..))));
    }

    #[test]
    fn bad_request_lines_are_refused() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /users\r\n\r\n",
            b"GET users HTTP/1.1\r\n\r\n",
            b"GET http://x/users HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b" / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET /a\nb HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let got = parse_request(bad);
            assert!(matches!(got, Err(HttpError::BadStartLine | HttpError::BadHeader)), "{:?}: {got:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::BadVersion));
    }

    #[test]
    fn bad_header_lines_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nName : v\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\n: v\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Err(HttpError::BadHeader), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn body_length_handling() {
        let with = |cl: &str| format!("POST /users HTTP/1.1\r\n{cl}\r\n\r\n").into_bytes();
        assert_eq!(parse_request(&with("Content-Length: x")), Err(HttpError::BadContentLength));
        assert_eq!(parse_request(&with("Content-Length: -1")), Err(HttpError::BadContentLength));
        assert_eq!(parse_request(&with("Content-Length: 1\r\nContent-Length: 2")), Err(HttpError::BadContentLength));
        assert_eq!(parse_request(&with("Content-Length: 3, 4")), Err(HttpError::BadContentLength));
        assert_eq!(parse_request(&with("Transfer-Encoding: chunked")), Err(HttpError::TransferEncoding));
        assert_eq!(parse_request(&with(&format!("Content-Length: {}", MAX_BODY + 1))), Err(HttpError::BodyTooLarge));
        assert_eq!(parse_request(&with("Content-Length: 99999999999999999999999999")), Err(HttpError::BodyTooLarge));
        assert_eq!(HttpError::BodyTooLarge.status(), 413);
        // Agreeing repeats are one length (RFC 9112 §6.3); the body is then still awaited.
        assert_eq!(parse_request(&with("Content-Length: 2\r\ncontent-length: 2")), Ok(Parsed::Incomplete));
        assert_eq!(parse_request(&with(&format!("Content-Length: {MAX_BODY}"))), Ok(Parsed::Incomplete));
        let mut max = with(&format!("Content-Length: {MAX_BODY}"));
        max.extend(std::iter::repeat_n(b'x', MAX_BODY));
        assert_eq!(request(&max).body.len(), MAX_BODY);
    }

    #[test]
    fn an_endpoint_may_allow_a_larger_body() {
        let big = |path: &str| {
            let mut wire = format!("POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes();
            wire.extend(std::iter::repeat_n(b'x', MAX_BODY + 1));
            wire
        };
        let limit = |r: &Request| if r.path == "/big" { 2 * MAX_BODY } else { MAX_BODY };
        assert!(matches!(parse_request_with(&big("/big"), &limit), Ok(Parsed::Complete(r, _)) if r.body.len() == MAX_BODY + 1));
        assert_eq!(parse_request_with(&big("/small"), &limit), Err(HttpError::BodyTooLarge));
        // The limit is applied from the head alone, before the body arrives.
        let head = format!("POST /small HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(parse_request_with(head.as_bytes(), &limit), Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn a_response_may_name_its_content_type() {
        let text = String::from_utf8(write_response(200, &[("Content-Type", "text/csv; charset=utf-8")], b"a,b\n")).unwrap();
        assert!(text.contains("Content-Type: text/csv; charset=utf-8\r\n") && !text.contains("application/json"), "{text}");
    }

    #[test]
    fn responses_round_trip() {
        let wire = write_response(409, &[("Allow", "GET")], br#"{"error":"x"}"#);
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 409 Conflict\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        match parse_response(&wire, 100).unwrap() {
            Parsed::Complete(r, used) => {
                assert_eq!((r.status, r.body.as_slice(), used), (409, &br#"{"error":"x"}"#[..], wire.len()));
            }
            Parsed::Incomplete => panic!("incomplete"),
        }
        assert_eq!(parse_response(&wire[..wire.len() - 1], 100), Ok(Parsed::Incomplete));
        assert_eq!(parse_response(&wire, 3), Err(HttpError::BodyTooLarge));
        // Without Content-Length the body runs to the end.
        assert!(matches!(parse_response(b"HTTP/1.0 200 OK\r\n\r\nall", 100), Ok(Parsed::Complete(Response { status: 200, .. }, 22))));
        assert_eq!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n", 100), Err(HttpError::BadStartLine));
        assert_eq!(parse_response(b"HTTP/1.1 +20 OK\r\n\r\n", 100), Err(HttpError::BadStartLine));
    }

    #[test]
    fn requests_written_by_the_client_parse_on_the_server() {
        let wire = write_request("POST", "/users", "127.0.0.1:8025", "t0k", "application/json", Some(b"{}"));
        let r = request(&wire);
        assert_eq!((r.method.as_str(), r.path.as_str(), r.body.as_slice()), ("POST", "/users", &b"{}"[..]));
        assert_eq!(r.header("authorization"), Some("Bearer t0k"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn percent_encoding_round_trips_and_rejects_broken_escapes() {
        for name in ["alice@example.com", "we%ird/na?me#x", "ünï", ""] {
            let enc = percent_encode(name);
            assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{enc}");
            assert_eq!(percent_decode(&enc).as_deref(), Some(name));
        }
        assert_eq!(percent_encode("a@b"), "a%40b");
        assert_eq!(percent_decode("a%4"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%"), None);
    }

    #[test]
    fn queries_are_split_and_decoded() {
        let r = request(b"GET /history?rcpt=Bob%40remote.example&since=2h&&flag#frag HTTP/1.1\r\n\r\n");
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/history", "rcpt=Bob%40remote.example&since=2h&&flag"));
        let pairs = query_pairs(&r.query).unwrap();
        let want = [("rcpt", "Bob@remote.example"), ("since", "2h"), ("flag", "")];
        assert_eq!(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>(), want);
        assert_eq!(query_pairs("a+b=c+d").unwrap(), vec![("a+b".to_owned(), "c+d".to_owned())]);
        assert_eq!(query_pairs("").unwrap(), vec![]);
        assert_eq!(query_pairs("rcpt=%zz"), None);
        assert_eq!(request(b"GET /users HTTP/1.1\r\n\r\n").query, "");
    }

    #[test]
    fn no_input_panics() {
        // Every truncation and single-byte corruption of a valid request; a cheap stand-in for
        // the fuzz target.
        let base = b"PUT /users/a%40b/password HTTP/1.1\r\nContent-Length: 4\r\nAuthorization: Bearer x\r\n\r\n{}{}";
        for i in 0..base.len() {
            let _ = parse_request(&base[..i]);
            for b in [0u8, b'\r', b'\n', b' ', b':', b'%', 0xff] {
                let mut v = base.to_vec();
                v[i] = b;
                let _ = parse_request(&v);
                let _ = parse_response(&v, 10);
            }
        }
        let _ = percent_decode("%\u{e9}");
    }
}
