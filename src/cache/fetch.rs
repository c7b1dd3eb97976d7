//! Fetching a blob whose digest is known in advance (a `Packages` index
//! listed in a signed Release, a `.deb` listed in a verified index): at most
//! one download per cache, even across processes, and nothing enters the
//! cache unless its bytes match the expected digest and size.

use super::{Cache, CacheError};
use crate::hash::Sha256Digest;
use crate::http::{Download, Fetched, HttpClient, HttpError};
use crate::progress::Reporter;
use std::path::PathBuf;

/// Where a blob came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOrigin {
    /// Already in the local cache (verified).
    Local,
    /// Downloaded now.
    Downloaded,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(
        "{what} from {url} does not match its expected digest: expected sha256:{expected}{}, got sha256:{actual} ({actual_size} bytes)",
        .expected_size.map(|size| format!(" ({size} bytes)")).unwrap_or_default()
    )]
    Mismatch {
        what: String,
        url: String,
        expected: Sha256Digest,
        expected_size: Option<u64>,
        actual: Sha256Digest,
        actual_size: u64,
    },
}

/// Upstream fetches into the cache (a trait, as the store is another crate).
pub trait FetchVerified {
    fn fetch_verified(
        &self,
        http: &HttpClient,
        urls: &[String],
        digest: &Sha256Digest,
        size: u64,
        what: &str,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, BlobOrigin, u64), FetchError>;

    fn fetch_by_digest(
        &self,
        http: &HttpClient,
        urls: &[String],
        digest: &Sha256Digest,
        size: Option<u64>,
        what: &str,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, BlobOrigin, u64), FetchError>;
}

impl FetchVerified for Cache {
    /// Returns the verified blob `digest`, downloading it from `urls` (tried
    /// in order; a 404 or a missing local file moves on to the next) if the
    /// cache lacks it. A transfer shorter than `size` is retried, not
    /// reported as a mismatch.
    fn fetch_verified(
        &self,
        http: &HttpClient,
        urls: &[String],
        digest: &Sha256Digest,
        size: u64,
        what: &str,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, BlobOrigin, u64), FetchError> {
        self.fetch_by_digest(http, urls, digest, Some(size), what, reporter)
    }

    /// [`Cache::fetch_verified`] for a blob whose size is not known in
    /// advance (a source tarball named by its sha256 alone).
    fn fetch_by_digest(
        &self,
        http: &HttpClient,
        urls: &[String],
        digest: &Sha256Digest,
        size: Option<u64>,
        what: &str,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, BlobOrigin, u64), FetchError> {
        if let Some(path) = self.verified_blob(digest, size)? {
            return Ok((path, BlobOrigin::Local, 0));
        }
        let _lock = self.lock_blob(digest)?;
        // Another process may have fetched it while we waited for the lock.
        if let Some(path) = self.verified_blob(digest, size)? {
            return Ok((path, BlobOrigin::Local, 0));
        }
        let mut last_error = None;
        for url in urls {
            let temp = self.temp_file()?;
            let request = Download {
                url,
                dest: temp.path(),
                validators: None,
                expected_size: size,
                label: what,
            };
            match http.download(&request, reporter) {
                Ok(Fetched::Body {
                    digest: actual,
                    size: actual_size,
                    ..
                }) => {
                    if actual != *digest || size.is_some_and(|size| size != actual_size) {
                        // `temp` is deleted on drop: nothing enters the cache.
                        return Err(FetchError::Mismatch {
                            what: what.to_owned(),
                            url: crate::http::redact(url),
                            expected: *digest,
                            expected_size: size,
                            actual,
                            actual_size,
                        });
                    }
                    let path = self.commit_blob(temp, digest)?;
                    return Ok((path, BlobOrigin::Downloaded, actual_size));
                }
                Ok(Fetched::NotModified) => unreachable!("no validators were sent"),
                Err(error) if error.is_not_found() && urls.len() > 1 => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error
            .map(FetchError::from)
            .unwrap_or_else(|| panic!("fetch_verified needs at least one URL for {what}")))
    }
}
