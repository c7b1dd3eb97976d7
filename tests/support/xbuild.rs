//! Running the `xbuild` binary: a fresh cache dir per [`Xbuild`] (or a shared
//! one), a project dir holding `xbuild.toml`, and the outputs parsed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::Value;
use tempfile::TempDir;

use super::archive::{Archive, COMPONENT, SUITE, URL_PATH};
use super::server::Server;

/// The platform every fixture test builds for (the fixture archive is arm64).
pub const FIXTURE_TARGET: &str = "aarch64-linux";

enum CacheDir {
    Owned(TempDir),
    Shared(PathBuf),
}

/// Where the host's apt configuration comes from.
enum AptEtc {
    /// An empty dir: a host without apt (the default for fixture tests, so
    /// the host's own mirror is never touched).
    Empty(TempDir),
    /// The given dir.
    Path(PathBuf),
    /// `XBUILD_APT_ETC` unset: xbuild's default, the host's `/etc/apt`.
    Host,
}

/// Runs the binary with its own cache dir and apt dir.
pub struct Xbuild {
    cache: CacheDir,
    apt_etc: AptEtc,
    env: Vec<(String, String)>,
}

impl Default for Xbuild {
    fn default() -> Self {
        Self::new()
    }
}

impl Xbuild {
    /// A fresh, empty cache dir and an empty apt dir.
    pub fn new() -> Xbuild {
        Xbuild {
            cache: CacheDir::Owned(temp_dir("xbuild-cache-")),
            apt_etc: AptEtc::Empty(temp_dir("xbuild-apt-etc-")),
            env: Vec::new(),
        }
    }

    /// Uses `cache` (created if missing) instead of a fresh dir.
    pub fn with_cache_dir(mut self, cache: &Path) -> Xbuild {
        fs::create_dir_all(cache).unwrap();
        self.cache = CacheDir::Shared(cache.to_path_buf());
        self
    }

    /// Reads the host apt configuration from `dir` (e.g. `/etc/apt`).
    pub fn with_apt_etc(mut self, dir: &Path) -> Xbuild {
        self.apt_etc = AptEtc::Path(dir.to_path_buf());
        self
    }

    /// Leaves `XBUILD_APT_ETC` unset, so the host's own apt configuration
    /// (and so its Debian mirror) is used: the real-mirror tests.
    pub fn with_host_apt(mut self) -> Xbuild {
        self.apt_etc = AptEtc::Host;
        self
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Xbuild {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn cache_dir(&self) -> &Path {
        match &self.cache {
            CacheDir::Owned(dir) => dir.path(),
            CacheDir::Shared(path) => path,
        }
    }

    pub fn apt_etc(&self) -> &Path {
        match &self.apt_etc {
            AptEtc::Empty(dir) => dir.path(),
            AptEtc::Path(path) => path,
            AptEtc::Host => Path::new("/etc/apt"),
        }
    }

    /// The binary with the cache and apt dirs set, `SOURCE_DATE_EPOCH`
    /// unset unless given with [`Xbuild::with_env`].
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xbuild"));
        command.env("XBUILD_CACHE_DIR", self.cache_dir());
        match self.apt_etc {
            AptEtc::Host => command.env_remove("XBUILD_APT_ETC"),
            _ => command.env("XBUILD_APT_ETC", self.apt_etc()),
        };
        command
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("XBUILD_MIRROR")
            .env("NO_COLOR", "1");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> RunOutput {
        let mut command = self.command();
        command.args(args);
        RunOutput::of(&mut command)
    }

    /// `xbuild build PROJECT --target … --out OUT --json`.
    pub fn build(&self, project: &Path, out: &Path, targets: &[&str]) -> RunOutput {
        let mut command = self.command();
        command
            .arg("build")
            .arg(project)
            .arg("--out")
            .arg(out)
            .arg("--json");
        for target in targets {
            command.arg("--target").arg(target);
        }
        RunOutput::of(&mut command)
    }

    /// `xbuild build PROJECT --target aarch64-linux --json --out <fresh
    /// dir>` and `extra` arguments (`--remote`, `--sign`…).
    pub fn build_with(&self, project: &Path, extra: &[&str]) -> RunOutput {
        let out = temp_dir("xbuild-out-");
        let mut command = self.command();
        command
            .arg("build")
            .arg(project)
            .args(["--target", FIXTURE_TARGET, "--json", "--out"])
            .arg(out.path())
            .args(extra);
        RunOutput::of(&mut command)
    }

    /// `xbuild plan PROJECT --target …` (human output).
    pub fn plan(&self, project: &Path, targets: &[&str], json: bool) -> RunOutput {
        let mut command = self.command();
        command.arg("plan").arg(project);
        for target in targets {
            command.arg("--target").arg(target);
        }
        if json {
            command.arg("--json");
        }
        RunOutput::of(&mut command)
    }
}

pub fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

/// What a run of the binary printed.
#[derive(Debug)]
pub struct RunOutput {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn of(command: &mut Command) -> RunOutput {
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        RunOutput {
            command: format!("{command:?}"),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything printed unless the run succeeded.
    pub fn success(&self) -> &RunOutput {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Panics unless the run failed with an `error:` line on stderr.
    pub fn failure(&self) -> &RunOutput {
        assert!(!self.status.success(), "expected failure:\n{self}");
        assert!(
            self.stderr.contains("error"),
            "no `error:` on stderr:\n{self}"
        );
        self
    }

    /// stdout parsed as the `--json` report.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{self}"))
    }
}

impl std::fmt::Display for RunOutput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// A signing key made with `xbuild cache keygen --name NAME` in `dir`:
/// (secret key file, public key `NAME:<base64>`).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let secret = dir.join(format!("{name}.secret"));
    let output = Xbuild::new().run(&[
        "cache",
        "keygen",
        "--name",
        name,
        "--out",
        secret.to_str().unwrap(),
    ]);
    output.success();
    (secret, output.stdout.trim().to_owned())
}

/// A project dir holding an `xbuild.toml`.
pub struct Project {
    dir: TempDir,
}

impl Project {
    pub fn new(manifest: &str) -> Project {
        let dir = temp_dir("xbuild-project-");
        fs::write(dir.path().join("xbuild.toml"), manifest).unwrap();
        Project { dir }
    }

    /// A project using the fixture archive served by `server`: the keyring
    /// is copied next to the manifest as `fixture-key.gpg`. `extra_packages`
    /// is appended to the `[packages]` table (e.g. `exclude = ["x"]`).
    pub fn fixture(
        archive: &Archive,
        server: &Server,
        include: &[&str],
        extra_packages: &str,
    ) -> Project {
        let manifest = fixture_manifest(&repository_url(server), include, extra_packages);
        let project = Project::new(&manifest);
        fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, contents: &[u8]) {
        fs::write(self.dir.path().join(relative), contents).unwrap();
    }
}

/// `http://127.0.0.1:PORT/debian`
pub fn repository_url(server: &Server) -> String {
    server.url(URL_PATH)
}

/// An `xbuild.toml` for the fixture archive.
pub fn fixture_manifest(repository: &str, include: &[&str], extra_packages: &str) -> String {
    let include = include
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[image]
name = "fixture-app"
tag = "latest"
cmd = ["hello"]

[packages]
include = [{include}]
repository = {{ url = "{repository}", suite = "{SUITE}", components = ["{COMPONENT}"], keyring = "fixture-key.gpg" }}
{extra_packages}
"#
    )
}

/// The `packages` entries of a report's first target, as (name, version,
/// outcome) triples sorted by name.
pub fn report_packages(report: &Value) -> Vec<(String, String, String)> {
    let mut packages: Vec<_> = report["targets"][0]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets[0].packages in {report}"))
        .iter()
        .map(|package| {
            (
                package["name"].as_str().unwrap().to_owned(),
                package["version"].as_str().unwrap().to_owned(),
                package["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    packages.sort();
    packages
}

/// Just the package names of a report's first target, sorted.
pub fn report_package_names(report: &Value) -> Vec<String> {
    report_packages(report)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect()
}

/// The report's nodes of one kind (`toolchain`, `build`, `deb`…).
pub fn report_nodes<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {report}"))
        .iter()
        .filter(|node| node["kind"] == kind)
        .collect()
}
