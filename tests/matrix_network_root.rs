//! The target matrix, against the host's real Debian mirror (network) and
//! run with podman (root): every glibc platform xbuild knows — read from
//! `xbuild targets --json`, so a file added to `targets/` joins by itself —
//! builds each kind of `[[build]]`, and every image runs and prints what the
//! native build (this machine's own platform) prints, but for the byte
//! order and word size:
//!
//! - cargo: `tests/projects/cc-zlib`, whose dependency compiles C through
//!   the `cc` crate and which links the target's zlib from the sysroot;
//! - autotools: sipcalc from Debian's source package
//!   (`tests/projects/autotools-sipcalc`: the same version in every suite,
//!   and arithmetic on network byte order, which a big-endian target must
//!   get right);
//! - cmake: `tests/projects/cmake-c`; make: `tests/projects/make-c`.
//!
//! Every musl platform builds `tests/projects/pure-rust`, which compiles no
//! C and so needs no C compiler at all. (A musl target's C, compiled by a
//! toolchain built from source, is `tests/toolchain_build_network_root.rs`.)
//!
//! Platforms whose packages start at a later Debian suite (riscv64:
//! trixie) get that suite for their image and sysroot; their compiler
//! still comes from the build machine's suite. Each binary's ELF header is
//! checked against the platform (word size, byte order, and machine where
//! known), so a program of the build machine cannot pass for one. All
//! builds share one cache with the other real-mirror tests; the table of
//! results is printed, and every failure is listed before the test fails.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use support::files::copy_project;
use support::mirror::repository_line;
use support::oci::Layout;
use support::podman::{Podman, assert_binfmt};
use support::xbuild::{Xbuild, temp_dir};

/// What the test needs of a platform, from `xbuild targets --json`.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    libc: String,
    /// podman's `--platform`.
    platform: String,
    oci_architecture: String,
    qemu: String,
    big_endian: bool,
    bits: u64,
    min_suite: Option<String>,
}

fn targets() -> Vec<Target> {
    let output = Xbuild::new().run(&["targets", "--json"]);
    let list: Value = output.success().json();
    list.as_array()
        .expect("targets --json is a list")
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
            let oci = &entry["oci"];
            let architecture = oci["architecture"].as_str().unwrap().to_owned();
            let mut platform = format!("{}/{architecture}", oci["os"].as_str().unwrap());
            if let Some(variant) = oci["variant"].as_str()
                && architecture != "arm64"
            {
                platform = format!("{platform}/{variant}");
            }
            Target {
                name: text("name"),
                libc: text("libc"),
                platform,
                oci_architecture: architecture,
                qemu: text("qemu"),
                big_endian: entry["endian"] == "big",
                bits: entry["pointer_width"].as_u64().unwrap(),
                min_suite: entry["min_suite"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

/// The platform of this machine.
fn native_name() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// Whether this machine runs the target's programs without qemu.
fn runs_natively(target: &Target) -> bool {
    let arch = std::env::consts::ARCH;
    target.qemu == arch || (arch == "x86_64" && target.qemu == "i386")
}

/// ELF `e_machine` of the qemu names xbuild's targets use.
fn elf_machine(qemu: &str) -> Option<u16> {
    Some(match qemu {
        "aarch64" => 183,
        "arm" => 40,
        "x86_64" => 62,
        "i386" => 3,
        "ppc64le" | "ppc64" => 21,
        "s390x" => 22,
        "riscv64" => 243,
        _ => return None,
    })
}

/// The shared cache of the real-mirror tests.
fn shared_xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-build-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One build kind of the matrix.
struct Kind {
    name: &'static str,
    /// The project, relative to the repository.
    project: &'static str,
    /// The image and the binary it runs.
    image: &'static str,
    binary: &'static str,
}

const GLIBC_KINDS: [Kind; 4] = [
    Kind {
        name: "cargo",
        project: "tests/projects/cc-zlib",
        image: "cc-zlib",
        binary: "usr/local/bin/cc-zlib",
    },
    Kind {
        name: "autotools",
        project: "tests/projects/autotools-sipcalc",
        image: "sipcalc",
        binary: "usr/local/bin/sipcalc",
    },
    Kind {
        name: "cmake",
        project: "tests/projects/cmake-c",
        image: "cmake-c",
        binary: "usr/local/bin/square",
    },
    Kind {
        name: "make",
        project: "tests/projects/make-c",
        image: "make-c",
        binary: "usr/local/bin/greet",
    },
];

const MUSL_KIND: Kind = Kind {
    name: "cargo (pure Rust)",
    project: "tests/projects/pure-rust",
    image: "pure-rust",
    binary: "usr/local/bin/pure-rust",
};

/// The project of `kind` for `target`: the repository's own, or, for a
/// platform whose packages start at a later suite, a copy whose manifest
/// names that suite.
fn project_for(kind: &Kind, target: &Target, work: &Path) -> PathBuf {
    let original = repository_root().join(kind.project);
    let Some(suite) = &target.min_suite else {
        return original;
    };
    let copy = work.join(format!("{}-{}", kind.image, target.name));
    copy_project(&original, &copy);
    let manifest = fs::read_to_string(copy.join("xbuild.toml")).unwrap();
    let manifest = manifest.replacen(
        "[packages]\n",
        &format!("[packages]\n{}", repository_line(suite)),
        1,
    );
    assert!(manifest.contains("suite ="), "{manifest}");
    fs::write(copy.join("xbuild.toml"), manifest).unwrap();
    copy
}

/// What one cell of the matrix gave.
struct Cell {
    target: String,
    kind: &'static str,
    seconds: f64,
    result: Result<String, String>,
}

/// Builds `kind` for `target`, checks the binary's ELF header and runs the
/// image; returns what it printed.
fn build_and_run(
    xbuild: &Xbuild,
    podman: &Podman,
    kind: &Kind,
    target: &Target,
    work: &Path,
) -> Result<(String, Value), String> {
    let project = project_for(kind, target, work);
    let out = work.join(format!("out-{}-{}", kind.image, target.name));
    let mut command = xbuild.command();
    command
        .arg("build")
        .arg(&project)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .arg("-q")
        .args(["--target", &target.name]);
    let output = command.output().map_err(|error| error.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(format!(
            "build failed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let report: Value =
        serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
    check_binary(&out, kind, target)?;
    if !runs_natively(target) {
        assert_binfmt(&target.qemu);
    }
    let archive = out.join(format!("{}.tar", target.name));
    let loaded = podman.load(&archive, &format!("{}:latest", kind.image));
    let printed = podman.run(&loaded, &target.platform);
    let _ = podman.command().args(["rmi", "--force", &loaded]).output();
    Ok((printed, report))
}

/// The ELF header of the built program agrees with `target`.
fn check_binary(out: &Path, kind: &Kind, target: &Target) -> Result<(), String> {
    let layout = Layout::open(out);
    let (_, manifest) = layout.manifest_for(&target.oci_architecture);
    let entry = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .flat_map(|layer| layout.layer_entries(layer))
        .find(|entry| entry.path == kind.binary)
        .ok_or_else(|| format!("no {} in the image", kind.binary))?;
    let bytes = &entry.contents;
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF file", kind.binary));
    }
    let bits = if bytes[4] == 2 { 64 } else { 32 };
    let big_endian = bytes[5] == 2;
    let machine = if big_endian {
        u16::from_be_bytes([bytes[18], bytes[19]])
    } else {
        u16::from_le_bytes([bytes[18], bytes[19]])
    };
    if bits != target.bits || big_endian != target.big_endian {
        return Err(format!(
            "{} is ELF{bits} {}-endian, the target is {}-bit {}-endian",
            kind.binary,
            if big_endian { "big" } else { "little" },
            target.bits,
            if target.big_endian { "big" } else { "little" }
        ));
    }
    if let Some(expected) = elf_machine(&target.qemu)
        && machine != expected
    {
        return Err(format!(
            "{} is for ELF machine {machine}, not {expected}",
            kind.binary
        ));
    }
    Ok(())
}

/// What `target`'s image must print: the native output with the byte
/// order and word size of the target, and the zlib version its image has.
fn expected_output(
    native: &str,
    native_target: &Target,
    target: &Target,
    report: &Value,
    printed: &str,
) -> String {
    let endian = |big: bool| if big { "big-endian" } else { "little-endian" };
    let mut expected = native
        .replace(endian(native_target.big_endian), endian(target.big_endian))
        .replace(
            &format!("{}-bit", native_target.bits),
            &format!("{}-bit", target.bits),
        );
    // The zlib version a program runs is the target image's own: the line
    // must name a version that image's zlib1g has (`1:1.2.13.dfsg-1` runs
    // as 1.2.13, trixie's `1:1.3.dfsg+really1.3.1-1` as 1.3.1).
    if let Some(zlib) = package_version(report, "zlib1g") {
        expected = expected
            .lines()
            .map(|line| match line.strip_prefix("zlib ") {
                Some(_) if !line.contains(':') => match printed
                    .lines()
                    .find_map(|printed| printed.strip_prefix("zlib "))
                    .filter(|version| !version.contains(':') && zlib.contains(version))
                {
                    Some(version) => format!("zlib {version}"),
                    None => format!("zlib <the version of zlib1g {zlib}>"),
                },
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    expected
}

fn package_version(report: &Value, name: &str) -> Option<String> {
    report["targets"][0]["packages"]
        .as_array()?
        .iter()
        .find(|package| package["name"] == name)
        .and_then(|package| package["version"].as_str())
        .map(str::to_owned)
}

/// Runs every (target, kind), natives first, and returns the cells.
fn run_matrix(targets: &[Target], kinds: &[Kind]) -> Vec<Cell> {
    let xbuild = shared_xbuild();
    let podman = Podman::new();
    let work = temp_dir("xbuild-matrix-");
    let native = targets
        .iter()
        .find(|target| target.name == native_name())
        .unwrap_or(&targets[0])
        .clone();
    let mut cells = Vec::new();
    for kind in kinds {
        let started = Instant::now();
        let native_run = build_and_run(&xbuild, &podman, kind, &native, work.path());
        cells.push(Cell {
            target: native.name.clone(),
            kind: kind.name,
            seconds: started.elapsed().as_secs_f64(),
            result: native_run
                .as_ref()
                .map(|(printed, _)| printed.clone())
                .map_err(Clone::clone),
        });
        let Ok((native_output, _)) = native_run else {
            continue;
        };
        for target in targets.iter().filter(|target| target.name != native.name) {
            let started = Instant::now();
            let result = build_and_run(&xbuild, &podman, kind, target, work.path()).and_then(
                |(printed, report)| {
                    let expected =
                        expected_output(&native_output, &native, target, &report, &printed);
                    if printed == expected {
                        Ok(printed)
                    } else {
                        Err(format!(
                            "printed {printed:?}, the native build {expected:?}"
                        ))
                    }
                },
            );
            cells.push(Cell {
                target: target.name.clone(),
                kind: kind.name,
                seconds: started.elapsed().as_secs_f64(),
                result,
            });
        }
    }
    cells
}

/// Prints the table and fails listing every failed cell.
fn report(title: &str, cells: &[Cell]) {
    eprintln!(
        "\n{title}\n{:<22} {:<18} {:>8}  result",
        "target", "kind", "seconds"
    );
    for cell in cells {
        let result = match &cell.result {
            Ok(printed) => format!("ok: {}", printed.lines().next().unwrap_or("")),
            Err(_) => "FAILED".to_owned(),
        };
        eprintln!(
            "{:<22} {:<18} {:>8.1}  {result}",
            cell.target, cell.kind, cell.seconds
        );
    }
    let failures: Vec<String> = cells
        .iter()
        .filter_map(|cell| {
            cell.result
                .as_ref()
                .err()
                .map(|error| format!("{} / {}: {error}", cell.target, cell.kind))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn network_root_every_glibc_target_builds_every_kind_and_runs_like_the_native_build() {
    let targets: Vec<Target> = targets()
        .into_iter()
        .filter(|target| target.libc == "gnu")
        .collect();
    assert!(
        targets.len() >= 7,
        "fewer glibc targets than xbuild ships: {targets:?}"
    );
    assert!(targets.iter().any(|target| target.name == native_name()));
    let cells = run_matrix(&targets, &GLIBC_KINDS);
    assert_eq!(cells.len(), targets.len() * GLIBC_KINDS.len());
    report("glibc targets × build kinds", &cells);
}

#[test]
fn network_root_musl_targets_build_pure_rust_without_a_c_compiler() {
    let mut targets: Vec<Target> = targets()
        .into_iter()
        .filter(|target| target.libc == "musl")
        .collect();
    assert!(!targets.is_empty());
    // Compared with the native glibc build of the same project.
    let native = self::targets()
        .into_iter()
        .find(|target| target.name == native_name())
        .unwrap();
    targets.insert(0, native);
    let cells = run_matrix(&targets, std::slice::from_ref(&MUSL_KIND));
    report("musl targets, pure Rust", &cells);
    // No C compiler was fetched or built for a musl target's pure-Rust
    // build: the plan says so.
    for target in targets.iter().filter(|target| target.libc == "musl") {
        let plan = shared_xbuild()
            .plan(
                &repository_root().join(MUSL_KIND.project),
                &[&target.name],
                true,
            )
            .success()
            .json();
        let build = &plan["builds"][0];
        assert_eq!(
            build["toolchain_provider"], "none",
            "{}: {build}",
            target.name
        );
    }
}
