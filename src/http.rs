//! HTTP downloads: one shared client, retries with backoff on transient
//! failures, conditional requests (ETag / Last-Modified) and hashing while
//! streaming to disk, so a file is read exactly once.

use crate::hash::{HashingWriter, Sha256Digest};
use crate::progress::Reporter;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

/// Errors of a transfer; each names the URL (credentials redacted).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to create the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("request to {url} failed after {attempts} attempt(s)")]
    Transport {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("reading the response from {url} failed")]
    Body {
        url: String,
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

impl HttpError {
    /// True when the failure is worth reporting as "the server is unreachable
    /// or broken" rather than "the server refused".
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Transport { .. } | HttpError::Body { .. } => true,
            HttpError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }
}

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

/// A shared, blocking HTTP client with retry policy.
pub struct HttpClient {
    client: reqwest::blocking::Client,
    attempts: u32,
    first_backoff: Duration,
}

impl HttpClient {
    pub fn new() -> Result<Self, HttpError> {
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("xbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(8)
            .build()
            .map_err(HttpError::Client)?;
        Ok(HttpClient {
            client,
            attempts: 4,
            first_backoff: Duration::from_millis(200),
        })
    }

    /// Sets how many attempts a transfer gets (at least one).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Downloads `url` into the file at `dest` (created or truncated on each
    /// attempt), hashing while writing. With `validators`, asks the server
    /// whether the cached copy is still current.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        validators: Option<&Validators>,
        label: &str,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, HttpError> {
        let shown = redact(url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_download(url, dest, validators, label, reporter) {
                Ok(fetched) => return Ok(fetched),
                Err(error) if error.is_transient() && attempt < self.attempts => {
                    reporter.on_retry(&shown, attempt, &error_chain(&error));
                    std::thread::sleep(self.first_backoff * 2u32.pow(attempt - 1));
                }
                Err(HttpError::Transport { url, source, .. }) => {
                    return Err(HttpError::Transport {
                        url,
                        attempts: attempt,
                        source,
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn try_download(
        &self,
        url: &str,
        dest: &Path,
        validators: Option<&Validators>,
        label: &str,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, HttpError> {
        let shown = redact(url);
        let mut request = self.client.get(url);
        if let Some(validators) = validators {
            if let Some(etag) = &validators.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &validators.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().map_err(|source| HttpError::Transport {
            url: shown.clone(),
            attempts: 1,
            source,
        })?;
        let status = response.status().as_u16();
        if status == 304 && validators.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !(200..300).contains(&status) {
            return Err(HttpError::Status { url: shown, status });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let new_validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let total = response.content_length();
        let file = fs_err::File::create(dest).map_err(|source| HttpError::Write {
            url: shown.clone(),
            path: dest.display().to_string(),
            source,
        })?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
        let id = reporter.on_download_start(label, total);
        let mut buffer = vec![0u8; 128 * 1024];
        let result = (|| {
            loop {
                let read = match response.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(HttpError::Body {
                            url: shown.clone(),
                            source,
                        });
                    }
                };
                writer
                    .write_all(&buffer[..read])
                    .map_err(|source| HttpError::Write {
                        url: shown.clone(),
                        path: dest.display().to_string(),
                        source,
                    })?;
                reporter.on_download_progress(id, read as u64);
            }
            Ok(())
        })();
        reporter.on_download_complete(id);
        result?;
        let (buffered, digest, size) = writer.finish();
        let write_error = |source: io::Error| HttpError::Write {
            url: shown.clone(),
            path: dest.display().to_string(),
            source,
        };
        let file = buffered
            .into_inner()
            .map_err(|error| write_error(error.into_error()))?;
        file.sync_data().map_err(write_error)?;
        if let Some(total) = total
            && total != size
        {
            return Err(HttpError::Body {
                url: shown,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("expected {total} bytes, got {size}"),
                ),
            });
        }
        Ok(Fetched::Body {
            digest,
            size,
            validators: new_validators,
        })
    }
}

/// Removes `user:password@` from a URL before it is printed.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme_end], &rest[at + 1..]),
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
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials_only() {
        assert_eq!(
            redact("http://user:secret@example.invalid/debian"),
            "http://***@example.invalid/debian"
        );
        assert_eq!(
            redact("http://example.invalid/a@b"),
            "http://example.invalid/a@b"
        );
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn transient_statuses_are_retried_and_client_errors_are_not() {
        let transient = HttpError::Status {
            url: "u".into(),
            status: 503,
        };
        let permanent = HttpError::Status {
            url: "u".into(),
            status: 404,
        };
        assert!(transient.is_transient());
        assert!(!permanent.is_transient());
    }
}
