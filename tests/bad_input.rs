//! Bad repository input — a mirror URL xbuild cannot read, a suite or
//! component that would leave the archive — is refused as bad input
//! (exit 2) before any request, naming where it came from: `--mirror`,
//! `XBUILD_MIRROR`, `xbuild.toml:line:column`, or the host's apt source
//! file. Runs against the fixture archive on 127.0.0.1 (no network, no
//! root), whose server log shows that nothing was requested.

mod support;

use std::fs;

use support::archive::{ArchiveBuilder, COMPONENT, SUITE};
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, repository_url, temp_dir};

const BAD_MIRRORS: [&str; 6] = [
    "ftp://127.0.0.1/debian",
    "notaurl",
    "",
    "http:///debian",
    "http://127.0.0.1:9/debian?x=1",
    "http://127.0.0.1:9/debian/../etc",
];

fn exit_code(run: &RunOutput) -> i32 {
    run.status
        .code()
        .unwrap_or_else(|| panic!("killed:\n{run}"))
}

fn plan_with(xbuild: &Xbuild, project: &Project, extra: &[&str]) -> RunOutput {
    let mut args = vec![
        "plan",
        project.path().to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
    ];
    args.extend_from_slice(extra);
    xbuild.run(&args)
}

#[test]
fn bad_mirror_flag_is_an_input_error_naming_the_flag_and_the_value() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    for bad in BAD_MIRRORS {
        let run = plan_with(&Xbuild::new(), &project, &["--mirror", bad]);
        run.failure();
        assert_eq!(exit_code(&run), 2, "{bad:?}:\n{run}");
        assert!(
            run.stderr
                .contains(&format!("error: --mirror {bad:?} is not a repository URL")),
            "{bad:?}:\n{run}"
        );
        assert!(run.stderr.contains("hint: give --mirror the root"), "{run}");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn bad_xbuild_mirror_variable_is_an_input_error_naming_the_variable() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    for bad in BAD_MIRRORS.iter().filter(|bad| !bad.is_empty()) {
        let run = plan_with(&Xbuild::new().with_env("XBUILD_MIRROR", bad), &project, &[]);
        run.failure();
        assert_eq!(exit_code(&run), 2, "{bad:?}:\n{run}");
        assert!(
            run.stderr.contains(&format!(
                "error: XBUILD_MIRROR {bad:?} is not a repository URL"
            )),
            "{bad:?}:\n{run}"
        );
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // Empty means unset: the manifest's repository is used.
    plan_with(&Xbuild::new().with_env("XBUILD_MIRROR", ""), &project, &[]).success();
}

#[test]
fn credentials_in_a_bad_mirror_are_redacted() {
    let project = Project::new("[image]\nname = \"app\"\n[packages]\ninclude = [\"hello\"]\n");
    let run = plan_with(
        &Xbuild::new(),
        &project,
        &["--mirror", "gopher://user:mirror-secret@127.0.0.1/debian"],
    );
    assert_eq!(exit_code(&run), 2, "{run}");
    assert!(!run.stderr.contains("mirror-secret"), "{run}");
    assert!(
        run.stderr.contains("gopher://***@127.0.0.1/debian"),
        "{run}"
    );
}

/// A manifest for the fixture with `repository` as the repository table's
/// body, and where that line starts.
fn manifest_with_repository(repository: &str) -> String {
    format!(
        "[image]\nname = \"app\"\n[packages]\ninclude = [\"hello\"]\nrepository = {{ {repository} }}\n"
    )
}

#[test]
fn bad_repository_in_the_manifest_is_an_input_error_at_its_line_and_column() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let url = repository_url(&server);
    let keyring = "keyring = \"fixture-key.gpg\"";
    let cases = [
        // (repository table body, column of the bad value, message part)
        (
            format!("url = \"ftp://127.0.0.1/debian\", {keyring}"),
            22,
            "uses `ftp`",
        ),
        (
            format!("url = \"notaurl\", {keyring}"),
            22,
            "`notaurl` is not a URL",
        ),
        (format!("url = \"\", {keyring}"), 22, "the URL is empty"),
        (
            format!("url = \"http:///debian\", {keyring}"),
            22,
            "has no host",
        ),
        (
            format!("url = \"{url}\", suite = \"../../etc\", {keyring}"),
            22 + url.len() + 12,
            "suite `../../etc` must be",
        ),
        (
            format!("url = \"{url}\", suite = \"{SUITE}?x\", {keyring}"),
            22 + url.len() + 12,
            "contains '?'",
        ),
        (
            format!(
                "url = \"{url}\", suite = \"{SUITE}\", components = [\"{COMPONENT}#x\"], {keyring}"
            ),
            22 + url.len() + 12 + SUITE.len() + 18,
            "component `main#x` contains '#'",
        ),
        (
            format!("url = \"{url}\", suite = \"{SUITE}\", components = [\"..\"], {keyring}"),
            22 + url.len() + 12 + SUITE.len() + 18,
            "component `..` must be",
        ),
    ];
    for (repository, column, message) in cases {
        let project = Project::new(&manifest_with_repository(&repository));
        fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();
        let out = temp_dir("xbuild-out-");
        let run = Xbuild::new().build(project.path(), out.path(), &[FIXTURE_TARGET]);
        run.failure();
        assert_eq!(exit_code(&run), 2, "{repository}:\n{run}");
        let location = format!("xbuild.toml:5:{column}: ");
        assert!(
            run.stderr.contains(&location) && run.stderr.contains(message),
            "expected `{location}…{message}` for {repository}:\n{run}"
        );
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn bad_host_apt_source_is_an_input_error_naming_the_file() {
    let apt = temp_dir("xbuild-apt-etc-");
    fs::create_dir_all(apt.path().join("sources.list.d")).unwrap();
    let sources = apt.path().join("sources.list.d/debian.sources");
    for (entry, message) in [
        (
            "URIs: http:///debian\nSuites: bookworm\n",
            "`http:///debian` has no host",
        ),
        (
            "URIs: notaurl\nSuites: bookworm\n",
            "`notaurl` is not a URL",
        ),
        (
            "URIs: http://127.0.0.1:9/debian\nSuites: ../../etc\n",
            "suite `../../etc`",
        ),
    ] {
        fs::write(&sources, format!("Types: deb\n{entry}Components: main\n")).unwrap();
        let project = Project::new("[image]\nname = \"app\"\n[packages]\ninclude = [\"hello\"]\n");
        let run = plan_with(&Xbuild::new().with_apt_etc(apt.path()), &project, &[]);
        run.failure();
        assert_eq!(exit_code(&run), 2, "{run}");
        assert!(
            run.stderr.contains(&format!("{}:1: ", sources.display()))
                && run.stderr.contains(message),
            "expected {}:1: …{message}:\n{run}",
            sources.display()
        );
    }
}
