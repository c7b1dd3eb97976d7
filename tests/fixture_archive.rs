//! End-to-end tests of `xbuild` against a signed fixture archive served on
//! 127.0.0.1: no network, no root.
//!
//! The first group proves the fixture itself is a real signed Debian
//! archive (gpgv and apt-get accept it and reject its tampered variants),
//! independently of xbuild. The rest drive the binary: resolver cases,
//! tamper cases, the cache (warm rebuild, corruption), retries,
//! reproducibility, and the outputs as skopeo and umoci see them.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::archive::{ARCH, Archive, ArchiveBuilder, IndexCompression, SUITE, sha256_hex};
use support::files::{all_files, files_with_sha256, temp_leftovers};
use support::oci::{Layout, docker_archive_manifest, normalise};
use support::server::Server;
use support::xbuild::{
    FIXTURE_TARGET, Project, RunOutput, Xbuild, fixture_manifest, report_package_names,
    report_packages, repository_url, temp_dir,
};
use support::{exists, run_ok};

/// An archive and the server serving it (dropped server first).
struct Fixture {
    server: Server,
    archive: Archive,
}

impl Fixture {
    fn new(builder: ArchiveBuilder) -> Fixture {
        let archive = builder.build();
        let server = Server::serve(archive.root());
        Fixture { server, archive }
    }

    fn standard() -> Fixture {
        Fixture::new(ArchiveBuilder::standard())
    }

    fn project(&self, include: &[&str], extra_packages: &str) -> Project {
        Project::fixture(&self.archive, &self.server, include, extra_packages)
    }

    fn repository_url(&self) -> String {
        repository_url(&self.server)
    }

    fn inrelease_url(&self) -> String {
        format!("{}/dists/{SUITE}/InRelease", self.repository_url())
    }

    /// Paths of successful .deb downloads.
    fn deb_downloads(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|request| request.path.ends_with(".deb") && request.status == 200)
            .map(|request| request.path)
            .collect()
    }
}

fn build_ok(xbuild: &Xbuild, project: &Project, out: &Path) -> Value {
    xbuild
        .build(project.path(), out, &[FIXTURE_TARGET])
        .success()
        .json()
}

fn names(list: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().map(|name| (*name).to_owned()).collect();
    names.sort();
    names
}

fn host_platform() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

// ---------------------------------------------------------------------------
// The fixture itself, checked with gpgv and apt.
// ---------------------------------------------------------------------------

fn gpgv(keyring: &Path, inrelease: &Path) -> std::process::Output {
    Command::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .arg(inrelease)
        .output()
        .expect("run gpgv")
}

#[test]
fn fixture_inrelease_verifies_with_gpgv_and_its_broken_variants_do_not() {
    let good = ArchiveBuilder::standard().build();
    let output = gpgv(&good.keyring, &good.inrelease());
    assert!(
        output.status.success(),
        "gpgv rejects the fixture: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inrelease = fs::read_to_string(good.inrelease()).unwrap();
    assert!(inrelease.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n"));
    assert!(inrelease.contains("\nSHA256:\n"));
    assert!(inrelease.contains("main/binary-arm64/Packages.xz\n"));
    assert!(inrelease.contains("\nValid-Until: "));
    // The listed digest is the served file's.
    let xz = fs::read(good.index_dir().join("Packages.xz")).unwrap();
    assert!(inrelease.contains(&format!(" {} ", sha256_hex(&xz))));

    good.break_signature();
    let output = gpgv(&good.keyring, &good.inrelease());
    assert!(!output.status.success(), "gpgv accepts a flipped character");
    assert!(String::from_utf8_lossy(&output.stderr).contains("BAD signature"));

    let unknown = ArchiveBuilder::standard().signed_by_unknown_key().build();
    assert!(
        !gpgv(&unknown.keyring, &unknown.inrelease())
            .status
            .success()
    );
    assert!(
        gpgv(&unknown.unknown_keyring, &unknown.inrelease())
            .status
            .success()
    );

    // Expiry is not the signature's business: gpgv accepts it, apt must not.
    let expired = ArchiveBuilder::standard().expired().build();
    assert!(
        gpgv(&expired.keyring, &expired.inrelease())
            .status
            .success()
    );
}

/// apt-get and apt-cache confined to a temp dir, for arm64.
struct Apt {
    dir: tempfile::TempDir,
}

impl Apt {
    fn new(repository_url: &str, keyring: &Path) -> Apt {
        let dir = temp_dir("xbuild-apt-");
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "download",
            "parts",
        ] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("status"), b"").unwrap();
        // Keep the host's apt.conf.d out: some hosts turn checks off there.
        fs::write(
            dir.path().join("apt.conf"),
            format!(
                "Dir::Etc::parts \"{}/parts\";\nDir::Etc::main \"/dev/null\";\n",
                dir.path().display()
            ),
        )
        .unwrap();
        fs::write(
            dir.path().join("sources.list"),
            format!(
                "deb [signed-by={}] {repository_url} {SUITE} main\n",
                keyring.display()
            ),
        )
        .unwrap();
        Apt { dir }
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let dir = self.dir.path().display();
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path().join("download"))
            .env("APT_CONFIG", self.dir.path().join("apt.conf"));
        for option in [
            format!("Dir::State={dir}/state"),
            format!("Dir::State::status={dir}/status"),
            format!("Dir::Cache={dir}/cache"),
            format!("Dir::Etc::SourceList={dir}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("APT::Architecture={ARCH}"),
            format!("APT::Architectures={ARCH}"),
            "Debug::NoLocking=1".to_owned(),
            "APT::Sandbox::User=root".to_owned(),
            "Acquire::Languages=none".to_owned(),
            "Acquire::Retries=0".to_owned(),
        ] {
            command.arg("-o").arg(option);
        }
        command.args(args);
        command.output().expect("run apt")
    }
}

fn combined(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn fixture_archive_is_accepted_by_apt_get() {
    let fixture = Fixture::standard();
    let apt = Apt::new(&fixture.repository_url(), &fixture.archive.keyring);
    let update = apt.run("apt-get", &["update"]);
    let text = combined(&update);
    assert!(update.status.success(), "apt-get update failed:\n{text}");
    assert!(
        !text.contains("W:") && !text.contains("E:"),
        "apt-get update warned:\n{text}"
    );

    let show = apt.run("apt-cache", &["show", "hello"]);
    let text = combined(&show);
    assert!(show.status.success(), "{text}");
    assert!(text.contains("Version: 2.10-3"), "{text}");
    assert!(text.contains("Pre-Depends: dpkg (>= 1.19)"), "{text}");
    let policy = combined(&apt.run("apt-cache", &["policy", "libgreet"]));
    assert!(
        policy.contains("Candidate: 2.1-1") && policy.contains("1.0-1"),
        "{policy}"
    );
    let virtual_package = combined(&apt.run("apt-cache", &["showpkg", "mail-transport-agent"]));
    assert!(virtual_package.contains("tiny-mta"), "{virtual_package}");

    // apt-get download checks the .deb against Packages.
    let download = apt.run("apt-get", &["download", "hello", "hello-data"]);
    assert!(download.status.success(), "{}", combined(&download));
    let hello = fixture.archive.deb("hello");
    let fetched = fs::read(apt.dir.path().join("download/hello_2.10-3_arm64.deb")).unwrap();
    assert_eq!(sha256_hex(&fetched), hello.sha256);
    let contents = run_ok(
        Command::new("dpkg-deb")
            .arg("--contents")
            .arg(apt.dir.path().join("download/hello_2.10-3_arm64.deb")),
    );
    assert!(contents.contains("-rwxr-xr-x root/root"), "{contents}");
    assert!(
        contents.contains("./usr/bin/hello-link -> hello"),
        "{contents}"
    );
    assert!(
        contents.contains("./usr/share/doc/hello/README"),
        "{contents}"
    );
}

#[test]
fn apt_get_rejects_the_tampered_variants_of_the_fixture() {
    // Tampered Packages: hash mismatch at update.
    let fixture = Fixture::standard();
    fixture.archive.tamper_packages();
    let apt = Apt::new(&fixture.repository_url(), &fixture.archive.keyring);
    let update = apt.run("apt-get", &["update"]);
    let text = combined(&update);
    assert!(
        !update.status.success() || text.contains("E:"),
        "apt accepted tampered Packages:\n{text}"
    );
    assert!(
        text.contains("Hash Sum mismatch") || text.contains("unexpected size"),
        "{text}"
    );

    // Tampered .deb: hash mismatch at download.
    let fixture = Fixture::standard();
    let hello = fixture.archive.deb("hello").clone();
    let tampered = fixture.archive.tamper_deb(&hello);
    assert_ne!(tampered, hello.sha256);
    assert_eq!(
        fs::metadata(fixture.archive.deb_path(&hello))
            .unwrap()
            .len(),
        hello.size
    );
    let apt = Apt::new(&fixture.repository_url(), &fixture.archive.keyring);
    assert!(apt.run("apt-get", &["update"]).status.success());
    let download = apt.run("apt-get", &["download", "hello"]);
    let text = combined(&download);
    assert!(
        !download.status.success(),
        "apt accepted a tampered .deb:\n{text}"
    );
    assert!(text.contains("Hash Sum mismatch"), "{text}");

    // Expired Valid-Until.
    let fixture = Fixture::new(ArchiveBuilder::standard().expired());
    let apt = Apt::new(&fixture.repository_url(), &fixture.archive.keyring);
    let text = combined(&apt.run("apt-get", &["update"]));
    assert!(
        text.contains("expired"),
        "apt accepted an expired Release:\n{text}"
    );

    // Bad signature and unknown key.
    for fixture in [
        {
            let fixture = Fixture::standard();
            fixture.archive.break_signature();
            fixture
        },
        Fixture::new(ArchiveBuilder::standard().signed_by_unknown_key()),
    ] {
        let apt = Apt::new(&fixture.repository_url(), &fixture.archive.keyring);
        let text = combined(&apt.run("apt-get", &["update"]));
        assert!(
            text.contains("is not signed")
                || text.contains("signatures were invalid")
                || text.contains("NO_PUBKEY")
                || text.contains("BADSIG"),
            "apt accepted a badly signed InRelease:\n{text}"
        );
    }
}

#[test]
fn fixture_server_revalidates_logs_and_fails_on_request() {
    let fixture = Fixture::standard();
    let server = &fixture.server;
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/dists/{SUITE}/InRelease", fixture.repository_url());

    let first = client.get(&url).send().unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        first.bytes().unwrap(),
        fs::read(fixture.archive.inrelease()).unwrap()
    );

    let by_etag = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(by_etag.status().as_u16(), 304);
    let by_date = client
        .get(&url)
        .header("If-Modified-Since", &last_modified)
        .send()
        .unwrap();
    assert_eq!(by_date.status().as_u16(), 304);
    let stale = client
        .get(&url)
        .header("If-None-Match", "\"other\"")
        .send()
        .unwrap();
    assert_eq!(stale.status().as_u16(), 200);

    server.fail_next(2);
    let statuses: Vec<u16> = (0..3)
        .map(|_| client.get(&url).send().unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    server.fail_next_matching(".deb", 1);
    assert_eq!(client.get(&url).send().unwrap().status().as_u16(), 200);
    let deb_url = server.url(&format!("debian/{}", fixture.archive.deb("hello").filename));
    assert_eq!(client.get(&deb_url).send().unwrap().status().as_u16(), 503);
    assert_eq!(client.get(&deb_url).send().unwrap().status().as_u16(), 200);
    let missing = client.get(server.url("debian/nope")).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let escape = client
        .get(server.url("debian/../../etc/passwd"))
        .send()
        .unwrap();
    assert_ne!(escape.status().as_u16(), 200);

    let log = server.requests();
    let statuses: Vec<u16> = log.iter().map(|request| request.status).collect();
    assert_eq!(
        statuses[..10],
        [200, 304, 304, 200, 503, 503, 200, 200, 503, 200]
    );
    assert!(log[1].conditional && !log[0].conditional);
    assert_eq!(log[0].method, "GET");
    assert!(log[0].path.ends_with("/InRelease"));
    server.clear_log();
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------
// A build, and what it writes.
// ---------------------------------------------------------------------------

#[test]
fn build_writes_oci_layout_docker_archive_and_report() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let report = build_ok(&xbuild, &project, out.path());

    assert_eq!(report["build_platform"], host_platform());
    let target = &report["targets"][0];
    assert_eq!(target["target"], FIXTURE_TARGET);
    assert_eq!(
        report_packages(&report),
        [
            ("hello".into(), "2.10-3".into(), "downloaded".into()),
            ("hello-data".into(), "2.10-3".into(), "downloaded".into()),
            ("libc6".into(), "2.36-9".into(), "downloaded".into()),
            ("libgreet".into(), "2.1-1".into(), "downloaded".into()),
        ]
    );
    for package in target["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let deb = fixture
            .archive
            .deb_version(name, package["version"].as_str().unwrap());
        assert_eq!(package["size"], deb.size, "{package}");
        let reason = package["reason"].as_str().unwrap_or_default();
        if name == "hello" {
            assert_eq!(reason, "requested");
        } else {
            assert!(
                reason.contains("hello") || reason.contains("libgreet"),
                "{package}"
            );
        }
    }
    // Only the closure's .debs were fetched, each once.
    let mut fetched = fixture.deb_downloads();
    fetched.sort();
    let mut expected: Vec<String> = ["hello", "hello-data", "libc6"]
        .iter()
        .map(|name| format!("/debian/{}", fixture.archive.deb(name).filename))
        .chain([format!(
            "/debian/{}",
            fixture.archive.deb_version("libgreet", "2.1-1").filename
        )])
        .collect();
    expected.sort();
    assert_eq!(fetched, expected);

    let summary = &report["summary"];
    assert_eq!(summary["remote"], 0);
    let deb_bytes: u64 = fixture
        .archive
        .debs
        .iter()
        .filter(|deb| expected.contains(&format!("/debian/{}", deb.filename)))
        .map(|deb| deb.size)
        .sum();
    assert!(
        summary["bytes_downloaded"].as_u64().unwrap() >= deb_bytes,
        "{summary}"
    );
    assert!(summary["downloaded"].as_u64().unwrap() >= 4, "{summary}");
    assert!(summary["built"].as_u64().unwrap() >= 1, "{summary}");
    let layer_packages: Vec<String> = {
        let mut all: Vec<String> = target["layers"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|layer| assert_eq!(layer["outcome"], "built", "{layer}"))
            .flat_map(|layer| layer["packages"].as_array().unwrap().clone())
            .map(|name| name.as_str().unwrap().to_owned())
            // The configure layer is made from every package (see
            // tests/configure.rs).
            .filter(|name| name != "configure")
            .collect();
        all.sort();
        all
    };
    // Every suite's image starts with the merged-/usr symlinks.
    assert_eq!(
        layer_packages,
        names(&[
            "hello",
            "hello-data",
            "libc6",
            "libgreet",
            "merged-/usr symlinks"
        ])
    );
    let node_kinds: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["kind"].as_str().unwrap())
        .collect();
    for kind in ["index", "deb", "layer", "image"] {
        assert!(
            node_kinds.contains(&kind),
            "no {kind} node in {}",
            report["nodes"]
        );
    }
    for phase in ["resolve", "fetch", "layers", "assemble"] {
        assert!(report["phases"][phase].is_number(), "no phase {phase}");
    }

    // The OCI layout.
    let layout = Layout::open(out.path());
    let index = layout.index();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(layout.manifest_descriptors().len(), 1);
    let (descriptor, manifest) = layout.manifest_for("arm64");
    assert_eq!(descriptor["digest"], target["manifest_digest"]);
    assert_eq!(descriptor["platform"]["os"], "linux");
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        descriptor["annotations"]["io.containerd.image.name"],
        "fixture-app:latest"
    );
    let config = layout.config(&manifest);
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["hello"]));
    let manifest_layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        manifest_layers.len(),
        target["layers"].as_array().unwrap().len()
    );
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        manifest_layers.len()
    );
    for (layer, diff_id) in manifest_layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        let tar = layout.layer_tar(layer);
        assert_eq!(
            diff_id.as_str().unwrap(),
            format!("sha256:{}", sha256_hex(&tar))
        );
    }

    // The files of the packages, with their modes and owners.
    let entries: Vec<_> = manifest_layers
        .iter()
        .flat_map(|layer| layout.layer_entries(layer))
        .collect();
    let find = |path: &str| {
        entries
            .iter()
            .find(|entry| entry.path == path)
            .unwrap_or_else(|| panic!("no {path} in the image"))
    };
    let script = find("usr/bin/hello");
    assert_eq!(script.mode & 0o777, 0o755);
    assert_eq!(script.contents, b"#!/bin/sh\necho 'hello 2.10-3'\n");
    assert_eq!(
        find("usr/bin/hello-link").link_target.as_deref(),
        Some("hello")
    );
    assert_eq!(find("etc/hello.conf").mode & 0o777, 0o644);
    // Small by default: documentation is left out (tests/small_images.rs).
    assert!(
        !entries
            .iter()
            .any(|entry| entry.path == "usr/share/doc/libgreet/README")
    );
    assert_eq!(find("etc/hello.conf").contents, b"greeting = hello\n");
    assert!(entries.iter().all(|entry| entry.uid == 0 && entry.gid == 0));
    assert!(!entries.iter().any(|entry| entry.path.starts_with("DEBIAN")));

    // The docker-archive.
    let docker_archive = out.path().join(format!("{FIXTURE_TARGET}.tar"));
    assert_eq!(
        Path::new(target["docker_archive"].as_str().unwrap()),
        docker_archive
    );
    let docker_manifest = docker_archive_manifest(&docker_archive);
    assert_eq!(
        docker_manifest[0]["RepoTags"],
        serde_json::json!(["fixture-app:latest"])
    );
    assert_eq!(
        docker_manifest[0]["Layers"].as_array().unwrap().len(),
        manifest_layers.len()
    );
    assert!(temp_leftovers(xbuild.cache_dir()).is_empty());
    assert!(temp_leftovers(out.path()).is_empty());
}

#[test]
fn out_defaults_to_result_in_the_project_dir_and_cache_dir_flag_is_honoured() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["tiny-mta"], "");
    let xbuild = Xbuild::new();
    let cache = temp_dir("xbuild-cache-flag-");
    let mut command = xbuild.command();
    // The flag wins over XBUILD_CACHE_DIR (set by `command()`).
    command
        .arg("build")
        .arg(project.path())
        .args(["--target", FIXTURE_TARGET, "--cache-dir"])
        .arg(cache.path());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", combined(&output));
    assert!(project.path().join("result/oci/index.json").is_file());
    assert!(
        project
            .path()
            .join(format!("result/{FIXTURE_TARGET}.tar"))
            .is_file()
    );
    let tiny_mta = fixture.archive.deb("tiny-mta");
    assert!(!files_with_sha256(cache.path(), std::slice::from_ref(&tiny_mta.sha256)).is_empty());
    assert!(
        all_files(xbuild.cache_dir()).is_empty(),
        "the env cache dir was used"
    );
}

#[test]
fn layers_carry_dpkg_status_entries() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let out = temp_dir("xbuild-out-");
    let report = build_ok(&Xbuild::new(), &project, out.path());
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    let entries: Vec<_> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|layer| layout.layer_entries(layer))
        .collect();
    for (name, version, _) in report_packages(&report) {
        let path = format!("var/lib/dpkg/status.d/{name}");
        let entry = entries
            .iter()
            .find(|entry| entry.path == path)
            .unwrap_or_else(|| panic!("no {path} in the image"));
        let text = String::from_utf8_lossy(&entry.contents);
        assert!(
            text.contains(&format!("Package: {name}\n")),
            "{path}: {text}"
        );
        assert!(
            text.contains(&format!("Version: {version}\n")),
            "{path}: {text}"
        );
        assert!(text.contains("Architecture: "), "{path}: {text}");
    }
    // Each package layer holds the status entry of its own packages (the
    // first, the merged-/usr symlinks, has none).
    let target = &report["targets"][0];
    let layers = target["layers"].as_array().unwrap();
    assert_eq!(layers[0]["packages"][0], "merged-/usr symlinks");
    for layer in &layers[1..] {
        if layer["packages"] == serde_json::json!(["configure"]) {
            continue;
        }
        let descriptor = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|descriptor| descriptor["digest"] == layer["digest"])
            .unwrap_or_else(|| panic!("report layer {layer} is not in the manifest"));
        let entries = layout.layer_entries(descriptor);
        for name in layer["packages"].as_array().unwrap() {
            let path = format!("var/lib/dpkg/status.d/{}", name.as_str().unwrap());
            assert!(
                entries.iter().any(|entry| entry.path == path),
                "{path} not in its layer"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The resolver, through the CLI.
// ---------------------------------------------------------------------------

#[test]
fn versioned_constraint_picks_the_older_matching_version() {
    let fixture = Fixture::standard();
    let out = temp_dir("xbuild-out-");
    let report = build_ok(
        &Xbuild::new(),
        &fixture.project(&["oldapp"], ""),
        out.path(),
    );
    let packages = report_packages(&report);
    assert!(
        packages.contains(&("libgreet".into(), "1.0-1".into(), "downloaded".into())),
        "{packages:?}"
    );
    assert!(
        !packages
            .iter()
            .any(|(name, version, _)| name == "libgreet" && version == "2.1-1")
    );
    assert_eq!(
        report_package_names(&report),
        names(&["libc6", "libgreet", "oldapp"])
    );
}

#[test]
fn alternatives_take_the_first_installable_choice() {
    let fixture = Fixture::standard();
    let out = temp_dir("xbuild-out-");
    let report = build_ok(
        &Xbuild::new(),
        &fixture.project(&["alt-app"], ""),
        out.path(),
    );
    assert_eq!(
        report_package_names(&report),
        names(&["alt-app", "alt-b", "alt-c"])
    );
}

#[test]
fn virtual_package_resolves_to_its_provider() {
    let fixture = Fixture::standard();
    let out = temp_dir("xbuild-out-");
    let report = build_ok(
        &Xbuild::new(),
        &fixture.project(&["virt-app"], ""),
        out.path(),
    );
    assert_eq!(
        report_package_names(&report),
        names(&["tiny-mta", "virt-app"])
    );
}

#[test]
fn exclude_leaves_a_package_out() {
    let fixture = Fixture::standard();
    let out = temp_dir("xbuild-out-");
    let project = fixture.project(&["hello"], r#"exclude = ["hello-data"]"#);
    let report = build_ok(&Xbuild::new(), &project, out.path());
    assert_eq!(
        report_package_names(&report),
        names(&["hello", "libc6", "libgreet"])
    );
    assert!(
        !fixture
            .deb_downloads()
            .iter()
            .any(|path| path.contains("hello-data"))
    );
}

#[test]
fn pre_depends_on_dpkg_are_left_out_unless_install_time_dependencies_is_set() {
    let fixture = Fixture::standard();
    let out = temp_dir("xbuild-out-");
    let report = build_ok(&Xbuild::new(), &fixture.project(&["hello"], ""), out.path());
    let packages = report_package_names(&report);
    assert!(!packages.contains(&"dpkg".to_owned()) && !packages.contains(&"tar".to_owned()));

    let out = temp_dir("xbuild-out-");
    let project = fixture.project(&["hello"], "install-time-dependencies = true");
    let report = build_ok(&Xbuild::new(), &project, out.path());
    assert_eq!(
        report_package_names(&report),
        names(&["dpkg", "hello", "hello-data", "libc6", "libgreet", "tar"])
    );
}

#[test]
fn unsatisfiable_dependency_fails_naming_the_chain() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["broken-app"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    run.failure();
    for name in ["broken-app", "broken-mid", "no-such-lib"] {
        assert!(
            run.stderr.contains(name),
            "{name} missing from the error:\n{run}"
        );
    }
    assert!(!exists(&out.path().join("oci")));
    assert!(
        fixture.deb_downloads().is_empty(),
        "downloaded .debs for a failed resolve"
    );
}

#[test]
fn unknown_package_fails_naming_it() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello", "no-such-package"], "");
    let run = Xbuild::new().build(
        project.path(),
        temp_dir("xbuild-out-").path(),
        &[FIXTURE_TARGET],
    );
    run.failure();
    assert!(run.stderr.contains("no-such-package"), "{run}");
}

// ---------------------------------------------------------------------------
// Tampering: each is refused, named, and leaves nothing behind.
// ---------------------------------------------------------------------------

/// Uncompressed tar bytes of a cache file that is a (gzip or zstd
/// compressed) tarball, if it is one.
fn as_tar(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut tar = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut tar)
            .ok()?;
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .ok()?
            .read_to_end(&mut tar)
            .ok()?;
    } else {
        tar = bytes.to_vec();
    }
    (tar.len() >= 512 && &tar[257..262] == b"ustar").then_some(tar)
}

/// Cache files that are tarballs (layers) holding `path`.
fn cached_layers_with(cache: &Path, path: &str) -> Vec<std::path::PathBuf> {
    all_files(cache)
        .into_iter()
        .filter(|file| {
            fs::read(file)
                .ok()
                .and_then(|bytes| as_tar(&bytes))
                .is_some_and(|tar| {
                    support::oci::tar_entries(&tar)
                        .iter()
                        .any(|entry| entry.path == path)
                })
        })
        .collect()
}

/// The build failed without leaving outputs, temp files, a layer with
/// `usr/bin/hello`, or any file whose sha256 is one of `tampered` in the
/// cache.
fn assert_nothing_kept(run: &RunOutput, xbuild: &Xbuild, out: &Path, tampered: &[String]) {
    run.failure();
    let kept = files_with_sha256(xbuild.cache_dir(), tampered);
    assert!(
        kept.is_empty(),
        "tampered content kept in the cache: {kept:?}\n{run}"
    );
    let leftovers = temp_leftovers(xbuild.cache_dir());
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
    assert!(!exists(&out.join("oci")), "an OCI layout was written");
    assert!(
        !exists(&out.join(format!("{FIXTURE_TARGET}.tar"))),
        "a docker-archive was written"
    );
    let layers = cached_layers_with(xbuild.cache_dir(), "usr/bin/hello");
    assert!(layers.is_empty(), "a layer of hello was cached: {layers:?}");
}

#[test]
fn tampered_packages_index_is_refused_naming_its_url() {
    let fixture = Fixture::standard();
    let tampered = fixture.archive.tamper_packages();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    assert_nothing_kept(&run, &xbuild, out.path(), &tampered);
    let index_url = format!(
        "{}/dists/{SUITE}/main/binary-arm64/Packages",
        fixture.repository_url()
    );
    assert!(
        run.stderr.contains(&index_url),
        "the error does not name {index_url}:\n{run}"
    );
    assert!(fixture.deb_downloads().is_empty());
}

#[test]
fn tampered_deb_is_refused_naming_package_and_digest() {
    let fixture = Fixture::standard();
    let hello = fixture.archive.deb("hello").clone();
    let tampered = fixture.archive.tamper_deb(&hello);
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    assert_nothing_kept(&run, &xbuild, out.path(), std::slice::from_ref(&tampered));
    assert!(run.stderr.contains("hello"), "{run}");
    assert!(
        run.stderr.contains(&hello.sha256) || run.stderr.contains(&tampered),
        "the error names neither the expected nor the actual digest:\n{run}"
    );
}

#[test]
fn bad_signature_is_refused_naming_the_inrelease_url() {
    let fixture = Fixture::standard();
    let broken = fixture.archive.break_signature();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    assert_nothing_kept(&run, &xbuild, out.path(), &[broken]);
    assert!(run.stderr.contains(&fixture.inrelease_url()), "{run}");
    let fetched_indices = fixture
        .server
        .requests()
        .iter()
        .any(|request| request.path.contains("binary-") || request.path.ends_with(".deb"));
    assert!(
        !fetched_indices,
        "went on past a bad signature: {:?}",
        fixture.server.requests()
    );
}

#[test]
fn expired_release_is_refused_naming_the_inrelease_url() {
    let fixture = Fixture::new(ArchiveBuilder::standard().expired());
    let inrelease = sha256_hex(&fs::read(fixture.archive.inrelease()).unwrap());
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    assert_nothing_kept(&run, &xbuild, out.path(), &[inrelease]);
    assert!(run.stderr.contains(&fixture.inrelease_url()), "{run}");
    let lower = run.stderr.to_ascii_lowercase();
    assert!(
        lower.contains("expired") || lower.contains("valid-until"),
        "{run}"
    );
}

#[test]
fn release_signed_by_an_unknown_key_is_refused() {
    let fixture = Fixture::new(ArchiveBuilder::standard().signed_by_unknown_key());
    let inrelease = sha256_hex(&fs::read(fixture.archive.inrelease()).unwrap());
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let out = temp_dir("xbuild-out-");
    let run = xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET]);
    assert_nothing_kept(&run, &xbuild, out.path(), &[inrelease]);
    assert!(run.stderr.contains(&fixture.inrelease_url()), "{run}");
}

#[test]
fn missing_keyring_is_an_error_naming_the_file() {
    let fixture = Fixture::standard();
    let manifest = fixture_manifest(&fixture.repository_url(), &["hello"], "")
        .replace("fixture-key.gpg", "missing-key.gpg");
    let project = Project::new(&manifest);
    let run = Xbuild::new().build(
        project.path(),
        temp_dir("xbuild-out-").path(),
        &[FIXTURE_TARGET],
    );
    run.failure();
    assert!(run.stderr.contains("missing-key.gpg"), "{run}");
}

// ---------------------------------------------------------------------------
// The cache.
// ---------------------------------------------------------------------------

fn layer_outcomes(report: &Value) -> Vec<String> {
    report["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn warm_rebuild_downloads_nothing_and_reports_everything_local() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let first_out = temp_dir("xbuild-out-");
    let first = build_ok(&xbuild, &project, first_out.path());
    fixture.server.clear_log();

    let second_out = temp_dir("xbuild-out-");
    let second = build_ok(&xbuild, &project, second_out.path());
    for request in fixture.server.requests() {
        assert!(
            request.path.ends_with("/InRelease") && request.status == 304 && request.conditional,
            "a warm build made a request other than a revalidation: {request:?}"
        );
    }
    assert!(
        report_packages(&second)
            .iter()
            .all(|(_, _, outcome)| outcome == "local"),
        "{:?}",
        report_packages(&second)
    );
    assert!(
        layer_outcomes(&second)
            .iter()
            .all(|outcome| outcome == "local")
    );
    assert_eq!(second["summary"]["downloaded"], 0);
    assert_eq!(second["summary"]["bytes_downloaded"], 0);
    for node in second["nodes"].as_array().unwrap() {
        if ["index", "deb", "layer"].contains(&node["kind"].as_str().unwrap_or_default()) {
            assert_eq!(node["outcome"], "local", "{node}");
        }
    }
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
    assert_eq!(
        Layout::open(first_out.path()).index_bytes(),
        Layout::open(second_out.path()).index_bytes()
    );
}

#[test]
fn builds_from_two_empty_caches_are_identical() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello", "virt-app"], "");
    let first_out = temp_dir("xbuild-out-");
    let first = build_ok(&Xbuild::new(), &project, first_out.path());
    // A clock leaking into the output would show in a different second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second_out = temp_dir("xbuild-out-");
    let second = build_ok(&Xbuild::new(), &project, second_out.path());
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
    let first_layout = Layout::open(first_out.path());
    assert_eq!(
        first_layout.index_bytes(),
        Layout::open(second_out.path()).index_bytes()
    );
    let archive_name = format!("{FIXTURE_TARGET}.tar");
    assert_eq!(
        sha256_hex(&fs::read(first_out.path().join(&archive_name)).unwrap()),
        sha256_hex(&fs::read(second_out.path().join(&archive_name)).unwrap()),
        "docker-archives differ"
    );
}

#[test]
fn source_date_epoch_dates_the_image_and_leaves_package_layers_alone() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    // Older than the files in the fixture .debs (DEB_EPOCH).
    let epoch = 1_600_000_000u64;
    let build = |epoch: u64| {
        let out = temp_dir("xbuild-out-");
        let xbuild = Xbuild::new().with_env("SOURCE_DATE_EPOCH", &epoch.to_string());
        let report = build_ok(&xbuild, &project, out.path());
        (out, report)
    };
    let (out, report) = build(epoch);
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    let config = layout.config(&manifest);
    assert!(
        config["created"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2020-09-13T12:26:40"),
        "created: {}",
        config["created"]
    );
    // A package's files keep the times they have in its .deb (fixed bytes:
    // the layer is the same whatever the build's epoch). The first layer,
    // the merged-/usr symlinks, has fixed times of its own; the configure
    // layer's are 0, for the same reason.
    let configure = report["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|layer| layer["packages"] == serde_json::json!(["configure"]))
        .map(|layer| layer["digest"].clone())
        .expect("a configure layer");
    for layer in &manifest["layers"].as_array().unwrap()[1..] {
        if layer["digest"] == configure {
            for entry in layout.layer_entries(layer) {
                assert_eq!(entry.mtime, 0, "{}", entry.path);
            }
            continue;
        }
        for entry in layout.layer_entries(layer) {
            assert_eq!(
                entry.mtime,
                support::archive::DEB_EPOCH,
                "{} has mtime {}",
                entry.path,
                entry.mtime
            );
        }
    }
    let (_, other) = build(epoch + 1_000_000);
    let digests = |report: &serde_json::Value| -> Vec<String> {
        report["targets"][0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(digests(&report), digests(&other));
    assert_ne!(
        report["targets"][0]["manifest_digest"], other["targets"][0]["manifest_digest"],
        "the image's date is in its config"
    );
}

#[test]
fn transient_503s_are_retried() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    fixture.server.fail_next(2);
    fixture.server.fail_next_matching(".deb", 2);
    let out = temp_dir("xbuild-out-");
    let report = build_ok(&Xbuild::new(), &project, out.path());
    assert_eq!(
        report_package_names(&report),
        names(&["hello", "hello-data", "libc6", "libgreet"])
    );
    let log = fixture.server.requests();
    let failed: Vec<_> = log.iter().filter(|request| request.status == 503).collect();
    assert_eq!(failed.len(), 4, "{log:?}");
    // Every path that failed was fetched afterwards.
    for failure in failed {
        assert!(
            log.iter()
                .any(|request| request.path == failure.path && request.status == 200),
            "{} never succeeded",
            failure.path
        );
    }
}

/// Overwrites every cache file whose content hashes to one of `digests`;
/// returns the garbage's sha256.
fn corrupt_cached(xbuild: &Xbuild, digests: &[String]) -> String {
    let victims = files_with_sha256(xbuild.cache_dir(), digests);
    assert!(
        !victims.is_empty(),
        "no cache file holds any of {digests:?}"
    );
    let garbage = b"this is not what was stored here\n".repeat(10);
    for victim in &victims {
        let mut permissions = fs::metadata(victim).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs::set_permissions(victim, permissions).unwrap();
        fs::write(victim, &garbage).unwrap();
    }
    sha256_hex(&garbage)
}

fn hello_layer_digests(report: &Value) -> Vec<String> {
    report["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| {
            layer["packages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|name| name == "hello")
        })
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn corrupt_cached_deb_and_layer_are_dropped_and_fetched_again() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let first = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    let hello = fixture.archive.deb("hello").clone();
    let mut digests = hello_layer_digests(&first);
    digests.push(hello.sha256.clone());
    let garbage = corrupt_cached(&xbuild, &digests);
    fixture.server.clear_log();

    let second = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    assert_eq!(
        fixture.deb_downloads(),
        [format!("/debian/{}", hello.filename)]
    );
    let packages = report_packages(&second);
    assert!(
        packages.contains(&("hello".into(), "2.10-3".into(), "downloaded".into())),
        "{packages:?}"
    );
    assert!(
        files_with_sha256(xbuild.cache_dir(), &[garbage]).is_empty(),
        "garbage still cached"
    );
    assert!(!files_with_sha256(xbuild.cache_dir(), &[hello.sha256]).is_empty());
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
}

#[test]
fn corrupt_cached_layer_is_rebuilt_from_the_cached_deb() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let first = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    let garbage = corrupt_cached(&xbuild, &hello_layer_digests(&first));
    fixture.server.clear_log();

    let second = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    assert!(
        fixture.deb_downloads().is_empty(),
        "the .deb was cached and fine"
    );
    assert!(layer_outcomes(&second).contains(&"built".to_owned()));
    assert!(
        files_with_sha256(xbuild.cache_dir(), &[garbage]).is_empty(),
        "garbage still cached"
    );
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
}

// ---------------------------------------------------------------------------
// plan, targets, and repository configuration.
// ---------------------------------------------------------------------------

fn json_strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| json_strings(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| json_strings(item, into)),
        _ => {}
    }
}

#[test]
fn plan_lists_packages_and_downloads_no_deb() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let xbuild = Xbuild::new();
    let run = xbuild.plan(project.path(), &[FIXTURE_TARGET], false);
    run.success();
    for (name, version) in [
        ("hello", "2.10-3"),
        ("hello-data", "2.10-3"),
        ("libc6", "2.36-9"),
        ("libgreet", "2.1-1"),
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|line| line.contains(name) && line.contains(version)),
            "plan does not list {name} {version}:\n{run}"
        );
    }
    assert!(
        !run.stdout.contains("1.0-1"),
        "plan lists the libgreet it did not pick:\n{run}"
    );

    let json_run = xbuild.plan(project.path(), &[FIXTURE_TARGET], true);
    let mut strings = Vec::new();
    json_strings(&json_run.success().json(), &mut strings);
    for expected in ["hello", "hello-data", "libc6", "libgreet", "2.1-1"] {
        assert!(
            strings.iter().any(|text| text == expected),
            "{expected} not in {strings:?}"
        );
    }

    assert!(fixture.deb_downloads().is_empty(), "plan downloaded .debs");
    assert!(
        !fixture
            .server
            .requests()
            .iter()
            .any(|request| request.path.ends_with(".deb"))
    );
    assert!(
        !exists(&project.path().join("result")),
        "plan wrote an output dir"
    );
}

#[test]
fn targets_lists_the_platforms() {
    let run = Xbuild::new().run(&["targets"]);
    run.success();
    for target in [
        "aarch64-linux",
        "armv7-linux",
        "s390x-linux",
        "x86_64-linux",
        "ppc64le-linux",
        "riscv64-linux",
    ] {
        assert!(run.stdout.contains(target), "{target} missing:\n{run}");
    }
}

#[test]
fn unknown_target_is_an_error_listing_known_ones() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let run = Xbuild::new().build(
        project.path(),
        temp_dir("xbuild-out-").path(),
        &["pdp11-banana"],
    );
    run.failure();
    assert!(
        run.stderr.contains("pdp11-banana") && run.stderr.contains("aarch64-linux"),
        "{run}"
    );
}

#[test]
fn host_without_apt_and_no_repository_is_a_clear_error() {
    let project = Project::new(
        "[image]\nname = \"no-repo\"\ntag = \"latest\"\ncmd = [\"hello\"]\n\n[packages]\ninclude = [\"hello\"]\n",
    );
    let xbuild = Xbuild::new();
    assert!(all_files(xbuild.apt_etc()).is_empty());
    let run = xbuild.build(
        project.path(),
        temp_dir("xbuild-out-").path(),
        &[FIXTURE_TARGET],
    );
    run.failure();
    assert!(
        run.stderr.contains("repository"),
        "the error does not say how to set one:\n{run}"
    );
    assert!(
        run.stderr.contains("xbuild.toml"),
        "the error does not point at xbuild.toml:\n{run}"
    );
}

fn manifest_without_repository(include: &str) -> String {
    format!(
        "[image]\nname = \"from-host\"\ntag = \"latest\"\ncmd = [\"hello\"]\n\n[packages]\ninclude = [\"{include}\"]\n"
    )
}

#[test]
fn host_apt_deb822_sources_supply_the_repository() {
    let fixture = Fixture::standard();
    let apt_etc = temp_dir("xbuild-host-apt-");
    fs::create_dir_all(apt_etc.path().join("sources.list.d")).unwrap();
    fs::write(
        apt_etc.path().join("sources.list.d/fixture.sources"),
        format!(
            "Types: deb\nURIs: {}\nSuites: {SUITE}\nComponents: main\nSigned-By: {}\n",
            fixture.repository_url(),
            fixture.archive.keyring.display()
        ),
    )
    .unwrap();
    let project = Project::new(&manifest_without_repository("virt-app"));
    let xbuild = Xbuild::new().with_apt_etc(apt_etc.path());
    let report = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    assert_eq!(
        report_package_names(&report),
        names(&["tiny-mta", "virt-app"])
    );
}

#[test]
fn host_apt_one_line_sources_list_supplies_the_repository() {
    let fixture = Fixture::standard();
    let apt_etc = temp_dir("xbuild-host-apt-");
    fs::write(
        apt_etc.path().join("sources.list"),
        format!(
            "# a comment\ndeb [signed-by={}] {} {SUITE} main\n",
            fixture.archive.keyring.display(),
            fixture.repository_url()
        ),
    )
    .unwrap();
    let project = Project::new(&manifest_without_repository("alt-app"));
    let xbuild = Xbuild::new().with_apt_etc(apt_etc.path());
    let report = build_ok(&xbuild, &project, temp_dir("xbuild-out-").path());
    assert_eq!(
        report_package_names(&report),
        names(&["alt-app", "alt-b", "alt-c"])
    );
}

#[test]
fn by_hash_indices_are_fetched_by_hash() {
    let fixture = Fixture::new(ArchiveBuilder::standard().by_hash());
    let project = fixture.project(&["virt-app"], "");
    build_ok(&Xbuild::new(), &project, temp_dir("xbuild-out-").path());
    let requests = fixture.server.requests();
    assert!(
        requests.iter().any(
            |request| request.path.contains("/binary-arm64/by-hash/SHA256/")
                && request.status == 200
        ),
        "{requests:?}"
    );
}

#[test]
fn gzip_only_index_and_armored_keyring_work() {
    let fixture =
        Fixture::new(ArchiveBuilder::standard().index_compressions(&[IndexCompression::Gzip]));
    let manifest = fixture_manifest(&fixture.repository_url(), &["virt-app"], "")
        .replace("fixture-key.gpg", "fixture-key.asc");
    let project = Project::new(&manifest);
    fs::copy(
        &fixture.archive.keyring_armored,
        project.path().join("fixture-key.asc"),
    )
    .unwrap();
    let report = build_ok(&Xbuild::new(), &project, temp_dir("xbuild-out-").path());
    assert_eq!(
        report_package_names(&report),
        names(&["tiny-mta", "virt-app"])
    );
    let requests = fixture.server.requests();
    assert!(
        requests
            .iter()
            .any(|request| request.path.ends_with("/Packages.gz") && request.status == 200),
        "{requests:?}"
    );
}

// ---------------------------------------------------------------------------
// Other tools read the outputs.
// ---------------------------------------------------------------------------

#[test]
fn docker_archive_and_oci_layout_inspect_with_skopeo() {
    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let out = temp_dir("xbuild-out-");
    build_ok(&Xbuild::new(), &project, out.path());
    let archive = out.path().join(format!("{FIXTURE_TARGET}.tar"));
    for reference in [
        format!("docker-archive:{}", archive.display()),
        format!("oci:{}:latest", out.path().join("oci").display()),
    ] {
        let inspected: Value = serde_json::from_str(&run_ok(
            Command::new("skopeo").args(["inspect", &reference]),
        ))
        .unwrap();
        assert_eq!(
            inspected["Architecture"], "arm64",
            "{reference}: {inspected}"
        );
        assert_eq!(inspected["Os"], "linux", "{reference}: {inspected}");
    }
}

#[test]
fn oci_layout_unpacks_with_umoci() {
    use std::os::unix::fs::PermissionsExt as _;

    let fixture = Fixture::standard();
    let project = fixture.project(&["hello"], "");
    let out = temp_dir("xbuild-out-");
    build_ok(&Xbuild::new(), &project, out.path());
    let bundle = out.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", out.path().join("oci").display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let script = rootfs.join("usr/bin/hello");
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o111,
        0o111
    );
    assert_eq!(
        fs::read_link(rootfs.join("usr/bin/hello-link")).unwrap(),
        Path::new("hello")
    );
    assert!(rootfs.join("var/lib/dpkg/status.d/hello").is_file());
    assert!(rootfs.join("etc/hello.conf").is_file());
    // Small by default: documentation is left out (tests/small_images.rs).
    assert!(!rootfs.join("usr/share/doc/hello-data/README").exists());
    assert!(rootfs.join("usr/share/doc/hello-data").is_dir());
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"], serde_json::json!(["hello"]));
    let names: Vec<String> = all_files(&rootfs)
        .iter()
        .map(|path| normalise(&path.strip_prefix(&rootfs).unwrap().to_string_lossy()))
        .collect();
    assert!(
        !names.iter().any(|name| name.starts_with("DEBIAN")),
        "{names:?}"
    );
}
