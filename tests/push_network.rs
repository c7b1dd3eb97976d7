//! A multi-arch push against the real Debian mirror (network) to Debian's
//! `docker-registry` on 127.0.0.1: one `build --push` with three targets
//! pushes one image index; skopeo sees each platform with its
//! architecture; podman pulls the tag and runs two of its platforms
//! (foreign ones through qemu-user and binfmt_misc); a second push
//! uploads no blob.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use serde_json::Value;
use servers::Registry;
use std::path::Path;
use support::podman::{Podman, assert_binfmt};
use support::xbuild::Xbuild;

fn skopeo(args: &[&str]) -> Value {
    let output = support::run_ok(std::process::Command::new("skopeo").args(args));
    serde_json::from_str(&output).unwrap()
}

#[test]
fn network_one_push_of_three_targets_is_one_index_podman_runs() {
    assert_binfmt("aarch64");
    assert_binfmt("arm");
    let registry = Registry::start();
    let reference = format!("127.0.0.1:{}/team/cowsay:multi", registry.port);
    let cowsay = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay");
    let xbuild = Xbuild::new().with_host_apt();
    let args = [
        "build",
        cowsay.to_str().unwrap(),
        "--target",
        "aarch64-linux",
        "--target",
        "armv7-linux",
        "--target",
        "x86_64-linux",
        "--json",
        "-q",
        "--push",
        reference.as_str(),
    ];
    let built = xbuild.run(&args);
    let report = built.success().json();
    assert_eq!(
        report["push"]["media_type"], "application/vnd.oci.image.index.v1+json",
        "{built}"
    );

    let source = format!("docker://{reference}");
    let index = skopeo(&["inspect", "--tls-verify=false", "--raw", &source]);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|manifest| {
            let platform = &manifest["platform"];
            format!(
                "{}/{}{}",
                platform["os"].as_str().unwrap(),
                platform["architecture"].as_str().unwrap(),
                platform["variant"]
                    .as_str()
                    .map(|variant| format!("/{variant}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"],
        "{index}"
    );
    for (arch, variant) in [("arm64", None), ("arm", Some("v7")), ("amd64", None)] {
        let mut args = vec!["inspect", "--tls-verify=false", "--override-arch", arch];
        if let Some(variant) = variant {
            args.extend(["--override-variant", variant]);
        }
        args.push(&source);
        let inspected = skopeo(&args);
        assert_eq!(inspected["Architecture"], arch, "{inspected}");
    }
    for target in report["targets"].as_array().unwrap() {
        assert_eq!(
            target["push"]["manifest_digest"], target["manifest_digest"],
            "{target}"
        );
    }

    let podman = Podman::new();
    for platform in ["linux/arm/v7", "linux/arm64"] {
        support::run_ok(
            podman
                .command()
                .args(["pull", "--tls-verify=false", "--platform", platform])
                .arg(&reference),
        );
        let said = podman.run(&reference, platform);
        assert!(said.contains("(oo)"), "{platform}: {said}");
    }

    // The same push again: no blob moves.
    let again = xbuild.run(&args);
    let second = again.success().json();
    for image in second["push"]["images"].as_array().unwrap() {
        assert_eq!(image["bytes_uploaded"].as_u64(), Some(0), "{again}");
        assert_eq!(image["blobs_uploaded"].as_u64(), Some(0), "{again}");
    }
    assert_eq!(second["push"]["digest"], report["push"]["digest"]);
}
