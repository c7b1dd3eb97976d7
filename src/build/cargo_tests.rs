//! Tests of the cargo builder: the environment it sets (names, the
//! only-if-unset rule, flag order), workspace binaries, failure pass-through,
//! and real builds of `examples/hello-rust` (native with its C part, and
//! static aarch64 musl with rust-lld, run under qemu, byte-identical from two
//! checkouts).

use super::*;
use std::collections::BTreeMap;
use std::time::Instant;

const AARCH64_GNU: &str = "aarch64-unknown-linux-gnu";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-rust")
}

fn remaps() -> Remaps<'static> {
    Remaps {
        source_dir: Path::new("/src/app"),
        cargo_home: Some(Path::new("/home/user/.cargo")),
        target_dir: Path::new("/src/app/target"),
    }
}

/// `environment_from` with the given user environment (and the rustflags
/// and linker cargo would take from it, with no config files), as a map.
fn environment_with(target: &CargoTarget, user: &[(&str, &str)]) -> BTreeMap<String, String> {
    let user: BTreeMap<String, String> = user
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let lookup = |name: &str| user.get(name).cloned();
    let settings = UserCargo {
        rustflags: crate::build::cargo_config::user_rustflags(
            &[],
            target.triple,
            &lookup,
            &Vec::new,
        ),
        linker: crate::build::cargo_config::user_linker(&[], target.triple, &lookup),
    };
    let variables = environment_from(target, &remaps(), lookup, &settings);
    let map: BTreeMap<String, String> = variables.iter().cloned().collect();
    assert_eq!(
        map.len(),
        variables.len(),
        "a variable is set twice: {variables:?}"
    );
    map
}

fn encoded_rustflags(environment: &BTreeMap<String, String>) -> Vec<&str> {
    environment["CARGO_ENCODED_RUSTFLAGS"]
        .split('\u{1f}')
        .collect()
}

fn gcc_target<'a>(sysroot: &'a Path) -> CargoTarget<'a> {
    CargoTarget::new(AARCH64_GNU)
        .with_linker(Linker::Gcc(PathBuf::from("/tc/bin/aarch64-linux-gnu-gcc")))
        .with_c_tools(
            Some(Path::new("/tc/bin/aarch64-linux-gnu-gcc")),
            Some(Path::new("/tc/bin/aarch64-linux-gnu-g++")),
            Some(Path::new("/tc/bin/aarch64-linux-gnu-ar")),
        )
        .with_sysroot(sysroot, "aarch64-linux-gnu")
}

#[test]
fn environment_names_for_aarch64_gnu() {
    let sysroot = Path::new("/sysroot");
    let environment = environment_with(&gcc_target(sysroot), &[]);
    assert_eq!(
        environment["CC_aarch64_unknown_linux_gnu"],
        "/tc/bin/aarch64-linux-gnu-gcc"
    );
    assert_eq!(
        environment["CXX_aarch64_unknown_linux_gnu"],
        "/tc/bin/aarch64-linux-gnu-g++"
    );
    assert_eq!(
        environment["AR_aarch64_unknown_linux_gnu"],
        "/tc/bin/aarch64-linux-gnu-ar"
    );
    // The linker is a rustflag, which cargo gives the target's artifacts
    // only (not build scripts).
    assert!(!environment.contains_key("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"));
    assert_eq!(
        environment["PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu"],
        "/sysroot"
    );
    assert_eq!(
        environment["PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu"],
        "/sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:/sysroot/usr/lib/pkgconfig:\
         /sysroot/usr/share/pkgconfig"
    );
    assert_eq!(
        environment["PKG_CONFIG_ALLOW_CROSS_aarch64_unknown_linux_gnu"],
        "1"
    );
    // Host-side pkg-config lookups (build scripts of host tools) are untouched.
    assert!(!environment.contains_key("PKG_CONFIG_LIBDIR"));
    let c_flags = &environment["CFLAGS_aarch64-unknown-linux-gnu"];
    assert!(c_flags.starts_with("--sysroot=/sysroot "), "{c_flags}");
    assert!(
        c_flags.contains("-ffile-prefix-map=/src/app=/xbuild/src"),
        "{c_flags}"
    );
    assert_eq!(
        encoded_rustflags(&environment),
        [
            "-C",
            "linker=/tc/bin/aarch64-linux-gnu-gcc",
            "-C",
            "link-arg=--sysroot=/sysroot",
            "-L",
            "native=/sysroot/usr/lib/aarch64-linux-gnu",
            "-L",
            "native=/sysroot/lib/aarch64-linux-gnu",
            "--remap-path-prefix=/src/app=/xbuild/src",
            "--remap-path-prefix=/home/user/.cargo=/xbuild/cargo",
            "--remap-path-prefix=/src/app/target=/xbuild/target",
        ]
    );
}

#[test]
fn environment_sets_tools_only_where_the_user_has_not() {
    let sysroot = Path::new("/sysroot");
    let user = [
        // The hyphenated and TARGET_ forms count as set, too.
        ("CC_aarch64-unknown-linux-gnu", "/usr/bin/my-cc"),
        ("TARGET_CXX", "/usr/bin/my-cxx"),
        (
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "/usr/bin/my-linker",
        ),
        ("PKG_CONFIG_LIBDIR", "/my/pkgconfig"),
        // Another target's variables do not count.
        ("AR_riscv64gc_unknown_linux_gnu", "/usr/bin/riscv-ar"),
    ];
    let environment = environment_with(&gcc_target(sysroot), &user);
    for name in [
        "CC_aarch64_unknown_linux_gnu",
        "CXX_aarch64_unknown_linux_gnu",
        "PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu",
    ] {
        assert!(
            !environment.contains_key(name),
            "{name} overrides the user's"
        );
    }
    assert_eq!(
        environment["AR_aarch64_unknown_linux_gnu"],
        "/tc/bin/aarch64-linux-gnu-ar"
    );
    assert_eq!(
        environment["PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu"],
        "/sysroot"
    );
    // The user's linker is kept: no `-C linker` of ours.
    assert!(
        !encoded_rustflags(&environment)
            .iter()
            .any(|flag| flag.starts_with("linker=")),
        "{environment:?}"
    );
}

#[test]
fn environment_puts_the_users_flags_after_ours() {
    let target = CargoTarget::new("aarch64-unknown-linux-musl").with_linker(Linker::RustLld);
    let environment = environment_with(
        &target,
        &[
            ("RUSTFLAGS", "-C opt-level=s"),
            ("CFLAGS_aarch64_unknown_linux_musl", "-O1"),
        ],
    );
    let rustflags = encoded_rustflags(&environment);
    assert_eq!(
        rustflags[..6],
        [
            "-C",
            "linker=rust-lld",
            "-C",
            "linker-flavor=ld.lld",
            "-C",
            "target-feature=+crt-static"
        ]
    );
    assert_eq!(rustflags[rustflags.len() - 2..], ["-C", "opt-level=s"]);
    assert!(environment["CFLAGS_aarch64-unknown-linux-musl"].ends_with(" -O1"));
    // No C tools, no sysroot: nothing for cc or pkg-config.
    assert!(!environment.keys().any(|name| name.starts_with("CC_")
        || name.starts_with("PKG_CONFIG")
        || name.ends_with("_LINKER")));

    // CARGO_ENCODED_RUSTFLAGS (spaces allowed) beats RUSTFLAGS, as in cargo.
    let environment = environment_with(
        &target,
        &[
            ("CARGO_ENCODED_RUSTFLAGS", "-L\u{1f}native=/a dir"),
            ("RUSTFLAGS", "-C opt-level=s"),
        ],
    );
    let rustflags = encoded_rustflags(&environment);
    assert_eq!(rustflags[rustflags.len() - 2..], ["-L", "native=/a dir"]);
    assert!(!rustflags.contains(&"opt-level=s"));
}

#[test]
fn environment_for_the_gnu_target_with_rust_lld_is_not_static() {
    let target = CargoTarget::new(AARCH64_GNU).with_linker(Linker::RustLld);
    let environment = environment_with(&target, &[]);
    assert!(!environment["CARGO_ENCODED_RUSTFLAGS"].contains("crt-static"));
}

#[test]
fn workspace_binaries_of_the_example() {
    assert_eq!(workspace_binaries(&example_dir()).unwrap(), ["hello-rust"]);
}

#[test]
fn workspace_binaries_of_a_missing_project_names_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let error = workspace_binaries(dir.path()).unwrap_err();
    assert!(
        matches!(&error, CargoError::Metadata { manifest, .. } if manifest == &dir.path().join("Cargo.toml")),
        "{error:?}"
    );
}

fn host_triple() -> String {
    crate::toolchain::rust::detect().unwrap().host
}

/// A project that does not compile: cargo's exit code comes back.
#[test]
fn failed_build_carries_cargos_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    fs_err::create_dir(dir.path().join("src")).unwrap();
    fs_err::write(
        dir.path().join("src/main.rs"),
        "fn main() { let _: u32 = \"not a number\"; }\n",
    )
    .unwrap();
    let triple = host_triple();
    let error = build(
        dir.path(),
        &CargoTarget::new(&triple),
        &dir.path().join("target"),
        "release",
    )
    .unwrap_err();
    assert!(
        matches!(&error, CargoError::Failed { project, status } if project == dir.path() && status.code() == Some(101)),
        "{error:?}"
    );
    // The message a person sees carries cargo's status.
    assert!(error.to_string().contains("exit status: 101"), "{error}");
}

fn run_binary(program: &str, arguments: &[&Path]) -> String {
    let output = Command::new(program).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {arguments:?}: {output:?}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Copies the example's sources (not its `target/`) to `destination`; with
/// `debug_info`, its release profile keeps full debug info, which records
/// source and build paths unless they are remapped.
fn copy_example(destination: &Path, debug_info: bool) {
    let source = example_dir();
    for relative in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "csrc/add.c",
    ] {
        let to = destination.join(relative);
        fs_err::create_dir_all(to.parent().unwrap()).unwrap();
        fs_err::copy(source.join(relative), to).unwrap();
    }
    if debug_info {
        let manifest = destination.join("Cargo.toml");
        let text = fs_err::read_to_string(&manifest).unwrap();
        let changed = text.replace("strip = \"debuginfo\"", "debug = true\nstrip = \"none\"");
        assert_ne!(changed, text);
        fs_err::write(&manifest, changed).unwrap();
    }
}

/// The example natively, C part included (host `cc` through the `cc`
/// crate). `network`: cargo may download `cc` from crates.io.
#[test]
fn network_native_build_of_the_example_runs_its_c_code() {
    let triple = host_triple();
    let dir = tempfile::tempdir().unwrap();
    copy_example(&dir.path().join("hello-rust"), false);
    let started = Instant::now();
    let built = build(
        &dir.path().join("hello-rust"),
        &CargoTarget::new(&triple),
        &dir.path().join("target"),
        "release",
    )
    .unwrap();
    eprintln!("native build: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(built.binaries.len(), 1, "{built:?}");
    let binary = &built.binaries[0];
    assert_eq!(binary.name, "hello-rust");
    assert_eq!(
        binary.path,
        dir.path()
            .join("target")
            .join(&triple)
            .join("release/hello-rust")
    );
    let output = run_binary(binary.path.to_str().unwrap(), &[]);
    assert_eq!(
        output,
        format!(
            "hello from {}\n2 + 3 = 5 (from C)\n",
            std::env::consts::ARCH
        )
    );
}

/// Static aarch64 musl with rust-lld and no C toolchain (the example
/// without its `c-code` feature, with full debug info), from two checkouts
/// at different paths: the same bytes, and it runs under qemu. `network`: `rustup target add`.
#[test]
fn network_aarch64_musl_with_rust_lld_is_reproducible_and_runs_under_qemu() {
    let triple = "aarch64-unknown-linux-musl";
    let started = Instant::now();
    let toolchain = crate::toolchain::rust::detect().unwrap();
    let libraries = toolchain.ensure_target(triple).unwrap();
    eprintln!(
        "ensure_target({triple}): {:.1} s (added: {}, {})",
        started.elapsed().as_secs_f64(),
        libraries.added,
        libraries.digest_hint
    );
    assert!(toolchain.rust_lld().is_some());

    let target = CargoTarget::new(triple).with_linker(Linker::RustLld);
    let options = BuildOptions::new("release")
        .with_no_default_features()
        .with_source_date_epoch(1_700_000_000);
    let mut digests = Vec::new();
    let mut binaries = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    for checkout in ["first/checkout", "second"] {
        let project = dir.path().join(checkout).join("hello-rust");
        copy_example(&project, true);
        let built = build_with(&project, &target, &project.join("target"), &options).unwrap();
        eprintln!("{checkout}: aarch64 musl build {:.1} s", built.seconds);
        assert_eq!(built.binaries.len(), 1, "{built:?}");
        let bytes = fs_err::read(&built.binaries[0].path).unwrap();
        // Static and for aarch64: ELF, e_machine 183, no interpreter.
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 183);
        let needle = dir.path().to_string_lossy().into_owned();
        assert!(
            !bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes()),
            "the checkout path is in the binary"
        );
        digests.push(bytes);
        binaries.push(built.binaries[0].path.clone());
    }
    assert!(
        digests[0] == digests[1],
        "two checkouts gave different binaries"
    );
    let output = run_binary("qemu-aarch64-static", &[&binaries[0]]);
    assert_eq!(output, "hello from aarch64\n");
}
