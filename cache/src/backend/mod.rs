//! Remote caches: what a shared remote holds, and the backends that reach one.
//!
//! A remote holds three kinds of things, and a [`Backend`] reads and writes
//! exactly these:
//!
//! - **blobs**, immutable bytes named by their sha256 (a `.deb`, a layer, a
//!   packed toolchain tree). Existence is checked in batches
//!   ([`Backend::has_blobs`], concurrent requests where the protocol has no
//!   batch call), a blob is read into a writer, and written from a file.
//! - **entries**, one per `(bucket, key)`: the opaque bytes of a signed
//!   envelope ([`crate::sign`]). An entry is written only after every blob
//!   it lists is on the remote, so an entry that exists is complete.
//! - **pointers**, small mutable documents by name (the latest entry of a
//!   project, target and build name), because neither WebDAV servers nor
//!   registries can list what they hold.
//!
//! [`open`] picks the backend by the URL's scheme:
//!
//! | URL | backend | layout |
//! |---|---|---|
//! | `file:///path` | [`mod@file`] | files under `path` |
//! | `http(s)://host/prefix` | [`mod@http`] | the same paths under the prefix: GET/HEAD/PUT |
//! | `oci://host[:port]/repo` | [`mod@oci`] | an OCI registry: blobs, manifests, tags |
//!
//! The file and HTTP layout (paths relative to the directory or prefix):
//!
//! ```text
//! blobs-v1/sha256/<hex>       the blob whose sha256 is <hex>
//! entries-v1/<bucket>/<hex>   the signed envelope of the entry <hex> (the key) of <bucket>
//! pointers-v1/<name>          the signed pointer document <name>
//! ```
//!
//! A registry holds the same things as manifests, blobs and tags; [`oci`]
//! describes how. Bucket names are `[a-z0-9][a-z0-9-]*` (at most 60
//! characters) and pointer names `[A-Za-z0-9][A-Za-z0-9._-]*` (at most 120),
//! so both are safe as path components and as parts of a registry tag.
//!
//! Every error names the remote's URL with any credentials in it redacted
//! ([`redact`]); credentials themselves (a token, a password) are never part
//! of an error or of `Debug` output.

mod deadline;
pub mod file;
pub mod http;
pub mod oci;
mod oci_auth;
pub mod registry;
mod transport;

use crate::hash::{Hasher, Sha256Digest};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::blob::BlobRef;
pub use deadline::Deadline;

/// The largest signed envelope, pointer document or manifest read from a
/// remote; a larger one is refused unread.
pub const DOCUMENT_LIMIT: u64 = 16 * 1024 * 1024;

/// How remotes are reached: timeouts, parallelism and where credentials
/// come from. [`RemoteConfig::default`] reads nothing from the environment;
/// [`RemoteConfig::from_env`] is what the CLI uses.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// The longest wait for a response, or for the next bytes of a body.
    pub idle_timeout: Duration,
    /// Transfers (uploads, downloads) running at once against one remote.
    pub jobs: usize,
    /// Existence checks (HEAD requests) running at once against one remote.
    pub check_jobs: usize,
    /// A bearer token for `http(s)://` remotes (`XBUILD_REMOTE_TOKEN`).
    pub token: Option<String>,
    /// The netrc file for `http(s)://` remotes (`$NETRC`, else `~/.netrc`).
    pub netrc: Option<PathBuf>,
    /// The Docker configuration directory for `oci://` remotes
    /// (`$DOCKER_CONFIG`, else `~/.docker`), holding `config.json`.
    pub docker_config_dir: Option<PathBuf>,
    /// podman's auth files, asked before Docker's `config.json`:
    /// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub auth_files: Vec<PathBuf>,
    /// A PEM file of CA certificates trusted besides the system's
    /// (`--registry-ca`; OpenSSL also reads `SSL_CERT_FILE`).
    pub extra_ca: Option<PathBuf>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            jobs: 4,
            check_jobs: 16,
            token: None,
            netrc: None,
            docker_config_dir: None,
            auth_files: Vec::new(),
            extra_ca: None,
        }
    }
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("jobs", &self.jobs)
            .field("check_jobs", &self.check_jobs)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("netrc", &self.netrc)
            .field("docker_config_dir", &self.docker_config_dir)
            .field("auth_files", &self.auth_files)
            .field("extra_ca", &self.extra_ca)
            .finish()
    }
}

impl RemoteConfig {
    /// The defaults, with credentials located as the CLI does:
    /// `XBUILD_REMOTE_TOKEN`, `$NETRC` or `~/.netrc`, `$DOCKER_CONFIG` or
    /// `~/.docker`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        RemoteConfig {
            token: var("XBUILD_REMOTE_TOKEN").map(|token| token.to_string_lossy().into_owned()),
            netrc: var("NETRC")
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|home| home.join(".netrc"))),
            docker_config_dir: var("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|home| home.join(".docker"))),
            auth_files: var("REGISTRY_AUTH_FILE")
                .map(PathBuf::from)
                .into_iter()
                .chain(
                    var("XDG_RUNTIME_DIR")
                        .map(|dir| PathBuf::from(dir).join("containers").join("auth.json")),
                )
                .collect(),
            ..RemoteConfig::default()
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn with_netrc(mut self, path: impl Into<PathBuf>) -> Self {
        self.netrc = Some(path.into());
        self
    }

    pub fn with_docker_config_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config_dir = Some(path.into());
        self
    }

    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    pub fn with_connect_timeout(mut self, connect: Duration) -> Self {
        self.connect_timeout = connect;
        self
    }

    pub fn with_extra_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_ca = Some(path.into());
        self
    }

    /// The files credentials are looked for in: the auth files, then
    /// Docker's `config.json`.
    pub fn credential_files(&self) -> Vec<PathBuf> {
        let mut files = self.auth_files.clone();
        files.extend(
            self.docker_config_dir
                .as_ref()
                .map(|dir| dir.join("config.json")),
        );
        files
    }

    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

/// Errors of a remote; each names the remote's URL (redacted) or the file
/// concerned.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{url}` is not a remote cache URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{what} {name:?} is invalid: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("failed to create the HTTP client for {url}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} failed")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: no answer for {} s", seconds(*.idle))]
    Timeout {
        method: &'static str,
        url: String,
        idle: Duration,
    },
    #[error(
        "{method} {url}: not complete after {} s, the most one read may take (30 s and 1 s per MiB it declares, scaled by --http-timeout): abandoned",
        seconds(*.allowed)
    )]
    Deadline {
        method: &'static str,
        url: String,
        allowed: Duration,
    },
    #[error("{} is {what}, not a regular file: refused unread (a file:// remote is read only from regular files)", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{url}: more than the {limit} bytes {what}: refused")]
    TooLarge {
        url: String,
        limit: u64,
        /// What the limit is: `an envelope may hold`, `the manifest declares`.
        what: &'static str,
    },
    #[error("{method} {url} answered HTTP {status}{detail}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        /// What the server said about it (a registry's error code), with a
        /// leading `: `, or empty.
        detail: String,
    },
    #[error("reading the response of {url} failed")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{url} refused the credentials: {reason}")]
    Auth { url: String, reason: String },
    #[error("cannot read the credentials in {}: {reason}", path.display())]
    Credentials { path: PathBuf, reason: String },
    #[error("remote cache I/O failed at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot upload the local file {}", path.display())]
    LocalBlob {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing what {url} sent failed")]
    Sink {
        url: String,
        #[source]
        source: io::Error,
    },
}

impl RemoteError {
    /// True when the remote could not be reached or stopped answering: the
    /// caller stops asking it for the rest of the run.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RemoteError::Transport { source, .. } => source.is_connect() || source.is_timeout(),
            // Too slow for one read is too slow for the rest of the run.
            RemoteError::Timeout { .. } | RemoteError::Deadline { .. } => true,
            _ => false,
        }
    }

    /// True when trying again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RemoteError::Transport { .. }
            | RemoteError::Timeout { .. }
            | RemoteError::Body { .. } => true,
            RemoteError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RemoteError::Status {
                status: 401 | 403, ..
            }
            | RemoteError::Auth { .. } => Some(
                "check the credentials: ~/.netrc or XBUILD_REMOTE_TOKEN for http(s) remotes, ~/.docker/config.json (or `docker login`) for oci remotes".into(),
            ),
            RemoteError::Status { status: 413, .. } => Some(
                "the server limits the size of an upload; raise it (nginx: `client_max_body_size 0;`)".into(),
            ),
            RemoteError::Status {
                status: 405, ..
            } => Some(
                "the server does not accept PUT there; enable WebDAV PUT (nginx: `dav_methods PUT; create_full_put_path on;`)".into(),
            ),
            RemoteError::Deadline { .. } => Some(
                "it sends too slowly, or a byte at a time on purpose; a larger --http-timeout (or XBUILD_HTTP_TIMEOUT) allows slower servers".into(),
            ),
            error if error.is_unreachable() => Some(
                "check that the remote is up and reachable; the build goes on without it".into(),
            ),
            RemoteError::NotAFile { .. } => Some(
                "only regular files are read from a file:// remote; remove what is there (the next upload writes it again)".into(),
            ),
            RemoteError::Io { path, source } => Some(crate::local_io_hint(path, source)),
            RemoteError::LocalBlob { source, .. } if source.kind() == io::ErrorKind::InvalidData => {
                Some("the local cache holds a corrupt blob: run `xbuild cache verify`".into())
            }
            _ => None,
        }
    }
}

/// `1`, `0.5`: seconds as a person writes them.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// What a shared remote cache holds, and how to read and write it. All
/// methods may be called from several threads at once.
pub trait Backend: Send + Sync {
    /// The remote's URL with credentials redacted, for messages.
    fn url(&self) -> &str;

    /// Which of `digests` the remote holds, in the same order. Checks run
    /// concurrently where the protocol asks one blob at a time.
    fn has_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<bool>, RemoteError>;

    /// Writes the blob into `sink`; `Ok(None)` if the remote lacks it, else
    /// the bytes written. The read is abandoned past its [`Deadline`] for
    /// `blob.size`; the caller verifies digest and size (and cuts off a
    /// remote sending more than `blob.size`, by failing the write).
    fn get_blob(&self, blob: &BlobRef, sink: &mut dyn Write) -> Result<Option<u64>, RemoteError>;

    /// Uploads the file at `path` as the blob `blob`. The bytes are hashed
    /// on the way and the upload abandoned if they do not match `blob`, so a
    /// corrupt local file never reaches the remote under a wrong name.
    fn put_blob(&self, blob: &BlobRef, path: &Path) -> Result<(), RemoteError>;

    /// The envelope of the entry `key` of `bucket`; `Ok(None)` if absent.
    /// At most [`DOCUMENT_LIMIT`] bytes, within a document's [`Deadline`].
    fn get_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<Option<Vec<u8>>, RemoteError>;

    /// Whether the remote holds the entry `key` of `bucket`.
    fn has_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<bool, RemoteError>;

    /// Writes the entry's envelope. Call only once every blob in `blobs`
    /// (the blobs the entry lists) is on the remote.
    fn put_entry(
        &self,
        bucket: &str,
        key: &Sha256Digest,
        envelope: &[u8],
        blobs: &[BlobRef],
    ) -> Result<(), RemoteError>;

    /// The pointer document `name`; `Ok(None)` if absent.
    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError>;

    /// Writes (or replaces) the pointer document `name`.
    fn put_pointer(&self, name: &str, document: &[u8]) -> Result<(), RemoteError>;
}

/// Opens the remote at `url`, choosing the backend by its scheme:
/// `file://`, `http://` / `https://`, `oci://` (plain HTTP for a loopback
/// host, HTTPS otherwise; `oci+http://` and `oci+https://` choose
/// explicitly). Nothing is sent until the first request.
pub fn open(url: &str, config: &RemoteConfig) -> Result<Box<dyn Backend>, RemoteError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("file") => Ok(Box::new(
            file::FileBackend::open(url)?.with_idle_timeout(config.idle_timeout),
        )),
        Some("http" | "https") => Ok(Box::new(http::HttpBackend::open(url, config)?)),
        Some("oci" | "oci+http" | "oci+https") => Ok(Box::new(oci::OciBackend::open(url, config)?)),
        _ => Err(RemoteError::InvalidUrl {
            url: redact(url),
            reason: "the scheme must be file://, http://, https:// or oci://".into(),
        }),
    }
}

/// `url` with any password (and user name) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Checks a bucket name: `[a-z0-9][a-z0-9-]*`, at most 60 characters.
pub fn check_bucket(bucket: &str) -> Result<(), RemoteError> {
    let invalid = |reason| RemoteError::InvalidName {
        what: "bucket name",
        name: bucket.to_owned(),
        reason,
    };
    if bucket.is_empty() || bucket.len() > 60 {
        return Err(invalid("it must be 1 to 60 characters long"));
    }
    let valid = bucket
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !valid || bucket.starts_with('-') {
        return Err(invalid(
            "it may hold only a-z, 0-9 and `-`, and not start with `-`",
        ));
    }
    Ok(())
}

/// Checks a pointer name: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 120
/// characters.
pub fn check_pointer(name: &str) -> Result<(), RemoteError> {
    let invalid = |reason| RemoteError::InvalidName {
        what: "pointer name",
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 120 {
        return Err(invalid("it must be 1 to 120 characters long"));
    }
    let valid = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if !valid || !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid(
            "it may hold only A-Z, a-z, 0-9, `.`, `_` and `-`, and must start with a letter or digit",
        ));
    }
    Ok(())
}

/// Runs `work` over `items` on up to `jobs` threads; results in order.
pub fn parallel_map<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = jobs.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = work(item);
                    *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was worked on")
        })
        .collect()
}

/// A reader of a blob's bytes that fails if they are not the blob's
/// (wrong digest or size), so an upload built on it is abandoned instead
/// of completing with the wrong content. The chunk holding the last byte
/// is handed out only once the whole content is hashed and checked: a
/// server that commits a PUT when the announced length has arrived never
/// receives all of a wrong blob.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: BlobRef,
    checked: bool,
    /// Where a [`LocalBlob`] learns that the bytes were wrong.
    wrong: Option<Arc<Mutex<Option<String>>>>,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(inner: R, expected: BlobRef) -> Self {
        VerifyingReader {
            inner,
            hasher: Hasher::new(),
            expected,
            checked: false,
            wrong: None,
        }
    }

    fn not_the_blob(&self, what: String) -> io::Error {
        let message = format!(
            "the local file is not the blob {:?}: {what}",
            self.expected.digest
        );
        if let Some(wrong) = &self.wrong {
            *wrong.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        }
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.checked || buf.is_empty() {
            return Ok(0);
        }
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        let (total, size) = (self.hasher.len(), self.expected.size);
        if total > size {
            return Err(self.not_the_blob(format!("more than {size} bytes")));
        }
        if read == 0 && total < size {
            return Err(self.not_the_blob(format!("{total} bytes instead of {size}")));
        }
        if total == size {
            // The end: check before handing out this last chunk.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(self.not_the_blob(format!("more than {size} bytes")));
            }
            let (digest, _) = self.hasher.clone().finish();
            if digest != self.expected.digest {
                return Err(self.not_the_blob(format!("its content hashes to {digest:?}")));
            }
            self.checked = true;
        }
        Ok(read)
    }
}

/// The local file of a blob being uploaded, opened afresh for each
/// attempt. When an attempt finds that the file is not the blob, that is
/// remembered: no further attempt is made, and the upload's error says
/// what was wrong with the file rather than how the connection ended.
pub(crate) struct LocalBlob<'a> {
    blob: &'a BlobRef,
    path: &'a Path,
    wrong: Arc<Mutex<Option<String>>>,
}

impl<'a> LocalBlob<'a> {
    pub(crate) fn new(blob: &'a BlobRef, path: &'a Path) -> Self {
        LocalBlob {
            blob,
            path,
            wrong: Arc::default(),
        }
    }

    /// The error for a file found not to be the blob.
    fn error(&self, message: String) -> RemoteError {
        RemoteError::LocalBlob {
            path: self.path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, message),
        }
    }

    /// `Err` if an attempt found that the file is not the blob.
    pub(crate) fn check(&self) -> Result<(), RemoteError> {
        match self.wrong.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(message) => Err(self.error(message)),
            None => Ok(()),
        }
    }

    /// Opens the file for an attempt, checking its size first.
    pub(crate) fn open(
        &self,
    ) -> Result<VerifyingReader<io::BufReader<std::fs::File>>, RemoteError> {
        self.check()?;
        let io_error = |source| RemoteError::LocalBlob {
            path: self.path.to_owned(),
            source,
        };
        let file = std::fs::File::open(self.path).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        if size != self.blob.size {
            return Err(self.error(format!(
                "the local file is not the blob {:?}: {size} bytes instead of {}",
                self.blob.digest, self.blob.size
            )));
        }
        let mut reader =
            VerifyingReader::new(io::BufReader::with_capacity(256 * 1024, file), *self.blob);
        reader.wrong = Some(self.wrong.clone());
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_user_and_password_only() {
        assert_eq!(
            redact("https://user:secret@127.0.0.1:8080/xb?x=@"),
            "https://***@127.0.0.1:8080/xb?x=@"
        );
        assert_eq!(redact("oci://127.0.0.1:5000/a"), "oci://127.0.0.1:5000/a");
        assert_eq!(redact("file:///srv/cache"), "file:///srv/cache");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_bucket("layer").is_ok());
        assert!(check_bucket("outputs-v1").is_ok());
        assert!(check_bucket("../x").is_err());
        assert!(check_bucket("Layer").is_err());
        assert!(check_pointer("latest.cowsay.aarch64-linux").is_ok());
        assert!(check_pointer(".hidden").is_err());
        assert!(check_pointer("a/b").is_err());
        let error = check_pointer("a b").unwrap_err().to_string();
        assert!(error.contains("\"a b\""), "{error}");
    }

    #[test]
    fn a_verifying_reader_fails_at_the_end_of_wrong_bytes() {
        let good = b"blob bytes";
        let blob = BlobRef::new(Sha256Digest::of(good), good.len() as u64);
        let mut out = Vec::new();
        VerifyingReader::new(&good[..], blob)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, good);
        let error = VerifyingReader::new(&b"blob bytez"[..], blob)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(error.to_string().contains("hashes to"), "{error}");
        let error = VerifyingReader::new(&b"blob bytes!"[..], blob)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(error.to_string().contains("more than 10 bytes"), "{error}");
        // The chunk with the last byte is refused, not handed out.
        let mut reader = VerifyingReader::new(&b"blob bytez"[..], blob);
        let mut buffer = [0u8; 4];
        assert_eq!(reader.read(&mut buffer).unwrap(), 4);
        assert_eq!(reader.read(&mut buffer).unwrap(), 4);
        assert!(reader.read(&mut buffer).is_err());
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..100).collect();
        assert_eq!(
            parallel_map(7, &items, |item| item * 2),
            items.iter().map(|item| item * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn config_debug_never_shows_the_token() {
        let config = RemoteConfig::default().with_token("s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
