//! The configure layer: accounts, `/tmp`, `[image] user`, os-release, the
//! CA bundle (compared byte for byte with the host's own
//! `update-ca-certificates` on the same package files) and the report of
//! the maintainer scripts not run. Against the fixture archive on
//! 127.0.0.1: no network.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::archive::{ARCH, Archive, ArchiveBuilder, DebSpec};
use support::oci::{LayerEntry, Layout};
use support::server::Server;
use support::xbuild::{
    FIXTURE_TARGET, Project, RunOutput, Xbuild, fixture_manifest, repository_url, temp_dir,
};

/// The fixture's packaged certificates: one without a final newline, one
/// whose name update-ca-certificates rewrites for its link.
const PACKAGED: [(&str, &[u8]); 3] = [
    (
        "usr/share/ca-certificates/mozilla/Zeta_Root.crt",
        b"-----BEGIN CERTIFICATE-----\nWmV0YQ==\n-----END CERTIFICATE-----\n",
    ),
    (
        "usr/share/ca-certificates/mozilla/Alpha_Root.crt",
        b"-----BEGIN CERTIFICATE-----\nQWxwaGE=\n-----END CERTIFICATE-----",
    ),
    (
        "usr/share/ca-certificates/mozilla/Odd (Class 2),x.crt",
        b"-----BEGIN CERTIFICATE-----\nT2Rk\n-----END CERTIFICATE-----\n",
    ),
];

const POSTINST: &[u8] = b"#!/bin/sh\nset -e\necho configuring\n";

struct Fixture {
    server: Server,
    archive: Archive,
}

impl Fixture {
    fn new() -> Fixture {
        let app = DebSpec::new("app", "1.0-1", ARCH)
            .with_file("DEBIAN/postinst", POSTINST, 0o755)
            .with_file("DEBIAN/prerm", b"#!/bin/sh\nexit 0\n", 0o755);
        let mut certificates = DebSpec::new("ca-certificates", "20230311", "all").with_file(
            "DEBIAN/postinst",
            b"#!/bin/sh\nupdate-ca-certificates\n",
            0o755,
        );
        for (path, contents) in PACKAGED {
            certificates = certificates.with_file(path, contents, 0o644);
        }
        let base_files = DebSpec::new("base-files", "12.4", ARCH).with_file(
            "usr/lib/os-release",
            b"PRETTY_NAME=\"packaged\"\nID=debian\n",
            0o644,
        );
        let base_passwd = DebSpec::new("base-passwd", "3.6.1", ARCH)
            .with_file(
                "usr/share/base-passwd/passwd.master",
                b"root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                  nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                0o644,
            )
            .with_file(
                "usr/share/base-passwd/group.master",
                b"root:*:0:\ndaemon:*:1:\nnogroup:*:65534:\n",
                0o644,
            )
            .with_file("DEBIAN/postinst", b"#!/bin/sh\nexit 0\n", 0o755);
        let archive = ArchiveBuilder::empty()
            .package(app)
            .package(certificates)
            .package(base_files)
            .package(base_passwd)
            .build();
        let server = Server::serve(archive.root());
        Fixture { server, archive }
    }

    /// A project including `include`, with `image` added to `[image]` and
    /// `extra` after the manifest.
    fn project(&self, include: &[&str], image: &str, extra: &str) -> Project {
        let manifest = fixture_manifest(&repository_url(&self.server), include, "");
        let with = manifest.replacen(
            "cmd = [\"hello\"]\n",
            &format!("cmd = [\"hello\"]\n{image}\n"),
            1,
        );
        assert_ne!(with, manifest, "the fixture manifest changed its [image]");
        let project = Project::new(&format!("{with}\n{extra}"));
        fs::copy(
            &self.archive.keyring,
            project.path().join("fixture-key.gpg"),
        )
        .unwrap();
        project
    }
}

/// A build's report and the image's files: each path's last entry.
struct Built {
    report: Value,
    entries: BTreeMap<String, LayerEntry>,
    /// The configure layer's own entries.
    configure: BTreeMap<String, LayerEntry>,
}

impl Built {
    fn text(&self, path: &str) -> String {
        let entry = self
            .entries
            .get(path)
            .unwrap_or_else(|| panic!("the image has no {path}"));
        String::from_utf8(entry.contents.clone()).unwrap()
    }

    fn target(&self) -> &Value {
        &self.report["targets"][0]
    }
}

fn build(xbuild: &Xbuild, project: &Project) -> Built {
    let out = temp_dir("xbuild-out-");
    let report = xbuild
        .build(project.path(), out.path(), &[FIXTURE_TARGET])
        .success()
        .json();
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    let layers = manifest["layers"].as_array().unwrap();
    let reported = report["targets"][0]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), reported.len());
    let mut entries = BTreeMap::new();
    let mut configure = BTreeMap::new();
    for (layer, reported) in layers.iter().zip(reported) {
        let is_configure = reported["packages"] == serde_json::json!(["configure"]);
        for entry in layout.layer_entries(layer) {
            if is_configure {
                configure.insert(entry.path.clone(), entry.clone());
            }
            entries.insert(entry.path.clone(), entry);
        }
    }
    assert!(!configure.is_empty(), "no configure layer: {reported:?}");
    Built {
        report,
        entries,
        configure,
    }
}

const ACCOUNTS: &str = r#"
[[account]]
name = "app"
uid = 1000

[[account]]
name = "web"
uid = 1001
gid = 65534
home = "/srv/web"
shell = "/bin/sh"
"#;

#[test]
fn accounts_homes_tmp_and_user_are_made_without_base_passwd() {
    let fixture = Fixture::new();
    let project = fixture.project(&["app"], "user = \"app\"", ACCOUNTS);
    let built = build(&Xbuild::new(), &project);
    assert_eq!(
        built.text("etc/passwd"),
        "root:*:0:0:root:/root:/bin/sh\n\
         nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
         app:*:1000:1000::/home/app:/usr/sbin/nologin\n\
         web:*:1001:65534::/srv/web:/bin/sh\n"
    );
    assert_eq!(
        built.text("etc/group"),
        "root:*:0:\nnogroup:*:65534:\napp:*:1000:\n"
    );
    let home = &built.configure["home/app"];
    assert_eq!(home.kind, tar::EntryType::Directory);
    assert_eq!(
        (home.uid, home.gid, home.mode & 0o7777),
        (1000, 1000, 0o700)
    );
    let web = &built.configure["srv/web"];
    assert_eq!((web.uid, web.gid, web.mode & 0o7777), (1001, 65534, 0o700));
    let tmp = &built.configure["tmp"];
    assert_eq!((tmp.uid, tmp.mode & 0o7777), (0, 0o1777));
    assert_eq!(built.configure["root"].mode & 0o7777, 0o700);
    assert!(!built.configure.contains_key("etc/shadow"));

    // The host's own checkers agree the files are well formed (they are
    // given the files, so the homes they look for are the host's).
    let root = temp_dir("xbuild-configure-root-");
    fs::create_dir_all(root.path().join("etc")).unwrap();
    for file in ["etc/passwd", "etc/group"] {
        fs::write(root.path().join(file), built.text(file)).unwrap();
    }
    let grpck = RunOutput::of(
        Command::new("grpck")
            .arg("-r")
            .arg(root.path().join("etc/group")),
    );
    assert!(
        grpck.status.success(),
        "grpck: {}{}",
        grpck.stdout,
        grpck.stderr
    );
    let pwck = RunOutput::of(
        Command::new("pwck")
            .args(["-r", "-q"])
            .arg(root.path().join("etc/passwd")),
    );
    assert!(
        pwck.status.success(),
        "pwck: {}{}",
        pwck.stdout,
        pwck.stderr
    );

    // The OCI config keeps the name; the image has it.
    let out = temp_dir("xbuild-out-");
    Xbuild::new()
        .build(project.path(), out.path(), &[FIXTURE_TARGET])
        .success();
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    assert_eq!(layout.config(&manifest)["config"]["User"], "app");
}

#[test]
fn base_passwd_master_files_are_the_start_and_clashes_with_them_are_errors() {
    let fixture = Fixture::new();
    let project = fixture.project(&["app", "base-passwd"], "", ACCOUNTS);
    let built = build(&Xbuild::new(), &project);
    assert_eq!(
        built.text("etc/passwd"),
        "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
         app:*:1000:1000::/home/app:/usr/sbin/nologin\n\
         web:*:1001:65534::/srv/web:/bin/sh\n"
    );
    let effects = &built.target()["native_effects"]["base-passwd"]["postinst"];
    assert!(
        effects[0]
            .as_str()
            .unwrap()
            .contains("/etc/passwd and /etc/group"),
        "{effects}"
    );

    let clash = fixture.project(
        &["app", "base-passwd"],
        "",
        "[[account]]\nname = \"svc\"\nuid = 1\ngid = 1\n",
    );
    let out = temp_dir("xbuild-out-");
    let failed = Xbuild::new().build(clash.path(), out.path(), &[FIXTURE_TARGET]);
    failed.failure();
    assert!(
        failed
            .stderr
            .contains("xbuild.toml:13:8: uid 1 of account `svc` is `daemon`'s"),
        "{}",
        failed.stderr
    );
}

#[test]
fn an_unknown_user_is_a_build_error_naming_image_user() {
    let fixture = Fixture::new();
    let project = fixture.project(&["app"], "user = \"bob\"", ACCOUNTS);
    let out = temp_dir("xbuild-out-");
    let failed = Xbuild::new().build(project.path(), out.path(), &[FIXTURE_TARGET]);
    failed.failure();
    assert!(
        failed
            .stderr
            .contains("xbuild.toml:5:8: [image] user `bob`: the image has no account `bob`"),
        "{}",
        failed.stderr
    );
    // Numeric ids pass through.
    let numeric = fixture.project(&["app"], "user = \"4242:4242\"", "");
    build(&Xbuild::new(), &numeric);
}

#[test]
fn account_tables_are_validated_with_positions() {
    let fixture = Fixture::new();
    for (extra, expected) in [
        (
            "[[account]]\nname = \"App\"\nuid = 1000\n",
            "xbuild.toml:13:8: account name `App` is not valid",
        ),
        (
            "[[account]]\nname = \"a\"\nuid = 1000\n[[account]]\nname = \"a\"\nuid = 1001\n",
            "xbuild.toml:16:8: account `a` is defined twice",
        ),
        (
            "[[account]]\nname = \"a\"\nuid = 1000\n[[account]]\nname = \"b\"\nuid = 1000\n",
            "xbuild.toml:17:7: uid 1000 is also account `a`'s",
        ),
        (
            "[[account]]\nname = \"root\"\nuid = 7\n",
            "xbuild.toml:13:8: account `root` (uid 0) is in every image already",
        ),
        (
            "[[account]]\nname = \"a\"\nuid = 65534\n",
            "xbuild.toml:14:7: uid 65534 is `nobody`'s",
        ),
        (
            "[[account]]\nname = \"a\"\nuid = 5\nhome = \"rel\"\n",
            "xbuild.toml:15:8: home `rel` must be an absolute path",
        ),
    ] {
        let project = fixture.project(&["app"], "", extra);
        let failed = Xbuild::new().plan(project.path(), &[FIXTURE_TARGET], false);
        failed.failure();
        assert!(
            failed.stderr.contains(expected),
            "{extra}: {}",
            failed.stderr
        );
    }
}

#[test]
fn os_release_is_written_from_the_suite_unless_base_files_ships_it() {
    let fixture = Fixture::new();
    let built = build(&Xbuild::new(), &fixture.project(&["app"], "", ""));
    // The fixture's Release has no Version: written as testing's is.
    assert_eq!(
        built.text("usr/lib/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux fixture/sid\"\nNAME=\"Debian GNU/Linux\"\n\
         VERSION_CODENAME=fixture\nID=debian\n"
    );
    let link = &built.configure["etc/os-release"];
    assert_eq!(link.link_target.as_deref(), Some("../usr/lib/os-release"));

    let packaged = build(
        &Xbuild::new(),
        &fixture.project(&["app", "base-files"], "", ""),
    );
    assert_eq!(
        packaged.text("usr/lib/os-release"),
        "PRETTY_NAME=\"packaged\"\nID=debian\n"
    );
    assert!(!packaged.configure.contains_key("usr/lib/os-release"));
    assert!(!packaged.configure.contains_key("etc/os-release"));
}

/// A self-signed CA certificate made by openssl, PEM.
fn test_ca(dir: &Path) -> Vec<u8> {
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=xbuild configure test CA"])
        .arg("-keyout")
        .arg(dir.join("test-ca.key"))
        .arg("-out")
        .arg(dir.join("test-ca.crt"))
        .output()
        .expect("run openssl");
    assert!(status.status.success(), "{status:?}");
    fs::read(dir.join("test-ca.crt")).unwrap()
}

#[test]
fn the_ca_bundle_is_what_update_ca_certificates_makes_of_the_same_files() {
    let fixture = Fixture::new();
    let project = fixture.project(
        &["app", "ca-certificates"],
        "ca-certificates = [\"test-ca.crt\"]",
        "",
    );
    let local = test_ca(project.path());
    let built = build(&Xbuild::new(), &project);

    // The host's update-ca-certificates on the package's files, with the
    // configuration its postinst writes (every certificate, sorted).
    let work = temp_dir("xbuild-update-ca-");
    let certs_dir = work.path().join("usr/share/ca-certificates");
    for (path, contents) in PACKAGED {
        let path = work.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    let local_dir = work.path().join("usr/local/share/ca-certificates");
    fs::create_dir_all(&local_dir).unwrap();
    fs::write(local_dir.join("test-ca.crt"), &local).unwrap();
    let etc_certs = work.path().join("etc/ssl/certs");
    fs::create_dir_all(&etc_certs).unwrap();
    let mut names: Vec<&str> = PACKAGED
        .iter()
        .map(|(path, _)| path.strip_prefix("usr/share/ca-certificates/").unwrap())
        .collect();
    names.sort();
    let header = built
        .text("etc/ca-certificates.conf")
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    assert!(
        header.contains("autogenerated by dpkg-reconfigure"),
        "{header}"
    );
    let conf = format!("{header}{}\n", names.join("\n"));
    assert_eq!(built.text("etc/ca-certificates.conf"), conf);
    let conf_path = work.path().join("ca-certificates.conf");
    fs::write(&conf_path, &conf).unwrap();
    let update = RunOutput::of(
        Command::new("update-ca-certificates")
            .arg("--certsconf")
            .arg(&conf_path)
            .arg("--certsdir")
            .arg(&certs_dir)
            .arg("--localcertsdir")
            .arg(&local_dir)
            .arg("--etccertsdir")
            .arg(&etc_certs)
            .args(["--hooksdir", ""]),
    );
    assert!(
        update.status.success(),
        "{}{}",
        update.stdout,
        update.stderr
    );
    let expected = fs::read(etc_certs.join("ca-certificates.crt")).unwrap();
    assert_eq!(
        built.entries["etc/ssl/certs/ca-certificates.crt"].contents, expected,
        "the bundle differs from update-ca-certificates'"
    );
    // The same NAME.pem links, to the same files.
    let prefix = work.path().to_string_lossy().into_owned();
    let mut host_links = BTreeMap::new();
    for entry in fs::read_dir(&etc_certs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".pem") {
            let target = fs::read_link(&path).unwrap().to_string_lossy().into_owned();
            host_links.insert(name, target.replacen(&prefix, "", 1));
        }
    }
    let links: BTreeMap<String, String> = built
        .configure
        .iter()
        .filter_map(|(path, entry)| {
            let name = path.strip_prefix("etc/ssl/certs/")?;
            name.ends_with(".pem")
                .then(|| (name.to_owned(), entry.link_target.clone().unwrap()))
        })
        .collect();
    assert_eq!(links, host_links);
    assert_eq!(
        built.entries["usr/local/share/ca-certificates/test-ca.crt"].contents,
        local
    );

    // The report says which scripts did not run and what of them was done.
    let effects = &built.target()["native_effects"];
    let done = effects["ca-certificates"]["postinst"][0].as_str().unwrap();
    assert!(
        done.contains("CA bundle of 3 certificates + 1 from [image] ca-certificates"),
        "{effects}"
    );
    assert_eq!(effects["app"]["postinst"], serde_json::json!([]));
    assert_eq!(effects["app"]["prerm"], serde_json::json!([]));
    assert_eq!(
        built.target()["skipped_scripts"]["app"],
        serde_json::json!(["postinst", "prerm"])
    );
    // And in text.
    let out = temp_dir("xbuild-out-");
    let mut command = Xbuild::new().command();
    command
        .arg("build")
        .arg(project.path())
        .arg("--out")
        .arg(out.path())
        .args(["--target", FIXTURE_TARGET]);
    let text = RunOutput::of(&mut command);
    text.success();
    let printed = format!("{}{}", text.stdout, text.stderr);
    assert!(
        printed.contains("app (postinst, prerm)")
            && printed.contains("ca-certificates (postinst: /etc/ca-certificates.conf"),
        "{printed}"
    );
}

#[test]
fn a_file_that_is_not_a_certificate_is_refused_naming_it() {
    let fixture = Fixture::new();
    let project = fixture.project(&["app"], "ca-certificates = [\"key.pem\"]", "");
    project.write(
        "key.pem",
        b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    );
    let failed = Xbuild::new().plan(project.path(), &[FIXTURE_TARGET], false);
    failed.failure();
    assert!(
        failed.stderr.contains("xbuild.toml:5:20: ")
            && failed.stderr.contains("key.pem is not a PEM certificate"),
        "{}",
        failed.stderr
    );
}

#[test]
fn the_configure_layer_is_a_plan_node_cached_by_its_inputs() {
    let fixture = Fixture::new();
    let xbuild = Xbuild::new();
    let project = fixture.project(&["app"], "", ACCOUNTS);
    let configure_outcome = |report: &Value| -> String {
        let nodes = report["nodes"].as_array().unwrap();
        let node = nodes
            .iter()
            .find(|node| node["name"] == format!("configure ({FIXTURE_TARGET})"))
            .unwrap_or_else(|| panic!("no configure node: {report}"));
        node["outcome"].as_str().unwrap().to_owned()
    };
    let first = build(&xbuild, &project);
    assert_eq!(configure_outcome(&first.report), "built");
    let again = build(&xbuild, &project);
    assert_eq!(configure_outcome(&again.report), "local");
    let plan = xbuild
        .plan(project.path(), &[FIXTURE_TARGET], true)
        .success()
        .json();
    let planned = plan.to_string();
    assert!(
        planned.contains(&format!("\"configure ({FIXTURE_TARGET})\""))
            && planned.contains("\"configure\""),
        "{plan}"
    );
    // Another account is another layer: a miss, which --explain names.
    let other = fixture.project(&["app"], "", "[[account]]\nname = \"app\"\nuid = 1002\n");
    let mut command = xbuild.command();
    command
        .arg("plan")
        .arg(other.path())
        .args(["--target", FIXTURE_TARGET, "--explain"]);
    let explained = RunOutput::of(&mut command);
    explained.success();
    let printed = format!("{}{}", explained.stdout, explained.stderr);
    assert!(
        printed.contains(&format!("configure ({FIXTURE_TARGET})")),
        "{printed}"
    );
    let changed = build(&xbuild, &other);
    assert_eq!(configure_outcome(&changed.report), "built");
    assert!(changed.text("etc/passwd").contains("app:*:1002:1002:"));
}
