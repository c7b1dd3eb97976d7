//! A bookworm arm64 image is merged-/usr like a bookworm system
//! debootstrap makes, although bookworm's packages still ship `/bin` and
//! `/lib`: built against the host's real mirror (network) and run with
//! podman (root), `/bin`, `/sbin` and `/lib` are symlinks into `/usr`, and
//! programs run by their old paths and their new ones, under podman and
//! `xbuild run`.

mod support;

use support::podman::{Podman, assert_binfmt};
use support::xbuild::{Project, Xbuild, temp_dir};

const SHELL: &str = "[image]\nname = \"bookworm-merged\"\ncmd = [\"/bin/sh\"]\n[packages]\ninclude = [\"bash\", \"coreutils\", \"dash\"]\n";

#[test]
fn bookworm_arm64_image_has_merged_usr_and_its_programs_run_network_root() {
    let xbuild = Xbuild::new().with_host_apt();
    let out = temp_dir("xbuild-bookworm-merged-");
    let project = Project::new(SHELL);
    let report = xbuild
        .build(project.path(), out.path(), &["aarch64-linux"])
        .success()
        .json();
    assert_eq!(
        report["targets"][0]["layers"][0]["packages"][0], "merged-/usr symlinks",
        "{report}"
    );
    assert_binfmt("aarch64");
    let podman = Podman::new();
    let name = podman.load(
        &out.path().join("aarch64-linux.tar"),
        "bookworm-merged:latest",
    );
    let listing = podman.run_with_args(
        &name,
        "linux/arm64",
        &["/bin/sh", "-c", "ls -l /bin /sbin /lib /lib64"],
    );
    for link in [
        "/bin -> usr/bin",
        "/sbin -> usr/sbin",
        "/lib -> usr/lib",
        "/lib64 -> usr/lib64",
    ] {
        assert!(listing.contains(link), "no `{link}` in:\n{listing}");
    }
    // bash and coreutils' programs are /bin's in bookworm, env and id
    // /usr/bin's; each runs by both paths, and the loader by its /lib path.
    let output = podman.run_with_args(
        &name,
        "linux/arm64",
        &[
            "/bin/bash",
            "-c",
            "/bin/echo one && /usr/bin/echo two && /bin/env true && /usr/bin/id -u \
             && /usr/bin/bash -c 'echo three' && /bin/sh -c 'echo four' \
             && /lib/ld-linux-aarch64.so.1 /bin/echo five \
             && ls -ld /usr/bin/sh /usr/lib/aarch64-linux-gnu",
        ],
    );
    for expected in ["one\ntwo\n0\nthree\nfour\nfive\n", "/usr/bin/sh -> dash"] {
        assert!(output.contains(expected), "no {expected:?} in:\n{output}");
    }
    assert!(
        output.contains("drwx") && output.contains("/usr/lib/aarch64-linux-gnu"),
        "{output}"
    );

    // `xbuild run`'s root filesystem, made from the same layers, agrees.
    let run = xbuild
        .run(&[
            "run",
            project.path().to_str().unwrap(),
            "--target",
            "aarch64-linux",
            "-q",
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            "ls -l /bin /lib && /bin/echo one && /usr/bin/echo two",
        ])
        .success()
        .stdout
        .clone();
    for expected in ["/bin -> usr/bin", "/lib -> usr/lib", "one\ntwo\n"] {
        assert!(run.contains(expected), "no {expected:?} in:\n{run}");
    }
}
