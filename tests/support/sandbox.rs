//! The sandbox tests' harness (`tests/run_sandbox_root.rs`): each caller
//! (root, and nobody through setpriv) in a home of its own with a cache
//! and crafted images, `xbuild run --image` of the probe program
//! (`probe.c`) as that caller, its answers, and the host's
//! `/etc/subuid` lines a test needs, taken out again.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::image::{Layer, host_platform, write_layout};
use super::xbuild::{RunOutput, Xbuild, temp_dir};
use tempfile::TempDir;

/// Who runs `xbuild run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Root,
    Nobody,
}

pub const CALLERS: [Caller; 2] = [Caller::Root, Caller::Nobody];
pub const NOBODY: u32 = 65534;

/// The first host id of the sandbox's ids for root (xbuild's default
/// range: this host gives root no /etc/subuid line).
pub const ROOT_RANGE_START: u32 = 0x7000_0000;

pub fn chown(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// One caller's world: a home only it may enter (as root's `~` is, so
/// the sandbox's ids cannot search the way to the cache), the cache in
/// it, the images crafted into it.
pub struct Scene {
    pub caller: Caller,
    home: TempDir,
}

impl Scene {
    pub fn new(caller: Caller) -> Scene {
        let home = temp_dir("xbuild-sandbox-");
        fs::create_dir(home.path().join("cache")).unwrap();
        if caller == Caller::Nobody {
            chown(home.path(), NOBODY);
        }
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        Scene { caller, home }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// Owned by the caller, like everything in its home.
    pub fn own(&self, path: &Path) {
        if self.caller == Caller::Nobody {
            chown(path, NOBODY);
        }
    }

    pub fn image(&self, name: &str, layers: Vec<Layer>) -> PathBuf {
        self.image_as(name, layers, None)
    }

    /// An image run as `user` (root if `None`).
    pub fn image_as(&self, name: &str, layers: Vec<Layer>, user: Option<&str>) -> PathBuf {
        let dir = self.path(name);
        write_layout(&dir, layers, user);
        self.own(&dir);
        dir
    }

    /// `xbuild run HOME --image IMAGE --target HOST -q OPTIONS -- COMMAND`
    /// as the caller.
    pub fn run(&self, image: &Path, options: &[&str], command: &[&str]) -> RunOutput {
        let xbuild = Xbuild::new().with_cache_dir(&self.cache());
        let mut inner = xbuild.command();
        inner
            .arg("run")
            .arg(self.home.path())
            .arg("--image")
            .arg(image)
            .args(["--target", host_platform().0, "-q"])
            .args(options)
            .arg("--")
            .args(command);
        match self.caller {
            Caller::Root => RunOutput::of(&mut inner),
            Caller::Nobody => {
                let mut command = Command::new("setpriv");
                command
                    .args([
                        "--reuid",
                        "65534",
                        "--regid",
                        "65534",
                        "--clear-groups",
                        "--",
                    ])
                    .arg(inner.get_program())
                    .args(inner.get_args())
                    .current_dir("/");
                for (name, value) in inner.get_envs() {
                    match value {
                        Some(value) => command.env(name, value),
                        None => command.env_remove(name),
                    };
                }
                command.env("HOME", self.home.path());
                RunOutput::of(&mut command)
            }
        }
    }

    /// Runs the probe with `actions`; panics unless it ran and exited 0.
    pub fn probe(&self, image: &Path, options: &[&str], actions: &[&str]) -> Probed {
        let mut command = vec!["/bin/probe"];
        command.extend(actions);
        let output = self.run(image, options, &command);
        assert!(
            output.status.success(),
            "{:?}: the probe did not run to its end:\n{output}",
            self.caller
        );
        Probed {
            caller: self.caller,
            output,
        }
    }
}

/// What the probe printed.
pub struct Probed {
    pub caller: Caller,
    pub output: RunOutput,
}

impl Probed {
    /// The answer to `VERB OPERAND` (`ok`, an errno name, or what it read).
    pub fn answer(&self, action: &str) -> &str {
        let prefix = format!("{action}: ");
        self.output
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{:?}: no answer to {action}:\n{}", self.caller, self.output))
    }

    pub fn expect(&self, action: &str, wanted: &str) {
        assert_eq!(
            self.answer(action),
            wanted,
            "{:?}: {action}\n{}",
            self.caller,
            self.output
        );
    }

    pub fn refused(&self, action: &str) {
        assert_ne!(
            self.answer(action),
            "ok",
            "{:?}: {action} was allowed\n{}",
            self.caller,
            self.output
        );
    }
}

pub fn host_value(path: &str) -> String {
    fs::read_to_string(path).unwrap().trim_end().to_owned()
}

/// Puts a `/proc/sys` value back if a run changed it, then fails.
pub fn assert_unchanged(path: &str, before: &str) {
    let now = host_value(path);
    if now != before {
        let _ = fs::write(path, before);
        panic!("{path} changed from {before:?} to {now:?} (put back)");
    }
}

/// Every path under `dir` (symlinks not followed), with its metadata.
pub fn walk(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path).unwrap();
        if metadata.is_dir() {
            for child in fs::read_dir(&path).unwrap() {
                pending.push(child.unwrap().path());
            }
        }
        found.push((path, metadata));
    }
    found
}

/// Lines added to /etc/subuid and /etc/subgid while a test runs, taken
/// out again when it ends (however it ends).
pub struct SubordinateIds {
    line: String,
}

impl SubordinateIds {
    pub fn add(line: &str) -> SubordinateIds {
        for file in ["/etc/subuid", "/etc/subgid"] {
            let mut text = fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(line);
            text.push('\n');
            fs::write(file, text).unwrap();
        }
        SubordinateIds {
            line: line.to_owned(),
        }
    }
}

impl Drop for SubordinateIds {
    fn drop(&mut self) {
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = fs::read_to_string(file) {
                let kept: String = text
                    .lines()
                    .filter(|line| *line != self.line)
                    .map(|line| format!("{line}\n"))
                    .collect();
                let _ = fs::write(file, kept);
            }
        }
    }
}
