//! A relocatable GCC made from Debian's binary packages, never by building
//! it and never by installing them on the host. It comes in two parts that
//! are cached apart and joined for each build:
//!
//! - **the programs** ([`Programs`], [`Assembly`]): the compiler, its
//!   support libraries and binutils for the (build machine, target) pair —
//!   Debian's cross packages (`gcc-12-aarch64-linux-gnu`,
//!   `binutils-aarch64-linux-gnu`, `libgcc-12-dev-arm64-cross`, …) when
//!   the two differ, its native ones (`gcc-12`, `binutils`, `libgcc-12-dev`)
//!   when they are the same architecture — plus the host libraries those
//!   programs need. The target's C library is *not* among them: Debian's
//!   `libc6-dev-<arch>-cross` is an older glibc than the target's own, and
//!   exists on some build machines only;
//! - **the sysroot** ([`crate::toolchain::sysroot`]): the target
//!   architecture's own `libc6-dev` and the `-dev` packages a build names,
//!   the same bytes on every build machine and the same glibc as the image.
//!
//! [`compose`] joins one of each into a compiler a build uses
//! ([`CrossGcc`]): wrapper scripts that run the programs with `--sysroot`,
//! the host libraries the programs need on `LD_LIBRARY_PATH`, and the
//! cache's paths mapped out of debug information. Nothing of the host —
//! headers, libraries, its own gcc or binutils — is on any search path; the
//! composed compiler checks that before it is used.

mod assembly;
mod compose;
mod tree;

pub use assembly::Assembly;
pub use compose::compose;

use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::ToolchainError;
use crate::platform::Platform;

/// Host libraries the compiler and binutils link against that a minimal
/// host may lack. The rest of their closure (`libstdc++6`, `libgcc-s1`,
/// `libcc1-0`, `libbinutils`, `binutils-common`, `gcc-12-base`) comes with
/// the resolver's closure of [`debian_packages`].
pub const HOST_LIBRARY_PACKAGES: [&str; 7] = [
    "libisl23",
    "libmpc3",
    "libmpfr6",
    "libgmp10",
    "libjansson4",
    "libzstd1",
    "zlib1g",
];

/// Packages of the build machine's C library: never unpacked, since a
/// second glibc on `LD_LIBRARY_PATH` under the host's dynamic loader breaks
/// programs. The host's must be at least as new as the packages need
/// (2.36 for bookworm).
pub const SKIPPED_HOST_PACKAGES: [&str; 4] = ["libc6", "libc-bin", "libc6-dev", "libc-dev-bin"];

/// Debian multiarch name of the machine xbuild runs on.
pub const BUILD_MULTIARCH: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-linux-gnu"
} else {
    "x86_64-linux-gnu"
};

/// Name of the file in a composed compiler (or a toolchain built from
/// source) describing it.
pub(super) const MANIFEST_FILE: &str = "xbuild-toolchain.json";

/// Name of the file in a tree of compiler programs describing it.
const PROGRAMS_FILE: &str = "xbuild-programs.json";

/// The Debian packages whose closure makes the compiler programs for a
/// pair, and those the closure must leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianPackages {
    /// The roots to resolve for the build machine's architecture.
    pub include: Vec<String>,
    /// Never selected: the build machine's own C library, and the target C
    /// library Debian packages for cross compilers (the sysroot brings the
    /// target's own).
    pub exclude: Vec<String>,
    /// Whether the build machine and the target are one architecture
    /// (Debian's native compiler, not a cross one).
    pub native: bool,
}

/// The packages of the compiler that runs on `build` and emits code for
/// `target` (a glibc platform): the unversioned names (`gcc-<triple>`,
/// `g++-<triple>`, `cpp-<triple>`, `binutils-<triple>`, or `gcc`, `g++`,
/// `cpp`, `binutils` when the two are one architecture) so that the suite's
/// default GCC version is taken, plus [`HOST_LIBRARY_PACKAGES`].
///
/// Debian has these for glibc targets only; for a musl target the names do
/// not exist and resolving them fails.
pub fn debian_packages(build: &Platform, target: &Platform) -> DebianPackages {
    let native = build.debian_arch == target.debian_arch;
    let mut include: Vec<String> = if native {
        ["gcc", "g++", "cpp", "binutils"].map(String::from).to_vec()
    } else {
        let triple = package_triple(&target.gnu_triple);
        ["gcc", "g++", "cpp", "binutils"]
            .map(|tool| format!("{tool}-{triple}"))
            .to_vec()
    };
    include.extend(HOST_LIBRARY_PACKAGES.iter().map(|name| name.to_string()));
    let mut exclude: Vec<String> = SKIPPED_HOST_PACKAGES
        .iter()
        .map(|name| name.to_string())
        .collect();
    if native {
        exclude.extend(
            [
                "linux-libc-dev",
                "libcrypt-dev",
                "libnsl-dev",
                "rpcsvc-proto",
            ]
            .map(String::from),
        );
    } else {
        let arch = &target.debian_arch;
        exclude.extend([
            format!("libc6-dev-{arch}-cross"),
            format!("libc6-{arch}-cross"),
            format!("linux-libc-dev-{arch}-cross"),
        ]);
    }
    DebianPackages {
        include,
        exclude,
        native,
    }
}

/// A GNU triple as Debian spells it in package names (`x86_64` → `x86-64`).
pub fn package_triple(gnu_triple: &str) -> String {
    gnu_triple.replace('_', "-")
}

/// The compiler programs of a pair, unpacked and made relocatable
/// (`toolchains-v1/<key>`): `usr/bin/<triple>-gcc-<major>` and the rest,
/// found relative to themselves. Used through [`compose`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programs {
    #[serde(skip)]
    pub root: PathBuf,
    /// GNU triple of the target: `aarch64-linux-gnu`.
    pub triple: String,
    /// GCC's major version: `12`.
    pub major: String,
    /// Whether there is a C++ compiler.
    pub cxx: bool,
}

impl Programs {
    /// Opens the programs [`Assembly::finish`] made earlier (possibly at
    /// another path).
    pub fn open(root: &Path) -> Result<Programs, ToolchainError> {
        let path = root.join(PROGRAMS_FILE);
        let bytes = fs_err::read(&path).map_err(|source| io_error(&path, source))?;
        let mut programs: Programs = serde_json::from_slice(&bytes)
            .map_err(|source| ToolchainError::Manifest { path, source })?;
        programs.root = root.to_owned();
        if !programs.driver().is_file() {
            return Err(ToolchainError::Missing {
                root: root.to_owned(),
                triple: programs.triple,
                what: "GCC driver (usr/bin/<triple>-gcc-<version>)",
            });
        }
        Ok(programs)
    }

    /// `usr/bin/<triple>-gcc-<major>`.
    pub fn driver(&self) -> PathBuf {
        self.root
            .join("usr/bin")
            .join(format!("{}-gcc-{}", self.triple, self.major))
    }

    /// The directories of host libraries the programs load.
    pub fn library_path(&self) -> String {
        [
            self.root.join("usr/lib").join(BUILD_MULTIARCH),
            self.root.join("lib").join(BUILD_MULTIARCH),
        ]
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
    }
}

/// A compiler ready for builds: every tool path is a wrapper script in
/// `root/bin/` that finds the rest relative to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossGcc {
    pub root: PathBuf,
    /// GNU triple of the target: `aarch64-linux-gnu`.
    pub triple: String,
    pub cc: PathBuf,
    /// The C++ compiler, when there is one.
    pub cxx: Option<PathBuf>,
    pub ar: PathBuf,
    pub ranlib: PathBuf,
    pub strip: PathBuf,
    /// The target's root file system as the compiler and linker see it.
    pub sysroot: PathBuf,
    /// Identity of the compiler: the Debian sources and versions it is
    /// made of (or the recipe and inputs of one built from source). It
    /// names no path and nothing of the machine it was assembled on.
    pub version: String,
}

/// What `root/xbuild-toolchain.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) triple: String,
    pub(super) version: String,
    pub(super) cxx: bool,
}

impl CrossGcc {
    pub(super) fn at(root: &Path, manifest: Manifest) -> CrossGcc {
        let tool = |name: &str| root.join("bin").join(format!("{}-{name}", manifest.triple));
        CrossGcc {
            root: root.to_owned(),
            cc: tool("gcc"),
            cxx: manifest.cxx.then(|| tool("g++")),
            ar: tool("ar"),
            ranlib: tool("ranlib"),
            strip: tool("strip"),
            sysroot: root.join("sysroot"),
            triple: manifest.triple,
            version: manifest.version,
        }
    }

    /// Opens a compiler [`compose`] (or a source build) made earlier.
    pub fn open(root: &Path) -> Result<CrossGcc, ToolchainError> {
        let path = root.join(MANIFEST_FILE);
        let bytes = fs_err::read(&path).map_err(|source| io_error(&path, source))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|source| ToolchainError::Manifest { path, source })?;
        let gcc = CrossGcc::at(root, manifest);
        if !gcc.cc.is_file() {
            return Err(ToolchainError::Missing {
                root: root.to_owned(),
                triple: gcc.triple,
                what: "compiler wrapper (bin/<triple>-gcc)",
            });
        }
        Ok(gcc)
    }

    /// The wrapper of another tool: `tool("ld")`, `tool("nm")`, `tool("objcopy")`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.root
            .join("bin")
            .join(format!("{}-{name}", self.triple))
    }
}

fn io_error(path: &Path, source: io::Error) -> ToolchainError {
    ToolchainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An absolute path as a relative one with `.` and `..` folded, never above
/// the root.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The relative path from directory `from` to `to` (both absolute, without
/// `..`, under one root).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    relative
}

/// Runs `program` with `arguments` (and `input` on stdin, and `environment`
/// added) and returns its standard output, or an error carrying its
/// standard error.
pub(super) fn run_tool_with(
    program: &Path,
    arguments: &[&str],
    input: Option<&str>,
    environment: &[(&str, &str)],
) -> Result<(String, String), ToolchainError> {
    let mut command = Command::new(program);
    command
        .args(arguments)
        .envs(environment.iter().copied())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run_error = |source| ToolchainError::Run {
        program: program.to_owned(),
        source,
    };
    let mut child = command.spawn().map_err(run_error)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).map_err(run_error)?;
    }
    let output = child.wait_with_output().map_err(run_error)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(ToolchainError::Failed {
            program: program.to_owned(),
            status: output.status,
            stderr: stderr.trim().to_owned(),
        });
    }
    Ok((stdout, stderr))
}

/// [`run_tool_with`] without extra environment, returning stdout.
pub(super) fn run_tool(
    program: &Path,
    arguments: &[&str],
    input: Option<&str>,
) -> Result<String, ToolchainError> {
    run_tool_with(program, arguments, input, &[]).map(|(stdout, _)| stdout)
}

/// Writes the description of the compiler in `root` and smoke-tests it:
/// the last step before it is moved into the cache.
pub(super) fn write_manifest_and_test(
    root: &Path,
    manifest: &Manifest,
) -> Result<(), ToolchainError> {
    let manifest_path = root.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    fs_err::write(&manifest_path, json).map_err(|source| io_error(&manifest_path, source))?;
    smoke_test(&CrossGcc::at(root, manifest.clone()))
}

/// Compiles and links (dynamically) a trivial C program, so that a missing
/// host library or a broken sysroot fails assembly rather than a build.
pub(super) fn smoke_test(gcc: &CrossGcc) -> Result<(), ToolchainError> {
    let output = gcc.root.join(".xbuild-smoke-test");
    let output_argument = output.to_string_lossy().into_owned();
    let result = run_tool(
        &gcc.cc,
        &["-x", "c", "-", "-o", &output_argument],
        Some("#include <stdio.h>\nint main(void) { return puts(\"ok\") < 0; }\n"),
    );
    let _ = fs_err::remove_file(&output);
    result.map(|_| ())
}

#[cfg(test)]
mod tests;
