//! Cargo builds as a Rust user expects them, against the host's real
//! Debian mirror (network), for this machine's own platform (no qemu:
//! each built program runs here, read out of the image).
//!
//! - The key covers everything that changes cargo's output: a build with a
//!   changed input runs (and its program shows the change), and going back
//!   is a hit on the earlier entry, never a stale binary — `RUSTFLAGS`,
//!   `CARGO_ENCODED_RUSTFLAGS`, `CARGO_BUILD_RUSTFLAGS`,
//!   `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`, `CARGO_PROFILE_*`, `RUSTC_WRAPPER`,
//!   the `cc` crate's `CFLAGS`, a variable a build script declares with
//!   `rerun-if-env-changed`, `.cargo/config.toml` in the project, a parent
//!   and `$CARGO_HOME`, and the manifest's features.
//! - `.cargo/config.toml` rustflags reach rustc (merged with xbuild's, not
//!   dropped).
//! - An output directory inside the project is not part of its sources;
//!   the default one does not make the user's own `cargo build` run build
//!   scripts again.
//! - `-q` quiets cargo too; a failed build still shows why.
//! - Package layers do not depend on `SOURCE_DATE_EPOCH`; build layers and
//!   the image are dated by it, else by the project's last commit.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use support::oci::Layout;
use support::run_ok;
use support::xbuild::{Xbuild, report_nodes, temp_dir};

/// This machine's platform: its programs run here.
fn native() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

fn native_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// A project whose program prints what each input changes.
fn write_project(directory: &Path, extra_manifest: &str) {
    fs::create_dir_all(directory.join("src")).unwrap();
    fs::write(
        directory.join("Cargo.toml"),
        "[package]\nname = \"inputs\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\
         [workspace]\n[features]\nextra = []\n[build-dependencies]\ncc = \"1\"\n",
    )
    .unwrap();
    fs::write(
        directory.join("build.rs"),
        "fn main() {\n\
         println!(\"cargo::rerun-if-changed=value.c\");\n\
         println!(\"cargo::rerun-if-env-changed=XB_GREETING\");\n\
         let greeting = std::env::var(\"XB_GREETING\").unwrap_or_else(|_| \"hello\".into());\n\
         println!(\"cargo::rustc-env=GREETING={greeting}\");\n\
         println!(\"cargo::rustc-check-cfg=cfg(xb_flag)\");\n\
         cc::Build::new().file(\"value.c\").compile(\"value\");\n}\n",
    )
    .unwrap();
    fs::write(
        directory.join("value.c"),
        "#ifndef XB_C_VALUE\n#define XB_C_VALUE 1\n#endif\nint xb_value(void) { return XB_C_VALUE; }\n",
    )
    .unwrap();
    fs::write(
        directory.join("src/main.rs"),
        "unsafe extern \"C\" { fn xb_value() -> i32; }\n\
         fn main() {\n\
         println!(\"greeting={} flag={} extra={} assertions={} c={}\", env!(\"GREETING\"), cfg!(xb_flag), \
         cfg!(feature = \"extra\"), cfg!(debug_assertions), unsafe { xb_value() });\n}\n",
    )
    .unwrap();
    fs::write(
        directory.join("xbuild.toml"),
        format!(
            "[image]\nname = \"inputs\"\ncmd = [\"/usr/local/bin/inputs\"]\n[packages]\ninclude = []\n\
             [[build]]\nkind = \"cargo\"\npath = \".\"\n{extra_manifest}"
        ),
    )
    .unwrap();
    run_ok(
        Command::new("cargo")
            .arg("generate-lockfile")
            .current_dir(directory),
    );
}

/// One build of the project with `environment` added; returns the build
/// node's outcome and what the program prints.
struct Builder {
    xbuild: Xbuild,
    project: PathBuf,
    out: PathBuf,
    _work: tempfile::TempDir,
}

impl Builder {
    fn new(extra_manifest: &str) -> Builder {
        let work = temp_dir("xbuild-cargo-inputs-");
        let project = work.path().join("parent/inputs");
        write_project(&project, extra_manifest);
        Builder {
            xbuild: Xbuild::new().with_host_apt(),
            out: work.path().join("out"),
            project,
            _work: work,
        }
    }

    fn build(&self, environment: &[(&str, &str)]) -> (String, String) {
        let mut command = self.xbuild.command();
        command
            .arg("build")
            .arg(&self.project)
            .arg("--out")
            .arg(&self.out)
            .args(["--json", "-q", "--target", &native()]);
        for (name, value) in environment {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{environment:?}:\n{stderr}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let builds = report_nodes(&report, "build");
        assert_eq!(builds.len(), 1);
        let outcome = builds[0]["outcome"].as_str().unwrap().to_owned();
        (outcome, run_program(&self.out, "usr/local/bin/inputs"))
    }
}

/// Runs the program `binary` of the image in `out` (this machine's
/// platform) against the image's own C library.
fn run_program(out: &Path, binary: &str) -> String {
    let layout = Layout::open(out);
    let manifest = layout.json_blob(layout.manifest_descriptors()[0]["digest"].as_str().unwrap());
    let root = temp_dir("xbuild-image-root-");
    for layer in manifest["layers"].as_array().unwrap() {
        for entry in layout.layer_entries(layer) {
            let path = root.path().join(&entry.path);
            match entry.kind {
                tar::EntryType::Directory => fs::create_dir_all(&path).unwrap(),
                tar::EntryType::Symlink => {
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    let _ = fs::remove_file(&path);
                    std::os::unix::fs::symlink(entry.link_target.unwrap(), &path).unwrap();
                }
                tar::EntryType::Regular => {
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(&path, &entry.contents).unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode)).unwrap();
                }
                _ => {}
            }
        }
    }
    // The image's dynamic loader and libraries, not the host's.
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let loader = ["ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"]
        .iter()
        .map(|name| root.path().join("lib").join(&multiarch).join(name))
        .find(|path| path.is_file())
        .expect("the image has a dynamic loader");
    let library_path = ["lib", "usr/lib"]
        .iter()
        .map(|directory| {
            root.path()
                .join(directory)
                .join(format!("{}-linux-gnu", std::env::consts::ARCH))
                .display()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(":");
    let printed = run_ok(
        Command::new(loader)
            .args(["--library-path", &library_path])
            .arg(root.path().join(binary)),
    );
    printed.trim().to_owned()
}

/// An input's name, the variables that set it, and what the program prints.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

const BASE: &str = "greeting=hello flag=false extra=false assertions=false c=1";
const FLAG: &str = "greeting=hello flag=true extra=false assertions=false c=1";

#[test]
fn network_every_input_that_changes_cargos_output_changes_the_key() {
    let builder = Builder::new("");
    let triple = native_triple().replace('-', "_").to_uppercase();
    let target_rustflags = format!("CARGO_TARGET_{triple}_RUSTFLAGS");
    let (outcome, printed) = builder.build(&[]);
    assert_eq!((outcome.as_str(), printed.as_str()), ("built", BASE));
    assert_eq!(builder.build(&[]).0, "local");

    // Each input: a build that shows the change, then back to a hit on the
    // first entry with the first binary.
    let wrapper = builder.project.parent().unwrap().join("wrap.sh");
    let marker = builder.project.parent().unwrap().join("wrapped");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\ntouch {}\nexec \"$@\"\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let cases: Vec<Case> = vec![
        ("RUSTFLAGS", vec![("RUSTFLAGS", "--cfg xb_flag")], FLAG),
        (
            "CARGO_ENCODED_RUSTFLAGS",
            vec![("CARGO_ENCODED_RUSTFLAGS", "--cfg\u{1f}xb_flag")],
            FLAG,
        ),
        (
            "CARGO_BUILD_RUSTFLAGS",
            vec![("CARGO_BUILD_RUSTFLAGS", "--cfg xb_flag")],
            FLAG,
        ),
        (
            "target rustflags",
            vec![(target_rustflags.as_str(), "--cfg xb_flag")],
            FLAG,
        ),
        (
            "CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS",
            vec![("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")],
            "greeting=hello flag=false extra=false assertions=true c=1",
        ),
        (
            "CFLAGS",
            vec![("CFLAGS", "-DXB_C_VALUE=7")],
            "greeting=hello flag=false extra=false assertions=false c=7",
        ),
        (
            "a build script's variable",
            vec![("XB_GREETING", "bonjour")],
            "greeting=bonjour flag=false extra=false assertions=false c=1",
        ),
        (
            "RUSTC_WRAPPER",
            vec![("RUSTC_WRAPPER", wrapper.to_str().unwrap())],
            BASE,
        ),
    ];
    for (name, environment, expected) in &cases {
        let (outcome, printed) = builder.build(environment);
        assert_eq!(outcome, "built", "{name}: a cache hit for a changed input");
        assert_eq!(&printed, expected, "{name}");
        let (outcome, printed) = builder.build(&[]);
        assert_eq!(outcome, "local", "{name}: going back is not a hit");
        assert_eq!(printed, BASE, "{name}: a stale binary is served");
    }
    assert!(marker.exists(), "RUSTC_WRAPPER did not run");

    // Config files: the project's, a parent's, $CARGO_HOME's; their
    // rustflags reach rustc (merged, not dropped) and are in the key.
    let parent = builder.project.parent().unwrap();
    let cargo_home = parent.join("cargo-home");
    fs::create_dir_all(&cargo_home).unwrap();
    for (name, config) in [
        ("project", builder.project.join(".cargo/config.toml")),
        ("parent", parent.join(".cargo/config.toml")),
        ("$CARGO_HOME", cargo_home.join("config.toml")),
    ] {
        fs::create_dir_all(config.parent().unwrap()).unwrap();
        // Told apart by a comment: one content is one key wherever it is.
        fs::write(
            &config,
            format!("# the {name}'s\n[build]\nrustflags = [\"--cfg\", \"xb_flag\"]\n"),
        )
        .unwrap();
        let home = cargo_home.to_str().unwrap();
        let environment: Vec<(&str, &str)> = if name == "$CARGO_HOME" {
            vec![("CARGO_HOME", home)]
        } else {
            Vec::new()
        };
        let (outcome, printed) = builder.build(&environment);
        assert_eq!(
            (outcome.as_str(), printed.as_str()),
            ("built", FLAG),
            "{name} config"
        );
        fs::remove_file(&config).unwrap();
        let (outcome, printed) = builder.build(&environment);
        assert_eq!(
            (outcome.as_str(), printed.as_str()),
            ("local", BASE),
            "{name} config removed"
        );
    }

    // The manifest's features.
    let manifest = builder.project.join("xbuild.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{text}features = [\"extra\"]\n")).unwrap();
    let (outcome, printed) = builder.build(&[]);
    assert_eq!(
        (outcome.as_str(), printed.as_str()),
        (
            "built",
            "greeting=hello flag=false extra=true assertions=false c=1"
        )
    );
}

#[test]
fn network_outputs_inside_a_project_are_not_its_sources_and_leave_cargo_alone() {
    let builder = Builder::new("");
    // `--out out`, as README writes it, inside the project.
    let out = builder.project.join("out");
    let build = |out: &Path| {
        builder
            .xbuild
            .build(&builder.project, out, &[&native()])
            .success()
            .json()
    };
    build(&out);
    let again = build(&out);
    assert_eq!(report_nodes(&again, "build")[0]["outcome"], "local");

    // The default output directory of a cargo project is under its target
    // directory: the user's own `cargo build` has nothing to redo.
    let work = temp_dir("xbuild-cargo-default-out-");
    let project = work.path().join("plain");
    fs::create_dir_all(project.join("src")).unwrap();
    fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    // No rerun-if-changed: cargo runs it again when any package file changes.
    fs::write(
        project.join("build.rs"),
        "fn main() { eprintln!(\"build script ran\"); }\n",
    )
    .unwrap();
    fs::write(
        project.join("src/main.rs"),
        "fn main() { println!(\"plain\"); }\n",
    )
    .unwrap();
    fs::write(
        project.join("xbuild.toml"),
        "[image]\nname = \"plain\"\ncmd = [\"/usr/local/bin/plain\"]\n[packages]\ninclude = []\n[[build]]\nkind = \"cargo\"\n",
    )
    .unwrap();
    run_ok(Command::new("cargo").arg("build").current_dir(&project));
    let mut command = builder.xbuild.command();
    command
        .arg("build")
        .arg(&project)
        .args(["--target", &native()]);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(project.join("target/xbuild/oci/index.json").is_file());
    assert!(!project.join("result").exists());
    let verbose = Command::new("cargo")
        .args(["build", "-v"])
        .current_dir(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.contains("Fresh plain"),
        "cargo rebuilt the package after xbuild:\n{stderr}"
    );
}

#[test]
fn network_quiet_builds_say_nothing_but_why_they_failed() {
    let builder = Builder::new("");
    let mut command = builder.xbuild.command();
    command
        .arg("build")
        .arg(&builder.project)
        .arg("--out")
        .arg(&builder.out)
        .args(["-q", "--target", &native()]);
    let output = command.output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.trim().is_empty(), "-q printed:\n{stderr}");

    fs::write(
        builder.project.join("src/main.rs"),
        "fn main() { let x: u32 = \"no\"; }\n",
    )
    .unwrap();
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(7),
        "a failed build of the user's code"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mismatched types"), "{stderr}");
    assert!(stderr.contains("exit status: 101"), "{stderr}");
}

/// (digest, first package) of every package layer, and the build layer's
/// entries' times and the config's `created`.
fn dates(report: &Value, out: &Path) -> (Vec<String>, Vec<u64>, String) {
    let target = &report["targets"][0];
    let packages: Vec<String> = target["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| !layer["packages"][0].as_str().unwrap().starts_with("cargo "))
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect();
    let layout = Layout::open(out);
    let manifest = layout.json_blob(target["manifest_digest"].as_str().unwrap());
    let build_layer = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let times: Vec<u64> = layout
        .layer_entries(&build_layer)
        .iter()
        .map(|entry| entry.mtime)
        .collect();
    let created = layout.config(&manifest)["created"]
        .as_str()
        .unwrap()
        .to_owned();
    (packages, times, created)
}

#[test]
fn network_package_layers_ignore_the_epoch_and_builds_take_it_or_the_last_commit() {
    let builder = Builder::new("");
    let build = |environment: &[(&str, &str)]| {
        let mut command = builder.xbuild.command();
        command
            .arg("build")
            .arg(&builder.project)
            .arg("--out")
            .arg(&builder.out)
            .args(["--json", "--target", &native()])
            .envs(environment.iter().copied());
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        dates(&report, &builder.out)
    };
    let (first_packages, first_times, first_created) =
        build(&[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert!(
        first_times.iter().all(|time| *time == 1_700_000_000),
        "{first_times:?}"
    );
    assert_eq!(first_created, "2023-11-14T22:13:20Z");
    let (packages, times, created) = build(&[("SOURCE_DATE_EPOCH", "1800000000")]);
    assert_eq!(
        packages, first_packages,
        "package layers depend on SOURCE_DATE_EPOCH"
    );
    assert!(times.iter().all(|time| *time == 1_800_000_000), "{times:?}");
    assert_eq!(created, "2027-01-15T08:00:00Z");

    // Without SOURCE_DATE_EPOCH: the last commit that touched the project
    // (in a repository that holds more than the project).
    let repository = builder.project.parent().unwrap().to_owned();
    let git = |arguments: &[&str], date: &str| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(arguments)
                .current_dir(&repository)
                .env("GIT_AUTHOR_DATE", date)
                .env("GIT_COMMITTER_DATE", date),
        )
    };
    git(&["init", "-q"], "@1750000000 +0000");
    git(&["add", "inputs"], "@1750000000 +0000");
    git(&["commit", "-q", "-m", "the project"], "@1750000000 +0000");
    let (packages, times, created) = build(&[]);
    assert_eq!(packages, first_packages);
    assert!(times.iter().all(|time| *time == 1_750_000_000), "{times:?}");
    assert_eq!(created, "2025-06-15T15:06:40Z");
    // A later commit elsewhere in the repository changes nothing.
    fs::write(repository.join("elsewhere.txt"), "another project").unwrap();
    git(&["add", "elsewhere.txt"], "@1760000000 +0000");
    git(&["commit", "-q", "-m", "elsewhere"], "@1760000000 +0000");
    let (_, _, created) = build(&[]);
    assert_eq!(created, "2025-06-15T15:06:40Z");
}
