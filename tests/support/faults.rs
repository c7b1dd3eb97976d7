//! A fault-injecting HTTP/1.1 file server on `127.0.0.1:0`, for the
//! network-fault tests. It serves a directory like [`super::server`] (GET
//! only, `Connection: close` on every answer, no validators), except that a
//! request whose path contains a rule's pattern gets that rule's fault, as
//! many times as the rule says:
//!
//! - [`Fault::Stall`]: send the head and the first bytes of the body, then
//!   nothing for a while, or until the server is dropped;
//! - [`Fault::Truncate`]: a true `Content-Length`, then fewer bytes, then
//!   the connection is closed;
//! - [`Fault::ShortLength`]: a `Content-Length` (and body) shorter than the
//!   file: a well-formed response that ends too soon;
//! - [`Fault::Trickle`]: the whole body, a few bytes at a time with pauses,
//!   slow but always moving;
//! - [`Fault::Redirect`]: a 302 to another URL (e.g. a closed port);
//! - [`Fault::Status`]: an error status such as 503.
//!
//! Every request is logged with the fault it got. Dropping the server stops
//! it, and ends the stalls in progress.

use std::fs;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a matching request gets instead of a plain answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Send `after_bytes` of the body, then nothing for `seconds`
    /// (`None`: until the server is dropped), then the rest.
    Stall {
        after_bytes: usize,
        seconds: Option<u64>,
    },
    /// Announce the full length, send `bytes` of the body, close.
    Truncate { bytes: usize },
    /// Announce and send only `bytes` of the body: a complete, short answer.
    ShortLength { bytes: usize },
    /// Send `chunk` bytes every `pause`, until the body is complete.
    Trickle { chunk: usize, pause: Duration },
    /// Answer 302 with this `Location`.
    Redirect(String),
    /// Answer with this status and a short text body.
    Status(u16),
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    /// The fault it got, `None` for a plain answer.
    pub fault: Option<Fault>,
    /// Status sent (200 also for most faults).
    pub status: u16,
}

struct Rule {
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

struct State {
    root: PathBuf,
    stop: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Request>>,
}

pub struct FaultServer {
    address: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Starts serving `root` on a free loopback port, with no rules yet.
    pub fn serve(root: &Path) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(State {
            root: root.to_path_buf(),
            stop: AtomicBool::new(false),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept_thread = thread::Builder::new()
            .name(format!("faults-{}", address.port()))
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
            .expect("spawn fault server thread");
        FaultServer {
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

    /// The next `count` requests whose path contains `pattern` get `fault`
    /// (`usize::MAX`: every one). Rules are tried in the order added.
    pub fn inject(&self, pattern: &str, fault: Fault, count: usize) {
        self.state.rules.lock().unwrap().push(Rule {
            path_contains: pattern.to_owned(),
            fault,
            remaining: count,
        });
    }

    /// Drops every rule: from now on, plain answers.
    pub fn heal(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// The requests whose path contains `pattern`.
    pub fn requests_for(&self, pattern: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.contains(pattern))
            .collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback URL nothing listens on (a port bound and released).
pub fn closed_port_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/{}", path.trim_start_matches('/'))
}

fn take_fault(state: &State, path: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|rule| rule.remaining > 0 && path.contains(&rule.path_contains))?;
    rule.remaining = rule.remaining.saturating_sub(1);
    Some(rule.fault.clone())
}

fn serve_connection(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts
        .next()
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let fault = take_fault(state, &path);
    let log = |status: u16| {
        state.log.lock().unwrap().push(Request {
            path: path.clone(),
            fault: fault.clone(),
            status,
        });
    };
    if method != "GET" {
        log(405);
        return answer(&mut writer, 405, &[], b"only GET\n");
    }
    match &fault {
        Some(Fault::Status(status)) => {
            log(*status);
            return answer(&mut writer, *status, &[], b"failing on purpose\n");
        }
        Some(Fault::Redirect(location)) => {
            log(302);
            return answer(&mut writer, 302, &[("Location", location.as_str())], b"");
        }
        _ => {}
    }
    let relative = path.trim_start_matches('/');
    let file = state.root.join(relative);
    let body = match fs::read(&file) {
        Ok(body) if !relative.split('/').any(|part| part == "..") => body,
        _ => {
            log(404);
            return answer(&mut writer, 404, &[], b"not found\n");
        }
    };
    log(200);
    let head = |length: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    match fault {
        None => {
            writer.write_all(head(body.len()).as_bytes())?;
            writer.write_all(&body)?;
        }
        Some(Fault::Stall {
            after_bytes,
            seconds,
        }) => {
            let split = after_bytes.min(body.len());
            writer.write_all(head(body.len()).as_bytes())?;
            writer.write_all(&body[..split])?;
            writer.flush()?;
            let deadline = seconds.map(|seconds| Instant::now() + Duration::from_secs(seconds));
            while deadline.is_none_or(|deadline| Instant::now() < deadline) {
                if state.stop.load(Ordering::SeqCst) {
                    let _ = writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(50));
            }
            writer.write_all(&body[split..])?;
        }
        Some(Fault::Truncate { bytes }) => {
            writer.write_all(head(body.len()).as_bytes())?;
            writer.write_all(&body[..bytes.min(body.len())])?;
        }
        Some(Fault::ShortLength { bytes }) => {
            let bytes = bytes.min(body.len());
            writer.write_all(head(bytes).as_bytes())?;
            writer.write_all(&body[..bytes])?;
        }
        Some(Fault::Trickle { chunk, pause }) => {
            writer.write_all(head(body.len()).as_bytes())?;
            for piece in body.chunks(chunk.max(1)) {
                writer.write_all(piece)?;
                writer.flush()?;
                thread::sleep(pause);
            }
        }
        Some(Fault::Status(_) | Fault::Redirect(_)) => unreachable!("answered above"),
    }
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

fn answer(
    writer: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        302 => "Found",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}
