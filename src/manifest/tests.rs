use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("project/xbuild.toml"))
}

/// The error's `line:column: message` part, without the path.
fn error_at(text: &str) -> String {
    let error = parse(text).expect_err("manifest should be rejected");
    let message = error.to_string();
    message
        .strip_prefix("project/xbuild.toml:")
        .unwrap_or_else(|| panic!("error does not start with the path: {message}"))
        .to_owned()
}

const MINIMAL: &str = "[image]\nname = \"app\"\n";

#[test]
fn every_field_parses() {
    let directory = tempfile::tempdir().unwrap();
    fs_err::create_dir(directory.path().join("keys")).unwrap();
    fs_err::write(directory.path().join("keys/archive.gpg"), b"key").unwrap();
    let text = r#"
[image]
name = "example.org/team/cowsay-hello_world"
tag = "v1.2_rc-3"
cmd = ["cowsay", "hello", "world"]
entrypoint = ["/usr/bin/env"]
env = { LANG = "C.UTF-8", PATH = "/opt/bin:/usr/bin" }
workdir = "/srv"
user = "1000:1000"
labels = { "org.example" = "x" }
ports = ["8080/tcp", "53/udp", "9090"]

[packages]
include = ["cowsay", "libc6"]
exclude = ["perl-doc"]
install-time-dependencies = true
repository = { url = "http://user:secret@mirror.example/debian/", suite = "trixie", components = ["main", "contrib"], keyring = "keys/archive.gpg" }
layer-budget = 20

[[build]]
kind = "cargo"
path = "crates/app"
sysroot = ["libssl-dev"]

[[build]]
kind = "autotools"
source = { url = "https://example.org/hello-2.12.tar.gz", sha256 = "cf04af86dc085268c5f4470fbae49b18afbc221b78096aab842d934a76bad0ab" }

[[build]]
kind = "make"
source = { debian = "hello" }
"#;
    let path = directory.path().join(FILE_NAME);
    fs_err::write(&path, text).unwrap();
    // A directory means the xbuild.toml inside it.
    let manifest = Manifest::load(directory.path()).unwrap();
    assert_eq!(manifest.path, path);
    assert_eq!(manifest.dir, directory.path());
    let image = &manifest.image;
    assert_eq!(
        image.reference(),
        "example.org/team/cowsay-hello_world:v1.2_rc-3"
    );
    assert_eq!(
        image.cmd.as_deref(),
        Some(&["cowsay".to_owned(), "hello".into(), "world".into()][..])
    );
    assert_eq!(
        image.entrypoint.as_deref(),
        Some(&["/usr/bin/env".to_owned()][..])
    );
    assert_eq!(image.env_list(), ["LANG=C.UTF-8", "PATH=/opt/bin:/usr/bin"]);
    assert_eq!(image.workdir.as_deref(), Some("/srv"));
    assert_eq!(image.user.as_deref(), Some("1000:1000"));
    assert_eq!(
        image.labels,
        BTreeMap::from([("org.example".to_owned(), "x".to_owned())])
    );
    let ports: Vec<String> = image.ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, ["53/udp", "8080/tcp", "9090/tcp"]);

    let packages = &manifest.packages;
    assert_eq!(packages.include, ["cowsay", "libc6"]);
    assert_eq!(packages.exclude, ["perl-doc"]);
    assert!(packages.install_time_dependencies);
    assert_eq!(packages.layer_budget, 20);
    assert_eq!(packages.repositories.len(), 1);
    let repository = &packages.repositories[0];
    assert_eq!(repository.url, "http://user:secret@mirror.example/debian");
    assert_eq!(repository.suite.as_deref(), Some("trixie"));
    assert_eq!(
        repository.components.as_deref(),
        Some(&["main".to_owned(), "contrib".into()][..])
    );
    assert_eq!(
        repository.keyring.as_deref(),
        Some(directory.path().join("keys/archive.gpg").as_path())
    );
    assert_eq!(
        repository.to_string(),
        "http://***@mirror.example/debian trixie main contrib"
    );
    assert!(!format!("{repository:?}").contains("secret"));

    assert_eq!(manifest.builds.len(), 3);
    assert_eq!(manifest.builds[0].kind, BuildKind::Cargo);
    assert_eq!(manifest.builds[0].path, directory.path().join("crates/app"));
    assert_eq!(manifest.builds[0].sysroot, ["libssl-dev"]);
    assert_eq!(manifest.builds[1].kind, BuildKind::Autotools);
    assert_eq!(manifest.builds[1].path, directory.path());
    assert_eq!(
        manifest.builds[1].source,
        Some(BuildSource::Url {
            url: "https://example.org/hello-2.12.tar.gz".into(),
            sha256: crate::hash::Sha256Digest::parse(
                "cf04af86dc085268c5f4470fbae49b18afbc221b78096aab842d934a76bad0ab"
            )
            .unwrap()
        })
    );
    assert_eq!(
        manifest.builds[2].source,
        Some(BuildSource::Debian("hello".into()))
    );
}

#[test]
fn a_repository_list_is_read_in_order_and_include_names_a_release() {
    let manifest = parse(
        "[image]\nname = \"app\"\n[packages]\ninclude = [\"curl/bookworm-backports\", \"jq\"]\n\
         [[packages.repository]]\nurl = \"http://h/debian\"\nsuite = \"bookworm\"\n\
         [[packages.repository]]\nurl = \"http://h/debian-security/\"\nsuite = \"bookworm-security\"\narchitectures = [\"arm64\", \"amd64\"]\n",
    )
    .unwrap();
    let packages = &manifest.packages;
    assert_eq!(packages.include, ["curl/bookworm-backports", "jq"]);
    assert_eq!(
        package_and_release(&packages.include[0]),
        ("curl", Some("bookworm-backports"))
    );
    assert_eq!(package_and_release("jq"), ("jq", None));
    let shown: Vec<String> = packages
        .repositories
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "http://h/debian bookworm",
            "http://h/debian-security bookworm-security"
        ]
    );
    assert_eq!(
        packages.repositories[1].architectures.as_deref(),
        Some(&["arm64".to_owned(), "amd64".into()][..])
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let manifest = parse(MINIMAL).unwrap();
    assert_eq!(manifest.image.tag, "latest");
    assert_eq!(manifest.image.env_list(), [format!("PATH={DEFAULT_PATH}")]);
    assert_eq!(manifest.image.cmd, None);
    assert_eq!(manifest.packages, PackagesSpec::default());
    assert_eq!(manifest.packages.layer_budget, 100);
    assert!(manifest.builds.is_empty());
    assert!(manifest.dir.is_absolute() && manifest.dir.ends_with("project"));
}

#[test]
fn cowsay_example_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay");
    let manifest = Manifest::load(&example).unwrap();
    assert_eq!(manifest.image.reference(), "cowsay-hello-world:latest");
    assert_eq!(
        manifest.image.cmd.as_deref(),
        Some(&["cowsay".to_owned(), "hello".into(), "world".into()][..])
    );
    assert_eq!(manifest.packages.include, ["cowsay"]);
    assert!(manifest.packages.repositories.is_empty());
}

#[test]
fn syntax_errors_have_line_and_column() {
    let cases = [
        (
            "[image]\nname = \"app\n",
            "2:12: invalid basic string, expected `\"`",
        ),
        (
            "[image]\nname = \n",
            "2:8: string values must be quoted, expected literal string",
        ),
        (
            "[image]\nname = \"app\"\nname = \"b\"\n",
            "3:1: duplicate key",
        ),
        (
            "[image]\nname = \"app\"\ncmd = [\"a\" \"b\"]\n",
            "3:12: missing comma between array elements, expected `,`",
        ),
        ("[image\n", "1:7: unclosed table, expected `]`"),
    ];
    for (text, expected) in cases {
        assert!(
            matches!(parse(text), Err(ManifestError::Syntax { .. })),
            "{text}"
        );
        assert_eq!(error_at(text), expected, "{text}");
    }
}

#[test]
fn unknown_key_lists_the_allowed_ones() {
    assert_eq!(
        error_at("[image]\nname = \"app\"\ncommand = [\"x\"]\n"),
        "3:1: unknown field `command`, expected one of `name`, `tag`, `cmd`, `entrypoint`, \
         `env`, `workdir`, `user`, `labels`, `ports`, `docs`, `keep`, `ca-certificates`, `slim`, \
         `slim-probes`"
    );
    assert_eq!(
        error_at(&format!(
            "{MINIMAL}[packages]\ninstall_time_dependencies = true\n"
        )),
        "4:1: unknown field `install_time_dependencies`, expected one of `include`, `exclude`, \
         `install-time-dependencies`, `repository`, `layer-budget`"
    );
    assert!(
        error_at("[images]\n").starts_with(
            "1:2: unknown field `images`, expected one of `image`, `packages`, `build`"
        )
    );
}

#[test]
fn wrong_types_and_missing_keys_have_positions() {
    assert_eq!(
        error_at("[image]\nname = \"app\"\ncmd = \"cowsay hello\"\n"),
        "3:7: invalid type: string \"cowsay hello\", expected a sequence"
    );
    assert_eq!(
        error_at("[image]\ntag = \"x\"\n"),
        "1:1: missing field `name`"
    );
    assert_eq!(
        error_at(&format!("{MINIMAL}[[build]]\nkind = \"meson\"\n")),
        "4:8: unknown variant `meson`, expected one of `cargo`, `autotools`, `make`, `cmake`"
    );
}

#[test]
fn invalid_values_have_exact_positions() {
    let cases = [
        (
            "[image]\nname = \"Cowsay\"\n",
            "2:8: image name `Cowsay` has uppercase letters",
        ),
        (
            "[image]\nname = \"a--b/c..d\"\n",
            "2:8: image name `a--b/c..d` is not valid",
        ),
        (
            "[image]\nname = \"/app\"\n",
            "2:8: image name `/app` is not valid",
        ),
        (
            "[image]\nname = \"app\"\ntag = \".hidden\"\n",
            "3:7: tag `.hidden` is not valid",
        ),
        (
            "[image]\nname = \"app\"\nports = [\"80\", \"0\"]\n",
            "3:16: port `0` is not valid",
        ),
        (
            "[image]\nname = \"app\"\nports = [\"80/icmp\"]\n",
            "3:10: port `80/icmp` has protocol `icmp`",
        ),
        (
            "[image]\nname = \"app\"\nports = [\"80\", \"80/tcp\"]\n",
            "3:16: port 80/tcp is listed twice",
        ),
        (
            "[image]\nname = \"app\"\nworkdir = \"srv\"\n",
            "3:11: workdir `srv` must be an absolute path",
        ),
        (
            "[image]\nname = \"app\"\nuser = \"a:b:c\"\n",
            "3:8: user `a:b:c` is not valid",
        ),
        (
            "[image]\nname = \"app\"\nenv = { \"A=B\" = \"x\" }\n",
            "3:9: environment variable name `A=B`",
        ),
        (
            "[image]\nname = \"app\"\nlabels = { \"\" = \"x\" }\n",
            "3:12: label name is empty",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"cowsay\", \"Cowsay\"]\n",
            "4:22: `Cowsay` is not a Debian package name",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"cowsay\", \"cowsay\"]\n",
            "4:22: package `cowsay` is listed twice in include",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"perl\"]\nexclude = [\"perl\"]\n",
            "5:12: package `perl` is both included and excluded",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nlayer-budget = 1\n",
            "4:16: layer-budget must be between 2 and 127, not 1",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"ftp://u:p@h/debian\" }\n",
            "4:22: `ftp://***@h/debian` uses `ftp`",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", components = [] }\n",
            "4:49: components must list at least one component",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", suite = \"book worm\" }\n",
            "4:44: suite `book worm` contains ' '",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", suite = \"../../etc\" }\n",
            "4:44: suite `../../etc` must be `/`-separated non-empty parts, none `.` or `..`",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", suite = \"bookworm?x\" }\n",
            "4:44: suite `bookworm?x` contains '?'",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", components = [\"main\", \"x#y\"] }\n",
            "4:58: component `x#y` contains '#'",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http:///debian\" }\n",
            "4:22: `http:///debian` has no host",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"notaurl\" }\n",
            "4:22: `notaurl` is not a URL",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"\" }\n",
            "4:22: the URL is empty",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/debian?token=x\" }\n",
            "4:22: `http://h/debian?token=x` has a query or fragment",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", keyring = \"missing.gpg\" }\n",
            "4:46: keyring ",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = []\n",
            "4:14: repository lists no archive",
        ),
        (
            "[image]\nname = \"app\"\n[[packages.repository]]\nurl = \"http://h/d\"\n[[packages.repository]]\nurl = \"http://h/s\"\nsuite = \"a b\"\n",
            "7:9: suite `a b` contains ' '",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nrepository = { url = \"http://h/d\", architectures = [\"ARM64\"] }\n",
            "4:53: `ARM64` is not a Debian architecture name",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"curl/../etc\"]\n",
            "4:12: release `../etc`",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"curl/a/b\"]\n",
            "4:12: release `a/b` has a `/`",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\nexclude = [\"curl/bookworm\"]\n",
            "4:12: `curl/bookworm`: only include names a release",
        ),
        (
            "[image]\nname = \"app\"\n[packages]\ninclude = [\"curl/bookworm-backports\"]\nexclude = [\"curl\"]\n",
            "5:12: package `curl` is both included and excluded",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(text).unwrap_err();
        assert!(matches!(error, ManifestError::Invalid { .. }), "{error}");
        let message = error_at(text);
        assert!(
            message.starts_with(expected),
            "expected `{expected}…`, got `{message}`"
        );
    }
}

#[test]
fn error_display_names_the_file() {
    let error = parse("[image]\nname = \"App\"\n").unwrap_err();
    assert!(
        error.to_string().starts_with("project/xbuild.toml:2:8: "),
        "{error}"
    );
}

#[test]
fn missing_file_names_the_path_and_says_to_create_it() {
    let directory = tempfile::tempdir().unwrap();
    let error = Manifest::load(directory.path()).unwrap_err();
    let expected = directory.path().join(FILE_NAME);
    assert!(
        matches!(&error, ManifestError::NotFound { path } if *path == expected),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&expected.display().to_string()),
        "{message}"
    );
    assert!(message.contains("create an xbuild.toml"), "{message}");
}

#[test]
fn text_positions_count_characters() {
    let text = "ab\nçd\n";
    assert_eq!(
        TextPosition::at_offset(text, 0),
        TextPosition { line: 1, column: 1 }
    );
    assert_eq!(
        TextPosition::at_offset(text, 3),
        TextPosition { line: 2, column: 1 }
    );
    assert_eq!(
        TextPosition::at_offset(text, 5),
        TextPosition { line: 2, column: 2 }
    );
    assert_eq!(
        TextPosition::at_offset(text, 4),
        TextPosition { line: 2, column: 1 }
    );
    assert_eq!(
        TextPosition::at_offset(text, 99),
        TextPosition { line: 3, column: 1 }
    );
}

#[test]
fn repository_names_follow_the_distribution_grammar() {
    for valid in ["a", "a.b", "a_b", "a__b", "a---b", "ghcr.io/org/app", "0"] {
        assert!(check_repository_name(valid).is_ok(), "{valid}");
    }
    for invalid in ["", "a.", "_a", "a___b", "a._b", "a//b", "a/", "a:1", "a b"] {
        assert!(check_repository_name(invalid).is_err(), "{invalid}");
    }
}

#[test]
fn build_sources_must_be_one_known_form_with_a_digest_for_urls() {
    let build = |source: &str| {
        format!("[image]\nname = \"app\"\n\n[[build]]\nkind = \"make\"\nsource = {source}\n")
    };
    let message = error_at(&build("{ url = \"https://example.org/x.tar.gz\" }"));
    assert!(message.starts_with("6:10: "), "{message}");
    assert!(message.contains("needs its `sha256`"), "{message}");
    let message = error_at(&build(
        "{ url = \"https://example.org/x.tar.gz\", sha256 = \"abc\" }",
    ));
    assert!(message.contains("not 64 hexadecimal digits"), "{message}");
    let message = error_at(&build("{ debian = \"hello\", path = \"src\" }"));
    assert!(message.contains("`source` is one of"), "{message}");
    let message = error_at(
        "[image]\nname = \"app\"\n\n[[build]]\nkind = \"cargo\"\nsource = { debian = \"hello\" }\n",
    );
    assert!(
        message.contains("a cargo build takes its sources from `path`"),
        "{message}"
    );
    let manifest = parse(&build("{ path = \"vendor/lib\" }")).unwrap();
    assert!(manifest.builds[0].path.ends_with("vendor/lib"));
    assert_eq!(manifest.builds[0].source, None);
}

#[test]
fn slim_and_its_probes() {
    let manifest = parse(
        "[image]\nname = \"app\"\ncmd = [\"cowsay\"]\nslim = true\n\
         slim-probes = [[\"sh\", \"-c\", \"ls\"], [\"true\"]]\n",
    )
    .unwrap();
    assert!(manifest.image.slim);
    assert_eq!(
        manifest.image.slim_probes,
        [vec!["sh", "-c", "ls"], vec!["true"]]
    );
    assert!(!parse(MINIMAL).unwrap().image.slim);
    assert_eq!(
        error_at("[image]\nname = \"app\"\nslim = true\nslim-probes = [[]]\n"),
        "4:16: a slim probe is a non-empty command, e.g. [\"cowsay\", \"moo\"]"
    );
    assert_eq!(
        error_at("[image]\nname = \"app\"\nslim-probes = [[\"true\"]]\n"),
        "3:16: slim-probes are run only for a slim image: set `slim = true`"
    );
    assert_eq!(
        error_at("[image]\nname = \"app\"\nslim = true\n"),
        "2:8: a slim image needs a cmd, an entrypoint or slim-probes to trace"
    );
}
