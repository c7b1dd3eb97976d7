//! Which Debian repositories to read, and with which keys: the package
//! sources of a build, as a list.
//!
//! The manifest's `[[packages.repository]]` list (or its single
//! `repository` table) wins, used exactly as written; `--mirror` replaces
//! the list with the one archive it names; otherwise every `deb` source the
//! host's own apt uses is read from `$XBUILD_APT_ETC` (default `/etc/apt`)
//! as apt reads it: one-line `sources.list` first, then the files of
//! `sources.list.d/` in name order (`*.list` one-line, `*.sources` deb822),
//! each `URIs` × `Suites` pair one source, so `bookworm`,
//! `bookworm-updates` and `bookworm-security` are three. `Architectures:`
//! and `[arch=…]` are kept: a source is read only for the architectures it
//! names. The keyring is the entry's `Signed-By`, else Debian's archive
//! keyring, else apt's `trusted.gpg.d`.
//!
//! Every URL, suite and component is checked before anything is fetched
//! ([`check_url`], [`check_archive_path`]): a repository is an `http://`,
//! `https://` or `file://` archive root, and suites and components are
//! plain path words, so nothing a manifest, `--mirror` or an apt source
//! says can make xbuild request a path outside the archive. A host apt
//! source with another transport (`cdrom:`, `tor+http:`, …) is skipped.

use crate::debian::control::ParagraphReader;
use crate::manifest::RepositorySpec;
use fs_err as fs;
use std::path::{Path, PathBuf};

/// Where the repository came from, for messages and reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepositoryOrigin {
    Manifest,
    CommandLine,
    HostApt { file: PathBuf },
}

/// One package source (a suite of an archive), fully determined.
#[derive(Clone)]
pub struct Repository {
    /// Base URL without a trailing slash. May hold credentials: print
    /// [`Repository::shown_url`], key and store [`Repository::plain_url`].
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    pub keyrings: Vec<PathBuf>,
    pub origin: RepositoryOrigin,
    /// The Debian architectures it is read for (`[arch=…]`,
    /// `Architectures:`); empty: every one its Release lists.
    pub architectures: Vec<String>,
}

impl Repository {
    /// The URL with any `user:password@` replaced by `***@`.
    pub fn shown_url(&self) -> String {
        crate::http::redact(&self.url)
    }

    /// The URL without its credentials: what cache keys and records hold,
    /// so a password never reaches an entry or a remote.
    pub fn plain_url(&self) -> String {
        crate::http::without_credentials(&self.url)
    }

    /// Whether it is read for `arch` (its `[arch=…]` allows it).
    pub fn serves_architecture(&self, arch: &str) -> bool {
        self.architectures.is_empty() || self.architectures.iter().any(|a| a == arch)
    }

    /// `http://…/debian bookworm-security` (credentials redacted).
    pub fn describe(&self) -> String {
        format!("{} {}", self.shown_url(), self.suite)
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Repository")
            .field("url", &self.shown_url())
            .field("suite", &self.suite)
            .field("components", &self.components)
            .field("keyrings", &self.keyrings)
            .field("origin", &self.origin)
            .field("architectures", &self.architectures)
            .finish()
    }
}

/// Whether `suite` is an overlay of a release rather than the release
/// itself (`bookworm-security`, `bookworm-updates`, `-backports`,
/// `-proposed-updates`).
pub fn is_overlay_suite(suite: &str) -> bool {
    ["-security", "-updates", "-backports", "-proposed-updates"]
        .iter()
        .any(|ending| suite.ends_with(ending))
        || suite.contains("/updates")
}

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error(
        "no Debian repository is configured: the manifest has no packages.repository and no usable apt source (http, https or file) was found in {apt_etc}"
    )]
    NoneConfigured { apt_etc: PathBuf },
    #[error("no keyring to verify {url} with: {reason}")]
    NoKeyring { url: String, reason: String },
    #[error("cannot read the apt source list {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    InvalidSource {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// `--mirror` or `XBUILD_MIRROR` (named by `option`) is not usable.
    #[error("{option} {value:?} is not a repository URL: {reason}")]
    InvalidMirror {
        option: String,
        value: String,
        reason: String,
    },
}

impl RepositoryError {
    pub fn hint(&self) -> String {
        match self {
            RepositoryError::NoneConfigured { .. } => "add `repository = { url = \"http://<mirror>/debian\", suite = \"bookworm\", keyring = \"<archive-keyring.gpg>\" }` under [packages] in xbuild.toml, or pass --mirror URL".into(),
            RepositoryError::NoKeyring { .. } => "set packages.repository.keyring in xbuild.toml to the archive's public key (binary .gpg or armored .asc)".into(),
            RepositoryError::InvalidMirror { option, .. } => format!("give {option} the root of a Debian archive (the directory holding dists/ and pool/): http://<mirror>/debian, or file:///path/to/mirror/debian for a local mirror"),
            _ => "fix or remove the apt source file, or set packages.repository in xbuild.toml".into(),
        }
    }
}

/// Checks a repository URL: one [`crate::http::check_url`] accepts, and
/// an archive root that xbuild appends `dists/…` and `pool/…` to, so
/// without a query, a fragment, or `.`/`..` segments.
pub fn check_url(url: &str) -> Result<(), String> {
    crate::http::check_url(url)?;
    let shown = crate::http::redact(url);
    if url.contains(['?', '#']) {
        return Err(format!(
            "`{shown}` has a query or fragment (`?`, `#`); a repository URL is the archive root, which xbuild appends dists/… and pool/… to"
        ));
    }
    let path = url.split_once("://").map_or("", |(_, rest)| rest);
    if path.split('/').any(|segment| {
        matches!(
            segment.to_ascii_lowercase().as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        )
    }) {
        return Err(format!("`{shown}` has `.` or `..` in its path"));
    }
    Ok(())
}

/// Checks a suite or component (`bookworm`, `main`, `non-free-firmware`,
/// `main/debian-installer`): letters, digits, `.`, `_`, `+`, `~`, `-`, and
/// `/` between non-empty parts that are not `.` or `..`; so it names a
/// directory inside the archive's `dists/`, and nothing else.
pub fn check_archive_path(word: &str, what: &str) -> Result<(), String> {
    let allowed = |character: char| {
        character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '+' | '~' | '-' | '/')
    };
    if word.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(bad) = word.chars().find(|character| !allowed(*character)) {
        return Err(format!(
            "{what} `{word}` contains {bad:?}: only letters, digits, `.`, `_`, `+`, `~`, `-` and `/` are allowed"
        ));
    }
    if word
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{what} `{word}` must be `/`-separated non-empty parts, none `.` or `..`"
        ));
    }
    Ok(())
}

/// Whether xbuild reads this URL's transport (http, https, file); apt
/// sources with others (`cdrom:`, `tor+http:`, `mirror+file:`) are skipped.
fn readable_transport(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            matches!(
                scheme.to_ascii_lowercase().as_str(),
                "http" | "https" | "file"
            )
        }
        // No scheme at all: not a URL, reported by the check.
        _ => true,
    }
}

/// A host apt source's URL, suite and components, checked; the error
/// names the file and line.
fn check_source(
    path: &Path,
    line: usize,
    url: &str,
    suite: &str,
    components: &[String],
) -> Result<(), RepositoryError> {
    let invalid = |reason: String| RepositoryError::InvalidSource {
        path: path.to_owned(),
        line,
        reason,
    };
    check_url(url).map_err(|reason| invalid(format!("URIs/URL: {reason}")))?;
    check_archive_path(suite, "suite").map_err(invalid)?;
    for component in components {
        check_archive_path(component, "component").map_err(invalid)?;
    }
    Ok(())
}

/// Debian's archive keyring as installed by the `debian-archive-keyring` package.
pub const DEBIAN_ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The directory apt's configuration is read from.
pub fn apt_etc() -> PathBuf {
    std::env::var_os("XBUILD_APT_ETC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/apt"))
}

/// Decides the package sources from the manifest's list, a `--mirror`
/// override and the host's apt configuration, in that order of
/// precedence (see the module doc).
pub fn select(
    specs: &[RepositorySpec],
    mirror_override: Option<&str>,
) -> Result<Vec<Repository>, RepositoryError> {
    if let Some(url) = mirror_override {
        // The CLI checks it first, naming the flag or the variable.
        check_url(url.trim_end_matches('/')).map_err(|reason| RepositoryError::InvalidMirror {
            option: "--mirror".into(),
            value: crate::http::redact(url),
            reason,
        })?;
    }
    let apt_etc = apt_etc();
    let host = host_sources(&apt_etc)?;
    let main_of = |url: &str| {
        host.iter()
            .find(|source| source.url == url && !is_overlay_suite(&source.suite))
    };
    let host_main = host.iter().find(|source| !is_overlay_suite(&source.suite));
    let from_spec = |url: &str, spec: Option<&RepositorySpec>, origin: RepositoryOrigin| {
        let url = url.trim_end_matches('/').to_owned();
        let same = main_of(&url);
        let suite = spec
            .and_then(|spec| spec.suite.clone())
            .or_else(|| same.or(host_main).map(|host| host.suite.clone()))
            .unwrap_or_else(|| "bookworm".to_owned());
        let keyrings = match spec.and_then(|spec| spec.keyring.clone()) {
            Some(path) => vec![path],
            None => match same {
                Some(host) if !host.keyrings.is_empty() => host.keyrings.clone(),
                _ => default_keyrings(&apt_etc),
            },
        };
        Repository {
            url,
            suite,
            components: spec
                .and_then(|spec| spec.components.clone())
                .unwrap_or_else(|| vec!["main".to_owned()]),
            keyrings,
            origin,
            architectures: spec
                .and_then(|spec| spec.architectures.clone())
                .unwrap_or_default(),
        }
    };
    let repositories: Vec<Repository> = match (mirror_override, specs) {
        (Some(url), specs) => vec![from_spec(url, specs.first(), RepositoryOrigin::CommandLine)],
        (None, []) if host.is_empty() => return Err(RepositoryError::NoneConfigured { apt_etc }),
        (None, []) => host
            .into_iter()
            .map(|mut source| {
                if source.keyrings.is_empty() {
                    source.keyrings = default_keyrings(&apt_etc);
                }
                source
            })
            .collect(),
        (None, specs) => specs
            .iter()
            .map(|spec| from_spec(&spec.url, Some(spec), RepositoryOrigin::Manifest))
            .collect(),
    };
    if let Some(bare) = repositories.iter().find(|r| r.keyrings.is_empty()) {
        return Err(RepositoryError::NoKeyring {
            url: bare.shown_url(),
            reason: format!(
                "no packages.repository.keyring, no Signed-By in apt's sources, and neither {DEBIAN_ARCHIVE_KEYRING} nor {}/trusted.gpg.d exists",
                apt_etc.display()
            ),
        });
    }
    Ok(repositories)
}

/// The main suite the host's apt uses from the archive at `url` (not an
/// overlay such as `-updates`): the build machine's own Debian release,
/// when it reads this archive.
pub fn host_suite_of(url: &str) -> Option<String> {
    let url = url.trim_end_matches('/');
    host_sources(&apt_etc())
        .ok()?
        .into_iter()
        .find(|source| source.url == url && !is_overlay_suite(&source.suite))
        .map(|source| source.suite)
}

fn default_keyrings(apt_etc: &Path) -> Vec<PathBuf> {
    let archive = PathBuf::from(DEBIAN_ARCHIVE_KEYRING);
    if archive.is_file() {
        return vec![archive];
    }
    let mut found: Vec<PathBuf> = fs::read_dir(apt_etc.join("trusted.gpg.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "gpg" || extension == "asc")
        })
        .collect();
    found.sort();
    found
}

/// The host's apt `deb` sources, in the order apt reads them:
/// `sources.list`, then `sources.list.d/` by file name.
pub fn host_sources(apt_etc: &Path) -> Result<Vec<Repository>, RepositoryError> {
    let mut sources = Vec::new();
    let list = apt_etc.join("sources.list");
    if list.is_file() {
        sources.extend(parse_one_line_sources(&list)?);
    }
    let parts = apt_etc.join("sources.list.d");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&parts) {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    for file in &files {
        match file.extension().and_then(|extension| extension.to_str()) {
            Some("sources") => sources.extend(parse_deb822_sources(file)?),
            Some("list") if file.is_file() => sources.extend(parse_one_line_sources(file)?),
            _ => {}
        }
    }
    Ok(sources)
}

fn read(path: &Path) -> Result<String, RepositoryError> {
    fs::read_to_string(path).map_err(|source| RepositoryError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_deb822_sources(path: &Path) -> Result<Vec<Repository>, RepositoryError> {
    let text = read(path)?;
    let mut sources = Vec::new();
    let origin = path.display().to_string();
    for item in ParagraphReader::new(text.as_bytes(), origin) {
        let (paragraph, line) = item.map_err(|error| RepositoryError::Parse {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        let words = |field: &str| -> Vec<String> {
            paragraph
                .get(field)
                .map(|value| value.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        if !words("Types").iter().any(|kind| kind == "deb")
            || paragraph
                .get("Enabled")
                .is_some_and(|value| value.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let keyrings: Vec<PathBuf> = match paragraph.get("Signed-By") {
            // An inline key block cannot be named by path; fall back to defaults.
            Some(value) if value.contains("BEGIN PGP") => Vec::new(),
            Some(value) => value.split_whitespace().map(PathBuf::from).collect(),
            None => Vec::new(),
        };
        for url in words("URIs") {
            if !readable_transport(&url) {
                continue;
            }
            for suite in words("Suites") {
                check_source(
                    path,
                    line,
                    url.trim_end_matches('/'),
                    &suite,
                    &words("Components"),
                )?;
                sources.push(Repository {
                    url: url.trim_end_matches('/').to_owned(),
                    suite,
                    components: words("Components"),
                    keyrings: keyrings.clone(),
                    origin: RepositoryOrigin::HostApt {
                        file: path.to_owned(),
                    },
                    architectures: words("Architectures"),
                });
            }
        }
    }
    Ok(sources)
}

fn parse_one_line_sources(path: &Path) -> Result<Vec<Repository>, RepositoryError> {
    let text = read(path)?;
    let mut sources = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut keyrings = Vec::new();
        let mut architectures = Vec::new();
        if let Some(options) = rest.strip_prefix('[') {
            let Some(end) = options.find(']') else {
                return Err(RepositoryError::Parse {
                    path: path.to_owned(),
                    reason: format!("unclosed `[` in {line:?}"),
                });
            };
            for option in options[..end].split_whitespace() {
                if let Some(value) = option.strip_prefix("signed-by=") {
                    keyrings.extend(value.split(',').map(PathBuf::from));
                } else if let Some(value) = option.strip_prefix("arch=") {
                    architectures.extend(value.split(',').map(str::to_owned));
                }
            }
            rest = options[end + 1..].trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(url), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if !readable_transport(url) {
            continue;
        }
        let url = url.trim_end_matches('/');
        let components: Vec<String> = words.map(str::to_owned).collect();
        check_source(path, index + 1, url, suite, &components)?;
        sources.push(Repository {
            url: url.to_owned(),
            suite: suite.to_owned(),
            components,
            keyrings,
            origin: RepositoryOrigin::HostApt {
                file: path.to_owned(),
            },
            architectures,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_deb_source_in_apt_order_with_its_architectures() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\nArchitectures: amd64 arm64\n\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: sid\nEnabled: no\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64,i386 signed-by=/other.gpg] http://other.invalid/debian trixie main contrib\ndeb-src http://x.invalid/debian bookworm main\n",
        )
        .unwrap();
        let sources = host_sources(dir.path()).unwrap();
        let described: Vec<(String, Vec<String>)> = sources
            .iter()
            .map(|source| (source.describe(), source.architectures.clone()))
            .collect();
        assert_eq!(
            described,
            [
                (
                    "http://other.invalid/debian trixie".to_owned(),
                    vec!["amd64".to_owned(), "i386".into()]
                ),
                ("http://mirror.invalid/debian bookworm".to_owned(), vec![]),
                (
                    "http://mirror.invalid/debian bookworm-updates".to_owned(),
                    vec![]
                ),
                (
                    "http://mirror.invalid/debian-security bookworm-security".to_owned(),
                    vec!["amd64".to_owned(), "arm64".into()]
                ),
            ]
        );
        assert_eq!(sources[0].components, vec!["main", "contrib"]);
        assert_eq!(sources[0].keyrings, vec![PathBuf::from("/other.gpg")]);
        assert_eq!(sources[1].keyrings, vec![PathBuf::from("/k.gpg")]);
        assert!(sources[3].serves_architecture("arm64"));
        assert!(!sources[3].serves_architecture("s390x"));
        assert!(sources[1].serves_architecture("s390x"));
        assert!(is_overlay_suite("bookworm-security") && is_overlay_suite("bookworm-updates"));
        assert!(!is_overlay_suite("bookworm") && !is_overlay_suite("trixie"));
    }

    #[test]
    fn a_password_in_a_source_url_is_never_shown_or_stored() {
        let source = Repository {
            url: "http://user:hunter2@mirror.invalid/debian".to_owned(),
            suite: "bookworm".to_owned(),
            components: vec!["main".to_owned()],
            keyrings: Vec::new(),
            origin: RepositoryOrigin::Manifest,
            architectures: Vec::new(),
        };
        assert_eq!(source.plain_url(), "http://mirror.invalid/debian");
        assert_eq!(
            source.describe(),
            "http://***@mirror.invalid/debian bookworm"
        );
        assert!(!format!("{source:?}").contains("hunter2"));
    }

    #[test]
    fn repository_urls_are_archive_roots() {
        assert_eq!(check_url("http://mirror.invalid/debian"), Ok(()));
        assert_eq!(check_url("file:///srv/mirror/debian"), Ok(()));
        for (bad, expected) in [
            ("http://mirror.invalid/debian?x=1", "query or fragment"),
            ("http://mirror.invalid/debian#top", "query or fragment"),
            ("http://mirror.invalid/debian/../etc", "`..`"),
            ("http://mirror.invalid/%2E%2E/etc", "`..`"),
            ("file:///srv/./mirror", "`..`"),
            ("http:///debian", "has no host"),
            ("ftp://mirror.invalid/debian", "uses `ftp`"),
            ("notaurl", "is not a URL"),
            ("", "empty"),
        ] {
            let error = check_url(bad).expect_err(bad);
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn suites_and_components_stay_inside_dists() {
        for good in [
            "bookworm",
            "trixie-updates",
            "main",
            "non-free-firmware",
            "main/debian-installer",
            "1.0+b~x_y",
        ] {
            assert_eq!(check_archive_path(good, "suite"), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../../etc",
            "..",
            "a/./b",
            "/etc",
            "main/",
            "a?b",
            "a#b",
            "a b",
            "a%2fb",
            "a\\b",
        ] {
            assert!(check_archive_path(bad, "suite").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_host_sources_name_the_file_and_line_and_other_transports_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "deb cdrom:[Debian GNU/Linux 12 _Bookworm_]/ bookworm main\ndeb tor+http://onion.invalid/debian bookworm main\ndeb http://mirror.invalid/debian bookworm main\n",
        )
        .unwrap();
        let sources = host_sources(dir.path()).unwrap();
        assert_eq!(sources.len(), 1, "{sources:?}");
        assert_eq!(sources[0].url, "http://mirror.invalid/debian");

        let file = dir.path().join("sources.list.d/bad.sources");
        fs::write(
            &file,
            "Types: deb\nURIs: http://ok.invalid/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http:///debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        let error = host_sources(dir.path()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:5: ", file.display())),
            "{error}"
        );
        assert!(error.contains("`http:///debian` has no host"), "{error}");

        fs::write(
            &file,
            "Types: deb\nURIs: http://ok.invalid/debian\nSuites: ../../etc\n",
        )
        .unwrap();
        let error = host_sources(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("bad.sources:1: suite `../../etc`"),
            "{error}"
        );

        fs::remove_file(&file).unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "# c\ndeb notaurl bookworm main\n",
        )
        .unwrap();
        let error = host_sources(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("sources.list:2: URIs/URL: `notaurl` is not a URL"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_mirror_override_is_refused_before_anything_is_fetched() {
        for bad in [
            "ftp://mirror.invalid/debian",
            "notaurl",
            "",
            "http:///debian",
        ] {
            let error = select(&[], Some(bad)).unwrap_err();
            assert!(
                matches!(error, RepositoryError::InvalidMirror { .. }),
                "{bad:?}: {error}"
            );
            assert!(
                error.to_string().starts_with(&format!("--mirror {bad:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn host_apt_of_this_machine_names_a_main_suite() {
        let sources = host_sources(Path::new("/etc/apt")).unwrap();
        if let Some(first) = sources.first() {
            assert!(first.url.starts_with("http"), "{first:?}");
            assert!(!first.suite.contains("security"));
        }
    }
}
