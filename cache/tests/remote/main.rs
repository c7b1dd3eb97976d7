//! The remote cache against real servers on 127.0.0.1: a plain directory,
//! nginx with WebDAV PUT, and Debian's `docker-registry`. Each test starts
//! its own server and two empty local caches ("machines" A and B).

mod auth;
mod chunks;
mod misbehaving;
mod servers;
mod speed;

use servers::{Failing, Nginx, NginxOptions, Registry};
use std::path::PathBuf;
use xbuild_cache::backend::{self, Backend, BlobRef, RemoteConfig, RemoteError};
use xbuild_cache::hash::Sha256Digest;
use xbuild_cache::remote::{Problem, Remotes, UploadEntry};
use xbuild_cache::sign::{SecretKey, TrustError};
use xbuild_cache::{Bucket, Cache, EntryMeta};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    File,
    Http,
    Oci,
}

/// A running remote of one kind.
pub enum Server {
    Directory(tempfile::TempDir),
    Nginx(Nginx),
    Registry(Registry),
}

impl Server {
    pub fn start(kind: Kind) -> Server {
        match kind {
            Kind::File => Server::Directory(tempfile::tempdir().unwrap()),
            Kind::Http => Server::Nginx(Nginx::start(NginxOptions::default())),
            Kind::Oci => Server::Registry(Registry::start()),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Server::Directory(dir) => format!("file://{}/team-cache", dir.path().display()),
            Server::Nginx(nginx) => nginx.url("team/xb"),
            Server::Registry(registry) => registry.url("team/xb"),
        }
    }

    pub fn backend(&self) -> Box<dyn Backend> {
        backend::open(&self.url(), &RemoteConfig::default()).unwrap()
    }

    /// Where the server keeps the bytes of a blob.
    fn blob_file(&self, digest: &Sha256Digest) -> PathBuf {
        match self {
            Server::Directory(dir) => dir
                .path()
                .join("team-cache/blobs-v1/sha256")
                .join(digest.hex()),
            Server::Nginx(nginx) => nginx
                .root
                .join("team/xb/blobs-v1/sha256")
                .join(digest.hex()),
            Server::Registry(registry) => registry.blob_data(&digest.hex()),
        }
    }

    /// Changes one byte of a stored blob, keeping its size.
    fn alter_blob(&self, digest: &Sha256Digest) {
        let path = self.blob_file(digest);
        let mut bytes =
            std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        bytes[0] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
}

/// An empty local cache.
pub struct Machine {
    _dir: tempfile::TempDir,
    pub cache: Cache,
}

pub fn machine() -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    Machine { _dir: dir, cache }
}

/// Stores blobs and a record listing them in `cache`, as a build would,
/// and returns the entry to upload.
pub fn stored_entry(cache: &Cache, name: &str, blobs: &[&[u8]]) -> UploadEntry {
    let refs: Vec<BlobRef> = blobs
        .iter()
        .map(|bytes| BlobRef::new(cache.put_blob_bytes(bytes).unwrap(), bytes.len() as u64))
        .collect();
    let key = Sha256Digest::of(name.as_bytes());
    let record = serde_json::json!({
        "name": name,
        "outputs": refs.iter().map(|blob| blob.digest.oci()).collect::<Vec<_>>(),
    });
    let meta = EntryMeta::for_platform("aarch64-linux").with_blobs(refs);
    cache.put_entry(Bucket::Layer, &key, &record, meta).unwrap();
    UploadEntry::from_local(cache, Bucket::Layer, &key)
        .unwrap()
        .unwrap()
}

/// A megabyte of bytes that differ per `seed`.
pub fn big(seed: u8) -> Vec<u8> {
    (0..1024 * 1024u32)
        .map(|index| (index.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

fn remotes(server: &Server, trusted: &SecretKey) -> Remotes {
    Remotes::open(
        &[server.url()],
        &RemoteConfig::default(),
        vec![trusted.public()],
    )
    .unwrap()
}

/// Asserts that nothing of `entry` is in `cache`.
fn assert_nothing_of(cache: &Cache, entry: &UploadEntry) {
    for blob in &entry.blobs {
        assert!(
            !cache.has_blob(&blob.digest),
            "blob {:?} entered the local cache",
            blob.digest
        );
    }
    let record: Option<serde_json::Value> = cache.get_entry(entry.bucket, &entry.key).unwrap();
    assert!(
        record.is_none(),
        "the refused entry entered the local cache"
    );
}

macro_rules! for_each_backend {
    ($($test:ident),* $(,)?) => {
        mod file { $( #[test] fn $test() { super::$test(super::Kind::File) } )* }
        mod http { $( #[test] fn $test() { super::$test(super::Kind::Http) } )* }
        mod oci { $( #[test] fn $test() { super::$test(super::Kind::Oci) } )* }
    };
}

for_each_backend!(
    blobs_entries_and_pointers_round_trip,
    a_second_upload_uploads_nothing_and_b_fetches_everything,
    an_entry_signed_by_an_untrusted_key_is_refused,
    a_blob_altered_on_the_server_is_refused,
    an_envelope_whose_signature_was_altered_is_refused,
    an_entry_served_under_another_key_is_refused,
    a_corrupt_local_blob_never_reaches_the_remote,
);

fn blobs_entries_and_pointers_round_trip(kind: Kind) {
    let server = Server::start(kind);
    let backend = server.backend();
    let dir = tempfile::tempdir().unwrap();
    let contents: [&[u8]; 2] = [b"a blob", b""];
    let blobs: Vec<BlobRef> = contents
        .iter()
        .map(|bytes| BlobRef::new(Sha256Digest::of(bytes), bytes.len() as u64))
        .collect();
    let absent = Sha256Digest::of(b"never uploaded");
    let digests = [blobs[0].digest, blobs[1].digest, absent];
    assert_eq!(backend.has_blobs(&digests).unwrap(), [false, false, false]);
    for (bytes, blob) in contents.iter().zip(&blobs) {
        let path = dir.path().join(blob.digest.hex());
        std::fs::write(&path, bytes).unwrap();
        backend.put_blob(blob, &path).unwrap();
    }
    assert_eq!(backend.has_blobs(&digests).unwrap(), [true, true, false]);
    let mut read = Vec::new();
    assert_eq!(backend.get_blob(&blobs[0], &mut read).unwrap(), Some(6));
    assert_eq!(read, b"a blob");
    let absent_blob = BlobRef::new(absent, 1);
    assert_eq!(
        backend.get_blob(&absent_blob, &mut Vec::new()).unwrap(),
        None
    );

    let key = Sha256Digest::of(b"key");
    assert_eq!(backend.get_entry("layer", &key).unwrap(), None);
    assert!(!backend.has_entry("layer", &key).unwrap());
    backend
        .put_entry("layer", &key, b"{\"envelope\":1}", &blobs)
        .unwrap();
    assert_eq!(
        backend.get_entry("layer", &key).unwrap().unwrap(),
        b"{\"envelope\":1}"
    );
    assert!(backend.has_entry("layer", &key).unwrap());
    assert!(!backend.has_entry("build", &key).unwrap());

    assert_eq!(
        backend.get_pointer("latest.cowsay.aarch64-linux").unwrap(),
        None
    );
    backend
        .put_pointer("latest.cowsay.aarch64-linux", b"first")
        .unwrap();
    backend
        .put_pointer("latest.cowsay.aarch64-linux", b"second")
        .unwrap();
    assert_eq!(
        backend
            .get_pointer("latest.cowsay.aarch64-linux")
            .unwrap()
            .unwrap(),
        b"second"
    );
    let error = backend.get_entry("../etc", &key).unwrap_err();
    assert!(matches!(error, RemoteError::InvalidName { .. }), "{error}");
}

fn a_second_upload_uploads_nothing_and_b_fetches_everything(kind: Kind) {
    let server = Server::start(kind);
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let shared = big(1);
    let first = stored_entry(&a.cache, "first", &[&shared, b"small output"]);
    let second = stored_entry(&a.cache, "second", &[&shared]);
    let entries = [first.clone(), second.clone()];
    let remotes = remotes(&server, &signer);

    let report = remotes.upload(&a.cache, &entries, &signer);
    assert!(!report.has_failures(), "{report:#?}");
    let remote = &report.remotes[0];
    assert_eq!(
        (remote.entries_uploaded, remote.blobs_uploaded),
        (2, 2),
        "{report:#?}"
    );
    assert_eq!(remote.bytes_uploaded, shared.len() as u64 + 12);

    let again = remotes.upload(&a.cache, &entries, &signer);
    let remote = &again.remotes[0];
    assert!(!again.has_failures(), "{again:#?}");
    assert_eq!(
        (
            remote.entries_uploaded,
            remote.blobs_uploaded,
            remote.bytes_uploaded
        ),
        (0, 0, 0)
    );
    assert_eq!((remote.entries_skipped, remote.blobs_skipped), (2, 2));

    let b = machine();
    let fetch = remotes.fetch_entry(&b.cache, Bucket::Layer, &first.key);
    assert!(fetch.warnings.is_empty(), "{:?}", fetch.warnings);
    let hit = fetch.hit.expect("a hit");
    assert_eq!(hit.remote, server.url());
    assert_eq!(hit.signer, "team-1");
    assert_eq!(hit.platform, "aarch64-linux");
    assert_eq!(hit.record, first.record);
    assert_eq!(hit.blobs_fetched, 2);
    assert!(hit.bytes_fetched > shared.len() as u64);
    for blob in &first.blobs {
        assert!(
            b.cache
                .verified_blob(&blob.digest, Some(blob.size))
                .unwrap()
                .is_some()
        );
    }
    let raw = b
        .cache
        .read_entry_raw(Bucket::Layer, &first.key)
        .unwrap()
        .unwrap();
    assert_eq!(raw.bytes, first.record);
    // The second entry's one blob came with the first.
    let hit = remotes
        .fetch_entry(&b.cache, Bucket::Layer, &second.key)
        .hit
        .unwrap();
    assert_eq!(hit.blobs_fetched, 0);

    let absent = remotes.fetch_entry(&b.cache, Bucket::Layer, &Sha256Digest::of(b"absent"));
    assert!(
        absent.hit.is_none() && absent.warnings.is_empty(),
        "{absent:?}"
    );

    let read_only = self::remotes(&server, &signer).with_read_only(true);
    let report = read_only.upload(&a.cache, &entries, &signer);
    assert!(report.read_only && report.remotes.is_empty());

    // A blob the remote lost is uploaded again, and its entry re-signed.
    if let Server::Directory(_) = server {
        std::fs::remove_file(server.blob_file(&first.blobs[1].digest)).unwrap();
        let report = remotes.upload(&a.cache, &entries, &signer);
        let remote = &report.remotes[0];
        assert_eq!(
            (
                remote.blobs_uploaded,
                remote.entries_uploaded,
                remote.entries_skipped
            ),
            (1, 1, 1)
        );
    }
}

/// Uploads one entry of two blobs signed by `signer`.
fn uploaded(server: &Server, signer: &SecretKey) -> UploadEntry {
    let a = machine();
    let entry = stored_entry(&a.cache, "toolchain", &[&big(7), b"second blob"]);
    let report = remotes(server, signer).upload(&a.cache, std::slice::from_ref(&entry), signer);
    assert!(!report.has_failures(), "{report:#?}");
    entry
}

/// Fetches `entry` on an empty machine trusting `trusted`: the one
/// warning, after checking that nothing of the entry entered the cache.
fn refused(server: &Server, trusted: &SecretKey, entry: &UploadEntry) -> String {
    let b = machine();
    let fetch = remotes(server, trusted).fetch_entry(&b.cache, entry.bucket, &entry.key);
    assert!(fetch.hit.is_none(), "a refused entry was used");
    assert_eq!(fetch.warnings.len(), 1, "{:?}", fetch.warnings);
    assert_nothing_of(&b.cache, entry);
    let warning = &fetch.warnings[0];
    assert_eq!(warning.remote, server.url());
    let text = warning.to_string();
    assert!(text.contains(&entry.key.hex()), "{text}");
    match &warning.problem {
        Problem::Refused(_) | Problem::BlobCorrupt { .. } => {}
        other => panic!("unexpected problem: {other:?}"),
    }
    text
}

fn an_entry_signed_by_an_untrusted_key_is_refused(kind: Kind) {
    let server = Server::start(kind);
    let stranger = SecretKey::generate("stranger-1").unwrap();
    let entry = uploaded(&server, &stranger);
    let text = refused(&server, &SecretKey::generate("team-1").unwrap(), &entry);
    assert!(
        text.contains("signed only by keys not trusted here: stranger-1"),
        "{text}"
    );
}

fn a_blob_altered_on_the_server_is_refused(kind: Kind) {
    let server = Server::start(kind);
    let signer = SecretKey::generate("team-1").unwrap();
    let entry = uploaded(&server, &signer);
    server.alter_blob(
        &entry
            .blobs
            .iter()
            .max_by_key(|blob| blob.size)
            .unwrap()
            .digest,
    );
    let text = refused(&server, &signer, &entry);
    assert!(text.contains("is not the one the entry lists"), "{text}");
    assert!(text.contains("expected 1048576 bytes"), "{text}");
}

fn an_envelope_whose_signature_was_altered_is_refused(kind: Kind) {
    let server = Server::start(kind);
    let signer = SecretKey::generate("team-1").unwrap();
    let entry = uploaded(&server, &signer);
    let backend = server.backend();
    let envelope = backend
        .get_entry(entry.bucket.name(), &entry.key)
        .unwrap()
        .unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    let signature = value["signatures"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another valid base64 signature of the same length.
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    value["signatures"][0]["signature"] = format!("{flipped}{}", &signature[1..]).into();
    let altered = serde_json::to_vec(&value).unwrap();
    backend
        .put_entry(entry.bucket.name(), &entry.key, &altered, &entry.blobs)
        .unwrap();
    let text = refused(&server, &signer, &entry);
    assert!(
        text.contains("the signature by team-1 does not verify"),
        "{text}"
    );
}

fn an_entry_served_under_another_key_is_refused(kind: Kind) {
    let server = Server::start(kind);
    let signer = SecretKey::generate("team-1").unwrap();
    let entry = uploaded(&server, &signer);
    let backend = server.backend();
    let envelope = backend
        .get_entry(entry.bucket.name(), &entry.key)
        .unwrap()
        .unwrap();
    let mut other = entry.clone();
    other.key = Sha256Digest::of(b"a node that was never built");
    backend
        .put_entry(other.bucket.name(), &other.key, &envelope, &other.blobs)
        .unwrap();
    let b = machine();
    let fetch = remotes(&server, &signer).fetch_entry(&b.cache, other.bucket, &other.key);
    assert!(fetch.hit.is_none());
    assert_nothing_of(&b.cache, &other);
    let text = fetch.warnings[0].to_string();
    assert!(
        matches!(
            fetch.warnings[0].problem,
            Problem::Refused(TrustError::Mismatch { .. })
        ),
        "{text}"
    );
    assert!(
        text.contains("is signed by team-1 for another entry"),
        "{text}"
    );
    assert!(text.contains(&entry.key.hex()), "{text}");
}

fn a_corrupt_local_blob_never_reaches_the_remote(kind: Kind) {
    let server = Server::start(kind);
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let entry = stored_entry(&a.cache, "x", &[&big(3)]);
    let blob = entry.blobs[0];
    // Same size, other bytes: only hashing tells.
    let mut bytes = big(3);
    bytes[blob.size as usize - 1] ^= 1;
    std::fs::write(a.cache.blob_path(&blob.digest), bytes).unwrap();
    let report = remotes(&server, &signer).upload(&a.cache, std::slice::from_ref(&entry), &signer);
    let failures = &report.remotes[0].failures;
    assert_eq!(failures.len(), 2, "{report:#?}");
    assert!(
        failures[0].error.contains("the local file is not the blob"),
        "{report:#?}"
    );
    let backend = server.backend();
    assert_eq!(backend.has_blobs(&[blob.digest]).unwrap(), [false]);
    assert!(!backend.has_entry(entry.bucket.name(), &entry.key).unwrap());
}

#[test]
fn a_blob_the_remote_lost_or_lengthened_is_a_miss_and_nothing_enters_the_cache() {
    let server = Server::start(Kind::File);
    let signer = SecretKey::generate("team-1").unwrap();
    let entry = uploaded(&server, &signer);
    let [large, small] = [0, 1].map(|index| entry.blobs[index]);
    let original = std::fs::read(server.blob_file(&small.digest)).unwrap();
    let longer = [&original[..], b"and then some"].concat();
    std::fs::write(server.blob_file(&small.digest), longer).unwrap();
    let b = machine();
    let fetch = remotes(&server, &signer).fetch_entry(&b.cache, entry.bucket, &entry.key);
    assert!(
        matches!(fetch.warnings[0].problem, Problem::BlobTooLong { .. }),
        "{}",
        fetch.warnings[0]
    );
    assert_nothing_of(&b.cache, &entry);

    std::fs::write(server.blob_file(&small.digest), original).unwrap();
    std::fs::remove_file(server.blob_file(&large.digest)).unwrap();
    let fetch = remotes(&server, &signer).fetch_entry(&b.cache, entry.bucket, &entry.key);
    let text = fetch.warnings[0].to_string();
    assert!(
        matches!(fetch.warnings[0].problem, Problem::BlobMissing { .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{:?}, which the remote does not have",
            large.digest
        )),
        "{text}"
    );
    assert_nothing_of(&b.cache, &entry);
}

#[test]
fn a_remote_that_never_answers_times_out_into_a_warning() {
    // Connections are accepted by the kernel and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = RemoteConfig::default().with_idle_timeout(std::time::Duration::from_millis(300));
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let entry = stored_entry(&a.cache, "x", &[b"bytes"]);
    for url in [
        format!("http://127.0.0.1:{port}/xb"),
        format!("oci://127.0.0.1:{port}/xb"),
    ] {
        let remotes = Remotes::open(&[url], &config, vec![signer.public()]).unwrap();
        let start = std::time::Instant::now();
        let fetch = remotes.fetch_entry(&a.cache, Bucket::Layer, &entry.key);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        let text = fetch.warnings[0].to_string();
        assert!(
            matches!(fetch.warnings[0].problem, Problem::Unreachable(_)),
            "{text}"
        );
        assert!(text.contains("no answer for"), "{text}");
    }
    drop(silent);
}

#[test]
fn a_remote_that_is_down_is_a_miss_with_a_warning_and_asked_once() {
    let port = servers::free_port();
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let entry = stored_entry(&a.cache, "x", &[b"bytes"]);
    for url in [
        format!("http://127.0.0.1:{port}/xb"),
        format!("oci://127.0.0.1:{port}/xb"),
    ] {
        let remotes = Remotes::open(
            std::slice::from_ref(&url),
            &RemoteConfig::default(),
            vec![signer.public()],
        )
        .unwrap();
        let fetch = remotes.fetch_entry(&a.cache, Bucket::Layer, &entry.key);
        assert!(fetch.hit.is_none());
        let text = fetch.warnings[0].to_string();
        assert!(
            matches!(fetch.warnings[0].problem, Problem::Unreachable(_)),
            "{text}"
        );
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("not asked again"), "{text}");
        assert!(fetch.warnings[0].hint().unwrap().contains("reachable"));
        let again = remotes.fetch_entry(&a.cache, Bucket::Layer, &entry.key);
        assert!(again.warnings.is_empty(), "a down remote was asked again");
        let report = remotes.upload(&a.cache, std::slice::from_ref(&entry), &signer);
        assert!(report.has_failures(), "{report:#?}");
        assert_eq!(report.entries_uploaded(), 0);
    }
}

#[test]
fn a_web_server_refusing_every_put_fails_the_upload_and_reads_still_miss() {
    let nginx = Nginx::start(NginxOptions {
        fail_puts: true,
        ..NginxOptions::default()
    });
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let entry = stored_entry(&a.cache, "x", &[b"bytes", b"more bytes"]);
    let remotes = Remotes::open(
        &[nginx.url("xb")],
        &RemoteConfig::default(),
        vec![signer.public()],
    )
    .unwrap();
    let report = remotes.upload(&a.cache, std::slice::from_ref(&entry), &signer);
    assert!(report.has_failures());
    let remote = &report.remotes[0];
    assert_eq!((remote.entries_uploaded, remote.blobs_uploaded), (0, 0));
    // Two blobs and the entry that needs them.
    assert_eq!(remote.failures.len(), 3, "{report:#?}");
    assert!(
        remote.failures[0].error.contains("answered HTTP 500"),
        "{report:#?}"
    );
    assert!(remote.failures[2].error.contains("its blob"), "{report:#?}");
    let b = machine();
    let fetch = remotes.fetch_entry(&b.cache, Bucket::Layer, &entry.key);
    assert!(
        fetch.hit.is_none() && fetch.warnings.is_empty(),
        "{fetch:?}"
    );
}

#[test]
fn a_registry_answering_500_fails_the_upload_and_warns_on_reads() {
    let failing = Failing::start();
    let signer = SecretKey::generate("team-1").unwrap();
    let a = machine();
    let entry = stored_entry(&a.cache, "x", &[b"bytes"]);
    let url = format!("oci://127.0.0.1:{}/xb", failing.port);
    let remotes = Remotes::open(&[url], &RemoteConfig::default(), vec![signer.public()]).unwrap();
    let report = remotes.upload(&a.cache, std::slice::from_ref(&entry), &signer);
    assert!(report.has_failures());
    assert!(
        report.remotes[0].failures[0].error.contains("HTTP 500"),
        "{report:#?}"
    );
    let fetch = remotes.fetch_entry(&a.cache, Bucket::Layer, &entry.key);
    assert!(fetch.hit.is_none());
    let text = fetch.warnings[0].to_string();
    assert!(
        matches!(fetch.warnings[0].problem, Problem::Failed(_)),
        "{text}"
    );
    assert!(text.contains("answered HTTP 500: internal error"), "{text}");
}

#[test]
fn pointers_are_signed_and_the_newest_trusted_one_wins() {
    let first = Server::start(Kind::File);
    let second = Server::start(Kind::File);
    let signer = SecretKey::generate("team-1").unwrap();
    let stranger = SecretKey::generate("stranger").unwrap();
    let both = Remotes::open(
        &[first.url(), second.url()],
        &RemoteConfig::default(),
        vec![signer.public()],
    )
    .unwrap();
    assert!(
        both.put_pointer("latest.app", b"entry-1", &signer)
            .is_empty()
    );
    let (pointer, warnings) = both.get_pointer("latest.app");
    assert!(warnings.is_empty());
    assert_eq!(pointer.unwrap().body, b"entry-1");
    let only_second = Remotes::open(&[second.url()], &RemoteConfig::default(), vec![]).unwrap();
    only_second.put_pointer("latest.app", b"forged", &stranger);
    let (pointer, warnings) = both.get_pointer("latest.app");
    assert_eq!(pointer.unwrap().body, b"entry-1");
    assert!(
        warnings[0].to_string().contains("stranger"),
        "{}",
        warnings[0]
    );
}
