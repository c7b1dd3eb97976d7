//! Downloads: one shared client, retries with backoff on transient
//! failures, conditional requests (ETag / Last-Modified) and hashing while
//! streaming to disk, so a file is read exactly once.
//!
//! A transfer is given up on only when it stops moving: the client waits at
//! most the idle timeout ([`DEFAULT_IDLE_TIMEOUT`], `--http-timeout` /
//! `XBUILD_HTTP_TIMEOUT`) for the response head and for each read of the
//! body, and a slow download that keeps moving is never cut off by a limit
//! on the whole request. A stall, a connection closed early, or a body
//! shorter than the size the signed index gives is transient, and retried.
//! Redirects are followed here (not inside the HTTP library), so an error
//! names the URL that failed and the one it was redirected from.
//!
//! `file://` URLs (a local mirror: apt-mirror, aptly, a `debian/` tree on
//! disk) are read from disk under the same contract: the bytes are hashed
//! while they are copied to the destination, and the caller verifies them
//! exactly as it verifies a download.

use crate::hash::{HashingWriter, Sha256Digest};
use crate::progress::Reporter;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a transfer may go without receiving anything (the response
/// head, or the next bytes of the body) before the attempt is abandoned.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest wait for a TCP connection (shorter when the idle timeout is).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 10;

/// Errors of a transfer; each names the URL (credentials redacted) and,
/// after a redirect, the URL it was redirected from.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to create the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("request to {url}{} failed", from_note(.redirected_from))]
    Transport {
        url: String,
        redirected_from: Option<String>,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}{}: no data for {} s", from_note(.redirected_from), seconds(*.idle))]
    Stalled {
        url: String,
        redirected_from: Option<String>,
        idle: Duration,
    },
    #[error("{url}{} answered HTTP {status}", from_note(.redirected_from))]
    Status {
        url: String,
        redirected_from: Option<String>,
        status: u16,
    },
    #[error("reading the response from {url}{} failed", from_note(.redirected_from))]
    Body {
        url: String,
        redirected_from: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("the transfer of {url}{} ended after {received} of {expected} bytes", from_note(.redirected_from))]
    Short {
        url: String,
        redirected_from: Option<String>,
        expected: u64,
        received: u64,
    },
    #[error("{url} is not a URL xbuild can fetch: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{url} redirects to `{location}`: {reason}")]
    BadRedirect {
        url: String,
        location: String,
        reason: &'static str,
    },
    #[error("{url} redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects { url: String },
    #[error("gave up on {url} after {attempts} attempts")]
    Retried {
        url: String,
        attempts: u32,
        #[source]
        source: Box<HttpError>,
    },
    #[error("cannot read {} (from {url})", path.display())]
    LocalRead {
        url: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the download of {url} to {path} failed")]
    Write {
        url: String,
        path: String,
        #[source]
        source: io::Error,
    },
}

fn from_note(redirected_from: &Option<String>) -> String {
    redirected_from
        .as_ref()
        .map(|from| format!(" (redirected from {from})"))
        .unwrap_or_default()
}

/// `1`, `0.5`: seconds as a person would write them.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl HttpError {
    /// True when trying again may succeed: the server is unreachable,
    /// stalled, overloaded or sent less than it should.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Transport { .. }
            | HttpError::Stalled { .. }
            | HttpError::Body { .. }
            | HttpError::Short { .. } => true,
            HttpError::Status { status, .. } => is_transient_status(*status),
            HttpError::Retried { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// True when the failure is on this machine (the download could not be
    /// written, a local mirror could not be read), not the network's.
    pub fn is_local(&self) -> bool {
        match self {
            HttpError::Write { .. } | HttpError::LocalRead { .. } => true,
            HttpError::Retried { source, .. } => source.is_local(),
            _ => false,
        }
    }

    /// True when the resource does not exist (HTTP 404, or a missing file
    /// of a local mirror): a caller with another URL for it tries that one.
    pub fn is_not_found(&self) -> bool {
        match self {
            HttpError::Status { status: 404, .. } => true,
            HttpError::LocalRead { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The innermost error, past the retry wrapper.
    pub fn last(&self) -> &HttpError {
        match self {
            HttpError::Retried { source, .. } => source.last(),
            other => other,
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> Option<String> {
        match self.last() {
            HttpError::Stalled { .. } => Some(
                "the server stopped sending; check the network and retry, or allow a slower link more time with --http-timeout SECONDS (or XBUILD_HTTP_TIMEOUT)".into(),
            ),
            HttpError::Write { path, source, .. } => Some(local_io_hint(Path::new(path), source)),
            HttpError::LocalRead { path, source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Some(format!(
                    "{} does not exist: check that the file:// repository URL names the directory holding `dists/` and `pool/`",
                    path.display()
                ))
            }
            error if error.is_transient() => {
                Some("the server failed repeatedly; check the network and retry".into())
            }
            _ => None,
        }
    }
}

pub use xbuild_cache::local_io_hint;

fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// Cache validators of a previously fetched resource.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Validators {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_modified: Option<String>,
}

/// What a download produced.
#[derive(Debug)]
pub enum Fetched {
    /// The server said the cached copy is current (HTTP 304).
    NotModified,
    /// The body was written to the destination.
    Body {
        digest: Sha256Digest,
        size: u64,
        validators: Validators,
    },
}

/// One transfer: what to fetch, where to, and what is known of it.
pub struct Download<'a> {
    pub url: &'a str,
    pub dest: &'a Path,
    /// Ask whether the cached copy is still current.
    pub validators: Option<&'a Validators>,
    /// The size the signed index gives: a shorter transfer is retried.
    pub expected_size: Option<u64>,
    /// Shown in progress.
    pub label: &'a str,
}

/// A shared, blocking HTTP client with retry policy.
pub struct HttpClient {
    /// Made at the first request: creating it reads the system's CA store
    /// (a tenth of a second), which a build that finds everything in the
    /// cache never needs.
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    idle_timeout: Duration,
    attempts: u32,
    first_backoff: Duration,
}

impl HttpClient {
    /// A client with the default idle timeout.
    pub fn new() -> Result<Self, HttpError> {
        Self::with_idle_timeout(DEFAULT_IDLE_TIMEOUT)
    }

    /// A client that abandons an attempt after `idle` without data. No
    /// connection or TLS setup happens until the first request.
    pub fn with_idle_timeout(idle: Duration) -> Result<Self, HttpError> {
        Ok(HttpClient {
            client: std::sync::OnceLock::new(),
            idle_timeout: idle,
            attempts: 4,
            first_backoff: Duration::from_millis(200),
        })
    }

    /// The reqwest client, made on first use.
    fn client(&self) -> Result<&reqwest::blocking::Client, HttpError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // The blocking client applies `timeout` to the wait for the response
        // head and to each read of the body, not to the whole transfer.
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("xbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT.min(self.idle_timeout))
            .timeout(self.idle_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(8)
            .build()
            .map_err(HttpError::Client)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Sets how many attempts a transfer gets (at least one).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Downloads `request.url` into the file at `request.dest` (created or
    /// truncated on each attempt), hashing while writing, retrying
    /// transient failures with backoff.
    pub fn download(
        &self,
        request: &Download,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, HttpError> {
        let shown = redact(request.url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_download(request, reporter) {
                Ok(fetched) => return Ok(fetched),
                Err(error) if error.is_transient() && attempt < self.attempts => {
                    reporter.on_retry(&shown, attempt, &error_chain(&error));
                    std::thread::sleep(self.first_backoff * 2u32.pow(attempt - 1));
                }
                Err(error) if error.is_transient() && attempt > 1 => {
                    return Err(HttpError::Retried {
                        url: shown,
                        attempts: attempt,
                        source: Box::new(error),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn try_download(
        &self,
        request: &Download,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, HttpError> {
        if let Some(path) = local_path(request.url) {
            return copy_local(request, &path, reporter);
        }
        let original = request.url;
        let mut current = reqwest::Url::parse(original).map_err(|error| HttpError::InvalidUrl {
            url: redact(original),
            reason: error.to_string(),
        })?;
        let mut redirects = 0;
        let mut response = loop {
            let shown = redact(current.as_str());
            let from = (current.as_str() != original).then(|| redact(original));
            let mut builder = self.client()?.get(current.clone());
            if let Some(validators) = request.validators {
                if let Some(etag) = &validators.etag {
                    builder = builder.header(reqwest::header::IF_NONE_MATCH, etag);
                }
                if let Some(modified) = &validators.last_modified {
                    builder = builder.header(reqwest::header::IF_MODIFIED_SINCE, modified);
                }
            }
            let response = builder.send().map_err(|source| {
                if source.is_timeout() && !source.is_connect() {
                    HttpError::Stalled {
                        url: shown.clone(),
                        redirected_from: from.clone(),
                        idle: self.idle_timeout,
                    }
                } else {
                    HttpError::Transport {
                        url: shown.clone(),
                        redirected_from: from.clone(),
                        // The URL is named above, redacted; reqwest's copy is not.
                        source: source.without_url(),
                    }
                }
            })?;
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                break (response, shown, from);
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(HttpError::TooManyRedirects {
                    url: redact(original),
                });
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            current =
                redirect_target(&current, &location).map_err(|reason| HttpError::BadRedirect {
                    url: shown.clone(),
                    location: redact(&location),
                    reason,
                })?;
        };
        let (ref mut response, shown, from) = response;
        let status = response.status().as_u16();
        if status == 304 && request.validators.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !(200..300).contains(&status) {
            return Err(HttpError::Status {
                url: shown,
                redirected_from: from,
                status,
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let total = response.content_length();
        let idle = self.idle_timeout;
        let read_error = |source: io::Error| {
            if is_timeout(&source) {
                HttpError::Stalled {
                    url: shown.clone(),
                    redirected_from: from.clone(),
                    idle,
                }
            } else {
                HttpError::Body {
                    url: shown.clone(),
                    redirected_from: from.clone(),
                    source,
                }
            }
        };
        let (digest, size) = stream_to_file(
            response,
            request,
            &shown,
            total.or(request.expected_size),
            read_error,
            reporter,
        )?;
        // Ended short of the length announced or of the size the signed
        // index gives: the transfer broke off, it is not other content.
        let expected = match (total, request.expected_size) {
            (Some(total), Some(expected)) => Some(total.max(expected)),
            (total, expected) => total.or(expected),
        };
        if let Some(expected) = expected
            && size < expected
        {
            return Err(HttpError::Short {
                url: shown,
                redirected_from: from,
                expected,
                received: size,
            });
        }
        Ok(Fetched::Body {
            digest,
            size,
            validators,
        })
    }
}

/// Where a redirect from `current` to `location` leads, if it may be
/// followed: to http or https, and (as apt does) never from https down to
/// http.
fn redirect_target(current: &reqwest::Url, location: &str) -> Result<reqwest::Url, &'static str> {
    match current.join(location) {
        Ok(next) if current.scheme() == "https" && next.scheme() == "http" => {
            Err("a redirect from https to http is refused")
        }
        Ok(next) if matches!(next.scheme(), "http" | "https") => Ok(next),
        _ => Err("not an http or https URL"),
    }
}

/// Whether a body read failed because nothing arrived in time.
fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// Copies `source` into `request.dest`, hashing; returns digest and size.
fn stream_to_file(
    source: &mut dyn Read,
    request: &Download,
    shown: &str,
    total: Option<u64>,
    read_error: impl Fn(io::Error) -> HttpError,
    reporter: &dyn Reporter,
) -> Result<(Sha256Digest, u64), HttpError> {
    let dest = request.dest;
    let write_error = |source: io::Error| HttpError::Write {
        url: shown.to_owned(),
        path: dest.display().to_string(),
        source,
    };
    let file = fs_err::File::create(dest).map_err(write_error)?;
    let mut writer = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
    let id = reporter.on_download_start(request.label, total);
    let mut buffer = vec![0u8; 128 * 1024];
    let result = (|| {
        loop {
            let read = match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(read_error(error)),
            };
            writer.write_all(&buffer[..read]).map_err(write_error)?;
            reporter.on_download_progress(id, read as u64);
        }
        Ok(())
    })();
    reporter.on_download_complete(id);
    result?;
    let (buffered, digest, size) = writer.finish();
    let file = buffered
        .into_inner()
        .map_err(|error| write_error(error.into_error()))?;
    file.sync_data().map_err(write_error)?;
    Ok((digest, size))
}

/// The path a `file://` URL names, if it is one.
fn local_path(url: &str) -> Option<PathBuf> {
    let parsed = reqwest::Url::parse(url).ok()?;
    (parsed.scheme() == "file")
        .then(|| parsed.to_file_path().ok())
        .flatten()
}

/// A `file://` "download": the file copied to the destination, hashed on
/// the way, so the caller verifies and stores it as it would a download.
fn copy_local(
    request: &Download,
    path: &Path,
    reporter: &dyn Reporter,
) -> Result<Fetched, HttpError> {
    let read_error = |source: io::Error| HttpError::LocalRead {
        url: request.url.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let total = file.metadata().ok().map(|metadata| metadata.len());
    let (digest, size) =
        stream_to_file(&mut file, request, request.url, total, read_error, reporter)?;
    Ok(Fetched::Body {
        digest,
        size,
        validators: Validators::default(),
    })
}

/// Checks that `url` is something [`HttpClient::download`] can fetch: an
/// `http://` or `https://` URL with a host, or a `file://` URL with an
/// absolute path, without whitespace. The error says what is wrong, with
/// credentials redacted.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("the URL is empty".to_owned());
    }
    let shown = redact(url);
    if url
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(format!(
            "`{shown}` contains whitespace or control characters"
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{shown}` is not a URL: expected http://HOST/…, https://HOST/… or file:///PATH"
        ));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" if host.is_empty() || host.starts_with(':') => {
            return Err(format!("`{shown}` has no host"));
        }
        "http" | "https" => {}
        "file" if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) => {
            return Err(format!(
                "`{shown}` names host `{authority}`; a file URL is file:///absolute/path"
            ));
        }
        "file" if !rest[authority.len()..].starts_with('/') => {
            return Err(format!("`{shown}` has no absolute path"));
        }
        "file" => {}
        other => {
            return Err(format!(
                "`{shown}` uses `{other}`; expected an http, https or file URL"
            ));
        }
    }
    reqwest::Url::parse(url).map_err(|error| format!("`{shown}` is not a valid URL: {error}"))?;
    Ok(())
}

/// Replaces the user information of a URL (`user:password@`) with `***@`,
/// before it is printed. The authority ends at the first `/`, `?` or `#`,
/// so an `@` in the path, query or fragment is left alone.
pub fn redact(url: &str) -> String {
    replace_user_information(url, "***@")
}

/// The URL without its user information (`user:password@` left out): what
/// is keyed and stored, so a credential never reaches a cache entry.
pub fn without_credentials(url: &str) -> String {
    replace_user_information(url, "")
}

fn replace_user_information(url: &str, with: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |index| authority_start + index);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{with}{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        ),
        None => url.to_owned(),
    }
}

/// One line with an error and its sources, for retry notes.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
