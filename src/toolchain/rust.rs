//! The host's Rust toolchain as a cross compiler: which `rustc` it is
//! (`rustc -vV`), where its sysroot is, whether the standard library for a
//! target triple is installed (adding it with `rustup target add` when rustup
//! is there) and where the bundled `rust-lld` linker lives. The identities
//! returned here ([`RustToolchain::rustc_version`],
//! [`TargetLibraries::digest_hint`]) go into the keys of cross-compiled Rust
//! outputs: they name the compiler and target library, not the machine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Environment variable naming the `rustc` to use, as cargo reads it.
pub const RUSTC_VARIABLE: &str = "RUSTC";

#[derive(Debug, thiserror::Error)]
pub enum RustError {
    #[error("cannot run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("`{command}` printed no `{field}` line")]
    MissingField {
        command: String,
        field: &'static str,
    },
    #[error(
        "the Rust standard library for {triple} is not installed in {}, and rustup \
         is not available to add it: install it (`rustup target add {triple}`)",
        sysroot.display()
    )]
    TargetMissing { triple: String, sysroot: PathBuf },
    #[error(
        "`rustup target add {triple}` succeeded but {} still does not exist \
         (is rustup managing a different toolchain than {}?)",
        path.display(),
        sysroot.display()
    )]
    TargetStillMissing {
        triple: String,
        path: PathBuf,
        sysroot: PathBuf,
    },
    #[error("no libstd or libcore rlib in {}", path.display())]
    NoStandardLibrary { path: PathBuf },
    #[error("cannot read the Rust target libraries in {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `rustc` xbuild compiles with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RustToolchain {
    /// `release` and `commit-hash` from `rustc -vV`, e.g.
    /// `1.95.0 59807616e1fa2540724bfbac14d7976d7e4a3860`.
    pub rustc_version: String,
    /// The triple rustc runs on, e.g. `x86_64-unknown-linux-gnu`.
    pub host: String,
    /// `rustc --print sysroot`.
    pub sysroot: PathBuf,
    /// The program run as rustc (`$RUSTC`, default `rustc`).
    pub rustc: PathBuf,
}

/// The installed standard library of one target triple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetLibraries {
    pub triple: String,
    /// `<sysroot>/lib/rustlib/<triple>/lib`.
    pub path: PathBuf,
    /// The libstd (or, for `no_std` targets, libcore) file name, e.g.
    /// `libstd-1f570ee5c6635aae.rlib`: the hash in it changes with the
    /// compiler and the library, so it identifies them in cache keys.
    pub digest_hint: String,
    /// Whether this call installed it (`rustup target add`), for reports.
    pub added: bool,
}

/// Finds the Rust toolchain: `$RUSTC` or `rustc` on the `PATH`.
pub fn detect() -> Result<RustToolchain, RustError> {
    let rustc = std::env::var_os(RUSTC_VARIABLE)
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| OsString::from("rustc"));
    RustToolchain::detect_with(Path::new(&rustc))
}

impl RustToolchain {
    /// Queries the given `rustc` program.
    pub fn detect_with(rustc: &Path) -> Result<RustToolchain, RustError> {
        let verbose_version = run(Command::new(rustc).arg("-vV"))?;
        let command = format!("{} -vV", rustc.display());
        let field = |name: &'static str| {
            verbose_version_field(&verbose_version, name).ok_or_else(|| RustError::MissingField {
                command: command.clone(),
                field: name,
            })
        };
        let release = field("release")?;
        let commit_hash = field("commit-hash")?;
        let host = field("host")?;
        let sysroot = run(Command::new(rustc).args(["--print", "sysroot"]))?;
        Ok(RustToolchain {
            rustc_version: format!("{release} {commit_hash}"),
            host: host.to_owned(),
            sysroot: PathBuf::from(sysroot.trim()),
            rustc: rustc.to_owned(),
        })
    }

    /// `<sysroot>/lib/rustlib/<triple>/lib`, installed or not.
    pub fn target_library_dir(&self, triple: &str) -> PathBuf {
        self.sysroot
            .join("lib")
            .join("rustlib")
            .join(triple)
            .join("lib")
    }

    /// What identifies the standard library of `triple` in cache keys,
    /// whether it is installed yet or not, without installing anything:
    /// the sha256 rustup's channel manifest records for the `rust-std`
    /// component of `triple` (the same on every machine with this
    /// toolchain), else, for a toolchain rustup does not manage, the
    /// installed libstd's file name (its hash names the library).
    pub fn target_library_identity(&self, triple: &str) -> String {
        if let Some(hash) = channel_manifest_hash(&self.sysroot, "rust-std", triple) {
            return format!("rust-std {triple} sha256:{hash}");
        }
        match standard_library_file(&self.target_library_dir(triple)) {
            Ok(name) => name,
            Err(_) => format!(
                "not installed, and no rustup channel manifest (add the {triple} standard library to {})",
                self.sysroot.display()
            ),
        }
    }

    /// Makes sure the standard library for `triple` is installed: if it is
    /// not, runs `rustup target add <triple>` (for this toolchain) when
    /// rustup is available, and otherwise says to install it. Concurrent
    /// calls, from this process or others, add a target once (rustup
    /// itself fails when two add the same component at once).
    pub fn ensure_target(&self, triple: &str) -> Result<TargetLibraries, RustError> {
        let path = self.target_library_dir(triple);
        let mut added = false;
        if !path.is_dir() {
            let _lock = self.target_add_lock()?;
            if !path.is_dir() {
                if let Err(error) = self.rustup_target_add(triple) {
                    // Someone else (another program) may have added it.
                    if !path.is_dir() {
                        return Err(error);
                    }
                }
                added = true;
            }
            if !path.is_dir() {
                return Err(RustError::TargetStillMissing {
                    triple: triple.to_owned(),
                    path,
                    sysroot: self.sysroot.clone(),
                });
            }
        }
        let digest_hint = standard_library_file(&path)?;
        Ok(TargetLibraries {
            triple: triple.to_owned(),
            path,
            digest_hint,
            added,
        })
    }

    /// An exclusive lock on adding targets to this toolchain, shared by
    /// every xbuild process on the machine whatever its cache.
    fn target_add_lock(&self) -> Result<std::fs::File, RustError> {
        let digest = crate::hash::Sha256Digest::of(self.sysroot.as_os_str().as_encoded_bytes());
        let path = std::env::temp_dir().join(format!("xbuild-rustup-{}.lock", &digest.hex()[..16]));
        let read_error = |source| RustError::Read {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(read_error)?;
        file.lock().map_err(read_error)?;
        Ok(file)
    }

    /// The toolchain's own `rust-lld` (or its `gcc-ld/ld.lld` shim), if it
    /// ships one.
    pub fn rust_lld(&self) -> Option<PathBuf> {
        let bin = self
            .sysroot
            .join("lib")
            .join("rustlib")
            .join(&self.host)
            .join("bin");
        [bin.join("rust-lld"), bin.join("gcc-ld").join("ld.lld")]
            .into_iter()
            .find(|candidate| candidate.is_file())
    }

    /// The rustup toolchain name, when the sysroot is a rustup toolchain
    /// directory (`…/toolchains/<name>`).
    fn rustup_toolchain_name(&self) -> Option<String> {
        let parent = self.sysroot.parent()?;
        if parent.file_name()? != "toolchains" {
            return None;
        }
        Some(self.sysroot.file_name()?.to_str()?.to_owned())
    }

    fn rustup_target_add(&self, triple: &str) -> Result<(), RustError> {
        let mut command = Command::new("rustup");
        command.args(["target", "add", triple]);
        if let Some(toolchain) = self.rustup_toolchain_name() {
            command.args(["--toolchain", &toolchain]);
        }
        match run(&mut command) {
            Ok(_) => Ok(()),
            Err(RustError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(RustError::TargetMissing {
                    triple: triple.to_owned(),
                    sysroot: self.sysroot.clone(),
                })
            }
            Err(error) => Err(error),
        }
    }
}

/// The value of `name: value` in `rustc -vV` output.
fn verbose_version_field<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// The `hash` rustup's channel manifest of the toolchain at `sysroot`
/// (`lib/rustlib/multirust-channel-manifest.toml`) records for component
/// `component` of `triple`.
fn channel_manifest_hash(sysroot: &Path, component: &str, triple: &str) -> Option<String> {
    let path = sysroot.join("lib/rustlib/multirust-channel-manifest.toml");
    let text = fs_err::read_to_string(path).ok()?;
    manifest_hash(&text, component, triple)
}

/// The `hash` (else `xz_hash`) of table `[pkg.<component>.target.<triple>]`
/// in a channel manifest's text, unless it says `available = false`. The
/// manifest is large (a megabyte); only that table is read.
fn manifest_hash(text: &str, component: &str, triple: &str) -> Option<String> {
    let header = format!("[pkg.{component}.target.{triple}]");
    let start = text.find(&header)? + header.len();
    let table = &text[start..];
    let table = &table[..table.find("\n[").unwrap_or(table.len())];
    let value = |key: &str| {
        table.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name.trim() == key).then(|| value.trim().trim_matches('"').to_owned())
        })
    };
    if value("available").as_deref() == Some("false") {
        return None;
    }
    value("hash").or_else(|| value("xz_hash"))
}

/// The file name of `libstd-<hash>.rlib` in `dir`, or of `libcore-<hash>.rlib`
/// when there is no libstd; the smallest name if there are several.
fn standard_library_file(dir: &Path) -> Result<String, RustError> {
    let read_error = |source| RustError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    ["libstd-", "libcore-"]
        .iter()
        .find_map(|prefix| {
            names
                .iter()
                .find(|name| name.starts_with(prefix) && name.ends_with(".rlib"))
        })
        .cloned()
        .ok_or_else(|| RustError::NoStandardLibrary {
            path: dir.to_owned(),
        })
}

/// Runs a command to completion and returns its stdout; a failure carries
/// the command line and its stderr.
fn run(command: &mut Command) -> Result<String, RustError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|source| RustError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !output.status.success() {
        let arguments: Vec<_> = command
            .get_args()
            .map(|argument| argument.to_string_lossy().into_owned())
            .collect();
        return Err(RustError::CommandFailed {
            command: format!("{program} {}", arguments.join(" ")),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUSTC_VV: &str = "rustc 1.95.0 (59807616e 2026-04-14)\n\
        binary: rustc\n\
        commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\n\
        commit-date: 2026-04-14\n\
        host: x86_64-unknown-linux-gnu\n\
        release: 1.95.0\n\
        LLVM version: 22.1.2\n";

    #[test]
    fn parses_rustc_verbose_version() {
        assert_eq!(verbose_version_field(RUSTC_VV, "release"), Some("1.95.0"));
        assert_eq!(
            verbose_version_field(RUSTC_VV, "host"),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(
            verbose_version_field(RUSTC_VV, "LLVM version"),
            Some("22.1.2")
        );
        assert_eq!(verbose_version_field(RUSTC_VV, "missing"), None);
    }

    #[test]
    fn the_channel_manifest_names_a_component_of_a_triple() {
        let text = "[pkg.rust-std.target.aarch64-unknown-linux-gnu]\navailable = true\nurl = \"u\"\nhash = \"a68e\"\nxz_hash = \"3a21\"\n\n[pkg.rust-std.target.aarch64-unknown-linux-musl]\navailable = false\n\n[pkg.rust-std.target.x]\nxz_hash = \"99\"\n";
        assert_eq!(
            manifest_hash(text, "rust-std", "aarch64-unknown-linux-gnu").as_deref(),
            Some("a68e")
        );
        assert_eq!(
            manifest_hash(text, "rust-std", "aarch64-unknown-linux-musl"),
            None
        );
        assert_eq!(manifest_hash(text, "rust-std", "x").as_deref(), Some("99"));
        assert_eq!(manifest_hash(text, "rust-std", "missing"), None);
    }

    #[test]
    fn the_identity_of_a_target_library_needs_no_installed_target() {
        let toolchain = detect().unwrap();
        // A triple this toolchain surely has not installed, but rustup's
        // manifest lists: the identity is the manifest's hash.
        if toolchain.rustup_toolchain_name().is_some() {
            let identity = toolchain.target_library_identity("s390x-unknown-linux-gnu");
            assert!(
                identity.starts_with("rust-std s390x-unknown-linux-gnu sha256:"),
                "{identity}"
            );
        }
    }

    #[test]
    fn standard_library_file_prefers_libstd() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libcore-0123.rlib",
            "libstd-abcd.rlib",
            "libstd-abcd.rmeta",
            "libstd-abcd.so",
        ] {
            fs_err::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            standard_library_file(dir.path()).unwrap(),
            "libstd-abcd.rlib"
        );
        fs_err::remove_file(dir.path().join("libstd-abcd.rlib")).unwrap();
        assert_eq!(
            standard_library_file(dir.path()).unwrap(),
            "libcore-0123.rlib"
        );
        fs_err::remove_file(dir.path().join("libcore-0123.rlib")).unwrap();
        assert!(matches!(
            standard_library_file(dir.path()),
            Err(RustError::NoStandardLibrary { .. })
        ));
    }

    #[test]
    fn detects_the_host_toolchain() {
        let toolchain = detect().unwrap();
        assert!(!toolchain.rustc_version.is_empty());
        assert!(toolchain.sysroot.is_dir(), "{toolchain:?}");
        let host = toolchain.ensure_target(&toolchain.host.clone()).unwrap();
        assert!(host.digest_hint.starts_with("libstd-"), "{host:?}");
        assert!(!host.added);
        // rustup's toolchains ship rust-lld; others may not.
        if toolchain.rustup_toolchain_name().is_some() {
            assert!(toolchain.rust_lld().is_some());
        }
    }

    #[test]
    fn an_unknown_target_is_an_error_naming_the_command() {
        let sysroot = tempfile::tempdir().unwrap();
        let toolchain = RustToolchain {
            rustc_version: "1.95.0 0000".to_owned(),
            host: "x86_64-unknown-linux-gnu".to_owned(),
            sysroot: sysroot.path().to_owned(),
            rustc: PathBuf::from("rustc"),
        };
        assert_eq!(toolchain.rust_lld(), None);
        let error = toolchain.ensure_target("no-such-triple").unwrap_err();
        match error {
            RustError::CommandFailed { command, .. } => {
                assert_eq!(command, "rustup target add no-such-triple")
            }
            // Without rustup: the error says what to run.
            RustError::TargetMissing { triple, .. } => assert_eq!(triple, "no-such-triple"),
            other => panic!("{other:?}"),
        }
    }
}
