//! HTTP clients for tests: plain GETs, raw bytes no well-behaved client would send, and the
//! callbacks nginx-rtmp sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A plain HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of a header the answer repeats, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A GET that follows redirects, as players do.
pub fn http_get(url: &str) -> reqwest::Result<Response> {
    get(url, reqwest::redirect::Policy::default())
}

/// A GET that returns a redirect as it is.
pub fn http_get_once(url: &str) -> reqwest::Result<Response> {
    get(url, reqwest::redirect::Policy::none())
}

fn get(url: &str, redirects: reqwest::redirect::Policy) -> reqwest::Result<Response> {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(redirects)
        .build()?
        .get(url)
        .send()?;
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: r.bytes()?.to_vec(),
    })
}

/// Sends raw bytes as a request and returns the status code nginx answered, if any. For
/// requests no well-behaved client would send.
pub fn raw_request(port: u16, request: &[u8]) -> Option<u16> {
    raw_exchange(port, request).map(|(status, _)| status)
}

/// Sends raw bytes and returns the status and the whole response, headers included.
pub fn raw_exchange(port: u16, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

/// `GET` of a path sent exactly as given (clients would normalize or escape it).
pub fn raw_get(port: u16, path: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    raw_exchange(port, &req)
}

/// A form POST to the callback location, as nginx-rtmp sends it (HTTP/1.0).
pub fn callback(port: u16, body: &[u8]) -> Option<u16> {
    let mut req = format!(
        "POST /rtmp/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request(port, &req)
}

/// Statuses of `n` GET requests to `url`, each on a fresh connection.
pub fn statuses(url: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| http_get(url).expect("request").status)
        .collect()
}
