//! Small by default: package layers leave documentation, man and info
//! pages and locales other than `C` out, unless `[image] keep` or
//! `docs = true` keeps them; the report counts the bytes left out, and the
//! layer cache never mixes the two. Against the fixture archive on
//! 127.0.0.1: no network, no root.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use support::archive::{ARCH, Archive, ArchiveBuilder, DebSpec};
use support::oci::{LayerEntry, Layout};
use support::server::Server;
use support::xbuild::{
    FIXTURE_TARGET, Project, Xbuild, fixture_manifest, repository_url, temp_dir,
};

/// Files of `docs-app` left out by default, with their contents.
const LEFT_OUT: [(&str, &[u8]); 5] = [
    (
        "usr/share/doc/docs-app/changelog.Debian.gz",
        b"a changelog, compressed",
    ),
    ("usr/share/man/man1/docs-app.1.gz", b"a man page"),
    ("usr/share/info/docs-app.info.gz", b"an info page!"),
    ("usr/share/locale/de/LC_MESSAGES/docs-app.mo", b"Hallo"),
    ("usr/lib/locale/de_DE.utf8/LC_CTYPE", b"ctype de"),
];

/// Files of `docs-app` kept whatever the manifest says.
const KEPT: [(&str, &[u8]); 4] = [
    ("usr/share/doc/docs-app/copyright", b"licence text\n"),
    (
        "usr/share/locale/C.UTF-8/LC_MESSAGES/docs-app.mo",
        b"C messages",
    ),
    ("usr/lib/locale/C.utf8/LC_CTYPE", b"ctype C"),
    ("usr/share/locale/locale.alias", b"alias"),
];

/// The README every fixture package has (see `build_deb`).
fn readme(name: &str, version: &str) -> (String, usize) {
    let text = format!("{name} {version}\nA package of the xbuild test fixture archive.\n");
    (format!("usr/share/doc/{name}/README"), text.len())
}

struct Fixture {
    server: Server,
    archive: Archive,
}

impl Fixture {
    fn new() -> Fixture {
        let mut app = DebSpec::new("docs-app", "1.0-1", ARCH).with_depends("libdocs1");
        for (path, contents) in LEFT_OUT.iter().chain(&KEPT) {
            app = app.with_file(path, contents, 0o644);
        }
        // Debian's way of sharing one copyright: a link for the directory.
        let lib = DebSpec::new("libdocs1", "1.0-1", ARCH)
            .with_symlink("usr/share/doc/libdocs-extra", "docs-app");
        let archive = ArchiveBuilder::empty().package(app).package(lib).build();
        let server = Server::serve(archive.root());
        Fixture { server, archive }
    }

    /// A project including `docs-app`, with `image` added to `[image]`.
    fn project(&self, image: &str) -> Project {
        let project = Project::new(&manifest(&self.server, image));
        fs::copy(
            &self.archive.keyring,
            project.path().join("fixture-key.gpg"),
        )
        .unwrap();
        project
    }
}

fn manifest(server: &Server, image: &str) -> String {
    let manifest = fixture_manifest(&repository_url(server), &["docs-app"], "");
    let with = manifest.replacen(
        "cmd = [\"hello\"]\n",
        &format!("cmd = [\"hello\"]\n{image}\n"),
        1,
    );
    assert_ne!(with, manifest, "the fixture manifest changed its [image]");
    with
}

/// A build's report and the entries of its image, by path.
struct Built {
    report: Value,
    entries: BTreeMap<String, LayerEntry>,
}

impl Built {
    fn target(&self) -> &Value {
        &self.report["targets"][0]
    }

    /// The report of the layer holding `package`.
    fn layer(&self, package: &str) -> &Value {
        self.target()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|layer| layer["packages"] == serde_json::json!([package]))
            .unwrap_or_else(|| panic!("no layer of {package} in {}", self.target()))
    }

    fn has(&self, path: &str) -> bool {
        self.entries.contains_key(path)
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
    let mut entries = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        for entry in layout.layer_entries(layer) {
            entries.insert(entry.path.clone(), entry);
        }
    }
    Built { report, entries }
}

fn size(path: &str) -> u64 {
    LEFT_OUT
        .iter()
        .find(|(left_out, _)| *left_out == path)
        .map(|(_, contents)| contents.len() as u64)
        .unwrap()
}

#[test]
fn documentation_and_locales_are_left_out_by_default_and_counted() {
    let fixture = Fixture::new();
    let built = build(&Xbuild::new(), &fixture.project(""));
    let (app_readme, app_readme_size) = readme("docs-app", "1.0-1");
    let (lib_readme, lib_readme_size) = readme("libdocs1", "1.0-1");
    for (path, _) in LEFT_OUT {
        assert!(!built.has(path), "{path} is in the image");
    }
    assert!(!built.has(&app_readme) && !built.has(&lib_readme));
    for (path, contents) in KEPT {
        let entry = built
            .entries
            .get(path)
            .unwrap_or_else(|| panic!("no {path}"));
        assert_eq!(entry.contents, contents, "{path}");
    }
    assert!(built.has("usr/bin/docs-app") && built.has("usr/bin/docs-app-link"));
    // Directories stay, so the copyright's and the locales' do.
    for directory in [
        "usr/share/doc/libdocs1",
        "usr/share/man/man1",
        "usr/share/locale/de/LC_MESSAGES",
    ] {
        assert_eq!(
            built.entries[directory].kind,
            tar::EntryType::Directory,
            "{directory}"
        );
    }
    let link = &built.entries["usr/share/doc/libdocs-extra"];
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("docs-app"));

    let app_bytes: u64 = LEFT_OUT
        .iter()
        .map(|(_, contents)| contents.len() as u64)
        .sum::<u64>()
        + app_readme_size as u64;
    assert_eq!(built.layer("docs-app")["left_out_bytes"], app_bytes);
    assert_eq!(
        built.layer("libdocs1")["left_out_bytes"],
        lib_readme_size as u64
    );
    assert_eq!(
        built.target()["left_out_bytes"],
        app_bytes + lib_readme_size as u64,
        "{}",
        built.target()
    );
}

#[test]
fn keep_keeps_the_paths_it_names_and_only_those() {
    let fixture = Fixture::new();
    let project = fixture.project(r#"keep = ["/usr/share/man", "/usr/share/locale/de/"]"#);
    let built = build(&Xbuild::new(), &project);
    let man = "usr/share/man/man1/docs-app.1.gz";
    let de = "usr/share/locale/de/LC_MESSAGES/docs-app.mo";
    assert!(built.has(man) && built.has(de));
    for (path, _) in LEFT_OUT
        .iter()
        .filter(|(path, _)| ![man, de].contains(path))
    {
        assert!(!built.has(path), "{path} is in the image");
    }
    assert!(!built.has(&readme("docs-app", "1.0-1").0));
    let (_, readme_size) = readme("docs-app", "1.0-1");
    let expected = LEFT_OUT.iter().map(|(_, c)| c.len() as u64).sum::<u64>() + readme_size as u64
        - size(man)
        - size(de);
    assert_eq!(built.layer("docs-app")["left_out_bytes"], expected);
}

#[test]
fn docs_true_keeps_everything_and_the_cache_keeps_the_two_apart() {
    let fixture = Fixture::new();
    let xbuild = Xbuild::new();
    let project = fixture.project("");
    let small = build(&xbuild, &project);

    project.write(
        "xbuild.toml",
        manifest(&fixture.server, "docs = true").as_bytes(),
    );
    let full = build(&xbuild, &project);
    for (path, contents) in LEFT_OUT.iter().chain(&KEPT) {
        let entry = full
            .entries
            .get(*path)
            .unwrap_or_else(|| panic!("no {path}"));
        assert_eq!(&entry.contents, contents, "{path}");
    }
    assert!(full.has(&readme("docs-app", "1.0-1").0));
    assert!(full.has(&readme("libdocs1", "1.0-1").0));
    assert_eq!(full.target()["left_out_bytes"], 0);
    assert_eq!(full.layer("docs-app")["left_out_bytes"], 0);
    let digest = |built: &Built, package: &str| built.layer(package)["digest"].clone();
    assert_ne!(digest(&small, "docs-app"), digest(&full, "docs-app"));
    assert_ne!(digest(&small, "libdocs1"), digest(&full, "libdocs1"));
    assert_eq!(
        full.layer("docs-app")["outcome"],
        "built",
        "{}",
        full.target()
    );
    let uncompressed = |built: &Built| {
        built.layer("docs-app")["uncompressed_size"]
            .as_u64()
            .unwrap()
    };
    assert!(uncompressed(&full) > uncompressed(&small));

    // Back to the default: the small layer again, from the cache.
    project.write(
        "xbuild.toml",
        manifest(&fixture.server, "docs = false").as_bytes(),
    );
    let again = build(&xbuild, &project);
    assert_eq!(digest(&again, "docs-app"), digest(&small, "docs-app"));
    assert_eq!(
        again.layer("docs-app")["outcome"],
        "local",
        "{}",
        again.target()
    );
    assert_eq!(
        again.layer("docs-app")["left_out_bytes"],
        small.layer("docs-app")["left_out_bytes"]
    );
}

#[test]
fn a_bad_keep_entry_is_an_error_naming_its_line() {
    let fixture = Fixture::new();
    for (entry, column) in [("\"usr/share/man\"", 9), ("\"/usr/share/../../etc\"", 9)] {
        let project = fixture.project(&format!("keep = [{entry}]"));
        let out = temp_dir("xbuild-out-");
        let run = Xbuild::new().build(project.path(), out.path(), &[FIXTURE_TARGET]);
        run.failure();
        // The [image] table: name, tag, cmd, then keep on line 5.
        let location = format!("xbuild.toml:5:{column}");
        assert!(run.stderr.contains(&location), "{entry}: {}", run.stderr);
        assert!(run.stderr.contains("keep path"), "{entry}: {}", run.stderr);
        assert!(!Path::new(&out.path().join("oci")).exists());
    }
}
