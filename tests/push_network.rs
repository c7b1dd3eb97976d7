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

    // An index is a source too, named by its digest: merged alone into
    // another repository, it keeps its three platforms.
    let by_digest = format!(
        "127.0.0.1:{}/team/cowsay@{}",
        registry.port,
        report["push"]["digest"].as_str().unwrap()
    );
    let merged_tag = format!("127.0.0.1:{}/release/cowsay:all", registry.port);
    let merged = xbuild.run(&["image", "merge", &merged_tag, &by_digest, "--json"]);
    let outcome = merged.success().json();
    assert_eq!(
        outcome["manifests"].as_array().unwrap().len(),
        3,
        "{merged}"
    );
    let copy = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{merged_tag}"),
    ]);
    assert_eq!(copy["manifests"], index["manifests"], "{copy}");
}

/// Two single-target pushes (one of them to two repositories), merged into
/// one tag: the index lists both platforms, the image from the other
/// repository was copied by mounting (no layer pulled or uploaded), and
/// podman runs the merged tag for linux/arm/v7.
#[test]
fn network_push_two_tags_merge_and_podman_runs_the_merged_tag() {
    assert_binfmt("arm");
    let registry = Registry::start();
    let host = format!("127.0.0.1:{}", registry.port);
    let cowsay = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay");
    let xbuild = Xbuild::new().with_host_apt();
    let build_and_push = |target: &str, reference: &str| -> Value {
        let out = support::xbuild::temp_dir("xbuild-out-");
        let built = xbuild.run(&[
            "build",
            cowsay.to_str().unwrap(),
            "--target",
            target,
            "--json",
            "-q",
            "--out",
            out.path().to_str().unwrap(),
            "--push",
            reference,
        ]);
        built.success().json()
    };
    let arm64 = build_and_push("aarch64-linux", &format!("{host}/team/cowsay:aarch64"));
    let armv7 = build_and_push("armv7-linux", &format!("{host}/team/cowsay:armv7"));
    let elsewhere = build_and_push("armv7-linux", &format!("{host}/other/cowsay:armv7"));
    assert_eq!(elsewhere["push"]["digest"], armv7["push"]["digest"]);
    // The second repository got every blob by mounting.
    let image = &elsewhere["push"]["images"][0];
    assert_eq!(image["bytes_uploaded"].as_u64(), Some(0), "{image}");
    assert!(image["blobs_mounted"].as_u64().unwrap() > 1, "{image}");

    let merged_tag = format!("{host}/release/cowsay:1.0");
    let merged = xbuild.run(&[
        "image",
        "merge",
        &merged_tag,
        &format!("{host}/team/cowsay:aarch64"),
        &format!("{host}/other/cowsay:armv7"),
        "--annotation",
        "org.opencontainers.image.title=cowsay",
        "--json",
    ]);
    let outcome = merged.success().json();
    for manifest in outcome["manifests"].as_array().unwrap() {
        assert_eq!(manifest["copied"], true, "{manifest}");
    }

    let source = format!("docker://{merged_tag}");
    let index = skopeo(&["inspect", "--tls-verify=false", "--raw", &source]);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "cowsay"
    );
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|manifest| manifest["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [
            arm64["push"]["digest"].as_str().unwrap(),
            armv7["push"]["digest"].as_str().unwrap()
        ],
        "{index}"
    );
    for (arch, variant) in [("arm64", None), ("arm", Some("v7"))] {
        let mut args = vec!["inspect", "--tls-verify=false", "--override-arch", arch];
        if let Some(variant) = variant {
            args.extend(["--override-variant", variant]);
        }
        args.push(&source);
        assert_eq!(skopeo(&args)["Architecture"], arch);
    }
    let podman = Podman::new();
    support::run_ok(
        podman
            .command()
            .args(["pull", "--tls-verify=false", "--platform", "linux/arm/v7"])
            .arg(&merged_tag),
    );
    let said = podman.run(&merged_tag, "linux/arm/v7");
    assert!(said.contains("(oo)"), "{said}");

    // Two images of one platform are refused, naming both.
    let clash = xbuild.run(&[
        "image",
        "merge",
        &format!("{host}/release/cowsay:clash"),
        &format!("{host}/team/cowsay:armv7"),
        &format!("{host}/other/cowsay:armv7"),
    ]);
    assert_eq!(clash.status.code(), Some(2), "{clash}");
    assert!(
        clash.stderr.contains("team/cowsay:armv7") && clash.stderr.contains("other/cowsay:armv7"),
        "{clash}"
    );
}
