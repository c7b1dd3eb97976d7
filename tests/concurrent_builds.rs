//! Several xbuild processes building one image on one cache at once,
//! against the fixture archive on 127.0.0.1: each package is downloaded
//! and each layer built once in all, a node another process made while
//! this one waited is a local hit, and so the reports' summaries add up to
//! the work one build alone does.

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;

use support::archive::ArchiveBuilder;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, Xbuild, report_nodes, temp_dir};

fn summary(report: &Value, field: &str) -> u64 {
    report["summary"][field].as_u64().unwrap()
}

#[test]
fn four_builds_at_once_do_the_work_of_one() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");

    // One build alone, on its own cache: the work there is.
    let alone = Xbuild::new()
        .build(
            project.path(),
            temp_dir("xbuild-out-").path(),
            &[FIXTURE_TARGET],
        )
        .success()
        .json();
    let (downloaded, built) = (summary(&alone, "downloaded"), summary(&alone, "built"));
    assert!(downloaded > 0 && built > 0, "{}", alone["summary"]);

    // Four at once on one empty cache.
    let shared = Xbuild::new();
    server.clear_log();
    let outs: Vec<_> = (0..4).map(|_| temp_dir("xbuild-out-")).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            let mut command: Command = shared.command();
            command
                .arg("build")
                .arg(project.path())
                .arg("--out")
                .arg(out.path())
                .args(["--json", "--target", FIXTURE_TARGET])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    let reports: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice(&output.stdout).unwrap()
        })
        .collect();
    let total = |field: &str| {
        reports
            .iter()
            .map(|report| summary(report, field))
            .sum::<u64>()
    };
    assert_eq!(
        total("downloaded"),
        downloaded,
        "downloads reported by the four: {:?}",
        reports
            .iter()
            .map(|report| &report["summary"])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        total("built"),
        built,
        "builds reported by the four: {:?}",
        reports
            .iter()
            .map(|report| &report["summary"])
            .collect::<Vec<_>>()
    );
    // Each layer was built by exactly one of them.
    let layers = report_nodes(&alone, "layer").len();
    let built_layers: usize = reports
        .iter()
        .map(|report| {
            report_nodes(report, "layer")
                .iter()
                .filter(|node| node["outcome"] == "built")
                .count()
        })
        .sum();
    assert_eq!(built_layers, layers);
    // And the mirror served each .deb once.
    let deb_requests = server
        .requests()
        .into_iter()
        .filter(|request| request.path.ends_with(".deb") && request.status == 200)
        .count();
    let debs = report_nodes(&alone, "deb").len();
    assert_eq!(deb_requests, debs, "each package downloaded once in all");
    // The same image for all.
    for report in &reports {
        assert_eq!(
            report["targets"][0]["manifest_digest"],
            alone["targets"][0]["manifest_digest"]
        );
    }
}
