//! A full disk under the cache, against the signed fixture archive on
//! 127.0.0.1: a small tmpfs is mounted as the cache directory, so these
//! tests need root (to mount), not the network. A download or a layer that
//! cannot be written is local I/O (exit 6) naming the path, never "check
//! the network" (3) or an integrity failure (4); nothing half written stays
//! in the cache, and once there is room the same cache builds the image an
//! unfaulted build gives.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::archive::{ARCH, ArchiveBuilder, DebSpec, URL_PATH};
use support::faulted::{
    assert_no_half_written_entries, build_within, exit_code, manifest_digest, project_for,
};
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Xbuild, temp_dir};

const DEADLINE: Duration = Duration::from_secs(120);
const BIG: usize = 2 * 1024 * 1024;

/// 2 MiB that no compressor shrinks (xorshift), so the package, its blob
/// and its layer are each about that size.
fn incompressible(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = temp_dir("xbuild-tmpfs-");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (these tests need root): {status}"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system room again, keeping its contents.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot remount the tmpfs: {status}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

struct Big {
    server: Server,
    archive: support::archive::Archive,
}

impl Big {
    fn new() -> Big {
        let archive = ArchiveBuilder::empty()
            .package(
                DebSpec::new("bigdata", "1.0-1", ARCH)
                    .with_compression("none")
                    .with_file("usr/share/bigdata/blob", &incompressible(BIG), 0o644),
            )
            .build();
        let server = Server::serve(archive.root());
        Big { server, archive }
    }

    fn project(&self) -> support::xbuild::Project {
        project_for(&self.archive, &self.server.url(URL_PATH), &["bigdata"])
    }

    fn reference_digest(&self) -> String {
        let out = temp_dir("xbuild-out-");
        manifest_digest(&Xbuild::new().build(self.project().path(), out.path(), &[FIXTURE_TARGET]))
    }
}

/// After the failure: nothing half written; with room, the same cache
/// builds the reference image.
fn assert_recovers(big: &Big, tmpfs: &Tmpfs, xbuild: &Xbuild, reference: &str) {
    assert_no_half_written_entries(tmpfs.path());
    tmpfs.grow("64m");
    let out = temp_dir("xbuild-out-");
    let run = build_within(xbuild, big.project().path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    assert_no_half_written_entries(tmpfs.path());
}

#[test]
fn download_that_fills_the_disk_exits_6_naming_the_path_root() {
    let big = Big::new();
    let reference = big.reference_digest();
    let tmpfs = Tmpfs::mount("1m");
    let xbuild = Xbuild::new().with_cache_dir(tmpfs.path());
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, big.project().path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 6, "{run}");
    let temp_dir_shown = tmpfs.path().join("tmp").display().to_string();
    assert!(
        run.stderr.contains(&temp_dir_shown),
        "the path is not named:\n{run}"
    );
    assert!(run.stderr.contains("is full"), "no disk-full hint:\n{run}");
    assert!(!run.stderr.contains("check the network"), "{run}");
    assert_recovers(&big, &tmpfs, &xbuild, &reference);
}

#[test]
fn layer_write_that_fills_the_disk_exits_6_naming_the_path_root() {
    let big = Big::new();
    let reference = big.reference_digest();
    // Room for the package (about 2 MiB) but not for its layer as well.
    let tmpfs = Tmpfs::mount("3m");
    let xbuild = Xbuild::new().with_cache_dir(tmpfs.path());
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, big.project().path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 6, "{run}");
    assert!(
        run.stderr.contains("cannot write the layer of bigdata to"),
        "{run}"
    );
    let temp_dir_shown = tmpfs.path().join("tmp").display().to_string();
    assert!(run.stderr.contains(&temp_dir_shown), "{run}");
    assert!(run.stderr.contains("is full"), "no disk-full hint:\n{run}");
    let deb = &big.archive.deb("bigdata").sha256;
    assert!(
        tmpfs.path().join("blobs-v1/sha256").join(deb).is_file(),
        "the package itself was expected to fit:\n{run}"
    );
    assert_recovers(&big, &tmpfs, &xbuild, &reference);
}
