//! The plan (`plan --json`), `--require-hits`, and the hit accounting of
//! the build report, against the signed fixture archive on 127.0.0.1.

mod support;

use std::path::Path;

use serde_json::Value;

use support::archive::{Archive, ArchiveBuilder, sha256_hex};
use support::files::all_files;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, temp_dir};

/// The exit status of `--require-hits` refusals (README's table).
const MISSING_HITS: i32 = 8;

struct Fixture {
    server: Server,
    archive: Archive,
    project: Project,
}

impl Fixture {
    fn hello() -> Fixture {
        let archive = ArchiveBuilder::standard().build();
        let server = Server::serve(archive.root());
        let project = Project::fixture(&archive, &server, &["hello"], "");
        Fixture {
            server,
            archive,
            project,
        }
    }

    fn run(&self, xbuild: &Xbuild, command: &str, extra: &[&str]) -> RunOutput {
        let mut args = vec![
            command,
            self.project.path().to_str().unwrap(),
            "--target",
            FIXTURE_TARGET,
        ];
        args.extend(extra);
        xbuild.run(&args)
    }

    fn plan_json(&self, xbuild: &Xbuild) -> Value {
        self.run(xbuild, "plan", &["--json"]).success().json()
    }

    fn build_json(&self, xbuild: &Xbuild, out: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["--json", "--out", out.to_str().unwrap()];
        args.extend(extra);
        self.run(xbuild, "build", &args).success().json()
    }

    fn deb_requests(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|request| request.path.ends_with(".deb"))
            .map(|request| request.path)
            .collect()
    }

    /// sha256 of the fixture's signed indices (InRelease and every
    /// Packages file), as they are named in `blobs-v1/`.
    fn index_digests(&self) -> Vec<String> {
        let mut paths = vec![self.archive.inrelease()];
        paths.extend(all_files(&self.archive.index_dir()));
        paths
            .iter()
            .map(|path| sha256_hex(&std::fs::read(path).unwrap()))
            .collect()
    }
}

/// Each node as `kind name: source` (and `(not needed)`).
fn plan_rows(plan: &Value) -> Vec<String> {
    plan["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {plan}"))
        .iter()
        .map(|node| {
            format!(
                "{} {}: {}{}",
                node["kind"].as_str().unwrap(),
                node["name"].as_str().unwrap(),
                node["source"].as_str().unwrap(),
                if node["needed"] == true {
                    ""
                } else {
                    " (not needed)"
                }
            )
        })
        .collect()
}

/// The names of a plan node's inputs.
fn input_names(plan: &Value, name: &str) -> Vec<String> {
    let nodes = plan["nodes"].as_array().unwrap();
    let node = nodes
        .iter()
        .find(|node| node["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {plan}"));
    node["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            nodes[id.as_u64().unwrap() as usize]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Each report node as `kind name: outcome`.
fn report_rows(report: &Value) -> Vec<String> {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            format!(
                "{} {}: {}",
                node["kind"].as_str().unwrap(),
                node["name"].as_str().unwrap(),
                node["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

const IMAGE: &str = "fixture-app:latest (aarch64-linux)";

#[test]
fn plan_json_on_a_cold_cache_downloads_and_builds_and_after_a_build_is_all_local() {
    let fixture = Fixture::hello();
    let xbuild = Xbuild::new();
    let cold = fixture.plan_json(&xbuild);
    assert_eq!(cold["format"], "xbuild-plan-v2");
    assert_eq!(cold["sources"][0]["suite"], "fixture", "{cold}");
    assert_eq!(
        plan_rows(&cold),
        [
            "index fixture/InRelease: upstream",
            "index fixture/main/binary-arm64/Packages.xz: upstream",
            "layer merged-/usr symlinks: build",
            "deb hello_2.10-3_arm64.deb: upstream",
            "layer hello: build",
            "deb hello-data_2.10-3_all.deb: upstream",
            "layer hello-data: build",
            "deb libc6_2.36-9_arm64.deb: upstream",
            "layer libc6: build",
            "deb libgreet_2.1-1_arm64.deb: upstream",
            "layer libgreet: build",
            "layer configure (aarch64-linux): build",
            "image fixture-app:latest (aarch64-linux): build",
        ]
    );
    assert_eq!(input_names(&cold, "hello"), ["hello_2.10-3_arm64.deb"]);
    assert_eq!(
        input_names(&cold, IMAGE),
        [
            "merged-/usr symlinks",
            "hello",
            "hello-data",
            "libc6",
            "libgreet",
            "configure (aarch64-linux)"
        ]
    );
    assert_eq!(cold["images"][0]["target"], FIXTURE_TARGET);
    let deb_sizes: u64 = ["hello", "hello-data", "libc6"]
        .iter()
        .map(|name| fixture.archive.deb(name).size)
        .chain([fixture.archive.deb_version("libgreet", "2.1-1").size])
        .sum();
    let planned_download: u64 = cold["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["kind"] == "deb")
        .map(|node| node["cost"]["download_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(planned_download, deb_sizes);
    // The older views are the same plan's.
    assert_eq!(cold["targets"][0]["download_bytes"], deb_sizes);
    assert!(fixture.deb_requests().is_empty(), "plan downloaded .debs");

    let out = temp_dir("xbuild-out-");
    fixture.build_json(&xbuild, out.path(), &[]);
    let warm = fixture.plan_json(&xbuild);
    assert_eq!(
        plan_rows(&warm),
        [
            "index fixture/InRelease: local",
            "index fixture/main/binary-arm64/Packages.xz: local",
            "layer merged-/usr symlinks: local",
            "deb hello_2.10-3_arm64.deb: local (not needed)",
            "layer hello: local",
            "deb hello-data_2.10-3_all.deb: local (not needed)",
            "layer hello-data: local",
            "deb libc6_2.36-9_arm64.deb: local (not needed)",
            "layer libc6: local",
            "deb libgreet_2.1-1_arm64.deb: local (not needed)",
            "layer libgreet: local",
            "layer configure (aarch64-linux): local",
            "image fixture-app:latest (aarch64-linux): local",
        ]
    );
    // The same keys as before the build: a plan does not depend on what
    // the cache holds, only its sources do.
    let keys = |plan: &Value| -> Vec<Value> {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| node["key"].clone())
            .collect()
    };
    assert_eq!(keys(&cold), keys(&warm));
    // Planning twice gives the same bytes.
    let again = fixture.run(&xbuild, "plan", &["--json"]);
    assert_eq!(
        again.success().stdout,
        fixture.run(&xbuild, "plan", &["--json"]).stdout
    );
    let text = fixture.run(&xbuild, "plan", &[]);
    assert!(
        text.success()
            .stdout
            .ends_with("plan: 9 nodes needed: 9 local, 0 remote, 0 upstream (0 B), 0 to build\n"),
        "{text}"
    );
}

#[test]
fn require_hits_on_a_cold_cache_fails_before_downloading_anything_and_names_the_nodes() {
    let fixture = Fixture::hello();
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let refused = fixture.run(
        &xbuild,
        "build",
        &["--require-hits", "--out", out.path().to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(MISSING_HITS), "{refused}");
    let error: Vec<&str> = refused
        .stderr
        .lines()
        .skip_while(|line| !line.starts_with("error:"))
        .collect();
    assert_eq!(
        error[..8],
        [
            "error: --require-hits: 7 nodes are not in the cache:",
            "  layer merged-/usr symlinks for aarch64-linux: would be built; not in the cache",
            "  layer hello for aarch64-linux: would be built; not in the cache",
            "  layer hello-data for aarch64-linux: would be built; not in the cache",
            "  layer libc6 for aarch64-linux: would be built; not in the cache",
            "  layer libgreet for aarch64-linux: would be built; not in the cache",
            "  layer configure (aarch64-linux): would be built; not in the cache",
            "  image fixture-app:latest (aarch64-linux): would be built; made of nodes that miss",
        ],
        "{refused}"
    );
    assert!(
        error[8].starts_with("hint: nothing was fetched or built"),
        "{refused}"
    );
    // Nothing but the signed indices planning needs was fetched or kept:
    // no .deb requested, no blob besides the indices, no layer, no output.
    assert!(
        fixture.deb_requests().is_empty(),
        "{:?}",
        fixture.deb_requests()
    );
    let indices = fixture.index_digests();
    let blobs = all_files(&xbuild.cache_dir().join("blobs-v1"));
    assert!(!blobs.is_empty());
    for blob in &blobs {
        let name = blob.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            indices.contains(&name),
            "{} is not an index",
            blob.display()
        );
    }
    assert!(all_files(&xbuild.cache_dir().join("entries-v1/layer")).is_empty());
    assert!(!out.path().join("oci").exists());

    // With `all`, downloads are refused too.
    let refused = fixture.run(&xbuild, "build", &["--require-hits=all"]);
    assert_eq!(refused.status.code(), Some(MISSING_HITS), "{refused}");
    assert!(
        refused
            .stderr
            .contains("error: --require-hits=all: 11 nodes are not in the cache:\n  layer merged-/usr symlinks for aarch64-linux: would be built; not in the cache\n  deb hello_2.10-3_arm64.deb for aarch64-linux: would be downloaded; not in the cache\n"),
        "{refused}"
    );
    // `plan` prints the plan, then exits with the same status.
    let plan = fixture.run(&xbuild, "plan", &["--json", "--require-hits"]);
    assert_eq!(plan.status.code(), Some(MISSING_HITS), "{plan}");
    assert_eq!(plan.json()["nodes"].as_array().unwrap().len(), 13);
    assert!(fixture.deb_requests().is_empty());
}

#[test]
fn the_report_counts_nodes_by_source_cold_and_warm() {
    let fixture = Fixture::hello();
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let cold = fixture.build_json(&xbuild, out.path(), &[]);
    assert_eq!(
        report_rows(&cold),
        [
            "index fixture/InRelease: downloaded",
            "index fixture/main/binary-arm64/Packages.xz: downloaded",
            "layer merged-/usr symlinks: built",
            "deb hello_2.10-3_arm64.deb: downloaded",
            "layer hello: built",
            "deb hello-data_2.10-3_all.deb: downloaded",
            "layer hello-data: built",
            "deb libc6_2.36-9_arm64.deb: downloaded",
            "layer libc6: built",
            "deb libgreet_2.1-1_arm64.deb: downloaded",
            "layer libgreet: built",
            "layer configure (aarch64-linux): built",
            "image fixture-app:latest (aarch64-linux): built",
        ]
    );
    let summary = &cold["summary"];
    assert_eq!(
        [
            &summary["local"],
            &summary["remote"],
            &summary["downloaded"],
            &summary["built"]
        ],
        [0, 0, 6, 7],
        "{summary}"
    );
    let bytes = |report: &Value, outcome: &str| -> u64 {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|node| node["outcome"] == outcome)
            .map(|node| node["bytes"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(summary["bytes"]["downloaded"], bytes(&cold, "downloaded"));
    assert_eq!(summary["bytes_downloaded"], summary["bytes"]["downloaded"]);
    assert_eq!(summary["bytes"]["built"], bytes(&cold, "built"));
    assert_eq!(summary["bytes"]["local"], 0);
    assert_eq!(summary["bytes"]["remote"], 0);
    let inrelease = std::fs::metadata(fixture.archive.inrelease())
        .unwrap()
        .len();
    let debs: u64 = cold["targets"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| package["size"].as_u64().unwrap())
        .sum();
    assert!(
        summary["bytes"]["downloaded"].as_u64().unwrap() > debs + inrelease,
        "{summary}"
    );

    // Warm, with everything required to be a hit: every node it touches
    // is local, the image included, and the layers' recorded times are
    // what the hits saved.
    let warm = fixture.build_json(&xbuild, out.path(), &["--require-hits=all"]);
    assert_eq!(
        report_rows(&warm),
        [
            "index fixture/InRelease: local",
            "index fixture/main/binary-arm64/Packages.xz: local",
            "layer merged-/usr symlinks: local",
            "layer hello: local",
            "layer hello-data: local",
            "layer libc6: local",
            "layer libgreet: local",
            "layer configure (aarch64-linux): local",
            "image fixture-app:latest (aarch64-linux): local",
        ]
    );
    let summary = &warm["summary"];
    assert_eq!(
        [
            &summary["local"],
            &summary["remote"],
            &summary["downloaded"],
            &summary["built"]
        ],
        [9, 0, 0, 0],
        "{summary}"
    );
    assert_eq!(summary["bytes"]["local"], bytes(&warm, "local"));
    let layer_bytes: u64 = cold["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["size"].as_u64().unwrap())
        .sum();
    assert!(summary["bytes"]["local"].as_u64().unwrap() > layer_bytes);
    assert!(
        summary["saved_seconds"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert_eq!(
        cold["targets"][0]["manifest_digest"],
        warm["targets"][0]["manifest_digest"]
    );
    // The text says the same.
    let text = fixture.run(&xbuild, "build", &["--out", out.path().to_str().unwrap()]);
    assert!(
        text.success()
            .stderr
            .lines()
            .any(|line| line.starts_with("9 local, 0 downloaded (0 B), 0 built (0 B) in ")),
        "{text}"
    );

    // A new config over the same layers: a new image, written from hits
    // only, is no build.
    let manifest = std::fs::read_to_string(fixture.project.path().join("xbuild.toml")).unwrap();
    let changed = manifest.replace(r#"cmd = ["hello"]"#, r#"cmd = ["hello", "--version"]"#);
    assert_ne!(manifest, changed);
    fixture.project.write("xbuild.toml", changed.as_bytes());
    let recmd = fixture.build_json(&xbuild, out.path(), &["--require-hits=all"]);
    assert_ne!(
        recmd["targets"][0]["manifest_digest"],
        warm["targets"][0]["manifest_digest"]
    );
    assert_eq!(
        report_rows(&recmd).last().unwrap(),
        "image fixture-app:latest (aarch64-linux): local"
    );
    assert_eq!(recmd["summary"]["built"], 0, "{}", recmd["summary"]);
}
