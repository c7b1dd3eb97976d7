//! The HTTP layer the `http(s)://` and `oci://` backends share: one
//! blocking client per remote (made at the first request), retries of
//! transient failures with backoff (honouring `Retry-After`, capped), and
//! the mapping of failures to [`RemoteError`]s that name the redacted URL.
//!
//! Timeouts: a connection must open within the connect timeout, and the
//! response head and each read of a body must arrive within the idle
//! timeout. A read ([`Transport::send_within`], [`copy_body`],
//! [`read_small`]) is also bounded as a whole by its [`Deadline`], retries
//! included, since the idle timeout re-arms on every byte. An upload is
//! given the idle timeout plus the time its body takes at
//! [`UPLOAD_FLOOR_BYTES_PER_SECOND`], since the client bounds the whole
//! request.

use super::{Deadline, RemoteConfig, RemoteError};
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::io::{self, Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// Attempts per request (first try included).
const ATTEMPTS: u32 = 3;
/// The wait before the second attempt; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The slowest upload rate tolerated before an upload times out.
pub(crate) const UPLOAD_FLOOR_BYTES_PER_SECOND: u64 = 256 * 1024;

pub(crate) struct Transport {
    client: OnceLock<Client>,
    /// Held while the client is made, so threads starting at once make one
    /// (each loads the CA certificates: tens of milliseconds).
    making: std::sync::Mutex<()>,
    extra_ca: Option<std::path::PathBuf>,
    /// Whether the system's CA certificates are loaded (not for a remote
    /// spoken to in plain HTTP: loading them costs tens of milliseconds).
    system_roots: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
    pool: usize,
}

impl Transport {
    pub(crate) fn new(config: &RemoteConfig) -> Transport {
        Transport {
            client: OnceLock::new(),
            making: std::sync::Mutex::new(()),
            extra_ca: config.extra_ca.clone(),
            system_roots: true,
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            pool: config.jobs.max(config.check_jobs),
        }
    }

    /// For a remote spoken to in plain HTTP: no CA certificates loaded.
    pub(crate) fn plain(mut self) -> Transport {
        self.system_roots = false;
        self
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The time an upload of `size` bytes may take.
    pub(crate) fn upload_timeout(&self, size: u64) -> Duration {
        self.idle_timeout + Duration::from_secs(size / UPLOAD_FLOOR_BYTES_PER_SECOND)
    }

    pub(crate) fn client(&self, shown_url: &str) -> Result<&Client, RemoteError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let _making = self
            .making
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // Registries redirect blob reads to storage. A redirect to another
        // host drops the Authorization header (reqwest does that); one from
        // https down to http is refused, so nothing sent encrypted is ever
        // sent in the clear.
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt.url().scheme() == "http"
                && attempt
                    .previous()
                    .last()
                    .is_some_and(|previous| previous.scheme() == "https");
            if downgrade {
                attempt.error("a redirect from https to http is refused")
            } else if attempt.previous().len() > 5 {
                attempt.error("more than 5 redirects")
            } else {
                attempt.follow()
            }
        });
        let mut builder = Client::builder()
            .user_agent(concat!("xbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .timeout(self.idle_timeout)
            .redirect(redirect)
            .pool_max_idle_per_host(self.pool);
        if let Some(path) = &self.extra_ca {
            let credentials = |reason: String| RemoteError::Credentials {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|error| credentials(error.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| credentials(format!("no PEM certificates: {error}")))?;
            if certificates.is_empty() {
                return Err(credentials("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        if !self.system_roots {
            builder = builder.tls_certs_only(Vec::new());
        }
        let client = builder.build().map_err(|source| RemoteError::Client {
            url: shown_url.to_owned(),
            source: source.without_url(),
        })?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The deadline of a document read (an envelope, a manifest, a token)
    /// or an existence check starting now.
    pub(crate) fn document_deadline(&self) -> Deadline {
        Deadline::for_document(self.idle_timeout)
    }

    /// The deadline of a read of `size` declared bytes starting now.
    pub(crate) fn deadline_for(&self, size: u64) -> Deadline {
        Deadline::for_size(self.idle_timeout, size)
    }

    /// Sends the request `build` makes (made again for each attempt, so a
    /// file body is reopened), retrying transport failures and transient
    /// statuses. Returns the last response whatever its status; the caller
    /// decides what a status means.
    pub(crate) fn send(
        &self,
        method: &'static str,
        shown_url: &str,
        build: impl Fn(&Client) -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Response, RemoteError> {
        self.send_within(method, shown_url, None, build)
    }

    /// [`Transport::send`] for a read: no attempt starts past `deadline`.
    pub(crate) fn send_within(
        &self,
        method: &'static str,
        shown_url: &str,
        deadline: Option<&Deadline>,
        build: impl Fn(&Client) -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Response, RemoteError> {
        let mut attempt = 1;
        loop {
            if let Some(deadline) = deadline {
                deadline.check(method, shown_url)?;
            }
            let request = build(self.client(shown_url)?)?;
            let result = request
                .send()
                .map_err(|source| self.transport_error(method, shown_url, source));
            let retry_after = match &result {
                Ok(response) if is_transient_status(response.status().as_u16()) => {
                    Some(retry_after(response))
                }
                // A refused connection is not retried: the remote is down.
                Err(RemoteError::Transport { source, .. }) if source.is_connect() => None,
                Err(error) if error.is_transient() => Some(None),
                _ => None,
            };
            let backoff = FIRST_BACKOFF * 2u32.pow(attempt - 1);
            let wait = retry_after.map(|wait| wait.unwrap_or(backoff).min(MAX_RETRY_AFTER));
            match wait {
                // No retry that would start past the deadline: the last
                // failure is the one to report.
                Some(wait)
                    if attempt < ATTEMPTS
                        && deadline.is_none_or(|deadline| deadline.remaining() > wait) =>
                {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    pub(crate) fn transport_error(
        &self,
        method: &'static str,
        shown_url: &str,
        source: reqwest::Error,
    ) -> RemoteError {
        if source.is_timeout() && !source.is_connect() {
            RemoteError::Timeout {
                method,
                url: shown_url.to_owned(),
                idle: self.idle_timeout,
            }
        } else {
            RemoteError::Transport {
                method,
                url: shown_url.to_owned(),
                // The URL is named, redacted; reqwest's copy is not.
                source: source.without_url(),
            }
        }
    }
}

fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The error for a response with an unexpected status, with what the
/// server said about it: a registry's first error code and message, or
/// the first line of a text body (at most 200 characters).
pub(crate) fn status_error(
    method: &'static str,
    shown_url: &str,
    response: Response,
) -> RemoteError {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let _ = response.take(16 * 1024).read_to_end(&mut body);
    RemoteError::Status {
        method,
        url: shown_url.to_owned(),
        status,
        detail: describe_body(&body),
    }
}

fn describe_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(errors) => match errors.errors.first() {
            Some(first) => format!("{} {}", first.code, first.message),
            None => String::new(),
        },
        Err(_) if body.starts_with(b"<") => String::new(), // an HTML error page
        Err(_) => String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.chars().take(200).collect::<String>())
    }
}

/// Streams a response body into `sink`, abandoning it past `deadline`;
/// returns the bytes copied.
pub(crate) fn copy_body(
    transport: &Transport,
    mut response: Response,
    shown_url: &str,
    sink: &mut dyn Write,
    deadline: &Deadline,
) -> Result<u64, RemoteError> {
    let mut buffer = vec![0u8; 128 * 1024];
    let mut copied = 0u64;
    loop {
        deadline.check("GET", shown_url)?;
        let read = match response.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if is_timeout(&error) => {
                return Err(RemoteError::Timeout {
                    method: "GET",
                    url: shown_url.to_owned(),
                    idle: transport.idle_timeout(),
                });
            }
            Err(source) => {
                return Err(RemoteError::Body {
                    url: shown_url.to_owned(),
                    source,
                });
            }
        };
        sink.write_all(&buffer[..read])
            .map_err(|source| RemoteError::Sink {
                url: shown_url.to_owned(),
                source,
            })?;
        copied += read as u64;
    }
}

/// Reads a small response body whole (a manifest, an envelope, a token)
/// within `deadline`, refusing one larger than `limit` (unread when its
/// `Content-Length` says so); `what` says what the limit is, for the error.
pub(crate) fn read_small(
    transport: &Transport,
    response: Response,
    shown_url: &str,
    limit: u64,
    what: &'static str,
    deadline: &Deadline,
) -> Result<Vec<u8>, RemoteError> {
    let too_large = || RemoteError::TooLarge {
        url: shown_url.to_owned(),
        limit,
        what,
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let mut sink = LimitedSink {
        bytes: Vec::new(),
        limit,
        over: false,
    };
    match copy_body(transport, response, shown_url, &mut sink, deadline) {
        Ok(_) => Ok(sink.bytes),
        Err(_) if sink.over => Err(too_large()),
        Err(error) => Err(error),
    }
}

/// Bytes in memory, at most `limit` of them: a write past it fails (and
/// sets `over`), so a sender that does not stop is cut off.
pub(crate) struct LimitedSink {
    pub(crate) bytes: Vec<u8>,
    pub(crate) limit: u64,
    pub(crate) over: bool,
}

impl Write for LimitedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.bytes.len() + buf.len()) as u64 > self.limit {
            self.over = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {} bytes", self.limit),
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_and_text_bodies_are_summarised() {
        let registry =
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        assert_eq!(
            describe_body(registry),
            ": BLOB_UNKNOWN blob unknown to registry"
        );
        assert_eq!(describe_body(b"disk full\nmore"), ": disk full");
        assert_eq!(describe_body(b"<html><body>500</body></html>"), "");
        assert_eq!(describe_body(b""), "");
    }
}
