//! Alternatives in built images, end to end, against the host's mirror:
//! an arm64 image with only `mawk` runs `awk` (through `xbuild run` and
//! its own emulator), one with `mawk` and `gawk` runs gawk's (priority 10
//! over 5), and the host's `update-alternatives --root` reads the
//! database the configure layer wrote in the image unpacked by umoci, an
//! independent tool. Needs the network and root (umoci's ownership).

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::mirror::repository_line;
use support::run_ok;
use support::xbuild::{Project, RunOutput, Xbuild, temp_dir};

const TARGET: &str = "aarch64-linux";

fn xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alternatives-image-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn project(include: &[&str]) -> Project {
    let include = include
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Project::new(&format!(
        "[image]\nname = \"awk\"\ntag = \"latest\"\ncmd = [\"awk\", \"BEGIN {{ print 6 * 7 }}\"]\n\n[packages]\ninclude = [{include}]\n{}",
        repository_line("bookworm")
    ))
}

fn run(project: &Project, out: &Path, args: &[&str]) -> RunOutput {
    RunOutput::of(
        xbuild()
            .command()
            .arg("run")
            .arg(project.path())
            .args(["--target", TARGET, "-q", "--out"])
            .arg(out)
            .args(args),
    )
}

/// The image's root, unpacked by umoci.
fn unpack(out: &Path) -> std::path::PathBuf {
    let bundle = out.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", out.join("oci").display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

fn query(root: &Path, name: &str) -> String {
    let output = Command::new("update-alternatives")
        .arg("--root")
        .arg(root)
        .args(["--query", name])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn effects<'a>(report: &'a Value, package: &str) -> Vec<&'a str> {
    report["targets"][0]["native_effects"][package]["postinst"]
        .as_array()
        .unwrap_or_else(|| panic!("no postinst effects for {package}: {report}"))
        .iter()
        .map(|effect| effect.as_str().unwrap())
        .collect()
}

#[test]
fn network_root_an_image_with_only_mawk_runs_awk() {
    let project = project(&["mawk"]);
    let out = temp_dir("xbuild-awk-");
    let output = run(&project, out.path(), &[]);
    output.success();
    assert_eq!(output.stdout, "42\n");
    let report = xbuild()
        .build(project.path(), out.path(), &[TARGET])
        .success()
        .json();
    let done = effects(&report, "mawk");
    assert!(
        done.iter()
            .any(|effect| effect.starts_with("alternative awk done: /usr/bin/awk -> /usr/bin/mawk")),
        "{done:?}"
    );
    let root = unpack(out.path());
    let awk = query(&root, "awk");
    for line in [
        "Status: auto",
        "Best: /usr/bin/mawk",
        "Value: /usr/bin/mawk",
    ] {
        assert!(awk.lines().any(|have| have == line), "{line} not in\n{awk}");
    }
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/awk")).unwrap(),
        Path::new("/etc/alternatives/awk")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/alternatives/awk")).unwrap(),
        Path::new("/usr/bin/mawk")
    );
    // nawk is a slave of the choice; the man page slaves point at pages a
    // small image left out, so they have no links.
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/nawk")).unwrap(),
        Path::new("/etc/alternatives/nawk")
    );
    assert!(
        std::fs::symlink_metadata(root.join("usr/share/man/man1/awk.1.gz")).is_err(),
        "a link to a man page the image does not have"
    );
}

#[test]
fn network_root_gawk_wins_awk_over_mawk_by_priority() {
    let project = project(&["mawk", "gawk"]);
    let out = temp_dir("xbuild-gawk-");
    let output = run(&project, out.path(), &["--", "awk", "--version"]);
    output.success();
    assert!(output.stdout.starts_with("GNU Awk"), "{}", output.stdout);
    let root = unpack(out.path());
    let awk = query(&root, "awk");
    for line in [
        "Best: /usr/bin/gawk",
        "Value: /usr/bin/gawk",
        "Alternative: /usr/bin/mawk",
        "Priority: 5",
        "Alternative: /usr/bin/gawk",
        "Priority: 10",
    ] {
        assert!(awk.lines().any(|have| have == line), "{line} not in\n{awk}");
    }
}
