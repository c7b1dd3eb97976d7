//! The plan of one target with two builds (an autotools build of a Debian
//! source package, a cargo build of a local directory), planned against a
//! real, empty cache: its edges, its sources, and its serialised form.

use super::*;
use crate::debian::source::{SourceFile, SourcePackage};
use crate::manifest::{BuildKind, CargoOptions, Manifest};
use crate::pipeline::realize::LayerRecord;
use crate::plan::{NoRemote, RequireHits};
use crate::platform::Platforms;
use std::path::PathBuf;

fn options() -> BuildOptions {
    let text = "[image]\nname = \"app\"\ncmd = [\"hello\"]\n[packages]\ninclude = [\"hello\"]\n";
    let manifest = Manifest::parse(text, std::path::Path::new("/tmp/xbuild.toml")).unwrap();
    let platforms = Platforms::builtin().unwrap();
    let host = platforms.host().unwrap().clone();
    let target = platforms.parse("aarch64-linux").unwrap().clone();
    BuildOptions::new(manifest, vec![target], host)
}

fn package(name: &str, architecture: &str) -> ResolvedPackage {
    ResolvedPackage {
        name: name.to_owned(),
        version: "1.0-1".to_owned(),
        architecture: architecture.to_owned(),
        filename: format!("pool/main/{name}_{architecture}.deb"),
        size: 1000,
        sha256: Sha256Digest::of(format!("{name} {architecture}").as_bytes()),
        installed_size_kib: Some(10),
        reason: "requested".to_owned(),
        source: format!("{name} 1.0-1"),
        built_using: None,
        origin: Default::default(),
    }
}

struct Fixture {
    options: BuildOptions,
    _dir: tempfile::TempDir,
    cache: Cache,
    targets: Vec<TargetResolution>,
    builds: Vec<Vec<PlannedBuild>>,
    rust: RustToolchain,
}

fn fixture() -> Fixture {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let platform = options.targets[0].clone();
    let host_arch = options.build_platform.debian_arch.clone();
    let sysroot = vec![package("libc6-dev", "arm64")];
    let target = TargetResolution {
        platform: platform.clone(),
        packages: vec![package("hello", "arm64"), package("hello-data", "all")],
        skipped: Vec::new(),
        choices: Vec::new(),
        sysroot: sysroot.clone(),
        notes: Vec::new(),
    };
    let toolchain = ToolchainPlan {
        platform: platform.clone(),
        packages: vec![
            package("gcc-12-aarch64-linux-gnu", &host_arch),
            package("binutils-aarch64-linux-gnu", &host_arch),
        ],
        key: Sha256Digest::of(b"toolchain"),
        name: format!("gcc {} → aarch64-linux", options.build_platform.name),
        identity: "gcc-12-cross 15 for aarch64-linux-gnu".to_owned(),
        provider: ToolchainProvider::Debian { native: false },
    };
    let sysroot = super::compile::SysrootPlan {
        packages: sysroot,
        key: Sha256Digest::of(b"sysroot"),
    };
    let debian_source = PlannedSource::Debian(SourcePackage {
        name: "hello".to_owned(),
        version: "2.10-3".to_owned(),
        directory: "pool/main/h/hello".to_owned(),
        files: vec![SourceFile {
            name: "hello_2.10.orig.tar.gz".to_owned(),
            size: 5000,
            sha256: Sha256Digest::of(b"orig"),
        }],
        format: "3.0 (quilt)".to_owned(),
        origin: 0,
    });
    let build = |name: &str, kind, source: PlannedSource| PlannedBuild {
        name: format!("{name} (aarch64-linux)"),
        kind,
        source,
        target_platform: platform.clone(),
        key: Sha256Digest::of(name.as_bytes()),
        inputs: vec![
            ("recipe".to_owned(), format!("{name}-v1")),
            ("target".to_owned(), "aarch64-linux".to_owned()),
        ],
        toolchain: toolchain.clone(),
        sysroot: Some(sysroot.clone()),
        cargo: CargoOptions::default(),
        build_script_variables: Vec::new(),
    };
    let builds = vec![vec![
        build(
            "autotools debian:hello=2.10-3",
            BuildKind::Autotools,
            debian_source,
        ),
        build(
            "cargo .",
            BuildKind::Cargo,
            PlannedSource::Path(PathBuf::from("/tmp/project")),
        ),
    ]];
    let rust = RustToolchain {
        rustc_version: "1.95.0 0000".to_owned(),
        host: "x86_64-unknown-linux-gnu".to_owned(),
        sysroot: PathBuf::from("/nonexistent/rust"),
        rustc: PathBuf::from("rustc"),
    };
    Fixture {
        options,
        _dir: dir,
        cache,
        targets: vec![target],
        builds,
        rust,
    }
}

fn release_index() -> IndexUse {
    IndexUse {
        name: "fixture/InRelease".to_owned(),
        target: None,
        digest: Sha256Digest::of(b"InRelease"),
        origin: BlobOrigin::Local,
        bytes: 0,
        seconds: 0.0,
    }
}

impl Fixture {
    fn plan_with(&self, remote: &dyn RemoteStatus) -> Plan {
        let indices = [release_index()];
        let inputs = PlanInputs {
            sources: Vec::new(),
            notes: Vec::new(),
            targets: &self.targets,
            indices: &indices,
            builds: &self.builds,
            rust: Some(&self.rust),
            suite_release: crate::configure::SuiteRelease {
                codename: "bookworm".to_owned(),
                version: Some("12.8".to_owned()),
            },
        };
        plan(&self.options, &self.cache, &inputs, remote).unwrap()
    }

    fn plan(&self) -> Plan {
        self.plan_with(&NoRemote)
    }
}

/// The names of a node's inputs.
fn input_names(plan: &Plan, node: &crate::plan::Node) -> Vec<String> {
    plan.inputs(node).map(|input| input.name.clone()).collect()
}

fn named<'a>(plan: &'a Plan, name: &str) -> &'a crate::plan::Node {
    plan.nodes
        .iter()
        .find(|node| node.name == name)
        .unwrap_or_else(|| panic!("no node {name} in {}", plan.to_json()))
}

#[test]
fn a_layer_depends_on_its_debs_and_a_build_on_its_compiler_sysroot_and_toolchain() {
    let fixture = fixture();
    let plan = fixture.plan();
    let host = &fixture.options.build_platform.name;
    let toolchain = format!("gcc {host} → aarch64-linux");
    let sysroot = "sysroot libc6-dev (aarch64-linux)";
    let compiler = format!("{toolchain} + {sysroot}");

    assert_eq!(
        input_names(&plan, named(&plan, "hello")),
        ["hello_1.0-1_arm64.deb"]
    );
    assert_eq!(
        input_names(&plan, named(&plan, &toolchain)),
        [
            format!(
                "gcc-12-aarch64-linux-gnu_1.0-1_{}.deb",
                fixture.options.build_platform.debian_arch
            ),
            format!(
                "binutils-aarch64-linux-gnu_1.0-1_{}.deb",
                fixture.options.build_platform.debian_arch
            ),
        ]
    );
    assert_eq!(
        input_names(&plan, named(&plan, sysroot)),
        ["libc6-dev_1.0-1_arm64.deb"]
    );
    assert_eq!(
        input_names(&plan, named(&plan, &compiler)),
        [toolchain.as_str(), sysroot]
    );
    assert_eq!(
        input_names(
            &plan,
            named(&plan, "autotools debian:hello=2.10-3 (aarch64-linux)")
        ),
        [compiler.as_str(), "source debian:hello=2.10-3"]
    );
    // A local directory is no node: its digest is among the key's inputs.
    assert_eq!(
        input_names(&plan, named(&plan, "cargo . (aarch64-linux)")),
        [compiler.as_str(), "rust-std aarch64-unknown-linux-gnu"]
    );
    let image = plan.node(plan.images[0].image);
    assert_eq!(
        input_names(&plan, image),
        [
            "merged-/usr symlinks",
            "hello",
            "hello-data",
            "configure (aarch64-linux)",
            "autotools debian:hello=2.10-3 (aarch64-linux)",
            "cargo . (aarch64-linux)"
        ]
    );
    // Every node's inputs come before it; the toolchain and sysroot are
    // one node each for both builds.
    for node in &plan.nodes {
        assert!(
            node.inputs.iter().all(|input| input.0 < node.id.0),
            "{node:?}"
        );
    }
    assert_eq!(
        plan.nodes
            .iter()
            .filter(
                |node| node.kind == NodeKind::Toolchain && node.provider == Provider::DebianCross
            )
            .count(),
        1
    );
    // Platforms: a compiler runs here and emits for the target; the
    // target's packages and builds run there.
    let toolchain = named(&plan, &toolchain);
    assert_eq!(toolchain.runs_on.as_deref(), Some(host.as_str()));
    assert_eq!(toolchain.emits_for.as_deref(), Some("aarch64-linux"));
    assert_eq!(
        named(&plan, "hello_1.0-1_arm64.deb").runs_on.as_deref(),
        Some("aarch64-linux")
    );
    assert_eq!(named(&plan, "hello-data_1.0-1_all.deb").runs_on, None);
    let rust = named(&plan, "rust-std aarch64-unknown-linux-gnu");
    assert_eq!(
        (rust.kind, rust.provider),
        (NodeKind::Toolchain, Provider::Rustup)
    );
}

#[test]
fn on_an_empty_cache_everything_is_downloaded_or_built_and_needed() {
    let fixture = fixture();
    let plan = fixture.plan();
    let summary: Vec<(NodeKind, NodeSource)> = plan
        .nodes
        .iter()
        .inspect(|node| assert!(node.needed, "{node:?}"))
        .map(|node| (node.kind, node.source))
        .collect();
    use NodeKind as K;
    use NodeSource as S;
    assert_eq!(
        summary,
        [
            (K::Index, S::Local),
            // Every suite's image starts with the merged-/usr symlinks.
            (K::Layer, S::Build),
            (K::Deb, S::Upstream),
            (K::Layer, S::Build),
            (K::Deb, S::Upstream),
            (K::Layer, S::Build),
            // The configure layer.
            (K::Layer, S::Build),
            (K::Deb, S::Upstream),
            (K::Deb, S::Upstream),
            (K::Toolchain, S::Build),
            (K::Deb, S::Upstream),
            (K::Sysroot, S::Build),
            (K::Compiler, S::Build),
            (K::Source, S::Upstream),
            (K::Build, S::Build),
            (K::Toolchain, S::Upstream),
            (K::Build, S::Build),
            (K::Image, S::Build),
        ]
    );
    assert_eq!(plan.download_bytes(), 5 * 1000 + 5000);
    let counted: Vec<&str> = plan
        .counted_builds()
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    assert_eq!(
        counted,
        [
            "autotools debian:hello=2.10-3 (aarch64-linux)",
            "cargo . (aarch64-linux)"
        ]
    );
    assert_eq!(plan.toolchain_builds().count(), 0);
    let misses = plan.missing_hits(RequireHits::Builds);
    // The merged-/usr layer and the configure layer among them: every
    // suite's image has both.
    assert_eq!(misses.len(), 10, "{misses:?}");
    assert_eq!(
        misses[misses.len() - 2].to_string(),
        "build cargo . (aarch64-linux): would be built; no build of this name in the cache"
    );
    assert_eq!(plan.missing_hits(RequireHits::All).len(), 10 + 7);
}

#[test]
fn a_cached_layer_is_a_local_hit_that_needs_none_of_its_debs() {
    let fixture = fixture();
    let cold = fixture.plan();
    let layer = named(&cold, "hello").key;
    let digest = fixture.cache.put_blob_bytes(b"a layer").unwrap();
    let record = LayerRecord {
        digest,
        diff_id: digest,
        size: 7,
        uncompressed_size: 7,
        skipped_scripts: Vec::new(),
        native_effects: Vec::new(),
        left_out_bytes: 0,
        seconds: 2.5,
    };
    // The configure layer, made from every .deb, is cached too.
    let configure = named(&cold, "configure (aarch64-linux)").key;
    for key in [layer, configure] {
        fixture
            .cache
            .put_entry(
                crate::cache::Bucket::Layer,
                &key,
                &record,
                crate::cache::EntryMeta::any(),
            )
            .unwrap();
    }
    let warm = fixture.plan();
    let node = named(&warm, "hello");
    assert_eq!((node.source, node.needed), (NodeSource::Local, true));
    // What the hit saves: the time writing the layer took.
    assert_eq!(node.cost.seconds, Some(2.5));
    let deb = named(&warm, "hello_1.0-1_arm64.deb");
    assert_eq!((deb.source, deb.needed), (NodeSource::Upstream, false));
    assert_eq!(deb.cost.download_bytes, 0);
    assert!(
        !warm
            .missing_hits(RequireHits::All)
            .iter()
            .any(|miss| miss.name == "hello" || miss.name == "hello_1.0-1_arm64.deb"),
    );
}

#[test]
fn a_build_a_remote_holds_needs_no_compiler() {
    let fixture = fixture();
    let remote = |nodes: &[crate::plan::NodeRef]| -> Vec<bool> {
        nodes
            .iter()
            .map(|node| node.kind == NodeKind::Build)
            .collect()
    };
    let plan = fixture.plan_with(&remote);
    for name in [
        "autotools debian:hello=2.10-3 (aarch64-linux)",
        "cargo . (aarch64-linux)",
    ] {
        assert_eq!(named(&plan, name).source, NodeSource::Remote);
    }
    for node in &plan.nodes {
        if matches!(
            node.kind,
            NodeKind::Toolchain | NodeKind::Sysroot | NodeKind::Compiler | NodeKind::Source
        ) {
            assert!(!node.needed, "{node:?}");
        }
    }
    assert!(plan.counted_builds().is_empty());
}

#[test]
fn planning_twice_gives_the_same_json_and_it_round_trips() {
    let fixture = fixture();
    let first = fixture.plan().to_json();
    assert_eq!(first, fixture.plan().to_json());
    let read: Plan = serde_json::from_str(&first).unwrap();
    assert_eq!(read.to_json(), first);
    // The parts realize needs survive: the build's compiler and sources.
    let build = read
        .nodes
        .iter()
        .find_map(|node| match &node.detail {
            Detail::Build { build } if build.kind == BuildKind::Autotools => Some(build),
            _ => None,
        })
        .unwrap();
    assert_eq!(build.toolchain.key, Sha256Digest::of(b"toolchain"));
    assert!(matches!(build.source, PlannedSource::Debian(_)));
}
