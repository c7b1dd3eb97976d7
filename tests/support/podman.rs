//! podman confined to a private store in a temp dir, with the flags this
//! kind of host needs (runc, cgroupfs, no network, explicit ulimits), for
//! loading xbuild's docker-archives and running them — foreign ones through
//! qemu-user registered with binfmt_misc.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::run_ok;
use super::xbuild::temp_dir;

/// A podman with its own storage, dropped with it.
pub struct Podman {
    storage: TempDir,
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            storage: temp_dir("xbuild-podman-"),
        }
    }

    /// `podman` with the private store and this host's flags.
    pub fn command(&self) -> Command {
        let storage = self.storage.path();
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("runroot"))
            .arg("--tmpdir")
            .arg(storage.join("tmp"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--runtime", "runc"])
            .args(["--events-backend", "none"]);
        command
    }

    /// `podman load -i ARCHIVE`; returns the (qualified) name it loaded,
    /// checking that it ends with `expected` (e.g. `hello-rust:latest`).
    pub fn load(&self, archive: &Path, expected: &str) -> String {
        let loaded = run_ok(self.command().arg("load").arg("-i").arg(archive));
        // podman qualifies the short name (`localhost/…` or `docker.io/library/…`).
        let name = loaded
            .lines()
            .find_map(|line| line.split_once("Loaded image").map(|(_, rest)| rest))
            .and_then(|rest| rest.split_once(": "))
            .map(|(_, name)| name.trim().to_owned())
            .unwrap_or_else(|| panic!("podman load said: {loaded}"));
        assert!(
            name.ends_with(expected),
            "podman loaded {name}, expected {expected}"
        );
        name
    }

    /// Runs `image` (its own Cmd) for `platform` (`linux/arm64`, …) with no
    /// network; returns stdout, panicking with everything on failure.
    pub fn run(&self, image: &str, platform: &str) -> String {
        self.run_with_args(image, platform, &[])
    }

    /// Like [`Podman::run`], with `arguments` replacing the image's Cmd.
    pub fn run_with_args(&self, image: &str, platform: &str, arguments: &[&str]) -> String {
        run_ok(
            self.command()
                .args(["run", "--rm", "--pull", "never", "--network", "none"])
                .args([
                    "--ulimit",
                    "nofile=4096:4096",
                    "--ulimit",
                    "nproc=4096:4096",
                ])
                .args(["--platform", platform])
                .arg(image)
                .args(arguments),
        )
    }
}

/// Panics unless qemu-user is registered with binfmt_misc for `qemu_name`
/// (`aarch64`, `arm`, …): foreign images cannot run otherwise.
pub fn assert_binfmt(qemu_name: &str) {
    let entry = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu_name}"));
    let status = std::fs::read_to_string(&entry).unwrap_or_else(|error| {
        panic!(
            "{}: {error}: qemu-user is not registered with binfmt_misc (run scripts/setup.sh)",
            entry.display()
        )
    });
    assert!(
        status.starts_with("enabled"),
        "{} is not enabled:\n{status}",
        entry.display()
    );
}
