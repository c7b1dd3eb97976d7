//! Helpers for the tests that fault or kill builds: a fixture archive behind
//! the [`FaultServer`], a reference build on a clean server to compare image
//! digests with, a runner that kills a build past a deadline (so a hang
//! fails the test instead of blocking it), and the checks that a cache holds
//! nothing half written or unverified after a fault.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::archive::{Archive, ArchiveBuilder, URL_PATH, sha256_hex};
use super::faults::FaultServer;
use super::files::{all_files, temp_leftovers};
use super::server::Server;
use super::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, fixture_manifest, temp_dir};

/// The package every fault test faults: its own `.deb` and layer.
pub const FAULTED_DEB: &str = "hello_2.10-3";

/// The fixture archive served by a fault-injecting server.
pub struct FaultFixture {
    pub server: FaultServer,
    pub archive: Archive,
}

impl FaultFixture {
    pub fn standard() -> FaultFixture {
        FaultFixture::of(ArchiveBuilder::standard().build())
    }

    pub fn of(archive: Archive) -> FaultFixture {
        let server = FaultServer::serve(archive.root());
        FaultFixture { server, archive }
    }

    /// `http://127.0.0.1:PORT/debian`
    pub fn repository_url(&self) -> String {
        self.server.url(URL_PATH)
    }

    /// A project including `hello`, reading the archive through the faults.
    pub fn project(&self) -> Project {
        project_for(&self.archive, &self.repository_url(), &["hello"])
    }

    /// The image digest of the same project built from a clean server into
    /// a fresh cache: what every faulted cache must give once healed.
    pub fn reference_digest(&self) -> String {
        self.reference_digest_of(&["hello"])
    }

    /// [`FaultFixture::reference_digest`] of a project including `include`.
    pub fn reference_digest_of(&self, include: &[&str]) -> String {
        let clean = Server::serve(self.archive.root());
        let project = project_for(&self.archive, &clean.url(URL_PATH), include);
        let out = temp_dir("xbuild-out-");
        manifest_digest(&Xbuild::new().build(project.path(), out.path(), &[FIXTURE_TARGET]))
    }
}

/// A project for `archive` at `repository` (its keyring copied beside it).
pub fn project_for(archive: &Archive, repository: &str, include: &[&str]) -> Project {
    let project = Project::new(&fixture_manifest(repository, include, ""));
    fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();
    project
}

/// The first target's image digest of a successful `--json` build.
pub fn manifest_digest(run: &RunOutput) -> String {
    run.success().json()["targets"][0]["manifest_digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no manifest_digest:\n{run}"))
        .to_owned()
}

/// `xbuild build PROJECT --target aarch64-linux --out OUT --json`, killed
/// (and the test failed) if it runs longer than `deadline`.
pub fn build_within(xbuild: &Xbuild, project: &Path, out: &Path, deadline: Duration) -> RunOutput {
    let mut command = build_command(xbuild, project, out);
    run_within(&mut command, deadline)
}

pub fn build_command(xbuild: &Xbuild, project: &Path, out: &Path) -> Command {
    let mut command = xbuild.command();
    command
        .arg("build")
        .arg(project)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .arg("--target")
        .arg(FIXTURE_TARGET);
    command
}

/// Runs `command`, killing it (and panicking with what it printed) past
/// `deadline`.
pub fn run_within(command: &mut Command, deadline: Duration) -> RunOutput {
    let capture = temp_dir("xbuild-capture-");
    let stdout_path = capture.path().join("stdout");
    let stderr_path = capture.path().join("stderr");
    command
        .stdout(Stdio::from(fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(fs::File::create(&stderr_path).unwrap()));
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {shown}: {error}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {deadline:?}, killed: {shown}\n--- stderr ---\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    RunOutput {
        command: shown,
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap(),
        stderr: fs::read_to_string(&stderr_path).unwrap(),
    }
}

/// The exit code, panicking with the output if there is none (a signal).
pub fn exit_code(run: &RunOutput) -> i32 {
    run.status
        .code()
        .unwrap_or_else(|| panic!("ended by a signal:\n{run}"))
}

/// Buckets of the cache whose hidden entries are trees being built.
pub const TREE_BUCKETS: [&str; 4] = ["toolchains-v1", "sysroots-v3", "compilers-v1", "sources-v1"];

/// Temp files under `cache`: those [`temp_leftovers`] finds (anything in
/// `tmp/`), and the hidden trees beside the entries of a tree bucket.
pub fn cache_leftovers(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut found = temp_leftovers(cache);
    for bucket in TREE_BUCKETS {
        let Ok(entries) = fs::read_dir(cache.join(bucket)) else {
            continue;
        };
        found.extend(
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
                .map(|entry| entry.path()),
        );
    }
    found
}

/// No temp file or directory is left, and every blob's content hashes to
/// its name: nothing half written, nothing unverified.
pub fn assert_no_half_written_entries(cache: &Path) {
    let leftovers = cache_leftovers(cache);
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    for blob in all_files(&cache.join("blobs-v1/sha256")) {
        let bytes = fs::read(&blob).unwrap();
        let name = blob.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            sha256_hex(&bytes),
            name,
            "blob {} does not match its name",
            blob.display()
        );
    }
    assert_entries_whole(cache);
}

/// Every record in `entries-v2` is whole JSON (records are written by
/// rename, so a torn one means a write was not atomic).
fn assert_entries_whole(cache: &Path) {
    for record in all_files(&cache.join("entries-v2")) {
        let bytes = fs::read(&record).unwrap();
        assert!(
            serde_json::from_slice::<Value>(&bytes).is_ok(),
            "record {} is not whole JSON",
            record.display()
        );
    }
}

/// After a fault: the cache is sound, and a build on it from the healed
/// server succeeds with the reference image digest.
pub fn assert_heals_to(
    fixture: &FaultFixture,
    xbuild: &Xbuild,
    project: &Project,
    reference: &str,
) {
    assert_no_half_written_entries(xbuild.cache_dir());
    fixture.server.heal();
    let out = temp_dir("xbuild-out-");
    let run = build_within(xbuild, project.path(), out.path(), Duration::from_secs(120));
    assert_eq!(
        manifest_digest(&run),
        reference,
        "rebuild after the fault differs"
    );
    assert_no_half_written_entries(xbuild.cache_dir());
}

/// The `.deb` blobs of `archive` in the cache, by package file name.
pub fn cached_debs(archive: &Archive, cache: &Path) -> Vec<String> {
    archive
        .debs
        .iter()
        .filter(|deb| cache.join("blobs-v1/sha256").join(&deb.sha256).is_file())
        .map(|deb| deb.filename.rsplit('/').next().unwrap().to_owned())
        .collect()
}

/// The report of a successful run, parsed.
pub fn report(run: &RunOutput) -> Value {
    run.success().json()
}
