//! Package sources as a list, against signed fixture suites served on
//! 127.0.0.1 (no network, no root): a `-security` overlay whose newer
//! versions win (checked against apt reading the same sources), the same
//! list read from an apt configuration, a `NotAutomatic` suite that gives
//! packages only when asked for by name, the warning for a stable suite
//! without its `-security` source, and a source not read for an
//! architecture it does not carry.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::archive::{ARCH, Archive, ArchiveBuilder, DebSpec, SUITE};
use support::server::Server;
use support::suites::SuiteSpec;
use support::xbuild::{FIXTURE_TARGET, Project, Xbuild, repository_url, temp_dir};

const SECURITY: &str = "fixture-security";
const BACKPORTS: &str = "fixture-backports";

struct Fixture {
    server: Server,
    archive: Archive,
}

impl Fixture {
    /// The standard archive plus a security suite with newer `libgreet`
    /// and `libc6` (neither names `hello`, which pulls both in), and a
    /// backports suite (`NotAutomatic`) with a newer `hello` and
    /// `tiny-mta`.
    fn new() -> Fixture {
        let archive = ArchiveBuilder::standard().build();
        archive.publish_suite(&SuiteSpec::new(
            SECURITY,
            vec![
                DebSpec::new("libgreet", "2.1-1+sec1", ARCH)
                    .with_multi_arch("same")
                    .with_depends("libc6 (>= 2.34)"),
                DebSpec::new("libc6", "2.36-9+sec1", ARCH).with_multi_arch("same"),
            ],
        ));
        archive.publish_suite(
            &SuiteSpec::new(
                BACKPORTS,
                vec![
                    DebSpec::new("hello", "3.0-1~bpo1", ARCH)
                        .with_depends("libc6 (>= 2.34), libgreet (>= 2.0), hello-data (= 2.10-3)"),
                    DebSpec::new("tiny-mta", "0.2-1~bpo1", ARCH)
                        .with_provides("mail-transport-agent"),
                ],
            )
            .not_automatic(),
        );
        let server = Server::serve(archive.root());
        Fixture { server, archive }
    }

    /// A project whose `[[packages.repository]]` list is `suites`, in order
    /// (install-time dependencies kept, as apt keeps them).
    fn project(&self, include: &[&str], suites: &[&str]) -> Project {
        let mut manifest = format!(
            "[image]\nname = \"sources\"\ncmd = [\"hello\"]\n[packages]\ninclude = [{}]\n\
             install-time-dependencies = true\n",
            quoted(include)
        );
        for suite in suites {
            manifest.push_str(&format!(
                "[[packages.repository]]\nurl = \"{}\"\nsuite = \"{suite}\"\nkeyring = \"fixture-key.gpg\"\n",
                repository_url(&self.server)
            ));
        }
        let project = Project::new(&manifest);
        fs::copy(
            &self.archive.keyring,
            project.path().join("fixture-key.gpg"),
        )
        .unwrap();
        project
    }

    /// An apt configuration directory whose one deb822 file lists `suites`
    /// of the fixture archive.
    fn apt_etc(&self, suites: &[&str]) -> tempfile::TempDir {
        let dir = temp_dir("xbuild-sources-apt-etc-");
        fs::create_dir_all(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list.d/fixture.sources"),
            format!(
                "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\nSigned-By: {}\n",
                repository_url(&self.server),
                suites.join(" "),
                self.archive.keyring.display()
            ),
        )
        .unwrap();
        dir
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// name → (version, origin label) of a build report's or plan's first
/// target.
fn closure(report: &Value) -> BTreeMap<String, (String, String)> {
    report["targets"][0]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no packages in {report}"))
        .iter()
        .map(|package| {
            let origin = match &package["origin"] {
                Value::String(label) => label.clone(),
                origin => format!(
                    "{}/{}",
                    origin["suite"].as_str().unwrap(),
                    origin["component"].as_str().unwrap()
                ),
            };
            (
                package["name"].as_str().unwrap().to_owned(),
                (package["version"].as_str().unwrap().to_owned(), origin),
            )
        })
        .collect()
}

fn versions(closure: &BTreeMap<String, (String, String)>) -> BTreeMap<String, String> {
    closure
        .iter()
        .map(|(name, (version, _))| (name.clone(), version.clone()))
        .collect()
}

/// What apt installs on an empty arm64 system from `suites` of the fixture:
/// name → version (apt-get install --print-uris, a private apt).
fn apt_closure(fixture: &Fixture, suites: &[&str], package: &str) -> BTreeMap<String, String> {
    let dir = temp_dir("xbuild-sources-apt-");
    let root = dir.path();
    for sub in [
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/sources.list.d",
        "lists/partial",
        "cache/archives/partial",
        "log",
    ] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::write(root.join("status"), "").unwrap();
    let mut list = String::new();
    for suite in suites {
        list.push_str(&format!(
            "deb [signed-by={}] {} {suite} main\n",
            fixture.archive.keyring.display(),
            repository_url(&fixture.server)
        ));
    }
    fs::write(root.join("etc/sources.list"), list).unwrap();
    let root_text = root.display();
    fs::write(
        root.join("apt.conf"),
        format!(
            "Dir::Etc \"{root_text}/etc\";\nDir::State \"{root_text}\";\n\
             Dir::State::lists \"{root_text}/lists\";\nDir::State::status \"{root_text}/status\";\n\
             Dir::Cache \"{root_text}/cache\";\nDir::Log \"{root_text}/log\";\n\
             APT::Architecture \"{ARCH}\";\nAPT::Architectures {{ \"{ARCH}\"; }};\n\
             Acquire::Languages \"none\";\nDebug::NoLocking \"true\";\n"
        ),
    )
    .unwrap();
    let apt = |args: &[&str]| {
        let output = Command::new("apt-get")
            .env("APT_CONFIG", root.join("apt.conf"))
            .env("LC_ALL", "C")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "apt-get {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    apt(&["update", "-qq"]);
    apt(&[
        "install",
        "-qq",
        "--print-uris",
        "--no-install-recommends",
        package,
    ])
    .lines()
    .filter(|line| line.starts_with('\''))
    .map(|line| {
        let file = line.split_whitespace().nth(1).unwrap();
        let mut parts = file.split('_');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().replace("%3a", ":"),
        )
    })
    .collect()
}

fn build(xbuild: &Xbuild, project: &Project) -> Value {
    let out = temp_dir("xbuild-sources-out-");
    xbuild
        .build(project.path(), out.path(), &[FIXTURE_TARGET])
        .success()
        .json()
}

fn plan_json(xbuild: &Xbuild, project: &Path) -> Value {
    xbuild
        .plan(project, &[FIXTURE_TARGET], true)
        .success()
        .json()
}

#[test]
fn the_security_suite_overlays_the_main_suite_as_apt_does() {
    let fixture = Fixture::new();
    let suites = [SUITE, SECURITY];
    let xbuild = Xbuild::new();
    let report = build(&xbuild, &fixture.project(&["hello"], &suites));
    let ours = closure(&report);
    // libgreet and libc6 are reached only through `hello`, which the
    // security suite's index does not have: the closure spans both.
    assert_eq!(
        ours["libgreet"],
        ("2.1-1+sec1".to_owned(), format!("{SECURITY}/main")),
        "{report}"
    );
    assert_eq!(ours["libc6"].0, "2.36-9+sec1");
    assert_eq!(
        ours["hello"],
        ("2.10-3".to_owned(), format!("{SUITE}/main"))
    );
    // apt, reading the same two suites, installs the same versions.
    assert_eq!(versions(&ours), apt_closure(&fixture, &suites, "hello"));
    // Each .deb came from its own suite's entry in the pool.
    let fetched: Vec<String> = fixture
        .server
        .requests()
        .into_iter()
        .filter(|request| request.path.ends_with(".deb") && request.status == 200)
        .map(|request| request.path)
        .collect();
    assert!(
        fetched
            .iter()
            .any(|path| path.ends_with("libgreet_2.1-1+sec1_arm64.deb")),
        "{fetched:?}"
    );

    // The plan lists both sources and says where each package comes from.
    let plan = plan_json(&xbuild, fixture.project(&["hello"], &suites).path());
    let sources = plan["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{plan}");
    assert_eq!(sources[1]["suite"], SECURITY);
    assert_eq!(sources[1]["used_for"], serde_json::json!(["image"]));
    let libgreet = plan["targets"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "libgreet")
        .unwrap();
    assert_eq!(libgreet["origin"]["source"], 1, "{libgreet}");
    let text = xbuild
        .plan(
            fixture.project(&["hello"], &suites).path(),
            &[FIXTURE_TARGET],
            false,
        )
        .success()
        .stdout
        .clone();
    assert!(
        text.contains(&format!("source 1: {}", repository_url(&fixture.server))),
        "{text}"
    );
    assert!(
        text.lines().any(|line| line.contains("libgreet")
            && line.contains("2.1-1+sec1")
            && line.contains(&format!("{SECURITY}/main"))),
        "{text}"
    );

    // Without the security suite, the older versions: the list is used
    // exactly as written.
    let alone = closure(&build(
        &Xbuild::new(),
        &fixture.project(&["hello"], &[SUITE]),
    ));
    assert_eq!(alone["libgreet"].0, "2.1-1");
    assert_eq!(versions(&alone), apt_closure(&fixture, &[SUITE], "hello"));
}

#[test]
fn every_deb_source_of_an_apt_configuration_is_read() {
    let fixture = Fixture::new();
    let apt_etc = fixture.apt_etc(&[SUITE, SECURITY, BACKPORTS]);
    let project = Project::new(
        "[image]\nname = \"sources\"\ncmd = [\"hello\"]\n[packages]\ninclude = [\"hello\"]\n\
         install-time-dependencies = true\n",
    );
    let xbuild = Xbuild::new().with_apt_etc(apt_etc.path());
    let report = build(&xbuild, &project);
    let ours = closure(&report);
    assert_eq!(ours["libgreet"].0, "2.1-1+sec1", "{report}");
    // Backports is NotAutomatic: its newer hello is not taken.
    assert_eq!(ours["hello"].0, "2.10-3");
    assert_eq!(
        versions(&ours),
        apt_closure(&fixture, &[SUITE, SECURITY, BACKPORTS], "hello")
    );
    let sources: Vec<&str> = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| source["suite"].as_str().unwrap())
        .collect();
    assert_eq!(sources, [SUITE, SECURITY, BACKPORTS]);
}

#[test]
fn a_not_automatic_suite_gives_only_what_is_asked_for_by_name() {
    let fixture = Fixture::new();
    let suites = [SUITE, BACKPORTS];
    let xbuild = Xbuild::new();
    let plain = closure(&plan_json(
        &xbuild,
        fixture.project(&["hello", "virt-app"], &suites).path(),
    ));
    assert_eq!(plain["hello"].0, "2.10-3");
    assert_eq!(plain["tiny-mta"].0, "0.1-1");

    let asked = closure(&build(
        &xbuild,
        &fixture.project(&["hello/fixture-backports", "virt-app"], &suites),
    ));
    assert_eq!(
        asked["hello"],
        ("3.0-1~bpo1".to_owned(), format!("{BACKPORTS}/main"))
    );
    // Only the package named comes from backports.
    assert_eq!(asked["tiny-mta"].0, "0.1-1");
    assert_eq!(asked["libgreet"].0, "2.1-1");
    assert_eq!(
        versions(&asked),
        apt_closure(&fixture, &suites, "hello/fixture-backports")
            .into_iter()
            .chain(apt_closure(&fixture, &suites, "virt-app"))
            .collect::<BTreeMap<_, _>>()
    );

    // A release no source is: exit 2, naming it and the sources.
    let run = xbuild.plan(
        fixture.project(&["hello/fixture-nonesuch"], &suites).path(),
        &[FIXTURE_TARGET],
        false,
    );
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("fixture-nonesuch"), "{}", run.stderr);
    assert!(run.stderr.contains(BACKPORTS), "{}", run.stderr);
}

#[test]
fn a_stable_suite_without_its_security_source_is_warned_about() {
    let fixture = Fixture::new();
    fixture.archive.publish_suite(
        &SuiteSpec::new("fixstable", vec![DebSpec::new("calm", "1.0-1", ARCH)])
            .with_suite_field("stable", "fixstable"),
    );
    fixture.archive.publish_suite(
        &SuiteSpec::new(
            "fixstable-security",
            vec![DebSpec::new("calm", "1.0-1+sec1", ARCH)],
        )
        .with_suite_field("stable-security", "fixstable-security"),
    );
    let xbuild = Xbuild::new();
    let warned = xbuild
        .plan(
            fixture.project(&["calm"], &["fixstable"]).path(),
            &[FIXTURE_TARGET],
            false,
        )
        .success()
        .stdout
        .clone();
    assert!(
        warned.contains("warning:") && warned.contains("no fixstable-security source"),
        "{warned}"
    );
    let report = build(&xbuild, &fixture.project(&["calm"], &["fixstable"]));
    assert!(
        report["notes"][0]
            .as_str()
            .is_some_and(|note| note.contains("fixstable-security")),
        "{report}"
    );
    let quiet = xbuild
        .plan(
            fixture
                .project(&["calm"], &["fixstable", "fixstable-security"])
                .path(),
            &[FIXTURE_TARGET],
            false,
        )
        .success()
        .stdout
        .clone();
    assert!(!quiet.contains("warning:"), "{quiet}");
    assert!(quiet.contains("1.0-1+sec1"), "{quiet}");
}

#[test]
fn a_source_without_the_target_architecture_is_skipped_with_a_note() {
    let fixture = Fixture::new();
    fixture.archive.publish_suite(
        &SuiteSpec::new(
            "fixture-amd64",
            vec![DebSpec::new("hello", "9.0-1", "amd64")],
        )
        .with_architectures(&["amd64"]),
    );
    let xbuild = Xbuild::new();
    let project = fixture.project(&["hello"], &[SUITE, "fixture-amd64"]);
    let plan = plan_json(&xbuild, project.path());
    assert_eq!(closure(&plan)["hello"].0, "2.10-3");
    let notes = plan["targets"][0]["notes"].to_string();
    assert!(
        notes.contains("fixture-amd64 not read for arm64: its Release lists amd64"),
        "{notes}"
    );
    // `architectures` in the manifest limits a source the same way.
    let limited = Project::new(&format!(
        "[image]\nname = \"sources\"\ncmd = [\"hello\"]\n[packages]\ninclude = [\"hello\"]\n\
         [[packages.repository]]\nurl = \"{url}\"\nsuite = \"{SUITE}\"\nkeyring = \"k.gpg\"\n\
         [[packages.repository]]\nurl = \"{url}\"\nsuite = \"{SECURITY}\"\nkeyring = \"k.gpg\"\narchitectures = [\"amd64\"]\n",
        url = repository_url(&fixture.server)
    ));
    fs::copy(&fixture.archive.keyring, limited.path().join("k.gpg")).unwrap();
    let plan = plan_json(&xbuild, limited.path());
    assert_eq!(closure(&plan)["libgreet"].0, "2.1-1", "{plan}");
    assert!(
        plan["targets"][0]["notes"]
            .to_string()
            .contains("its sources entry limits it to amd64"),
        "{plan}"
    );
}
