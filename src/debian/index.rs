//! Signed package indices: `InRelease` fetched (revalidated with ETag /
//! Last-Modified when cached) and verified in-process before anything is
//! stored, then `Packages` fetched by the digest the signed Release gives
//! (from `by-hash/` when the archive offers it) and parsed while streaming.
//! There is no unsigned fallback.

use crate::cache::FetchVerified as _;
use crate::cache::{BlobOrigin, BlobRef, Bucket, Cache, CacheError, EntryMeta, FetchError};
use crate::debian::control::ParagraphReader;
use crate::debian::package::{Package, PackageError};
use crate::debian::release::FileHash;
use crate::debian::release::{Keyring, Release, ReleaseError, verify_inrelease};
use crate::debian::repository::Repository;
use crate::hash::Sha256Digest;
use crate::http::{Download, Fetched, HttpClient, HttpError, Validators, redact};
use crate::plan::KeyBuilder;
use crate::progress::Reporter;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

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
    #[error(
        "{url} is dated {date}, older than the InRelease of {newest} this cache verified before: a replayed or stale copy is never used"
    )]
    Rollback {
        url: String,
        date: String,
        newest: String,
    },
}

impl IndexError {
    pub fn hint(&self) -> Option<String> {
        match self {
            IndexError::Release(error) => Some(error.hint().to_owned()),
            IndexError::Rollback { .. } => Some(
                "the mirror (or a proxy) serves an older snapshot than it did before, as an attacker replaying a superseded index would: try again later or use another mirror; never delete the cache to get past this".into(),
            ),
            IndexError::MissingArchitecture { .. } => Some(
                "choose a suite that carries this architecture with packages.repository.suite (riscv64 needs trixie or later)".into(),
            ),
            IndexError::Fetch(FetchError::Mismatch { .. }) => Some(
                "the mirror served altered or stale data; nothing was cached. Retry later or use another mirror".into(),
            ),
            IndexError::Http { source: error, .. } | IndexError::Fetch(FetchError::Http(error))
                if error.is_local() =>
            {
                error.hint()
            }
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

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct InReleaseRecord {
    /// Where it was fetched, without credentials.
    url: String,
    validators: Validators,
    blob: Sha256Digest,
    /// When it was last fetched or revalidated (seconds since 1970).
    #[serde(default)]
    checked_at: u64,
}

/// The newest `Date` this cache verified for one InRelease location
/// (local only: [`Bucket::InReleaseDate`]).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct NewestDate {
    /// Seconds since 1970.
    date: i64,
    blob: Sha256Digest,
}

/// An InRelease entry needs its blob, and is the same for every platform.
fn inrelease_meta(blob: Sha256Digest, size: usize) -> EntryMeta {
    EntryMeta::any().with_blob(BlobRef::new(blob, size as u64))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|duration| duration.as_secs())
        .unwrap_or(0)
}

fn signed_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(duration) => duration.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// How long a verified InRelease is used without asking the mirror.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// One this cache fetched or revalidated (`--refresh`: zero, always
    /// ask).
    pub max_age: Duration,
    /// One another machine shared through a remote cache, by the time it
    /// was checked there: a bounded window, so a replayed old entry makes
    /// a machine ask the mirror rather than build superseded packages.
    pub shared_max_age: Duration,
}

/// Attempts at an InRelease that arrives but does not verify as a whole
/// file (cut short, garbled, mid-update on the mirror).
const RELEASE_ATTEMPTS: u32 = 3;

/// Fetches the suite's InRelease and verifies it. A cached copy checked
/// less than `freshness.max_age` ago (one a remote supplied: less than
/// `shared_max_age` ago) is used without asking the server (it is still
/// verified, `Valid-Until` included); an older one is revalidated with
/// ETag / Last-Modified when the server gave them. Whatever its source,
/// an InRelease whose `Date` is older than one this cache verified for the
/// same location is never used, as apt refuses a date going backwards: a
/// remote's is dropped with a warning and the mirror asked, the mirror's
/// is an error. The location is keyed and stored without credentials.
pub fn fetch_release(
    repository: &Repository,
    keyring: &Keyring,
    cache: &Cache,
    http: &HttpClient,
    reporter: &dyn Reporter,
    now: SystemTime,
    freshness: Freshness,
) -> Result<SignedRelease, IndexError> {
    let start = Instant::now();
    let url = format!("{}/dists/{}/InRelease", repository.url, repository.suite);
    let location = format!(
        "{}/dists/{}/InRelease",
        repository.plain_url(),
        repository.suite
    );
    let shown = redact(&url);
    let name = format!("{}/InRelease", repository.suite);
    let key = KeyBuilder::new("inrelease-location")
        .text("url", &location)
        .finish();
    let _lock = cache.lock(Bucket::InRelease, &key)?;
    let newest: Option<NewestDate> = cache.get_entry(Bucket::InReleaseDate, &key)?;
    let not_older = |release: &Release| -> Result<(), IndexError> {
        match (&newest, release.date) {
            (Some(newest), Some(date)) if signed_seconds(date) < newest.date => {
                Err(IndexError::Rollback {
                    url: shown.clone(),
                    date: crate::debian::release::format_release_date(date),
                    newest: crate::debian::release::format_release_date(
                        SystemTime::UNIX_EPOCH + Duration::from_secs(newest.date.max(0) as u64),
                    ),
                })
            }
            _ => Ok(()),
        }
    };
    let remember = |release: &Release, blob: Sha256Digest| -> Result<(), IndexError> {
        let Some(date) = release.date.map(signed_seconds) else {
            return Ok(());
        };
        if newest.as_ref().is_none_or(|newest| date > newest.date) {
            cache.put_entry(
                Bucket::InReleaseDate,
                &key,
                &NewestDate { date, blob },
                EntryMeta::any(),
            )?;
        }
        Ok(())
    };
    let record: Option<InReleaseRecord> = cache.get_entry(Bucket::InRelease, &key)?;
    let mut cached = match &record {
        Some(record) => cache.read_blob(&record.blob)?.map(|bytes| (record, bytes)),
        None => None,
    };
    if let Some((record, bytes)) = &cached {
        let age = unix_seconds(now).saturating_sub(record.checked_at);
        // One another machine checked and shared through a remote cache
        // is used (verified, within Valid-Until) while it is young enough,
        // so a CI matrix resolves one closure; `--refresh` asks the mirror.
        let shared = cache.supplied_by_fallback(Bucket::InRelease, &key);
        let window = if shared {
            freshness.shared_max_age
        } else {
            freshness.max_age
        };
        if !freshness.max_age.is_zero() && age < window.as_secs() {
            let release = verify_inrelease(bytes, keyring, &shown, now)?;
            match not_older(&release) {
                Ok(()) => {
                    remember(&release, record.blob)?;
                    return Ok(SignedRelease {
                        release,
                        digest: record.blob,
                        fetch: IndexFetch {
                            name,
                            url: shown,
                            origin: BlobOrigin::Local,
                            bytes: 0,
                            seconds: start.elapsed().as_secs_f64(),
                        },
                    });
                }
                Err(rollback) => {
                    reporter.on_note(&format!(
                        "warning: {}{}; asking the mirror",
                        rollback,
                        if shared { " (from a remote cache)" } else { "" }
                    ));
                    cached = None;
                }
            }
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let temp = cache.temp_file()?;
        let request = Download {
            url: &url,
            dest: temp.path(),
            validators: cached.as_ref().map(|(record, _)| &record.validators),
            expected_size: None,
            label: "InRelease",
        };
        let fetched = http
            .download(&request, reporter)
            .map_err(|source| IndexError::Http {
                url: shown.clone(),
                source,
            })?;
        let (bytes, digest, origin, transferred, validators) = match fetched {
            Fetched::NotModified => {
                let (record, bytes) = cached
                    .take()
                    .expect("304 only answers a conditional request");
                (
                    bytes,
                    record.blob,
                    BlobOrigin::Local,
                    0,
                    record.validators.clone(),
                )
            }
            Fetched::Body {
                digest,
                size,
                validators,
            } => {
                let bytes = fs_err::read(temp.path()).map_err(|source| CacheError::Io {
                    path: temp.path().to_owned(),
                    source,
                })?;
                (bytes, digest, BlobOrigin::Downloaded, size, validators)
            }
        };
        // Verify before anything is stored; a file that does not verify
        // as a whole (cut short, garbled) is asked for again.
        let release = match verify_inrelease(&bytes, keyring, &shown, now) {
            Ok(release) => release,
            Err(error) if error.may_be_transfer_damage() && attempt < RELEASE_ATTEMPTS => {
                reporter.on_retry(&shown, attempt, &error.to_string());
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        not_older(&release)?;
        if origin == BlobOrigin::Downloaded {
            cache.commit_blob(temp, &digest)?;
        }
        cache.put_entry(
            Bucket::InRelease,
            &key,
            &InReleaseRecord {
                url: location.clone(),
                validators,
                blob: digest,
                checked_at: unix_seconds(now),
            },
            inrelease_meta(digest, bytes.len()),
        )?;
        remember(&release, digest)?;
        return Ok(SignedRelease {
            release,
            digest,
            fetch: IndexFetch {
                name,
                url: shown,
                origin,
                bytes: transferred,
                seconds: start.elapsed().as_secs_f64(),
            },
        });
    }
}

/// The `Packages` index of `component` for `arch` that the signed Release
/// lists, with its digest. Gzip is preferred: it is a few percent more to
/// download than xz but decompresses several times faster.
pub fn packages_index_path(
    release: &Release,
    component: &str,
    arch: &str,
) -> Option<(String, FileHash)> {
    ["Packages.gz", "Packages.xz", "Packages"]
        .iter()
        .find_map(|name| {
            let path = format!("{component}/binary-{arch}/{name}");
            release.sha256.get(&path).map(|hash| (path, *hash))
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
    let (path, hash) =
        packages_index_path(release, component, arch).ok_or_else(|| IndexError::MissingIndex {
            url: redact(&suite_url),
            component: component.to_owned(),
            arch: arch.to_owned(),
        })?;
    let plain_url = format!("{suite_url}/{path}");
    let mut urls = Vec::new();
    if release.acquire_by_hash {
        urls.push(format!(
            "{suite_url}/{directory}/by-hash/SHA256/{}",
            hash.digest.hex()
        ));
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

/// Opens a cached `Packages` index, decompressing as it streams.
fn open_index(index: &PackagesIndex) -> Result<BufReader<CheckedReader<'_>>, IndexError> {
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
    Ok(BufReader::with_capacity(
        256 * 1024,
        CheckedReader {
            inner: decoded,
            url: &index.url,
            error: None,
        },
    ))
}

fn decompress_error(
    index: &PackagesIndex,
    reader: &mut BufReader<CheckedReader<'_>>,
) -> Option<IndexError> {
    reader
        .get_mut()
        .error
        .take()
        .map(|source| IndexError::Decompress {
            url: index.url.clone(),
            source,
        })
}

/// Parses cached `Packages` indices for `arch` (the suites and components
/// of a source list, which overlay each other), keeping only the packages
/// that `roots` can reach through any of them; one list per index.
///
/// A full index has ~60,000 packages; holding all of them parsed costs
/// ~200 MB. So the indices are read twice: the first pass keeps only names
/// and the names each package's `Depends`, `Pre-Depends` and `Provides`
/// mention, and computes the over-approximated closure of `roots` across
/// every index (every alternative, every provider, no version checks: a
/// package of `-security` is reached through a dependency written in the
/// main suite's index); the second pass fully parses just the packages in
/// that closure for the resolver.
pub fn read_packages(
    indices: &[PackagesIndex],
    arch: &str,
    roots: &[String],
) -> Result<Vec<Vec<Package>>, IndexError> {
    let mut scan = NameScan::default();
    for index in indices {
        let mut reader = open_index(index)?;
        let scanned = scan.add(&mut reader, &index.url, arch);
        if let Some(error) = decompress_error(index, &mut reader) {
            return Err(error);
        }
        scanned?;
    }
    let reachable = scan.closure(roots);
    let mut position = 0usize;
    let mut lists = Vec::new();
    for index in indices {
        let mut reader = open_index(index)?;
        let mut packages = Vec::new();
        let result = (|| -> Result<(), IndexError> {
            for item in ParagraphReader::new(&mut reader, index.url.as_str()) {
                let (paragraph, line) = item.map_err(PackageError::from)?;
                if !architecture_wanted(paragraph.get("Architecture"), arch) {
                    continue;
                }
                if reachable.get(position).copied().unwrap_or(false) {
                    packages.push(Package::from_paragraph(&paragraph, &index.url, line, arch)?);
                }
                position += 1;
            }
            Ok(())
        })();
        if let Some(error) = decompress_error(index, &mut reader) {
            return Err(error);
        }
        result?;
        lists.push(packages);
    }
    Ok(lists)
}

fn architecture_wanted(architecture: Option<&str>, arch: &str) -> bool {
    architecture.is_none_or(|architecture| architecture == arch || architecture == "all")
}

/// The first pass over indices: names only, interned; packages are
/// numbered across the indices in the order they were added.
#[derive(Default)]
struct NameScan {
    ids: HashMap<String, u32>,
    /// Per package (in index order): its name id.
    package_names: Vec<u32>,
    /// Per package: ids of the names its dependencies mention.
    package_dependencies: Vec<Box<[u32]>>,
    /// Per name id: packages named so or providing it.
    satisfiers: Vec<Vec<u32>>,
}

impl NameScan {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.satisfiers.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.satisfiers.push(Vec::new());
        id
    }

    /// Which packages (by index position) `roots` can reach.
    fn closure(&self, roots: &[String]) -> Vec<bool> {
        let mut reachable = vec![false; self.package_names.len()];
        let mut seen_names = vec![false; self.satisfiers.len()];
        let mut queue: Vec<u32> = roots
            .iter()
            .filter_map(|root| self.ids.get(relation_name(root)).copied())
            .collect();
        while let Some(name) = queue.pop() {
            if std::mem::replace(&mut seen_names[name as usize], true) {
                continue;
            }
            for &package in &self.satisfiers[name as usize] {
                if !std::mem::replace(&mut reachable[package as usize], true) {
                    queue.extend(self.package_dependencies[package as usize].iter().copied());
                    queue.push(self.package_names[package as usize]);
                }
            }
        }
        reachable
    }
}

/// The package name a relation or request starts with (`perl:any (>= 5)`,
/// `name=1.0` → `perl`, `name`).
fn relation_name(text: &str) -> &str {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "+-._".contains(c)))
        .unwrap_or(text.len());
    &text[..end]
}

impl NameScan {
    /// Scans one more index.
    fn add(
        &mut self,
        reader: &mut impl BufRead,
        origin: &str,
        arch: &str,
    ) -> Result<(), IndexError> {
        for item in ParagraphReader::new(reader, origin) {
            let (paragraph, _) = item.map_err(PackageError::from)?;
            if !architecture_wanted(paragraph.get("Architecture"), arch) {
                continue;
            }
            let position = self.package_names.len() as u32;
            let name = self.intern(paragraph.get("Package").unwrap_or_default());
            self.package_names.push(name);
            self.satisfiers[name as usize].push(position);
            let mut dependencies = Vec::new();
            for field in ["Depends", "Pre-Depends"] {
                if let Some(text) = paragraph.get(field) {
                    for relation in text.split([',', '|']) {
                        let name = relation_name(relation);
                        if !name.is_empty() {
                            dependencies.push(self.intern(name));
                        }
                    }
                }
            }
            self.package_dependencies
                .push(dependencies.into_boxed_slice());
            if let Some(text) = paragraph.get("Provides") {
                for relation in text.split(',') {
                    let name = relation_name(relation);
                    if !name.is_empty() {
                        let id = self.intern(name);
                        self.satisfiers[id as usize].push(position);
                    }
                }
            }
        }
        Ok(())
    }
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
