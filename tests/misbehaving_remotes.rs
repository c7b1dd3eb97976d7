//! Remotes and registries that misbehave get nothing and stall nothing
//! (issue 16, items 5 and 6). Each test starts what it needs on 127.0.0.1
//! (the fixture archive, a directory remote filled by a signed build, the
//! fault-injecting server in front of it, a registry that lies) and runs
//! the real binary:
//!
//! - a remote dripping one byte every 2 s, in an envelope or in a blob, is
//!   abandoned at the read's deadline (30 s for an envelope at the default
//!   `--http-timeout`, scaled by it) and the build goes on upstream;
//! - a FIFO at an entry's or a blob's path of a `file://` remote is
//!   refused unread, without blocking;
//! - a 2 GiB sparse envelope and a link to `/dev/zero` as an envelope are
//!   refused with bounded memory, read once, warned about once;
//! - `image merge` against a registry serving an endless config or
//!   dripping a manifest fails in bounded time and memory, naming the
//!   registry, the repository and the digest;
//! - `--trust` given a secret key never prints any of it.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::archive::{Archive, ArchiveBuilder, sha256_hex};
use support::faulted::{build_command, run_within};
use support::faults::{Fault, FaultServer};
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, temp_dir};
use tempfile::TempDir;

/// The most any of these builds may take: the issue's bound.
const BOUND: Duration = Duration::from_secs(60);
/// The peak resident memory a refused read may cost, in all.
const MEMORY_BOUND_KB: u64 = 200 * 1024;
/// One byte every two seconds: never idle long enough for the idle timeout.
const DRIP: Fault = Fault::Trickle {
    chunk: 1,
    pause: Duration::from_secs(2),
};

fn summary(report: &Value, field: &str) -> u64 {
    report["summary"][field].as_u64().unwrap()
}

/// The fixture archive, a project of `hello`, and a directory remote that
/// machine A filled with a signed build of it.
struct Filled {
    _archive: Archive,
    _server: Server,
    project: Project,
    _keys: TempDir,
    public: String,
    secret: PathBuf,
    remote: TempDir,
}

impl Filled {
    fn new() -> Filled {
        let archive = ArchiveBuilder::standard().build();
        let server = Server::serve(archive.root());
        let project = Project::fixture(&archive, &server, &["hello"], "");
        let keys = temp_dir("xbuild-keys-");
        let (secret, public) = support::xbuild::keygen(keys.path(), "ci");
        let remote = temp_dir("xbuild-remote-");
        let filled = Filled {
            _archive: archive,
            _server: server,
            project,
            _keys: keys,
            public,
            secret,
            remote,
        };
        let url = filled.file_url();
        let out = temp_dir("xbuild-out-");
        let mut command = build_command(&Xbuild::new(), filled.project.path(), out.path());
        command.args(["--remote", &url, "--sign", filled.secret.to_str().unwrap()]);
        run_within(&mut command, BOUND).success();
        filled
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.remote.path().display())
    }

    /// Every file under `relative` of the remote.
    fn files(&self, relative: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut stack = vec![self.remote.path().join(relative)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(
            !files.is_empty(),
            "the remote holds nothing under {relative}"
        );
        files.sort();
        files
    }

    /// The envelope of the one InRelease entry: asked once per build.
    fn inrelease_envelope(&self) -> PathBuf {
        let files = self.files("entries-v1/inrelease-v1");
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }

    /// A build of the project on an empty cache reading `remote`, trusting
    /// the key that signed it; killed (failing the test) past [`BOUND`].
    fn build_from(&self, remote: &str, extra_env: &[(&str, &str)]) -> (RunOutput, Duration) {
        let mut machine = Xbuild::new();
        for (name, value) in extra_env {
            machine = machine.with_env(name, value);
        }
        let out = temp_dir("xbuild-out-");
        let mut command = build_command(&machine, self.project.path(), out.path());
        command.args(["--remote", remote, "--trust", &self.public]);
        let start = Instant::now();
        let run = run_within(&mut command, BOUND);
        (run, start.elapsed())
    }
}

/// The `warning:` lines of a run.
fn warnings(run: &RunOutput) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .collect()
}

/// Replaces `path` with a FIFO nothing ever writes to.
fn make_fifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `command` under `/usr/bin/time` with at most 4 GiB of address
/// space (so a regression fails fast instead of exhausting the machine),
/// killed past [`BOUND`]; what it printed, and its peak resident memory in
/// KiB.
fn run_measured(command: &Command) -> (RunOutput, u64) {
    let measure = temp_dir("xbuild-time-");
    let report = measure.path().join("time");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        timed.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = run_within(&mut timed, BOUND);
    let text = std::fs::read_to_string(&report).unwrap();
    let peak_kb = text
        .lines()
        .filter_map(|line| line.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak memory in {text:?}\n{run}"));
    (run, peak_kb)
}

#[test]
fn a_remote_dripping_an_envelope_is_abandoned_at_30_s_and_the_build_goes_upstream() {
    // The default --http-timeout (30 s): the 60 s bound of the issue.
    let filled = Filled::new();
    let faults = FaultServer::serve(filled.remote.path());
    faults.inject("entries-v1", DRIP, usize::MAX);
    let remote = faults.url("");
    let remote = remote.trim_end_matches('/');
    let (run, elapsed) = filled.build_from(remote, &[]);
    let report = run.success().json();
    assert!(elapsed < BOUND, "{elapsed:?}\n{run}");
    assert_eq!(summary(&report, "remote"), 0, "{run}");
    assert!(summary(&report, "downloaded") > 0, "{run}");
    let envelope = filled.inrelease_envelope();
    let key = envelope.file_name().unwrap().to_str().unwrap();
    let warned = warnings(&run);
    assert!(
        warned.iter().any(|line| line.contains(remote)
            && line.contains(&format!("inrelease-v1/{key}"))
            && line.contains("too slow, not asked again")
            && line.contains("not complete after 30 s")),
        "no warning naming the remote, the entry and the deadline:\n{run}"
    );
    // Too slow once is too slow for the run: asked no more.
    assert_eq!(warned.len(), 1, "{run}");
    eprintln!("dripped envelope: upstream after {elapsed:?}");
}

#[test]
fn a_remote_dripping_a_blob_is_abandoned_at_its_deadline_scaled_by_the_http_timeout() {
    // --http-timeout 4 (longer than the 2 s between bytes, so only the
    // deadline can end the read): 4 s, and 4/30 s per MiB of the blob.
    let filled = Filled::new();
    let faults = FaultServer::serve(filled.remote.path());
    faults.inject("blobs-v1", DRIP, usize::MAX);
    let remote = faults.url("");
    let remote = remote.trim_end_matches('/');
    let (run, elapsed) = filled.build_from(remote, &[("XBUILD_HTTP_TIMEOUT", "4")]);
    let report = run.success().json();
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}\n{run}");
    assert_eq!(summary(&report, "remote"), 0, "{run}");
    assert!(summary(&report, "downloaded") > 0, "{run}");
    let warned = warnings(&run);
    assert!(
        warned.iter().any(|line| line.contains(remote)
            && line.contains("inrelease-v1/")
            && line.contains("blobs-v1/sha256/")
            && line.contains("not complete after 4 s")),
        "no warning naming the remote, the entry, the blob and the deadline:\n{run}"
    );
    assert_eq!(warned.len(), 1, "{run}");
    eprintln!("dripped blob: upstream after {elapsed:?}");
}

#[test]
fn fifos_at_entry_and_blob_paths_of_a_directory_remote_are_refused_without_blocking() {
    let filled = Filled::new();
    let url = filled.file_url();
    let envelopes = filled.files("entries-v1");
    let saved: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    for path in &envelopes {
        make_fifo(path);
    }
    let (run, elapsed) = filled.build_from(&url, &[]);
    let report = run.success().json();
    assert_eq!(summary(&report, "remote"), 0, "{run}");
    assert!(summary(&report, "downloaded") > 0, "{run}");
    assert!(
        run.stderr.contains("is a FIFO, not a regular file"),
        "no warning about the FIFOs:\n{run}"
    );
    eprintln!("FIFO envelopes: upstream after {elapsed:?}");

    for (path, bytes) in envelopes.iter().zip(&saved) {
        std::fs::remove_file(path).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    for path in filled.files("blobs-v1") {
        make_fifo(&path);
    }
    let (run, elapsed) = filled.build_from(&url, &[]);
    let report = run.success().json();
    assert!(summary(&report, "downloaded") > 0, "{run}");
    assert!(
        warnings(&run)
            .iter()
            .any(|line| line.contains("blobs-v1/sha256/")
                && line.contains("is a FIFO, not a regular file")),
        "no warning naming a FIFO blob:\n{run}"
    );
    eprintln!("FIFO blobs: upstream after {elapsed:?}");
}

#[test]
fn huge_sparse_envelopes_or_links_to_dev_zero_are_refused_once_each_with_bounded_memory() {
    // The layer entries: a build looks each up several times.
    let filled = Filled::new();
    let url = filled.file_url();
    let envelopes = filled.files("entries-v1/layer-v1");
    let keys: Vec<String> = envelopes
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    let build = || {
        let out = temp_dir("xbuild-out-");
        let mut command = build_command(&Xbuild::new(), filled.project.path(), out.path());
        command.args(["--remote", &url, "--trust", &filled.public]);
        run_measured(&command)
    };
    // One warning per entry, each naming it, and none twice.
    let once_each = |run: &RunOutput, says: &str| {
        let warned = warnings(run);
        assert!(!warned.is_empty(), "no warning:\n{run}");
        for line in &warned {
            assert!(line.contains(says), "{line}\n{run}");
        }
        for key in &keys {
            let count = warned
                .iter()
                .filter(|line| line.contains(&format!("layer-v1/{key}")))
                .count();
            assert!(
                count <= 1,
                "layer-v1/{key} warned about {count} times:\n{run}"
            );
        }
        assert!(
            warned.iter().all(|line| keys
                .iter()
                .any(|key| line.contains(&format!("layer-v1/{key}")))),
            "{run}"
        );
    };

    for path in &envelopes {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
    }
    let (run, peak_kb) = build();
    let report = run.success().json();
    assert!(summary(&report, "built") > 0, "{run}");
    assert!(
        peak_kb < MEMORY_BOUND_KB,
        "2 GiB envelopes cost {peak_kb} KiB:\n{run}"
    );
    once_each(
        &run,
        "more than the 16777216 bytes a signed document may hold",
    );
    eprintln!("2 GiB sparse envelopes: peak {peak_kb} KiB");

    for path in &envelopes {
        std::fs::remove_file(path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", path).unwrap();
    }
    let (run, peak_kb) = build();
    run.success();
    assert!(
        peak_kb < MEMORY_BOUND_KB,
        "links to /dev/zero cost {peak_kb} KiB:\n{run}"
    );
    once_each(&run, "is a character device, not a regular file");
    eprintln!("/dev/zero envelopes: peak {peak_kb} KiB");
}

/// A registry on 127.0.0.1 that lies: the manifest tagged `one` declares a
/// 400-byte config, whose blob never ends (400 MB of zeros, then it
/// closes); the manifest asked by digest is dripped one byte every 2 s.
struct LyingRegistry {
    port: u16,
    config: String,
    dripped: String,
}

impl LyingRegistry {
    fn start() -> LyingRegistry {
        let config = format!("sha256:{}", sha256_hex(b"the config it declares"));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":400}},"layers":[]}}"#
        );
        let dripped = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (config_path, dripped_path) = (
            format!("/v2/app/blobs/{config}"),
            format!("/v2/app/manifests/{dripped}"),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (manifest, config_path, dripped_path) =
                    (manifest.clone(), config_path.clone(), dripped_path.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &manifest, &config_path, &dripped_path);
                });
            }
        });
        LyingRegistry {
            port,
            config,
            dripped,
        }
    }
}

fn serve(
    stream: TcpStream,
    manifest: &str,
    config_path: &str,
    dripped_path: &str,
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let head = |length: Option<usize>, kind: &str| {
        let length = length.map_or(String::new(), |length| {
            format!("Content-Length: {length}\r\n")
        });
        format!("HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n{length}Connection: close\r\n\r\n")
    };
    if path == "/v2/" {
        writer.write_all(head(Some(2), "application/json").as_bytes())?;
        writer.write_all(b"{}")?;
    } else if path == "/v2/app/manifests/one" {
        let kind = "application/vnd.oci.image.manifest.v1+json";
        writer.write_all(head(Some(manifest.len()), kind).as_bytes())?;
        writer.write_all(manifest.as_bytes())?;
    } else if path == config_path {
        // No length, and more than any config: until 400 MB or the client
        // hangs up.
        writer.write_all(head(None, "application/octet-stream").as_bytes())?;
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..(400 * 1024 * 1024 / zeros.len()) {
            writer.write_all(&zeros)?;
        }
    } else if path == dripped_path {
        let kind = "application/vnd.oci.image.manifest.v1+json";
        writer.write_all(head(Some(manifest.len()), kind).as_bytes())?;
        for byte in manifest.bytes() {
            writer.write_all(&[byte])?;
            writer.flush()?;
            std::thread::sleep(Duration::from_secs(2));
        }
    } else {
        writer.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
    }
    writer.flush()?;
    let _ = reader.read(&mut [0u8; 1]);
    Ok(())
}

#[test]
fn image_merge_refuses_an_endless_config_and_a_dripped_manifest_in_bounded_time_and_memory() {
    let registry = LyingRegistry::start();
    let host = format!("127.0.0.1:{}", registry.port);
    let merge = |source: &str| {
        let mut command = Xbuild::new().command();
        command.env("XBUILD_HTTP_TIMEOUT", "4").args([
            "image",
            "merge",
            &format!("{host}/app:multi"),
            &format!("{host}/app{source}"),
        ]);
        let start = Instant::now();
        let (run, peak_kb) = run_measured(&command);
        (run, peak_kb, start.elapsed())
    };

    let (run, peak_kb, elapsed) = merge(":one");
    run.failure();
    assert_eq!(run.status.code(), Some(4), "{run}");
    assert!(
        run.stderr
            .contains(&format!("oci://{host}/app/blobs/{}", registry.config))
            && run.stderr.contains("more than the 400 bytes"),
        "the error does not name the registry, repository and digest:\n{run}"
    );
    assert!(peak_kb < MEMORY_BOUND_KB, "{peak_kb} KiB:\n{run}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}\n{run}");
    eprintln!(
        "endless config: refused after {elapsed:?}, peak {peak_kb} KiB\n{}",
        run.stderr
    );

    let (run, peak_kb, elapsed) = merge(&format!("@{}", registry.dripped));
    run.failure();
    assert_eq!(run.status.code(), Some(3), "{run}");
    assert!(
        run.stderr
            .contains(&format!("oci://{host}/app/manifests/{}", registry.dripped))
            && run.stderr.contains("not complete after 4 s"),
        "the error does not name the registry, repository, digest and deadline:\n{run}"
    );
    assert!(peak_kb < MEMORY_BOUND_KB, "{peak_kb} KiB:\n{run}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}\n{run}");
    eprintln!(
        "dripped manifest: abandoned after {elapsed:?}\n{}",
        run.stderr
    );
}

#[test]
fn a_secret_key_given_to_trust_is_never_printed() {
    let keys = temp_dir("xbuild-keys-");
    let secret_file = keys.path().join("ci.secret");
    Xbuild::new()
        .run(&[
            "cache",
            "keygen",
            "--name",
            "ci",
            "--out",
            secret_file.to_str().unwrap(),
        ])
        .success();
    // What `--trust "$(cat ci.secret)"` passes.
    let secret = std::fs::read_to_string(&secret_file)
        .unwrap()
        .trim_end()
        .to_owned();
    let encoded = secret.split_once(':').unwrap().1.to_owned();
    // No server: the key is refused before anything is asked.
    let project = Project::new(&support::xbuild::fixture_manifest(
        "http://127.0.0.1:9/debian",
        &["hello"],
        "",
    ));
    project.write("fixture-key.gpg", b"");
    let remote = temp_dir("xbuild-remote-");
    let remote_url = format!("file://{}", remote.path().display());
    for extra in [vec![], vec!["--remote", remote_url.as_str()]] {
        let mut args = vec![
            "build",
            project.path().to_str().unwrap(),
            "--target",
            FIXTURE_TARGET,
            "--trust",
            &secret,
        ];
        args.extend(extra);
        let run = Xbuild::new().run(&args);
        assert_eq!(run.status.code(), Some(2), "{run}");
        assert!(run.stderr.contains("trusted key"), "{run}");
        assert!(run.stderr.contains("secret key"), "{run}");
        let printed = format!("{}{}", run.stdout, run.stderr);
        for start in 0..=encoded.len() - 8 {
            let piece = &encoded[start..start + 8];
            assert!(
                !printed.contains(piece),
                "the output holds `{piece}` of the secret key:\n{run}"
            );
        }
    }
}
