//! Cross-compiling the user's own Rust code with cargo. This module turns a
//! target description ([`CargoTarget`]: triple, linker, the cross C tools
//! and the target sysroot, all plain paths) into the environment cargo, the
//! `cc` crate and the `pkg-config` crate read ([`environment`]), runs
//! `cargo build --target <triple>` with the child's diagnostics handed line
//! by line to a [`Reporter`] (stderr by
//! default), and collects the binaries it built ([`build`]). Tools
//! (`CC_<triple>`, `AR_<triple>`, `CARGO_TARGET_<TRIPLE>_LINKER`,
//! pkg-config paths) are set only where the user has not set them; flags (rustflags, C flags) are
//! prepended to the user's, so the user's flags win. Paths of the source
//! tree, `$CARGO_HOME` and the target directory are remapped so that two
//! checkouts of the same sources give the same bytes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use cargo_metadata::{Message, MetadataCommand};

use crate::progress::{Reporter, SilentReporter, forward_lines};

/// What the source tree is remapped to in debug info, panic messages and
/// `__FILE__`.
pub const REMAPPED_SOURCE_DIR: &str = "/xbuild/src";
/// What `$CARGO_HOME` (registry sources, git checkouts) is remapped to.
pub const REMAPPED_CARGO_HOME: &str = "/xbuild/cargo";
/// What the target directory (`OUT_DIR` of build scripts) is remapped to.
pub const REMAPPED_TARGET_DIR: &str = "/xbuild/target";

/// Separator of `CARGO_ENCODED_RUSTFLAGS`.
const ENCODED_SEPARATOR: char = '\u{1f}';

#[derive(Debug, thiserror::Error)]
pub enum CargoError {
    #[error("cannot read the cargo metadata of {}", manifest.display())]
    Metadata {
        manifest: PathBuf,
        #[source]
        source: cargo_metadata::Error,
    },
    #[error("cannot run `{program}` for {}", project.display())]
    Spawn {
        program: String,
        project: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the output of cargo building {}", project.display())]
    Output {
        project: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo failed to build {} ({status})", project.display())]
    Failed {
        status: ExitStatus,
        project: PathBuf,
    },
}

/// How the target's final binaries are linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linker {
    /// A cross gcc (it also drives the link: crt files, libc, libgcc).
    Gcc(PathBuf),
    /// The toolchain's own `rust-lld`, for static musl binaries that need
    /// no C toolchain at all: `-C linker=rust-lld -C linker-flavor=ld.lld`.
    RustLld,
    /// Whatever cargo and rustc choose (native builds, or the user's config).
    Default,
}

/// The target of one cargo build, as plain paths: what a cross toolchain
/// (for example a `CrossGcc`) provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CargoTarget<'a> {
    /// The Rust triple, e.g. `aarch64-unknown-linux-gnu`.
    pub triple: &'a str,
    pub linker: Linker,
    /// C compiler for the target (`CC_<triple>`).
    pub cc: Option<&'a Path>,
    /// C++ compiler for the target (`CXX_<triple>`).
    pub cxx: Option<&'a Path>,
    /// Archiver for the target (`AR_<triple>`).
    pub ar: Option<&'a Path>,
    /// The target sysroot: `--sysroot` of the C compiler and gcc linker,
    /// and `PKG_CONFIG_SYSROOT_DIR`.
    pub sysroot: Option<&'a Path>,
    /// `PKG_CONFIG_LIBDIR` entries; see [`sysroot_pkg_config_libdirs`].
    pub pkg_config_libdirs: Vec<PathBuf>,
    /// Native library directories passed to rustc as `-L native=<dir>`;
    /// see [`sysroot_library_dirs`].
    pub library_dirs: Vec<PathBuf>,
}

impl<'a> CargoTarget<'a> {
    /// A target with the default linker and no C tools or sysroot.
    pub fn new(triple: &'a str) -> CargoTarget<'a> {
        CargoTarget {
            triple,
            linker: Linker::Default,
            cc: None,
            cxx: None,
            ar: None,
            sysroot: None,
            pkg_config_libdirs: Vec::new(),
            library_dirs: Vec::new(),
        }
    }

    pub fn with_linker(mut self, linker: Linker) -> Self {
        self.linker = linker;
        self
    }

    /// The cross C compiler, C++ compiler and archiver.
    pub fn with_c_tools(
        mut self,
        cc: Option<&'a Path>,
        cxx: Option<&'a Path>,
        ar: Option<&'a Path>,
    ) -> Self {
        self.cc = cc;
        self.cxx = cxx;
        self.ar = ar;
        self
    }

    /// A Debian-layout target sysroot: sets the sysroot, its pkg-config
    /// directories and its library directories for `multiarch`
    /// (e.g. `aarch64-linux-gnu`).
    pub fn with_sysroot(mut self, sysroot: &'a Path, multiarch: &str) -> Self {
        self.sysroot = Some(sysroot);
        self.pkg_config_libdirs = sysroot_pkg_config_libdirs(sysroot, multiarch);
        self.library_dirs = sysroot_library_dirs(sysroot, multiarch);
        self
    }
}

/// The pkg-config directories of a Debian-layout sysroot.
pub fn sysroot_pkg_config_libdirs(sysroot: &Path, multiarch: &str) -> Vec<PathBuf> {
    vec![
        sysroot.join("usr/lib").join(multiarch).join("pkgconfig"),
        sysroot.join("usr/lib/pkgconfig"),
        sysroot.join("usr/share/pkgconfig"),
    ]
}

/// The library directories of a Debian-layout sysroot.
pub fn sysroot_library_dirs(sysroot: &Path, multiarch: &str) -> Vec<PathBuf> {
    vec![
        sysroot.join("usr/lib").join(multiarch),
        sysroot.join("lib").join(multiarch),
    ]
}

/// One binary cargo built for the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltBinary {
    /// The bin target's name.
    pub name: String,
    /// `<target_dir>/<triple>/<profile dir>/<name>`.
    pub path: PathBuf,
}

/// The result of [`build`].
#[derive(Clone, Debug, PartialEq)]
pub struct CargoBuild {
    /// Sorted by name.
    pub binaries: Vec<BuiltBinary>,
    pub target_dir: PathBuf,
    /// Wall-clock time of the cargo run.
    pub seconds: f64,
}

/// How much of the symbol and debug information cargo keeps in binaries
/// (its `profile.<name>.strip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strip {
    /// Keep everything.
    None,
    /// Drop debug information, keep symbols (names in backtraces).
    Debuginfo,
    /// Drop both.
    Symbols,
}

impl Strip {
    /// The value of cargo's `strip` setting.
    pub fn name(self) -> &'static str {
        match self {
            Strip::None => "none",
            Strip::Debuginfo => "debuginfo",
            Strip::Symbols => "symbols",
        }
    }
}

/// What to build besides the target: profile, features, which binaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Cargo profile, e.g. `release`.
    pub profile: String,
    pub no_default_features: bool,
    pub features: Vec<String>,
    /// `-p`: the workspace member to build (default: cargo's).
    pub package: Option<String>,
    /// `--bin` of each; empty: every binary.
    pub bins: Vec<String>,
    /// `profile.<profile>.strip`; `None` leaves the project's setting.
    pub strip: Option<Strip>,
    /// `--quiet`.
    pub quiet: bool,
    /// Exported as `SOURCE_DATE_EPOCH`; when `None`, the caller's own
    /// `SOURCE_DATE_EPOCH` (if any) passes through.
    pub source_date_epoch: Option<u64>,
}

impl BuildOptions {
    pub fn new(profile: &str) -> BuildOptions {
        BuildOptions {
            profile: profile.to_owned(),
            no_default_features: false,
            features: Vec::new(),
            package: None,
            bins: Vec::new(),
            strip: None,
            quiet: false,
            source_date_epoch: None,
        }
    }

    pub fn with_no_default_features(mut self) -> Self {
        self.no_default_features = true;
        self
    }

    pub fn with_features(mut self, features: &[&str]) -> Self {
        self.features = features.iter().map(|&feature| feature.to_owned()).collect();
        self
    }

    pub fn with_source_date_epoch(mut self, seconds: u64) -> Self {
        self.source_date_epoch = Some(seconds);
        self
    }
}

/// `cargo metadata --no-deps` of the project in `project_dir`.
fn workspace_metadata(project_dir: &Path) -> Result<cargo_metadata::Metadata, CargoError> {
    let manifest = project_dir.join("Cargo.toml");
    MetadataCommand::new()
        .manifest_path(&manifest)
        .no_deps()
        .exec()
        .map_err(|source| CargoError::Metadata { manifest, source })
}

/// The names of the bin targets of the workspace members of the cargo
/// project in `manifest_dir`, sorted (through `cargo metadata --no-deps`).
pub fn workspace_binaries(manifest_dir: &Path) -> Result<Vec<String>, CargoError> {
    let metadata = workspace_metadata(manifest_dir)?;
    let mut names: Vec<String> = metadata
        .workspace_packages()
        .into_iter()
        .flat_map(|package| &package.targets)
        .filter(|target| target.is_bin())
        .map(|target| target.name.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// `cargo build --target <triple>` of the project in `project_dir` with
/// `profile`, into `target_dir`. See [`build_with`].
pub fn build(
    project_dir: &Path,
    target: &CargoTarget,
    target_dir: &Path,
    profile: &str,
) -> Result<CargoBuild, CargoError> {
    build_with(project_dir, target, target_dir, &BuildOptions::new(profile))
}

/// Runs `cargo build --target <triple> --locked` (`--locked` only when the
/// workspace has a `Cargo.lock`) with [`environment`] set; cargo's
/// diagnostics go to this process's stderr. A failing cargo becomes
/// [`CargoError::Failed`] with its exit status.
pub fn build_with(
    project_dir: &Path,
    target: &CargoTarget,
    target_dir: &Path,
    options: &BuildOptions,
) -> Result<CargoBuild, CargoError> {
    build_reporting(project_dir, target, target_dir, options, &SilentReporter)
}

/// [`build_with`], cargo's diagnostics (its stderr, and the lines of its
/// stdout that are not JSON messages) handed line by line to
/// `reporter.on_output_line` instead, so that they appear above progress
/// bars rather than through them.
pub fn build_reporting(
    project_dir: &Path,
    target: &CargoTarget,
    target_dir: &Path,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<CargoBuild, CargoError> {
    let started = Instant::now();
    let project_dir = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_owned());
    let target_dir = std::path::absolute(target_dir).unwrap_or_else(|_| target_dir.to_owned());
    let manifest = project_dir.join("Cargo.toml");
    let metadata = workspace_metadata(&project_dir)?;
    let workspace_root = metadata.workspace_root.into_std_path_buf();

    let program = std::env::var_os("CARGO")
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(&program);
    command
        .current_dir(&project_dir)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", target.triple])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--message-format", "json-render-diagnostics"]);
    if options.profile == "release" {
        command.arg("--release");
    } else {
        command.args(["--profile", &options.profile]);
    }
    if workspace_root.join("Cargo.lock").is_file() {
        command.arg("--locked");
    }
    if options.no_default_features {
        command.arg("--no-default-features");
    }
    if !options.features.is_empty() {
        command.args(["--features", &options.features.join(",")]);
    }
    if let Some(package) = &options.package {
        command.args(["--package", package]);
    }
    for bin in &options.bins {
        command.args(["--bin", bin]);
    }
    if let Some(strip) = options.strip {
        command.args([
            "--config",
            &format!("profile.{}.strip=\"{}\"", options.profile, strip.name()),
        ]);
    }
    if options.quiet {
        command.arg("--quiet");
    }
    if let Some(seconds) = options.source_date_epoch {
        command.env("SOURCE_DATE_EPOCH", seconds.to_string());
    }
    command.envs(environment(target, &workspace_root, &target_dir));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let mut child = command.spawn().map_err(|source| CargoError::Spawn {
        program: program.to_string_lossy().into_owned(),
        project: project_dir.clone(),
        source,
    })?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read = std::thread::scope(|scope| {
        scope.spawn(|| forward_lines(stderr, reporter));
        let read = read_messages(&mut stdout, target.triple, reporter);
        // Even when reading failed, drain the pipe so cargo cannot block on
        // it, and wait, so no zombie is left behind.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        read
    });
    let status = child.wait().map_err(|source| CargoError::Output {
        project: project_dir.clone(),
        source,
    })?;
    if !status.success() {
        return Err(CargoError::Failed {
            status,
            project: project_dir,
        });
    }
    let mut binaries = read.map_err(|source| CargoError::Output {
        project: project_dir.clone(),
        source,
    })?;
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    binaries.dedup();
    Ok(CargoBuild {
        binaries,
        target_dir,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads cargo's JSON messages to the end: the executables it built for
/// `triple` (build scripts run on the host and are not among them). Lines
/// that are not cargo messages are passed to the reporter.
fn read_messages(
    stdout: impl std::io::Read,
    triple: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<BuiltBinary>, std::io::Error> {
    let reader = std::io::BufReader::new(stdout);
    let target_component = std::ffi::OsStr::new(triple);
    let mut binaries = Vec::new();
    for message in Message::parse_stream(reader) {
        match message? {
            Message::CompilerArtifact(artifact) => {
                let Some(executable) = artifact.executable else {
                    continue;
                };
                let path = executable.into_std_path_buf();
                let for_target = path
                    .components()
                    .any(|component| component.as_os_str() == target_component);
                if artifact.target.is_bin() && for_target {
                    binaries.push(BuiltBinary {
                        name: artifact.target.name.clone(),
                        path,
                    });
                }
            }
            Message::TextLine(line) => reporter.on_output_line(&line),
            _ => {}
        }
    }
    Ok(binaries)
}

/// The variables [`build`] sets for `target`, given the process
/// environment and the user's cargo configuration (read in `source_dir`,
/// the workspace root, as cargo does). `source_dir` and `target_dir` are
/// remapped for reproducible output.
pub fn environment(
    target: &CargoTarget,
    source_dir: &Path,
    target_dir: &Path,
) -> Vec<(String, String)> {
    let cargo_home = cargo_home();
    let lookup = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let user = UserCargo::read(source_dir, cargo_home.as_deref(), target.triple, &lookup);
    environment_from(
        target,
        &Remaps {
            source_dir,
            cargo_home: cargo_home.as_deref(),
            target_dir,
        },
        lookup,
        &user,
    )
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".cargo")))
}

/// What the user's own settings say for one target ([`super::cargo_config`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCargo {
    /// The rustflags cargo would use without xbuild.
    pub rustflags: Vec<String>,
    /// The linker the user chose, if any.
    pub linker: Option<String>,
}

impl UserCargo {
    /// Reads them for cargo running in `cwd`.
    pub fn read(
        cwd: &Path,
        cargo_home: Option<&Path>,
        triple: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> UserCargo {
        let files = super::cargo_config::config_files(cwd, cargo_home);
        let target_cfg = || target_cfg(triple);
        UserCargo {
            rustflags: super::cargo_config::user_rustflags(&files, triple, lookup, &target_cfg),
            linker: super::cargo_config::user_linker(&files, triple, lookup),
        }
    }
}

/// `rustc --print cfg --target <triple>` (empty if rustc cannot say).
fn target_cfg(triple: &str) -> Vec<String> {
    let rustc = std::env::var_os(crate::toolchain::rust::RUSTC_VARIABLE)
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| OsString::from("rustc"));
    Command::new(rustc)
        .args(["--print", "cfg", "--target", triple])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The directories remapped to fixed names, most general first (rustc
/// applies the last matching remap, so the target directory, often inside
/// the source tree, comes last).
#[derive(Clone, Copy, Debug)]
pub struct Remaps<'a> {
    pub source_dir: &'a Path,
    pub cargo_home: Option<&'a Path>,
    pub target_dir: &'a Path,
}

impl Remaps<'_> {
    /// `(from, to)` pairs, with the canonical form of each directory too
    /// when it differs (symlinked checkouts).
    fn pairs(&self) -> Vec<(String, &'static str)> {
        let mut pairs = Vec::new();
        let directories = [
            (Some(self.source_dir), REMAPPED_SOURCE_DIR),
            (self.cargo_home, REMAPPED_CARGO_HOME),
            (Some(self.target_dir), REMAPPED_TARGET_DIR),
        ];
        for (directory, to) in directories {
            let Some(directory) = directory else { continue };
            let mut forms = vec![directory.to_owned()];
            if let Ok(canonical) = fs_err::canonicalize(directory)
                && canonical != directory
            {
                forms.push(canonical);
            }
            for form in forms {
                pairs.push((form.to_string_lossy().into_owned(), to));
            }
        }
        pairs
    }
}

/// [`environment`] with the environment read through `lookup` (which
/// returns `None` for unset and empty variables) and the user's cargo
/// settings `user`.
///
/// The linker goes into the target's rustflags (`-C linker=…`), not into
/// `CARGO_TARGET_<TRIPLE>_LINKER`: with `--target`, rustflags reach only
/// the target's artifacts, while the linker setting would also link build
/// scripts — which run on this machine — against the target's sysroot
/// when the target is this machine's own triple.
pub fn environment_from(
    target: &CargoTarget,
    remaps: &Remaps,
    lookup: impl Fn(&str) -> Option<String>,
    user: &UserCargo,
) -> Vec<(String, String)> {
    let triple = target.triple;
    let underscored = triple.replace('-', "_");
    let mut variables: Vec<(String, String)> = Vec::new();
    // A tool variable is set unless the user set any variable that names
    // the same setting for this target (the first name is the one set).
    let mut set_tool = |names: &[String], value: String| {
        if names.iter().all(|name| lookup(name).is_none()) {
            variables.push((names[0].clone(), value));
        }
    };
    let cc_names = |tool: &str| {
        vec![
            format!("{tool}_{underscored}"),
            format!("{tool}_{triple}"),
            format!("TARGET_{tool}"),
        ]
    };
    if let Some(cc) = target.cc {
        set_tool(&cc_names("CC"), path_string(cc));
    }
    if let Some(cxx) = target.cxx {
        set_tool(&cc_names("CXX"), path_string(cxx));
    }
    if let Some(ar) = target.ar {
        set_tool(&cc_names("AR"), path_string(ar));
    }
    let pkg_config_names = |name: &str| {
        vec![
            format!("{name}_{underscored}"),
            format!("{name}_{triple}"),
            format!("TARGET_{name}"),
            name.to_owned(),
        ]
    };
    if let Some(sysroot) = target.sysroot {
        set_tool(
            &pkg_config_names("PKG_CONFIG_SYSROOT_DIR"),
            path_string(sysroot),
        );
    }
    if !target.pkg_config_libdirs.is_empty() {
        let joined: Vec<String> = target
            .pkg_config_libdirs
            .iter()
            .map(|directory| path_string(directory))
            .collect();
        let joined = joined.join(":");
        set_tool(&pkg_config_names("PKG_CONFIG_LIBDIR"), joined);
    }
    if target.sysroot.is_some() || !target.pkg_config_libdirs.is_empty() {
        set_tool(&pkg_config_names("PKG_CONFIG_ALLOW_CROSS"), "1".to_owned());
    }

    let remap_pairs = remaps.pairs();
    // C and C++ flags: ours, then the user's — the first the cc crate would
    // read of `CFLAGS_<target>`, `CFLAGS_<target_>`, `TARGET_CFLAGS`,
    // `CFLAGS` — in the variable it reads first.
    let mut c_flags: Vec<String> = Vec::new();
    if let Some(sysroot) = target.sysroot {
        c_flags.push(format!("--sysroot={}", path_string(sysroot)));
    }
    for (from, to) in &remap_pairs {
        c_flags.push(format!("-ffile-prefix-map={from}={to}"));
    }
    for tool in ["CFLAGS", "CXXFLAGS"] {
        let mut value = c_flags.join(" ");
        let user = [
            format!("{tool}_{triple}"),
            format!("{tool}_{underscored}"),
            format!("TARGET_{tool}"),
            tool.to_owned(),
        ]
        .iter()
        .find_map(|name| lookup(name));
        if let Some(user) = user {
            value = format!("{value} {user}");
        }
        variables.push((format!("{tool}_{triple}"), value));
    }

    // Rustflags, for the target only (with --target, cargo applies
    // CARGO_ENCODED_RUSTFLAGS to the target's artifacts only).
    let mut rustflags: Vec<String> = Vec::new();
    let chosen_linker = user.linker.is_some();
    match &target.linker {
        Linker::RustLld => {
            if !chosen_linker {
                rustflags.extend(
                    ["-C", "linker=rust-lld", "-C", "linker-flavor=ld.lld"].map(String::from),
                );
            }
            if triple.contains("musl") {
                rustflags.extend(["-C", "target-feature=+crt-static"].map(String::from));
            }
        }
        Linker::Gcc(gcc) => {
            if !chosen_linker {
                rustflags.push("-C".to_owned());
                rustflags.push(format!("linker={}", path_string(gcc)));
            }
            if let Some(sysroot) = target.sysroot {
                rustflags.push("-C".to_owned());
                rustflags.push(format!("link-arg=--sysroot={}", path_string(sysroot)));
            }
        }
        Linker::Default => {}
    }
    for directory in &target.library_dirs {
        rustflags.push("-L".to_owned());
        rustflags.push(format!("native={}", path_string(directory)));
    }
    for (from, to) in &remap_pairs {
        rustflags.push(format!("--remap-path-prefix={from}={to}"));
    }
    // The user's flags come after ours, so theirs win.
    rustflags.extend(user.rustflags.iter().cloned());
    variables.push((
        "CARGO_ENCODED_RUSTFLAGS".to_owned(),
        rustflags.join(&ENCODED_SEPARATOR.to_string()),
    ));
    variables
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
#[path = "cargo_tests.rs"]
mod tests;
