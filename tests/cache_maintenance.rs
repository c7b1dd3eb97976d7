//! `xbuild cache stats | gc | verify` on a cache real builds filled,
//! against the signed fixture archive on 127.0.0.1: stats count what the
//! builds left and their hit rates; gc shrinks the cache without removing
//! anything a kept entry needs (verify finds it clean, and the next build
//! succeeds with the same image); verify finds a corrupted blob, exits
//! non-zero, and leaves a cache the next build and the next verify are
//! happy with.

mod support;

use std::fs;

use serde_json::Value;

use support::archive::ArchiveBuilder;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, temp_dir};

fn build(xbuild: &Xbuild, project: &Project) -> Value {
    let out = temp_dir("xbuild-out-");
    xbuild
        .build(project.path(), out.path(), &[FIXTURE_TARGET])
        .success()
        .json()
}

fn manifest_digest(report: &Value) -> String {
    report["targets"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn stats(xbuild: &Xbuild) -> Value {
    xbuild.run(&["cache", "stats", "--json"]).success().json()
}

fn bucket<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|bucket| bucket["bucket"] == name)
        .unwrap_or_else(|| panic!("no bucket {name} in {stats}"))
}

fn verify(xbuild: &Xbuild) -> RunOutput {
    xbuild.run(&["cache", "verify"])
}

#[test]
fn stats_gc_and_verify_on_a_cache_builds_filled() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let xbuild = Xbuild::new();

    // Two builds: the second is all hits, and stats say so.
    let cold = build(&xbuild, &project);
    let reference = manifest_digest(&cold);
    let warm = build(&xbuild, &project);
    assert_eq!(warm["summary"]["built"], 0, "{}", warm["summary"]);
    let before = stats(&xbuild);
    let layers = bucket(&before, "layer-v1");
    let image_layers = cold["targets"][0]["layers"].as_array().unwrap().len() as u64;
    assert!(
        layers["entries"].as_u64().unwrap() >= image_layers,
        "an entry per layer: {before}"
    );
    assert_eq!(bucket(&before, "inrelease-v1")["entries"], 1);
    assert!(before["blobs"]["needed"].as_u64().unwrap() >= layers["entries"].as_u64().unwrap());
    let recent = &before["recent_builds"];
    assert_eq!(recent["builds"], 2, "{recent}");
    let nodes = |report: &Value| -> u64 {
        ["local", "remote", "downloaded", "built"]
            .iter()
            .map(|field| report["summary"][field].as_u64().unwrap())
            .sum()
    };
    let hits =
        cold["summary"]["local"].as_u64().unwrap() + warm["summary"]["local"].as_u64().unwrap();
    let expected = hits as f64 / (nodes(&cold) + nodes(&warm)) as f64;
    assert!(
        (recent["hit_rate"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{recent}"
    );
    let text = xbuild.run(&["cache", "stats"]).success().stdout.clone();
    assert!(
        text.contains("layer-v1") && text.contains("hit rate"),
        "{text}"
    );

    // gc to half the size: what is left is whole (verify finds nothing
    // wrong), and a build from it gives the same image.
    let total = before["total_bytes"].as_u64().unwrap();
    let half = (total / 2).to_string();
    let run = xbuild.run(&["cache", "gc", "--max-size", &half]);
    let freed = &run.success().stdout;
    assert!(
        freed.contains("freed") && freed.contains("removed"),
        "{run}"
    );
    let after = stats(&xbuild);
    assert!(
        after["total_bytes"].as_u64().unwrap() <= total / 2,
        "{after}"
    );
    verify(&xbuild).success();
    assert_eq!(manifest_digest(&build(&xbuild, &project)), reference);

    // gc to (almost) nothing, then a build: everything fetched again.
    let run = xbuild.run(&["cache", "gc", "--max-size", "1K", "--json"]);
    let report = run.success().json();
    assert!(report["after_bytes"].as_u64().unwrap() <= 1000, "{report}");
    assert!(!report["removed"].as_array().unwrap().is_empty());
    let rebuilt = build(&xbuild, &project);
    assert_eq!(manifest_digest(&rebuilt), reference);
    assert!(rebuilt["summary"]["downloaded"].as_u64().unwrap() > 0);
    verify(&xbuild).success();

    // A flipped byte in a layer blob: verify names it, exits 4 (integrity),
    // drops it and the entries needing it; then all is clean, and the next
    // build makes the layer again and gives the same image.
    let layer = rebuilt["targets"][0]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = xbuild.cache_dir().join("blobs-v1/sha256").join(&layer);
    let mut bytes = fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&blob, bytes).unwrap();
    let run = verify(&xbuild);
    assert_eq!(run.status.code(), Some(4), "{run}");
    assert!(
        run.stdout.contains(&format!("blob sha256:{layer}")),
        "{run}"
    );
    assert!(run.stdout.contains(&blob.display().to_string()), "{run}");
    assert!(
        run.stdout.contains("layer-v1/"),
        "the entry needing it: {run}"
    );
    assert!(run.stderr.contains("error: cache verify found"), "{run}");
    assert!(!blob.exists());
    let json = xbuild.run(&["cache", "verify", "--json"]).success().json();
    assert_eq!(json["problems"].as_array().unwrap().len(), 0, "{json}");
    let healed = build(&xbuild, &project);
    assert_eq!(manifest_digest(&healed), reference);
    assert!(healed["summary"]["built"].as_u64().unwrap() >= 1);
    verify(&xbuild).success();
}

#[test]
fn gc_and_verify_refuse_bad_arguments() {
    let xbuild = Xbuild::new();
    let run = xbuild.run(&["cache", "gc", "--max-size", "lots"]);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("500M"), "{run}");
    // An empty cache is fine for all three.
    xbuild.run(&["cache", "gc", "--max-size", "0"]).success();
    verify(&xbuild).success();
    let stats = stats(&xbuild);
    assert_eq!(stats["recent_builds"]["builds"], 0);
}
