//! Signed package indices: `InRelease` fetched (revalidated with ETag /
//! Last-Modified when cached) and verified in-process before anything is
//! stored, then `Packages` fetched by the digest the signed Release gives
//! (from `by-hash/` when the archive offers it) and parsed while streaming.
//! There is no unsigned fallback.

use crate::cache::{BlobOrigin, Cache, CacheError, FetchError};
use crate::debian::package::{Package, PackageError, parse_packages_index};
use crate::debian::release::{Keyring, Release, ReleaseError, verify_inrelease};
use crate::debian::repository::Repository;
use crate::hash::Sha256Digest;
use crate::http::{Fetched, HttpClient, HttpError, Validators, redact};
use crate::plan::KeyBuilder;
use crate::progress::Reporter;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot fetch {url}")]
    Http {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(
        "suite {suite} of {url} has no architecture {arch} (it has: {})",
        .available.join(" ")
    )]
    MissingArchitecture {
        url: String,
        suite: String,
        arch: String,
        available: Vec<String>,
    },
    #[error("the signed Release of {url} lists no Packages index for {component}/binary-{arch}")]
    MissingIndex {
        url: String,
        component: String,
        arch: String,
    },
    #[error("cannot decompress {url}")]
    Decompress {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] PackageError),
}

impl IndexError {
    pub fn hint(&self) -> Option<String> {
        match self {
            IndexError::Release(error) => Some(error.hint().to_owned()),
            IndexError::MissingArchitecture { .. } => Some(
                "choose a suite that carries this architecture with packages.repository.suite (riscv64 needs trixie or later)".into(),
            ),
            IndexError::Fetch(FetchError::Mismatch { .. }) => Some(
                "the mirror served altered or stale data; nothing was cached. Retry later or use another mirror".into(),
            ),
            IndexError::Http { .. } | IndexError::Fetch(FetchError::Http(_)) => Some(
                "check the repository URL and your network; set packages.repository.url or --mirror to use another mirror".into(),
            ),
            _ => None,
        }
    }
}

/// How an index was obtained, with its transfer size and time.
#[derive(Debug, Clone)]
pub struct IndexFetch {
    pub name: String,
    pub url: String,
    pub origin: BlobOrigin,
    pub bytes: u64,
    pub seconds: f64,
}

/// A verified Release, and how it was obtained.
#[derive(Debug, Clone)]
pub struct SignedRelease {
    pub release: Release,
    /// Digest of the InRelease bytes: every index below it is pinned by it.
    pub digest: Sha256Digest,
    pub fetch: IndexFetch,
}

/// A verified `Packages` index in the cache.
#[derive(Debug, Clone)]
pub struct PackagesIndex {
    pub path: String,
    pub url: String,
    pub digest: Sha256Digest,
    pub blob: PathBuf,
    pub fetch: IndexFetch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InReleaseRecord {
    url: String,
    validators: Validators,
    blob: Sha256Digest,
}

/// Fetches the suite's InRelease (revalidating a cached copy) and verifies it.
pub fn fetch_release(
    repository: &Repository,
    keyring: &Keyring,
    cache: &Cache,
    http: &HttpClient,
    reporter: &dyn Reporter,
    now: SystemTime,
) -> Result<SignedRelease, IndexError> {
    let start = Instant::now();
    let url = format!("{}/dists/{}/InRelease", repository.url, repository.suite);
    let shown = redact(&url);
    let key = KeyBuilder::new("inrelease-location").text("url", &url).finish();
    let _lock = cache.lock_item(&format!("inrelease-{}", key.hex()))?;
    let record: Option<InReleaseRecord> = cache.get_entry("inrelease", &key)?;
    let cached = match &record {
        Some(record) => cache.read_blob(&record.blob)?.map(|bytes| (record, bytes)),
        None => None,
    };
    let temp = cache.temp_file()?;
    let fetched = http
        .download(
            &url,
            temp.path(),
            cached.as_ref().map(|(record, _)| &record.validators),
            "InRelease",
            reporter,
        )
        .map_err(|source| IndexError::Http {
            url: shown.clone(),
            source,
        })?;
    let (bytes, digest, origin, transferred) = match (fetched, cached) {
        (Fetched::NotModified, Some((record, bytes))) => (bytes, record.blob, BlobOrigin::Local, 0),
        (Fetched::NotModified, None) => unreachable!("304 only answers a conditional request"),
        (
            Fetched::Body {
                digest,
                size,
                validators,
            },
            _,
        ) => {
            let bytes = fs_err::read(temp.path()).map_err(|source| CacheError::Io {
                path: temp.path().to_owned(),
                source,
            })?;
            // Verify before anything is stored.
            verify_inrelease(&bytes, keyring, &shown, now)?;
            cache.commit_blob(temp, &digest)?;
            cache.put_entry(
                "inrelease",
                &key,
                &InReleaseRecord {
                    url: url.clone(),
                    validators,
                    blob: digest,
                },
            )?;
            (bytes, digest, BlobOrigin::Downloaded, size)
        }
    };
    let release = verify_inrelease(&bytes, keyring, &shown, now)?;
    Ok(SignedRelease {
        release,
        digest,
        fetch: IndexFetch {
            name: format!("{}/InRelease", repository.suite),
            url: shown,
            origin,
            bytes: transferred,
            seconds: start.elapsed().as_secs_f64(),
        },
    })
}

/// Fetches the `Packages` index of `component` for `arch`, pinned by the
/// digest in the signed Release.
pub fn fetch_packages(
    repository: &Repository,
    signed: &SignedRelease,
    component: &str,
    arch: &str,
    cache: &Cache,
    http: &HttpClient,
    reporter: &dyn Reporter,
) -> Result<PackagesIndex, IndexError> {
    let start = Instant::now();
    let release = &signed.release;
    let suite_url = format!("{}/dists/{}", repository.url, repository.suite);
    if !release.architectures.is_empty() && !release.architectures.iter().any(|a| a == arch) {
        return Err(IndexError::MissingArchitecture {
            url: redact(&repository.url),
            suite: repository.suite.clone(),
            arch: arch.to_owned(),
            available: release.architectures.clone(),
        });
    }
    let directory = format!("{component}/binary-{arch}");
    let (path, hash) = ["Packages.xz", "Packages.gz", "Packages"]
        .iter()
        .find_map(|name| {
            let path = format!("{directory}/{name}");
            release.sha256.get(&path).map(|hash| (path, *hash))
        })
        .ok_or_else(|| IndexError::MissingIndex {
            url: redact(&suite_url),
            component: component.to_owned(),
            arch: arch.to_owned(),
        })?;
    let plain_url = format!("{suite_url}/{path}");
    let mut urls = Vec::new();
    if release.acquire_by_hash {
        urls.push(format!("{suite_url}/{directory}/by-hash/SHA256/{}", hash.digest.hex()));
    }
    urls.push(plain_url.clone());
    let (blob, origin, bytes) =
        cache.fetch_verified(http, &urls, &hash.digest, hash.size, &path, reporter)?;
    Ok(PackagesIndex {
        path: path.clone(),
        url: redact(&plain_url),
        digest: hash.digest,
        blob,
        fetch: IndexFetch {
            name: format!("{}/{path}", repository.suite),
            url: redact(&plain_url),
            origin,
            bytes,
            seconds: start.elapsed().as_secs_f64(),
        },
    })
}

/// Parses a cached `Packages` index for `arch`, decompressing as it streams.
pub fn read_packages(index: &PackagesIndex, arch: &str) -> Result<Vec<Package>, IndexError> {
    let file = fs_err::File::open(&index.blob).map_err(|source| CacheError::Io {
        path: index.blob.clone(),
        source,
    })?;
    let raw = BufReader::with_capacity(256 * 1024, file);
    let decoded: Box<dyn Read> = if index.path.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(raw))
    } else if index.path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let reader = CheckedReader {
        inner: decoded,
        url: &index.url,
        error: None,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let result = parse_packages_index(&mut reader, &index.url, arch);
    if let Some(source) = reader.get_mut().error.take() {
        return Err(IndexError::Decompress {
            url: index.url.clone(),
            source,
        });
    }
    Ok(result?)
}

/// Remembers a decompression error so it can be reported as such rather
/// than as a parse error at some line.
struct CheckedReader<'a> {
    inner: Box<dyn Read + 'a>,
    url: &'a str,
    error: Option<std::io::Error>,
}

impl Read for CheckedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|error| {
            self.error = Some(std::io::Error::new(
                error.kind(),
                format!("{} (in {})", error, self.url),
            ));
        })
    }
}
