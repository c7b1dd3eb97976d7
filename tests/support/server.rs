//! A small HTTP/1.1 file server on `127.0.0.1:0`, one thread per
//! connection, serving a directory read from disk on every request (so a
//! test can change served bytes between builds).
//!
//! It answers GET and HEAD with `ETag` (sha256 of the content) and
//! `Last-Modified`, honours `If-None-Match` and `If-Modified-Since` with 304,
//! keeps connections alive, logs every request for the test to inspect, and
//! can be told to fail the next N (matching) requests with 503. Dropping the
//! [`Server`] stops it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::dates;

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    pub status: u16,
    /// The request carried `If-None-Match` or `If-Modified-Since`.
    pub conditional: bool,
    /// Body bytes sent.
    pub bytes: u64,
}

struct FailRule {
    /// Only paths containing this fail; `None` matches every path.
    path_contains: Option<String>,
    remaining: usize,
}

struct State {
    root: PathBuf,
    stop: AtomicBool,
    log: Mutex<Vec<Request>>,
    failures: Mutex<Vec<FailRule>>,
}

pub struct Server {
    address: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `root` on a free loopback port.
    pub fn serve(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(State {
            root: root.to_path_buf(),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept_thread = thread::Builder::new()
            .name(format!("http-{}", address.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let connection_state = Arc::clone(&accept_state);
                    thread::spawn(move || {
                        let _ = serve_connection(stream, &connection_state);
                    });
                }
            })
            .expect("spawn server thread");
        Server {
            address,
            state,
            accept_thread: Some(accept_thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `http://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Every request so far, in order of completion.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// The next `count` requests, whatever their path, get a 503.
    pub fn fail_next(&self, count: usize) {
        self.state.failures.lock().unwrap().push(FailRule {
            path_contains: None,
            remaining: count,
        });
    }

    /// The next `count` requests whose path contains `pattern` get a 503.
    pub fn fail_next_matching(&self, pattern: &str, count: usize) {
        self.state.failures.lock().unwrap().push(FailRule {
            path_contains: Some(pattern.to_owned()),
            remaining: count,
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a line, riding out read timeouts (used to poll the stop flag).
/// `Ok(false)` at end of stream or when the server stops.
fn read_line(
    reader: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    state: &State,
) -> io::Result<bool> {
    line.clear();
    let mut idle_polls = 0;
    loop {
        match reader.read_until(b'\n', line) {
            Ok(0) => return Ok(false),
            Ok(_) if line.ends_with(b"\n") => return Ok(true),
            Ok(_) => return Ok(false),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                idle_polls += 1;
                // Stop on request, or after two idle minutes.
                if state.stop.load(Ordering::SeqCst) || idle_polls > 600 {
                    return Ok(false);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn serve_connection(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        if !read_line(&mut reader, &mut line, state)? {
            break;
        }
        let request_line = String::from_utf8_lossy(&line).trim_end().to_owned();
        if request_line.is_empty() {
            continue;
        }
        let mut headers = HashMap::new();
        loop {
            if !read_line(&mut reader, &mut line, state)? {
                return Ok(());
            }
            let header = String::from_utf8_lossy(&line).trim_end().to_owned();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/");
        let version = parts.next().unwrap_or("HTTP/1.0");
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let close = headers
            .get("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
            || (version == "HTTP/1.0"
                && !headers
                    .get("connection")
                    .is_some_and(|value| value.eq_ignore_ascii_case("keep-alive")));

        let response = respond(state, &method, &path, &headers);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            response.status,
            reason(response.status)
        );
        // A 304 has no body and no Content-Length.
        if response.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
        }
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        writer.write_all(head.as_bytes())?;
        let send_body = method != "HEAD";
        if send_body {
            writer.write_all(&response.body)?;
        }
        writer.flush()?;
        state.log.lock().unwrap().push(Request {
            method,
            path,
            status: response.status,
            conditional: headers.contains_key("if-none-match")
                || headers.contains_key("if-modified-since"),
            bytes: if send_body {
                response.body.len() as u64
            } else {
                0
            },
        });
        if close {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn text(status: u16, message: &str) -> Response {
    Response {
        status,
        headers: vec![("Content-Type", "text/plain".to_owned())],
        body: message.as_bytes().to_vec(),
    }
}

fn should_fail(state: &State, path: &str) -> bool {
    let mut failures = state.failures.lock().unwrap();
    for rule in failures.iter_mut() {
        let matches = rule
            .path_contains
            .as_deref()
            .is_none_or(|pattern| path.contains(pattern));
        if matches && rule.remaining > 0 {
            rule.remaining -= 1;
            return true;
        }
    }
    false
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = path.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

fn respond(state: &State, method: &str, path: &str, headers: &HashMap<String, String>) -> Response {
    if should_fail(state, path) {
        return text(503, "failing on purpose\n");
    }
    if method != "GET" && method != "HEAD" {
        return text(405, "only GET and HEAD\n");
    }
    let Some(decoded) = percent_decode(path) else {
        return text(400, "bad path\n");
    };
    let relative = decoded.trim_start_matches('/');
    if relative.split('/').any(|segment| segment == "..") {
        return text(400, "bad path\n");
    }
    let file = state.root.join(relative);
    if !file.is_file() {
        return text(404, "not found\n");
    }
    let (Ok(body), Ok(metadata)) = (fs::read(&file), fs::metadata(&file)) else {
        return text(404, "not found\n");
    };
    let modified = metadata.modified().map(dates::unix_seconds).unwrap_or(0);
    let etag = format!("\"{}\"", &super::archive::sha256_hex(&body)[..32]);
    let last_modified = dates::http_date(std::time::UNIX_EPOCH + Duration::from_secs(modified));
    let not_modified = if let Some(if_none_match) = headers.get("if-none-match") {
        if_none_match
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == etag)
    } else if let Some(if_modified_since) = headers.get("if-modified-since") {
        dates::parse_http_date(if_modified_since).is_some_and(|since| modified <= since)
    } else {
        false
    };
    let validators = vec![("ETag", etag), ("Last-Modified", last_modified)];
    if not_modified {
        return Response {
            status: 304,
            headers: validators,
            body: Vec::new(),
        };
    }
    let mut response_headers = validators;
    response_headers.push(("Content-Type", "application/octet-stream".to_owned()));
    Response {
        status: 200,
        headers: response_headers,
        body,
    }
}
