//! Cross-compiling C (and C++) recipes — autotools, plain make and cmake —
//! for the target with a cross GCC ([`CTarget`]: plain paths to the tools
//! and the target sysroot), installed with prefix `/usr/local` into a
//! staging directory that becomes a layer ([`build`]).
//!
//! - autotools: `configure --host=<target> --build=<this machine>
//!   --prefix=/usr/local CC=… AR=… RANLIB=…`, out of tree in the build
//!   directory when the script is Autoconf's and the source tree is not
//!   configured already, else in a copy of the source; a tree with only
//!   `configure.ac` gets `autoreconf -fi` (in the copy) first; then
//!   `make -j N` and `make install DESTDIR=<staging>`;
//! - make: in a copy of the source, `make -j N CC=… AR=… PREFIX=/usr/local
//!   DESTDIR=…` then the same with `install`;
//! - cmake: a generated toolchain file (`CMAKE_SYSTEM_NAME`, compilers,
//!   `CMAKE_SYSROOT`, find-root modes), `cmake -S -B`, `cmake --build`,
//!   `cmake --install` with `DESTDIR`.
//!
//! The user's source tree is never written to. Every step runs with
//! `SOURCE_DATE_EPOCH`, `LC_ALL=C`, `TZ=UTC`, pkg-config pointed at the
//! sysroot, and `-ffile-prefix-map` mapping the source and build
//! directories to fixed paths, so two checkouts give the same bytes. The
//! children's output (stdout and stderr, in the order written) is handed
//! line by line to a [`Reporter`] (stderr by
//! default). Afterwards `share/info/dir` and
//! libtool `*.la` files are removed from the staging directory.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime};

use crate::progress::{Reporter, SilentReporter, forward_lines};

use crate::build::cargo::REMAPPED_SOURCE_DIR;

/// The installation prefix of every C recipe.
pub const PREFIX: &str = "/usr/local";
/// What the build directory is remapped to in debug info and `__FILE__`.
pub const REMAPPED_BUILD_DIR: &str = "/xbuild/build";

/// The build systems a C recipe can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CKind {
    Autotools,
    Make,
    Cmake,
}

impl CKind {
    /// The name a manifest uses: `autotools`, `make`, `cmake`.
    pub fn name(self) -> &'static str {
        match self {
            CKind::Autotools => "autotools",
            CKind::Make => "make",
            CKind::Cmake => "cmake",
        }
    }

    /// The build system a source tree uses, guessed from its files:
    /// `configure` or `configure.ac`, then `CMakeLists.txt`, then a makefile.
    pub fn detect(source: &Path) -> Option<CKind> {
        let has = |name: &str| source.join(name).is_file();
        if has("configure") || has("configure.ac") || has("configure.in") {
            Some(CKind::Autotools)
        } else if has("CMakeLists.txt") {
            Some(CKind::Cmake)
        } else if has("GNUmakefile") || has("makefile") || has("Makefile") {
            Some(CKind::Make)
        } else {
            None
        }
    }
}

/// The target a C recipe is built for: the cross tools (wrappers that
/// already pass `--sysroot`) and the target's root file system.
#[derive(Debug, Clone)]
pub struct CTarget<'a> {
    /// `aarch64-linux-gnu`.
    pub gnu_triple: &'a str,
    /// The GNU triple of the machine the build runs on.
    pub build_triple: &'a str,
    pub cc: &'a Path,
    pub cxx: Option<&'a Path>,
    pub ar: &'a Path,
    pub ranlib: &'a Path,
    pub strip: &'a Path,
    pub sysroot: &'a Path,
    /// The Debian multiarch directory name (`aarch64-linux-gnu`), for
    /// pkg-config and cmake library paths inside the sysroot.
    pub multiarch: &'a str,
    /// Parallel jobs (`make -j`); 0 counts as 1.
    pub jobs: usize,
    pub source_date_epoch: u64,
    /// Link programs statically (`LDFLAGS=-static`): for musl targets,
    /// whose images have no musl dynamic loader.
    pub static_link: bool,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct CBuild {
    /// The staging directory (absolute): its `usr/local/…` is the install.
    pub staging: PathBuf,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CError {
    #[error("{} has no {expected}, which a {} build needs", source_dir.display(), kind.name())]
    NoBuildSystem {
        kind: CKind,
        source_dir: PathBuf,
        expected: &'static str,
    },
    #[error("cannot run `{program}` ({step}) for {}", source_dir.display())]
    Spawn {
        step: String,
        program: String,
        source_dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{step} failed for {} ({status})", source_dir.display())]
    Failed {
        step: String,
        status: ExitStatus,
        source_dir: PathBuf,
    },
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CError {
    /// What a person can do about this error.
    pub fn hint(&self) -> Option<String> {
        match self {
            CError::Spawn { program, .. } => Some(match program.as_str() {
                "autoreconf" => {
                    "the source has only configure.ac: install autoconf, automake (and libtool if it uses it), e.g. `apt-get install autoconf automake libtool`".into()
                }
                "cmake" => "install cmake, e.g. `apt-get install cmake`".into(),
                "make" => "install GNU make, e.g. `apt-get install make`".into(),
                _ => format!("check that `{program}` is installed and executable"),
            }),
            CError::Failed { step, .. } => Some(format!(
                "the output of {step} above says why; a cross build often needs the target's -dev packages in the sysroot"
            )),
            CError::NoBuildSystem { .. } => {
                Some("set the build's kind to the build system the source uses".into())
            }
            CError::Io { .. } => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CError + '_ {
    move |source| CError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Builds the C project in `source` for `target` in `build_dir` (created if
/// missing; it should be empty) and installs it with prefix `/usr/local`
/// into `staging` (created if missing).
pub fn build(
    kind: CKind,
    source: &Path,
    build_dir: &Path,
    staging: &Path,
    target: &CTarget,
) -> Result<CBuild, CError> {
    build_reporting(kind, source, build_dir, staging, target, &SilentReporter)
}

/// [`build`], the output of every step handed to `reporter` line by line.
pub fn build_reporting(
    kind: CKind,
    source: &Path,
    build_dir: &Path,
    staging: &Path,
    target: &CTarget,
    reporter: &dyn Reporter,
) -> Result<CBuild, CError> {
    let started = Instant::now();
    let source = fs_err::canonicalize(source).map_err(io_error(source))?;
    fs_err::create_dir_all(build_dir).map_err(io_error(build_dir))?;
    let build_dir = fs_err::canonicalize(build_dir).map_err(io_error(build_dir))?;
    fs_err::create_dir_all(staging).map_err(io_error(staging))?;
    let staging = fs_err::canonicalize(staging).map_err(io_error(staging))?;
    let runner = Runner {
        source: &source,
        build_dir: &build_dir,
        staging: &staging,
        target,
        reporter,
    };
    match kind {
        CKind::Autotools => runner.autotools()?,
        CKind::Make => runner.make()?,
        CKind::Cmake => runner.cmake()?,
    }
    clean_staging(&staging)?;
    Ok(CBuild {
        staging,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The `--build` a configure script is given: the build machine's triple,
/// spelt differently from `host` (with a vendor, `x86_64-unknown-linux-gnu`)
/// when the two name one machine, so that configure always cross-compiles.
/// A native configure runs its test programs where a cross one guesses,
/// and would give other bytes on a build machine of the target's
/// architecture than on any other: the same key must mean the same output.
fn configure_build_triple(build: &str, host: &str) -> String {
    if build != host {
        return build.to_owned();
    }
    match build.split_once('-') {
        Some((cpu, rest)) if !rest.starts_with("unknown-") => format!("{cpu}-unknown-{rest}"),
        Some((cpu, rest)) => format!("{cpu}-pc-{}", &rest["unknown-".len()..]),
        None => format!("{build}-unknown-linux-gnu"),
    }
}

struct Runner<'a> {
    source: &'a Path,
    build_dir: &'a Path,
    staging: &'a Path,
    target: &'a CTarget<'a>,
    reporter: &'a dyn Reporter,
}

impl Runner<'_> {
    fn jobs(&self) -> String {
        self.target.jobs.max(1).to_string()
    }

    fn autotools(&self) -> Result<(), CError> {
        let configure = self.source.join("configure");
        let has_configure = configure.is_file();
        let out_of_tree = has_configure
            && !self.source.join("config.status").exists()
            && is_autoconf_script(&configure);
        let (tree, object_dir) = if out_of_tree {
            (self.source.to_owned(), self.build_dir.to_owned())
        } else {
            let copy = self.copy_source()?;
            (copy.clone(), copy)
        };
        if !has_configure {
            if !["configure.ac", "configure.in"]
                .iter()
                .any(|name| tree.join(name).is_file())
            {
                return Err(CError::NoBuildSystem {
                    kind: CKind::Autotools,
                    source_dir: self.source.to_owned(),
                    expected: "configure script or configure.ac",
                });
            }
            let mut autoreconf = self.command("autoreconf", &tree);
            autoreconf.args(["-fi"]);
            self.run("autoreconf -fi", autoreconf)?;
        }
        let target = self.target;
        let mut configure = self.command(tree.join("configure"), &object_dir);
        configure
            .arg(format!("--host={}", target.gnu_triple))
            .arg(format!(
                "--build={}",
                configure_build_triple(target.build_triple, target.gnu_triple)
            ))
            .arg(format!("--prefix={PREFIX}"))
            .args(self.tool_assignments())
            .arg(assignment("CFLAGS", &self.flags("CFLAGS")))
            .arg(assignment("CXXFLAGS", &self.flags("CXXFLAGS")));
        self.run("configure", configure)?;
        let mut make = self.command("make", &object_dir);
        make.arg(format!("-j{}", self.jobs()));
        self.run("make", make)?;
        let mut install = self.command("make", &object_dir);
        install
            .arg("install")
            .arg(assignment("DESTDIR", self.staging.as_os_str()));
        self.run("make install", install)
    }

    fn make(&self) -> Result<(), CError> {
        if !["GNUmakefile", "makefile", "Makefile"]
            .iter()
            .any(|name| self.source.join(name).is_file())
        {
            return Err(CError::NoBuildSystem {
                kind: CKind::Make,
                source_dir: self.source.to_owned(),
                expected: "Makefile",
            });
        }
        let tree = self.copy_source()?;
        let variables = || {
            let mut variables = self.tool_assignments();
            variables.push(assignment("PREFIX", PREFIX.as_ref()));
            variables.push(assignment("prefix", PREFIX.as_ref()));
            variables.push(assignment("DESTDIR", self.staging.as_os_str()));
            variables
        };
        let mut make = self.command("make", &tree);
        make.arg(format!("-j{}", self.jobs())).args(variables());
        self.run("make", make)?;
        let mut install = self.command("make", &tree);
        install.args(variables()).arg("install");
        self.run("make install", install)
    }

    fn cmake(&self) -> Result<(), CError> {
        if !self.source.join("CMakeLists.txt").is_file() {
            return Err(CError::NoBuildSystem {
                kind: CKind::Cmake,
                source_dir: self.source.to_owned(),
                expected: "CMakeLists.txt",
            });
        }
        let toolchain = self.build_dir.join("xbuild-toolchain.cmake");
        fs_err::write(&toolchain, cmake_toolchain(self.target)).map_err(io_error(&toolchain))?;
        let mut configure = self.command("cmake", self.build_dir);
        configure
            .arg("-S")
            .arg(self.source)
            .arg("-B")
            .arg(self.build_dir)
            .arg(definition("CMAKE_TOOLCHAIN_FILE", toolchain.as_os_str()))
            .arg(definition("CMAKE_INSTALL_PREFIX", PREFIX.as_ref()))
            .arg("-DCMAKE_BUILD_TYPE=Release");
        self.run("cmake configure", configure)?;
        let mut build = self.command("cmake", self.build_dir);
        build
            .arg("--build")
            .arg(self.build_dir)
            .args(["--parallel", &self.jobs()]);
        self.run("cmake --build", build)?;
        let mut install = self.command("cmake", self.build_dir);
        install
            .arg("--install")
            .arg(self.build_dir)
            .env("DESTDIR", self.staging);
        self.run("cmake --install", install)
    }

    /// `CC=…`, `CXX=…`, `AR=…`, `RANLIB=…`, `STRIP=…` as command-line
    /// assignments (for configure and make).
    fn tool_assignments(&self) -> Vec<OsString> {
        self.tools()
            .into_iter()
            .map(|(name, path)| assignment(name, path.as_os_str()))
            .collect()
    }

    fn tools(&self) -> Vec<(&'static str, PathBuf)> {
        let target = self.target;
        let mut tools = vec![
            ("CC", absolute(target.cc)),
            ("AR", absolute(target.ar)),
            ("RANLIB", absolute(target.ranlib)),
            ("STRIP", absolute(target.strip)),
        ];
        if let Some(cxx) = target.cxx {
            tools.push(("CXX", absolute(cxx)));
        }
        tools
    }

    /// Our flags for `variable` (`CFLAGS`, `CXXFLAGS`) followed by the
    /// user's, so that the user's win.
    fn flags(&self, variable: &str) -> OsString {
        let mut maps = [
            (self.source.to_owned(), REMAPPED_SOURCE_DIR),
            (self.build_dir.join("source"), REMAPPED_SOURCE_DIR),
            (self.build_dir.to_owned(), REMAPPED_BUILD_DIR),
        ];
        // GCC uses the last matching map: the longest (most specific) last.
        maps.sort_by_key(|(path, _)| path.as_os_str().len());
        let mut flags = OsString::from("-O2");
        for (path, remapped) in maps {
            flags.push(" -ffile-prefix-map=");
            flags.push(path.as_os_str());
            flags.push(format!("={remapped}"));
        }
        if let Some(user) = std::env::var_os(variable).filter(|value| !value.is_empty()) {
            flags.push(" ");
            flags.push(user);
        }
        flags
    }

    /// `-static` when the target links statically, then the user's
    /// `LDFLAGS`.
    fn ldflags(&self) -> OsString {
        let mut flags = OsString::new();
        if self.target.static_link {
            flags.push("-static");
        }
        if let Some(user) = std::env::var_os("LDFLAGS").filter(|value| !value.is_empty()) {
            if !flags.is_empty() {
                flags.push(" ");
            }
            flags.push(user);
        }
        flags
    }

    /// A command for one step, run in `directory` with the reproducible
    /// environment; [`Runner::run`] sets where its output goes.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, directory: &Path) -> Command {
        let target = self.target;
        let mut command = Command::new(program);
        command
            .current_dir(directory)
            .stdin(Stdio::null())
            .env("SOURCE_DATE_EPOCH", target.source_date_epoch.to_string())
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("CFLAGS", self.flags("CFLAGS"))
            .env("CXXFLAGS", self.flags("CXXFLAGS"))
            .env("LDFLAGS", self.ldflags())
            .env("PKG_CONFIG_SYSROOT_DIR", target.sysroot)
            .env("PKG_CONFIG_LIBDIR", pkg_config_libdir(target))
            .env_remove("PKG_CONFIG_PATH");
        for (name, path) in self.tools() {
            command.env(name, path);
        }
        command
    }

    /// Runs one step, its stdout and stderr (one pipe, so their lines keep
    /// their order) forwarded to the reporter; a non-zero exit is
    /// [`CError::Failed`].
    fn run(&self, step: &str, mut command: Command) -> Result<(), CError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let spawn_error = |source| CError::Spawn {
            step: step.to_owned(),
            program,
            source_dir: self.source.to_owned(),
            source,
        };
        let spawned = io::pipe().and_then(|(reader, writer)| {
            command.stdout(writer.try_clone()?).stderr(writer);
            Ok((reader, command.spawn()?))
        });
        // The command holds the pipe's write ends: dropped, so that the
        // reader sees the end once the child (and what it started) exits.
        drop(command);
        let (reader, mut child) = spawned.map_err(spawn_error)?;
        forward_lines(reader, self.reporter);
        let status = child.wait().map_err(|source| CError::Io {
            path: self.source.to_owned(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(CError::Failed {
                step: step.to_owned(),
                status,
                source_dir: self.source.to_owned(),
            })
        }
    }

    /// Copies the source tree to `<build_dir>/source` (for builds that
    /// write into their tree) and returns the copy.
    fn copy_source(&self) -> Result<PathBuf, CError> {
        let copy = self.build_dir.join("source");
        if fs_err::symlink_metadata(&copy).is_ok() {
            fs_err::remove_dir_all(&copy).map_err(io_error(&copy))?;
        }
        copy_tree(self.source, &copy, self.build_dir)?;
        Ok(copy)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn assignment(name: &str, value: &std::ffi::OsStr) -> OsString {
    let mut text = OsString::from(format!("{name}="));
    text.push(value);
    text
}

fn definition(name: &str, value: &std::ffi::OsStr) -> OsString {
    let mut text = OsString::from(format!("-D{name}="));
    text.push(value);
    text
}

/// Whether `configure` was generated by Autoconf (and so can build out of
/// tree).
fn is_autoconf_script(configure: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    fs_err::File::open(configure)
        .and_then(|file| file.take(8192).read_to_end(&mut head))
        .is_ok()
        && String::from_utf8_lossy(&head).contains("Generated by GNU Autoconf")
}

/// pkg-config's search path inside the sysroot.
fn pkg_config_libdir(target: &CTarget) -> OsString {
    let mut value = OsString::new();
    for (index, directory) in [
        format!("usr/lib/{}/pkgconfig", target.multiarch),
        "usr/lib/pkgconfig".to_owned(),
        "usr/share/pkgconfig".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        if index > 0 {
            value.push(":");
        }
        value.push(target.sysroot.join(directory).as_os_str());
    }
    value
}

/// A CMake quoted argument.
fn cmake_quote(path: &Path) -> String {
    let mut quoted = String::from("\"");
    for character in path.to_string_lossy().chars() {
        if matches!(character, '\\' | '"' | '$') {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

/// The text of a CMake toolchain file for `target`.
pub fn cmake_toolchain(target: &CTarget) -> String {
    let processor = target
        .gnu_triple
        .split('-')
        .next()
        .unwrap_or(target.gnu_triple);
    let mut text =
        String::from("# Generated by xbuild: cross-compiling with a Debian cross GCC.\n");
    text.push_str("set(CMAKE_SYSTEM_NAME Linux)\n");
    text.push_str(&format!("set(CMAKE_SYSTEM_PROCESSOR {processor})\n"));
    text.push_str(&format!(
        "set(CMAKE_SYSROOT {})\n",
        cmake_quote(target.sysroot)
    ));
    text.push_str(&format!(
        "set(CMAKE_C_COMPILER {})\n",
        cmake_quote(&absolute(target.cc))
    ));
    text.push_str(&format!(
        "set(CMAKE_C_COMPILER_TARGET {})\n",
        target.gnu_triple
    ));
    if let Some(cxx) = target.cxx {
        text.push_str(&format!(
            "set(CMAKE_CXX_COMPILER {})\n",
            cmake_quote(&absolute(cxx))
        ));
        text.push_str(&format!(
            "set(CMAKE_CXX_COMPILER_TARGET {})\n",
            target.gnu_triple
        ));
    }
    for (variable, path) in [
        ("CMAKE_AR", target.ar),
        ("CMAKE_RANLIB", target.ranlib),
        ("CMAKE_STRIP", target.strip),
    ] {
        text.push_str(&format!(
            "set({variable} {} CACHE FILEPATH \"\")\n",
            cmake_quote(&absolute(path))
        ));
    }
    text.push_str(&format!(
        "set(CMAKE_LIBRARY_ARCHITECTURE {})\n",
        target.multiarch
    ));
    text.push_str(&format!(
        "set(CMAKE_FIND_ROOT_PATH {})\n",
        cmake_quote(target.sysroot)
    ));
    text.push_str("set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n");
    text.push_str("set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n");
    text.push_str("set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n");
    text.push_str("set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n");
    text
}

/// Copies `from` into the new directory `to`, keeping modes, symlinks and
/// modification times (make decides what to rebuild from them). `skip` (the
/// build directory, which may lie inside the source) is not copied.
fn copy_tree(from: &Path, to: &Path, skip: &Path) -> Result<(), CError> {
    fs_err::create_dir(to).map_err(io_error(to))?;
    let mut entries: Vec<_> = fs_err::read_dir(from)
        .map_err(io_error(from))?
        .collect::<Result<_, _>>()
        .map_err(io_error(from))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if path == skip {
            continue;
        }
        let destination = to.join(entry.file_name());
        let metadata = fs_err::symlink_metadata(&path).map_err(io_error(&path))?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            let link = fs_err::read_link(&path).map_err(io_error(&path))?;
            fs_err::os::unix::fs::symlink(&link, &destination).map_err(io_error(&destination))?;
        } else if kind.is_dir() {
            copy_tree(&path, &destination, skip)?;
            fs_err::set_permissions(&destination, metadata.permissions())
                .map_err(io_error(&destination))?;
        } else if kind.is_file() {
            fs_err::copy(&path, &destination).map_err(io_error(&destination))?;
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let file = fs_err::File::options()
                .write(true)
                .open(&destination)
                .or_else(|_| fs_err::File::open(&destination))
                .map_err(io_error(&destination))?;
            file.file()
                .set_modified(modified)
                .map_err(io_error(&destination))?;
        }
    }
    Ok(())
}

/// Removes what should not become part of a layer: the info `dir` index
/// (a per-system file, rebuilt by install-info) and libtool `.la` files,
/// with the directories that only they filled.
fn clean_staging(staging: &Path) -> Result<(), CError> {
    let info_dir = staging.join("usr/local/share/info/dir");
    if fs_err::symlink_metadata(&info_dir).is_ok() {
        fs_err::remove_file(&info_dir).map_err(io_error(&info_dir))?;
        remove_if_empty(info_dir.parent().expect("a parent"))?;
    }
    remove_libtool_archives(staging, staging)
}

fn remove_libtool_archives(directory: &Path, staging: &Path) -> Result<(), CError> {
    let mut removed = false;
    for entry in fs_err::read_dir(directory).map_err(io_error(directory))? {
        let entry = entry.map_err(io_error(directory))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() {
            remove_libtool_archives(&path, staging)?;
        } else if path.extension().is_some_and(|extension| extension == "la") {
            fs_err::remove_file(&path).map_err(io_error(&path))?;
            removed = true;
        }
    }
    if removed && directory != staging {
        remove_if_empty(directory)?;
    }
    Ok(())
}

/// Removes `directory` if it is now empty (it held only removed files).
fn remove_if_empty(directory: &Path) -> Result<(), CError> {
    let mut entries = fs_err::read_dir(directory).map_err(io_error(directory))?;
    if entries.next().is_none() {
        fs_err::remove_dir(directory).map_err(io_error(directory))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "c_tests.rs"]
mod tests;
