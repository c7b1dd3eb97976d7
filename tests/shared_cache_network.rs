//! The shared cache end to end against the real Debian mirror (network):
//! machine A prewarms cowsay and examples/hello-rust for aarch64-linux and
//! armv7-linux into three remotes at once — a directory, nginx with WebDAV
//! PUT and Debian's docker-registry, started by the test on 127.0.0.1 —
//! and machine B, an empty cache with only `--remote` and `--trust`, builds
//! the same from each: every node remote (the cross toolchain, sysroot and
//! the Rust build included when they are needed), nothing downloaded,
//! nothing built, the same manifest digests as A. A changed source on
//! B, whose cache is empty, is compared with A's entry through the signed
//! pointer A's upload advanced.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use serde_json::Value;
use servers::{Nginx, NginxOptions, Registry};
use std::path::{Path, PathBuf};
use support::xbuild::{Xbuild, temp_dir};

const TARGETS: [&str; 2] = ["aarch64-linux", "armv7-linux"];

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn target_args() -> Vec<&'static str> {
    TARGETS
        .iter()
        .flat_map(|target| ["--target", target])
        .collect()
}

fn digests(report: &Value) -> Vec<String> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|target| target["manifest_digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn network_a_prewarms_three_remotes_and_b_builds_everything_from_each() {
    let nginx = Nginx::start(NginxOptions::default());
    let registry = Registry::start();
    let directory = temp_dir("xbuild-remote-");
    let remotes = [
        format!("file://{}", directory.path().display()),
        nginx.url("xbuild"),
        registry.url("team/cache"),
    ];
    let keys = temp_dir("xbuild-keys-");
    let secret = keys.path().join("ci.secret");
    let keygen = Xbuild::new().run(&[
        "cache",
        "keygen",
        "--name",
        "ci",
        "--out",
        secret.to_str().unwrap(),
    ]);
    let public = keygen.success().stdout.trim().to_owned();

    // A: an empty cache of its own, the host's apt mirror.
    let a = Xbuild::new().with_host_apt();
    let mut a_digests = Vec::new();
    for project in ["cowsay", "hello-rust"] {
        let dir = example(project);
        let mut args = vec!["cache", "prewarm", dir.to_str().unwrap(), "--json", "-q"];
        args.extend(target_args());
        for remote in &remotes {
            args.extend(["--remote", remote.as_str()]);
        }
        args.extend(["--sign", secret.to_str().unwrap()]);
        let prewarm = a.run(&args);
        let report = prewarm.success().json();
        for remote in report["upload"]["remotes"].as_array().unwrap() {
            assert!(
                remote["failures"].as_array().unwrap().is_empty(),
                "{prewarm}"
            );
            assert!(
                remote["entries_uploaded"].as_u64().unwrap() > 0,
                "{prewarm}"
            );
        }
        a_digests.push(digests(&report["build"]));

        // A second prewarm uploads nothing.
        let again = a.run(&args);
        let second = again.success().json();
        for remote in second["upload"]["remotes"].as_array().unwrap() {
            assert_eq!(remote["bytes_uploaded"].as_u64(), Some(0), "{again}");
            assert_eq!(remote["entries_uploaded"].as_u64(), Some(0), "{again}");
        }
    }

    // B: an empty cache per remote and project, only that remote and the
    // trusted key.
    for remote in &remotes {
        for (index, project) in ["cowsay", "hello-rust"].iter().enumerate() {
            let b = Xbuild::new().with_host_apt();
            let dir = example(project);
            let out = temp_dir("xbuild-out-");
            let mut args = vec![
                "build",
                dir.to_str().unwrap(),
                "--json",
                "--out",
                out.path().to_str().unwrap(),
                "--remote",
                remote.as_str(),
                "--trust",
                public.as_str(),
                "--require-hits=all",
            ];
            args.extend(target_args());
            let output = b.run(&args);
            let report = output.success().json();
            let summary = &report["summary"];
            assert_eq!(
                summary["downloaded"].as_u64(),
                Some(0),
                "{remote}: {output}"
            );
            assert_eq!(summary["built"].as_u64(), Some(0), "{remote}: {output}");
            assert_eq!(summary["local"].as_u64(), Some(0), "{remote}: {output}");
            assert!(
                summary["remote"].as_u64().unwrap() > 0,
                "{remote}: {output}"
            );
            for node in report["nodes"].as_array().unwrap() {
                assert_eq!(node["outcome"], "remote", "{remote}: {node}");
            }
            assert_eq!(digests(&report), a_digests[index], "{remote}: {project}");
            b.run(&["cache", "verify"]).success();
        }
    }

    // A new source tree on B: the cross toolchain, sysroot and compiler
    // come from the remote; only the project itself is compiled.
    let b = Xbuild::new().with_host_apt();
    let work = temp_dir("xbuild-project-");
    let project = work.path().join("hello-rust");
    support::files::copy_project(&example("hello-rust"), &project);
    let main = project.join("src/main.rs");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n// a change only B has\n");
    std::fs::write(&main, text).unwrap();
    // B's cache is empty, so the nearest entry of the changed build is on
    // the remotes only: found through the pointer A's prewarm advanced,
    // `--require-hits` and `plan --explain` name the source as the one
    // input that differs.
    for remote in &remotes[1..] {
        let guard = Xbuild::new().with_host_apt();
        let refused = guard.run(&[
            "plan",
            project.to_str().unwrap(),
            "--target",
            "aarch64-linux",
            "--json",
            "--remote",
            remote.as_str(),
            "--trust",
            public.as_str(),
            "--require-hits",
        ]);
        assert_eq!(refused.status.code(), Some(8), "{remote}: {refused}");
        assert!(
            refused
                .stderr
                .contains("differs from the nearest remote entry in source: sha256:"),
            "{remote}: {refused}"
        );
        // The copy is outside the repository, so its epoch (the last
        // commit's time) differs too; nothing else does.
        let plan: Value = serde_json::from_str(&refused.stdout).unwrap();
        let differences: Vec<&str> = plan["builds"][0]["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|difference| difference.as_str().unwrap())
            .collect();
        assert!(
            differences[0].starts_with("source: "),
            "{remote}: {differences:?}"
        );
        assert!(
            differences
                .iter()
                .all(|difference| difference.starts_with("source: ")
                    || difference.starts_with("epoch: ")),
            "{remote}: {differences:?}"
        );
    }

    let out = temp_dir("xbuild-out-");
    let output = b.run(&[
        "build",
        project.to_str().unwrap(),
        "--target",
        "aarch64-linux",
        "--json",
        "--out",
        out.path().to_str().unwrap(),
        "--remote",
        remotes[1].as_str(),
        "--trust",
        public.as_str(),
    ]);
    let report = output.success().json();
    assert_eq!(
        report["summary"]["downloaded"].as_u64(),
        Some(0),
        "{output}"
    );
    for node in report["nodes"].as_array().unwrap() {
        let kind = node["kind"].as_str().unwrap();
        if matches!(kind, "sysroot" | "compiler")
            || (kind == "toolchain" && node["name"].as_str().unwrap().starts_with("gcc"))
        {
            assert_eq!(node["outcome"], "remote", "{node}");
        }
        if kind == "build" {
            assert_eq!(node["outcome"], "built", "{node}");
        }
    }
}
