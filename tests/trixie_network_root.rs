//! riscv64, which Debian carries from trixie on, against the host's real
//! mirror (network) and run with podman (root): the bookworm default is
//! refused with a message that says how to pick trixie, and a trixie build
//! runs — which needs the merged-/usr symlinks trixie's packages assume.

mod support;

use std::path::Path;

use support::mirror::host_mirror;
use support::podman::{Podman, assert_binfmt};
use support::xbuild::{Project, Xbuild, temp_dir};

const COWSAY: &str = "[image]\nname = \"cowsay-hello-world\"\ncmd = [\"cowsay\", \"hello\", \"world\"]\n[packages]\ninclude = [\"cowsay\"]\n";

#[test]
fn riscv64_needs_trixie_and_runs_from_it_network_root() {
    let xbuild = Xbuild::new().with_host_apt();
    let out = temp_dir("xbuild-riscv64-");

    let bookworm = Project::new(COWSAY);
    let refused = xbuild.build(bookworm.path(), out.path(), &["riscv64-linux"]);
    let stderr = &refused.failure().stderr;
    assert!(stderr.contains("trixie"), "{stderr}");
    assert!(stderr.contains("suite"), "{stderr}");

    let trixie = Project::new(&format!(
        "{COWSAY}repository = {{ url = \"{}\", suite = \"trixie\", keyring = \"/usr/share/keyrings/debian-archive-keyring.gpg\" }}\n",
        host_mirror()
    ));
    let report = xbuild
        .build(trixie.path(), out.path(), &["riscv64-linux"])
        .success()
        .json();
    let layers = report["targets"][0]["layers"].as_array().unwrap();
    assert_eq!(
        layers[0]["packages"][0], "merged-/usr symlinks",
        "{layers:?}"
    );
    assert_binfmt("riscv64");
    let podman = Podman::new();
    let name = podman.load(
        &Path::new(out.path()).join("riscv64-linux.tar"),
        "cowsay-hello-world:latest",
    );
    let output = podman.run(&name, "linux/riscv64");
    assert!(output.contains("hello world"), "{output}");
    assert!(output.contains("(oo)"), "{output}");
}
