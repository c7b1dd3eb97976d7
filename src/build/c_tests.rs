//! Tests of the C recipe builder. Offline, tiny make, autotools and cmake
//! projects are built with the host's own gcc standing in for a cross
//! compiler (the plumbing is the same) — cmake and autoreconf tests skip
//! when those tools are missing. With the network (`*_network`), GNU hello
//! is taken from the signed Debian archive (InRelease → Sources → file
//! digests), unpacked, cross-built for aarch64 with a cross GCC assembled
//! from Debian's packages, and run under qemu.

use super::*;
use std::process::Output;

/// A target that is this machine, with the host's gcc and binutils.
struct HostTools {
    cc: PathBuf,
    cxx: Option<PathBuf>,
    ar: PathBuf,
    ranlib: PathBuf,
    strip: PathBuf,
    sysroot: PathBuf,
}

impl HostTools {
    fn find() -> Option<HostTools> {
        let which = |name: &str| {
            ["/usr/bin", "/bin", "/usr/local/bin"]
                .iter()
                .map(|directory| Path::new(directory).join(name))
                .find(|path| path.is_file())
        };
        Some(HostTools {
            cc: which("gcc")?,
            cxx: which("g++"),
            ar: which("ar")?,
            ranlib: which("ranlib")?,
            strip: which("strip")?,
            sysroot: PathBuf::from("/"),
        })
    }

    fn target(&self) -> CTarget<'_> {
        CTarget {
            gnu_triple: build_triple(),
            cc: &self.cc,
            cxx: self.cxx.as_deref(),
            ar: &self.ar,
            ranlib: &self.ranlib,
            strip: &self.strip,
            sysroot: &self.sysroot,
            multiarch: build_triple(),
            jobs: 2,
            source_date_epoch: 1_700_000_000,
            static_link: false,
        }
    }
}

fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = root.join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, text).unwrap();
    }
}

fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_of(program: &Path) -> String {
    String::from_utf8_lossy(&run_ok(&mut Command::new(program)).stdout).into_owned()
}

/// Every file under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, directory: &Path, out: &mut Vec<String>) {
        for entry in fs_err::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn kinds_are_detected_from_the_tree() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    assert_eq!(CKind::detect(root), None);
    write_files(root, &[("Makefile", "all:\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Make));
    write_files(root, &[("CMakeLists.txt", "project(x C)\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Cmake));
    write_files(root, &[("configure.ac", "AC_INIT([x], [1])\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Autotools));
    assert_eq!(CKind::Cmake.name(), "cmake");
}

#[test]
fn the_cmake_toolchain_file_names_the_cross_tools_and_sysroot() {
    let cc = PathBuf::from("/t/bin/aarch64-linux-gnu-gcc");
    let cxx = PathBuf::from("/t/bin/aarch64-linux-gnu-g++");
    let tool = PathBuf::from("/t/bin/aarch64-linux-gnu-ar");
    let sysroot = PathBuf::from("/t/sys \"root\"");
    let target = CTarget {
        gnu_triple: "aarch64-linux-gnu",
        cc: &cc,
        cxx: Some(&cxx),
        ar: &tool,
        ranlib: &tool,
        strip: &tool,
        sysroot: &sysroot,
        multiarch: "aarch64-linux-gnu",
        jobs: 1,
        source_date_epoch: 0,
        static_link: false,
    };
    let text = cmake_toolchain(&target);
    for expected in [
        "set(CMAKE_SYSTEM_NAME Linux)",
        "set(CMAKE_SYSTEM_PROCESSOR aarch64)",
        "set(CMAKE_C_COMPILER \"/t/bin/aarch64-linux-gnu-gcc\")",
        "set(CMAKE_CXX_COMPILER \"/t/bin/aarch64-linux-gnu-g++\")",
        "set(CMAKE_SYSROOT \"/t/sys \\\"root\\\"\")",
        "set(CMAKE_AR \"/t/bin/aarch64-linux-gnu-ar\" CACHE FILEPATH \"\")",
        "set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

const HELLO_C: &str = r#"#include <stdio.h>
int main(void) {
    printf("hello from %s\n", __FILE__);
    return 0;
}
"#;

const MAKEFILE: &str = "PREFIX ?= /usr\n\
all: hello\n\
hello: hello.c\n\
\t$(CC) $(CFLAGS) -g -o $@ hello.c\n\
\ttest \"$$SOURCE_DATE_EPOCH\" = 1700000000\n\
\ttest \"$$TZ\" = UTC\n\
install: hello\n\
\tmkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/info\n\
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello\n\
\techo libtool > $(DESTDIR)$(PREFIX)/lib/libhello.la\n\
\techo index > $(DESTDIR)$(PREFIX)/share/info/dir\n\
\techo manual > $(DESTDIR)$(PREFIX)/share/info/hello.info\n";

#[test]
fn a_make_project_installs_under_usr_local_reproducibly() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut binaries = Vec::new();
    for checkout in ["one", "two-elsewhere"] {
        let source = scratch.path().join(checkout).join("src");
        write_files(&source, &[("Makefile", MAKEFILE), ("hello.c", HELLO_C)]);
        let staging = scratch.path().join(checkout).join("staging");
        let started = Instant::now();
        let result = build(
            CKind::Make,
            &source,
            &scratch.path().join(checkout).join("build"),
            &staging,
            &tools.target(),
        )
        .unwrap();
        eprintln!("make build: {:.2?}", started.elapsed());
        assert_eq!(result.staging, fs_err::canonicalize(&staging).unwrap());
        assert!(result.seconds > 0.0);
        assert_eq!(
            listing(&staging),
            ["usr/local/bin/hello", "usr/local/share/info/hello.info"]
        );
        assert!(!staging.join("usr/local/lib").exists(), "emptied, removed");
        // The source tree itself is untouched: the build ran in a copy.
        assert_eq!(listing(&source), ["Makefile", "hello.c"]);
        let program = staging.join("usr/local/bin/hello");
        // Compiled by a relative name; the directory (DW_AT_comp_dir) is
        // remapped, which the byte comparison below checks.
        assert_eq!(stdout_of(&program), "hello from hello.c\n");
        binaries.push(fs_err::read(&program).unwrap());
    }
    assert!(
        binaries[0] == binaries[1],
        "two checkouts built different bytes"
    );
}

#[test]
fn a_failing_step_names_itself_and_the_source() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("broken");
    write_files(
        &source,
        &[("Makefile", "all:\n\texit 3\n"), ("hello.c", HELLO_C)],
    );
    let error = build(
        CKind::Make,
        &source,
        &scratch.path().join("build"),
        &scratch.path().join("staging"),
        &tools.target(),
    )
    .unwrap_err();
    match &error {
        CError::Failed {
            step, source_dir, ..
        } => {
            assert_eq!(step, "make");
            assert!(source_dir.ends_with("broken"), "{source_dir:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.exit_code(), Some(2));
    assert!(error.hint().is_some());

    let error = build(
        CKind::Cmake,
        &source,
        &scratch.path().join("build2"),
        &scratch.path().join("staging2"),
        &tools.target(),
    )
    .unwrap_err();
    assert!(matches!(error, CError::NoBuildSystem { .. }), "{error:?}");
    assert!(error.to_string().contains("CMakeLists.txt"), "{error}");
}

const CONFIGURE_AC: &str = "AC_INIT([greet], [1.0])\n\
AM_INIT_AUTOMAKE([foreign])\n\
AC_PROG_CC\n\
AC_CONFIG_FILES([Makefile])\n\
AC_OUTPUT\n";

const MAKEFILE_AM: &str = "bin_PROGRAMS = greet\ngreet_SOURCES = hello.c\n";

#[test]
fn an_autotools_project_with_only_configure_ac_is_autoreconfed() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    if !has_program("autoreconf") || !has_program("automake") {
        eprintln!("skipped: autoconf/automake are not installed");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("greet");
    write_files(
        &source,
        &[
            ("configure.ac", CONFIGURE_AC),
            ("Makefile.am", MAKEFILE_AM),
            ("hello.c", HELLO_C),
        ],
    );
    let staging = scratch.path().join("staging");
    let started = Instant::now();
    build(
        CKind::Autotools,
        &source,
        &scratch.path().join("build"),
        &staging,
        &tools.target(),
    )
    .unwrap();
    eprintln!("autoreconf + configure + make: {:.2?}", started.elapsed());
    assert_eq!(listing(&staging), ["usr/local/bin/greet"]);
    assert_eq!(
        listing(&source),
        ["Makefile.am", "configure.ac", "hello.c"],
        "the source tree was written to"
    );
    let output = stdout_of(&staging.join("usr/local/bin/greet"));
    assert!(output.starts_with("hello from "), "{output}");
    assert!(
        !output.contains(scratch.path().to_str().unwrap()),
        "{output}"
    );

    // A tree with a generated configure builds out of tree, leaving the
    // source untouched.
    let generated = scratch.path().join("build/source");
    assert!(generated.join("configure").is_file());
    let distributed = scratch.path().join("dist");
    copy_tree(&generated, &distributed, Path::new("/nonexistent")).unwrap();
    for leftover in [
        "config.status",
        "config.log",
        "Makefile",
        "greet",
        "hello.o",
    ] {
        let path = distributed.join(leftover);
        if path.exists() {
            fs_err::remove_file(path).unwrap();
        }
    }
    let before = listing(&distributed);
    let staging = scratch.path().join("staging2");
    let object_dir = scratch.path().join("objects");
    build(
        CKind::Autotools,
        &distributed,
        &object_dir,
        &staging,
        &tools.target(),
    )
    .unwrap();
    assert_eq!(listing(&distributed), before);
    assert!(object_dir.join("config.status").is_file());
    assert!(!object_dir.join("source").exists());
    assert_eq!(listing(&staging), ["usr/local/bin/greet"]);
}

#[test]
fn a_cmake_project_installs_under_usr_local() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    if !has_program("cmake") {
        eprintln!("skipped: cmake is not installed");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("src");
    write_files(
        &source,
        &[
            (
                "CMakeLists.txt",
                "cmake_minimum_required(VERSION 3.13)\nproject(greet C)\n\
                 add_library(words STATIC words.c)\n\
                 add_executable(greet hello.c)\n\
                 install(TARGETS greet words)\n",
            ),
            ("hello.c", HELLO_C),
            ("words.c", "int words(void) { return 3; }\n"),
        ],
    );
    let build_dir = scratch.path().join("build");
    let staging = scratch.path().join("staging");
    let started = Instant::now();
    build(CKind::Cmake, &source, &build_dir, &staging, &tools.target()).unwrap();
    eprintln!("cmake build: {:.2?}", started.elapsed());
    assert!(build_dir.join("xbuild-toolchain.cmake").is_file());
    assert_eq!(
        listing(&staging),
        ["usr/local/bin/greet", "usr/local/lib/libwords.a"]
    );
    assert_eq!(
        stdout_of(&staging.join("usr/local/bin/greet")),
        "hello from /xbuild/src/hello.c\n"
    );
}

// ---------------------------------------------------------------------------
// GNU hello from the signed Debian archive, cross-built for aarch64.

use crate::cache::Cache;
use crate::debian::index::fetch_release;
use crate::debian::release::Keyring;
use crate::debian::repository::{Repository, apt_etc, host_sources};
use crate::debian::source::{
    SourceFile, find_source_in_file, source_file_url, sources_index_path, unpack_source,
};
use crate::http::HttpClient;
use crate::platform::{Platform, Platforms};
use crate::progress::SilentReporter;
use crate::toolchain::gcc::{CrossGcc, assemble, cross_packages};

/// Downloads, with apt, the closure of the cross GCC packages for `target`.
fn download_cross_gcc(target: &Platform, directory: &Path) -> Vec<PathBuf> {
    let roots = cross_packages(target, "12");
    let known = Command::new("apt-cache")
        .args(["show", &roots[0]])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !known {
        run_ok(Command::new("apt-get").arg("update"));
    }
    let closure = run_ok(
        Command::new("apt-cache")
            .args(["depends", "--recurse", "--no-recommends", "--no-suggests"])
            .args(["--no-conflicts", "--no-breaks", "--no-replaces"])
            .arg("--no-enhances")
            .args(&roots),
    );
    let text = String::from_utf8_lossy(&closure.stdout).into_owned();
    let mut names: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with([' ', '<']))
        .collect();
    names.sort();
    names.dedup();
    run_ok(
        Command::new("apt-get")
            .arg("download")
            .args(&names)
            .current_dir(directory),
    );
    let mut debs: Vec<PathBuf> = fs_err::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .collect();
    debs.sort();
    debs
}

/// Fetches source package `name` the way the pipeline does: the verified
/// InRelease of the host's bookworm mirror, the `Sources` index by its
/// signed digest, each file by the digest the index gives; then unpacks it.
fn fetch_debian_source(cache: &Cache, name: &str, dest: &Path) -> PathBuf {
    let host = host_sources(&apt_etc())
        .unwrap()
        .into_iter()
        .find(|source| source.suite == "bookworm")
        .expect("the host's apt has a bookworm source");
    let repository = Repository {
        url: host.url.trim_end_matches('/').to_owned(),
        suite: host.suite.clone(),
        components: vec!["main".into()],
        keyrings: host.keyrings.clone(),
        origin: host.origin.clone(),
    };
    let keyring = Keyring::load_all(&repository.keyrings).unwrap();
    let http = HttpClient::new().unwrap();
    let signed = fetch_release(
        &repository,
        &keyring,
        cache,
        &http,
        &SilentReporter,
        SystemTime::now(),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let (index_path, hash) = sources_index_path(&signed.release, "main").unwrap();
    let suite_url = format!("{}/dists/{}", repository.url, repository.suite);
    let mut urls = Vec::new();
    if signed.release.acquire_by_hash {
        urls.push(format!(
            "{suite_url}/main/source/by-hash/SHA256/{}",
            hash.digest.hex()
        ));
    }
    urls.push(format!("{suite_url}/{index_path}"));
    let (index, _, _) = cache
        .fetch_verified(
            &http,
            &urls,
            &hash.digest,
            hash.size,
            &index_path,
            &SilentReporter,
        )
        .unwrap();
    let package = find_source_in_file(&index, &index_path, name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} is not in {index_path}"));
    eprintln!("{name} {} ({})", package.version, package.format);
    let mut files: Vec<(SourceFile, PathBuf)> = Vec::new();
    for file in &package.files {
        let url = source_file_url(&repository.url, &package.directory, &file.name);
        let (blob, _, _) = cache
            .fetch_verified(
                &http,
                &[url],
                &file.sha256,
                file.size,
                &file.name,
                &SilentReporter,
            )
            .unwrap();
        // The cache verified it; check once more, independently.
        let bytes = fs_err::read(&blob).unwrap();
        assert_eq!(crate::hash::Sha256Digest::of(&bytes), file.sha256);
        assert_eq!(bytes.len() as u64, file.size);
        files.push((file.clone(), blob));
    }
    unpack_source(&files, dest).unwrap()
}

/// GNU hello from the Debian source package, cross-built for `target_name`
/// (ELF machine `machine`), run under qemu-user.
fn cross_build_debian_hello(target_name: &str, machine: u16) {
    let platform = Platforms::builtin()
        .unwrap()
        .parse(target_name)
        .unwrap()
        .clone();
    let scratch = tempfile::tempdir().unwrap();
    let cache = Cache::open(&scratch.path().join("cache")).unwrap();

    let started = Instant::now();
    let tree = fetch_debian_source(&cache, "hello", &scratch.path().join("src"));
    let source_time = started.elapsed();
    assert!(tree.join("configure").is_file());
    assert!(tree.join("debian/control").is_file());
    assert!(tree.join("src/hello.c").is_file());

    let started = Instant::now();
    let downloads = scratch.path().join("debs");
    fs_err::create_dir(&downloads).unwrap();
    let debs = download_cross_gcc(&platform, &downloads);
    let download_time = started.elapsed();
    let started = Instant::now();
    let gcc: CrossGcc = assemble(&debs, &platform, &scratch.path().join("toolchain")).unwrap();
    let assemble_time = started.elapsed();

    let target = CTarget {
        gnu_triple: &platform.gnu_triple,
        cc: &gcc.cc,
        cxx: gcc.cxx.as_deref(),
        ar: &gcc.ar,
        ranlib: &gcc.ranlib,
        strip: &gcc.strip,
        sysroot: &gcc.sysroot,
        multiarch: &platform.multiarch,
        jobs: 2,
        source_date_epoch: 1_700_000_000,
        static_link: false,
    };
    let staging = scratch.path().join("staging");
    let built = build(
        CKind::Autotools,
        &tree,
        &scratch.path().join("build"),
        &staging,
        &target,
    )
    .unwrap();
    let program = staging.join("usr/local/bin/hello");
    let bytes = fs_err::read(&program).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    let machine_bytes = [bytes[18], bytes[19]];
    let found = if bytes[5] == 2 {
        u16::from_be_bytes(machine_bytes)
    } else {
        u16::from_le_bytes(machine_bytes)
    };
    assert_eq!(found, machine, "ELF machine of {}", program.display());
    let scratch_text = scratch.path().to_str().unwrap().as_bytes();
    assert!(
        !bytes
            .windows(scratch_text.len())
            .any(|window| window == scratch_text),
        "the binary names the build machine's directories"
    );
    let files = listing(&staging);
    assert!(!files.iter().any(|file| file.ends_with(".la")), "{files:?}");
    assert!(!files.contains(&"usr/local/share/info/dir".to_owned()));
    assert!(
        files.contains(&"usr/local/share/info/hello.info".to_owned()),
        "{files:?}"
    );

    let output = run_ok(
        Command::new(format!("qemu-{}-static", platform.qemu))
            .arg("-L")
            .arg(&gcc.sysroot)
            .arg(&program),
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello, world!\n");
    eprintln!(
        "hello for {target_name}: source (InRelease, Sources, files, unpack) {source_time:.2?}; \
         cross gcc download {download_time:.2?}, assemble {assemble_time:.2?}; \
         configure+make+install {:.2}s",
        built.seconds
    );
}

#[test]
fn debian_hello_cross_builds_for_aarch64_and_runs_under_qemu_network() {
    cross_build_debian_hello("aarch64-linux", 183);
}

#[test]
fn debian_hello_cross_builds_for_big_endian_s390x_and_runs_under_qemu_network() {
    cross_build_debian_hello("s390x-linux", 22);
}
