//! apt itself as the oracle for xbuild's Debian resolver, on the host's
//! real mirror (network). For each architecture a private apt (its own
//! config, lists, cache and an empty dpkg status, so the host's apt state is
//! never touched) reads the host's full apt sources — bookworm, its
//! `-updates` and `-security` suites, as `/etc/apt` names them — and xbuild
//! reads the same sources from the host's apt configuration; then for each
//! package
//! `apt-get install --no-install-recommends` (with `--print-uris`, see
//! [`Apt::install_closure`]) gives the closure apt would install on an
//! empty system, and `xbuild plan --json` (with
//! install-time dependencies kept, as apt keeps them) gives xbuild's.
//!
//! Per (package, architecture) the closures must be equal, name and
//! version (so the security overlay's newer versions win in both), or every
//! package in the difference must be explained by a pure-virtual choice —
//! a provider of a pure-virtual name both closures need (each with its own
//! provider), or a package only such a differing provider pulls in — and
//! `apt-get check` must accept xbuild's closure as an installed system.
//! When apt cannot install a package, xbuild must fail too, or the pair is
//! skipped with apt's reason printed. A table of the results is printed.
//!
//! `XBUILD_APT_PARITY_PACKAGES` and `XBUILD_APT_PARITY_ARCHES`
//! (comma-separated package names, Debian architectures) replace the
//! package list and the architectures, to look into one case or to sweep
//! many.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use support::xbuild::{Project, Xbuild, temp_dir};
use tempfile::TempDir;
use xbuild::debian::control::ParagraphReader;
use xbuild::debian::package::Package;

/// (xbuild target, Debian architecture): the ones checked, unless
/// `XBUILD_APT_PARITY_ARCHES` names others of [`KNOWN_TARGETS`].
const TARGETS: [(&str, &str); 3] = [
    ("aarch64-linux", "arm64"),
    ("armv7-linux", "armhf"),
    ("s390x-linux", "s390x"),
];

const KNOWN_TARGETS: [(&str, &str); 6] = [
    ("aarch64-linux", "arm64"),
    ("armv7-linux", "armhf"),
    ("s390x-linux", "s390x"),
    ("x86_64-linux", "amd64"),
    ("i686-linux", "i386"),
    ("ppc64le-linux", "ppc64el"),
];

const PACKAGES: &[&str] = &[
    // The cases each class of difference was found with.
    "devscripts",
    "lintian",
    "python3-setuptools-scm",
    "ruby-jbuilder",
    "courier-base",
    // Depends: default-mta | exim4 | mail-transport-agent
    "killer",
    "backuppc",
    // Depends: libcurl4-dev | libcurl4-gnutls-dev
    "libtesseract-dev",
    // Depends: qutebrowser-qtwebengine | qutebrowser-qtwebkit (the first
    // is not installable on s390x)
    "qutebrowser",
    // A pure-virtual name (apt refuses it as a request) and a package
    // that depends on it.
    "php8.2-json",
    "php-json",
    // Other pure-virtual first alternatives: cron-daemon,
    // systemd-sysusers, wireguard-modules.
    "timeshift",
    "fwupd",
    "wireguard",
    // A later package displaces an earlier one it conflicts with
    // (libreoffice-core over libreoffice-core-nogui).
    "libreoffice",
    // Everyday packages.
    "cowsay",
    "bash",
    "ca-certificates",
    "curl",
    "git",
    "openssh-client",
    "python3",
    "perl",
    "ruby",
    "nodejs",
    "nginx",
    "apache2",
    "postgresql-client",
    "sqlite3",
    "procps",
    "iproute2",
    "tzdata",
    "vim",
    "sudo",
    "gcc",
    "bsd-mailx",
    "default-jre-headless",
];

/// A private apt for one architecture.
struct Apt {
    dir: TempDir,
    arch: &'static str,
}

impl Apt {
    /// Writes the configuration (the host's sources) and runs `apt-get
    /// update` once.
    fn new(arch: &'static str) -> Apt {
        let dir = temp_dir(&format!("xbuild-apt-{arch}-"));
        let root = dir.path();
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("status"), "").unwrap();
        let host = std::path::Path::new("/etc/apt");
        if host.join("sources.list").is_file() {
            std::fs::copy(host.join("sources.list"), root.join("etc/sources.list")).unwrap();
        }
        for entry in std::fs::read_dir(host.join("sources.list.d")).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "sources" || e == "list")
            {
                std::fs::copy(
                    &path,
                    root.join("etc/sources.list.d")
                        .join(path.file_name().unwrap()),
                )
                .unwrap();
            }
        }
        let root_text = root.display();
        std::fs::write(
            root.join("apt.conf"),
            format!(
                "Dir::Etc \"{root_text}/etc\";\n\
                 Dir::State \"{root_text}\";\n\
                 Dir::State::lists \"{root_text}/lists\";\n\
                 Dir::State::status \"{root_text}/status\";\n\
                 Dir::Cache \"{root_text}/cache\";\n\
                 Dir::Log \"{root_text}/log\";\n\
                 APT::Architecture \"{arch}\";\n\
                 APT::Architectures {{ \"{arch}\"; }};\n\
                 Acquire::Languages \"none\";\n\
                 Acquire::GzipIndexes \"false\";\n\
                 Debug::NoLocking \"true\";\n"
            ),
        )
        .unwrap();
        let apt = Apt { dir, arch };
        let output = apt.command().arg("update").output().unwrap();
        assert!(
            output.status.success(),
            "apt-get update ({arch}) failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        apt
    }

    fn command(&self) -> Command {
        let mut command = Command::new("apt-get");
        command
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .env("LC_ALL", "C");
        command
    }

    /// The closure apt would install (name → version), or apt's error:
    /// the packages `--print-uris` would download into an empty archive
    /// cache, the same set `--simulate` lists as `Inst`, without the
    /// installation order apt computes for a simulation (a quarter of the
    /// time).
    fn install_closure(&self, package: &str) -> Result<BTreeMap<String, String>, String> {
        let output = self
            .command()
            .args([
                "install",
                "-qq",
                "--print-uris",
                "--no-install-recommends",
                package,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(last_lines(&format!("{stdout}{stderr}"), 3));
        }
        Ok(stdout
            .lines()
            .filter(|line| line.starts_with('\''))
            .map(|line| {
                // 'URL' name_version_arch.deb size digest, `:` as `%3a`.
                let file = line.split_whitespace().nth(1).expect("a file name");
                let mut parts = file.split('_');
                let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
                    panic!("unexpected --print-uris line: {line}");
                };
                (name.to_owned(), version.replace("%3a", ":"))
            })
            .collect())
    }

    /// Whether apt accepts `closure` as an installed system.
    fn check(&self, closure: &BTreeMap<String, String>, index: &Index) -> Result<(), String> {
        let mut status = String::new();
        for (name, version) in closure {
            let Some(fields) = index.fields.get(&(name.clone(), version.clone())) else {
                return Err(format!("{name} {version} is not in the index"));
            };
            let _ = writeln!(status, "Package: {name}\nStatus: install ok installed");
            for (field, value) in fields {
                let _ = writeln!(status, "{field}: {value}");
            }
            status.push('\n');
        }
        let path = self.dir.path().join(format!("check-status-{}", unique()));
        std::fs::write(&path, status).unwrap();
        let output = self
            .command()
            .arg("check")
            .arg(format!("-oDir::State::status={}", path.display()))
            .output()
            .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(last_lines(
                &format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
                6,
            ))
        }
    }

    /// The `Packages` lists apt downloaded, one per source.
    fn packages_lists(&self) -> Vec<PathBuf> {
        let lists: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("lists"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with("_Packages"))
            .collect();
        assert!(
            lists.len() >= 2,
            "apt-get update stored {} Packages lists: the host's sources should give the main suite and its security suite at least",
            lists.len()
        );
        lists
    }
}

fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join(" / ")
}

/// The fields of an index `apt-get check` needs, and the parsed packages.
struct Index {
    fields: HashMap<(String, String), Vec<(String, String)>>,
    packages: HashMap<(String, String), Package>,
    /// Names of real packages, and names some package provides.
    names: BTreeSet<String>,
    provided: BTreeSet<String>,
}

impl Index {
    fn read(paths: &[PathBuf], arch: &str) -> Index {
        let mut index = Index {
            fields: HashMap::new(),
            packages: HashMap::new(),
            names: BTreeSet::new(),
            provided: BTreeSet::new(),
        };
        for path in paths {
            index.add(path, arch);
        }
        index
    }

    fn add(&mut self, path: &Path, arch: &str) {
        const KEPT: [&str; 9] = [
            "Version",
            "Architecture",
            "Multi-Arch",
            "Essential",
            "Pre-Depends",
            "Depends",
            "Provides",
            "Conflicts",
            "Breaks",
        ];
        let index = self;
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).unwrap();
        for item in ParagraphReader::new(BufReader::new(file), origin.as_str()) {
            let (paragraph, line) = item.unwrap();
            let package = Package::from_paragraph(&paragraph, &origin, line, arch).unwrap();
            let key = (package.name.clone(), package.version.to_string());
            let fields = KEPT
                .iter()
                .filter_map(|field| {
                    let value = paragraph.get(field)?;
                    Some((
                        field.to_string(),
                        value.split_whitespace().collect::<Vec<_>>().join(" "),
                    ))
                })
                .collect();
            index.provided.extend(
                package
                    .provides
                    .iter()
                    .map(|provided| provided.name.clone()),
            );
            index.names.insert(package.name.clone());
            index.fields.insert(key.clone(), fields);
            index.packages.insert(key, package);
        }
    }

    fn is_pure_virtual(&self, name: &str) -> bool {
        self.provided.contains(name) && !self.names.contains(name)
    }

    fn package(&self, name: &str, version: &str) -> &Package {
        self.packages
            .get(&(name.to_owned(), version.to_owned()))
            .unwrap_or_else(|| panic!("{name} {version} is not in the index"))
    }
}

/// Names the relations of a closure's packages mention (every alternative).
fn mentioned(closure: &BTreeMap<String, String>, index: &Index) -> BTreeSet<String> {
    closure
        .iter()
        .flat_map(|(name, version)| {
            let package = index.package(name, version);
            package
                .pre_depends
                .iter()
                .chain(&package.depends)
                .flatten()
                .map(|relation| relation.name.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The packages of the difference that no pure-virtual choice explains,
/// and the pure-virtual names chosen differently.
fn unexplained(
    requested: &str,
    xbuild: &BTreeMap<String, String>,
    apt: &BTreeMap<String, String>,
    index: &Index,
) -> (Vec<String>, BTreeSet<String>) {
    let mut unexplained = Vec::new();
    for (name, version) in xbuild {
        if apt.get(name).is_some_and(|other| other != version) {
            unexplained.push(format!("{name} {version} (apt: {})", apt[name]));
        }
    }
    let providers = |closure: &BTreeMap<String, String>, virtual_name: &str| -> BTreeSet<String> {
        closure
            .iter()
            .filter(|(name, version)| {
                index
                    .package(name, version)
                    .provides
                    .iter()
                    .any(|provided| provided.name == virtual_name)
            })
            .map(|(name, _)| name.clone())
            .collect()
    };
    let (xbuild_needs, apt_needs) = (mentioned(xbuild, index), mentioned(apt, index));
    // Pure-virtual names both closures need, met by different providers.
    let chosen: BTreeSet<String> = xbuild_needs
        .intersection(&apt_needs)
        .filter(|name| index.is_pure_virtual(name))
        .filter(|name| {
            let (ours, theirs) = (providers(xbuild, name), providers(apt, name));
            !ours.is_empty() && !theirs.is_empty() && ours != theirs
        })
        .cloned()
        .collect();
    // On each side, a package only that side has is explained when the
    // requested package reaches it only through a provider chosen
    // differently: walk the side's relations from the request without
    // entering those providers, and what the walk reaches is not explained.
    for (side, other, label) in [(xbuild, apt, '+'), (apt, xbuild, '-')] {
        let differing: BTreeSet<&String> = side
            .keys()
            .filter(|name| !other.contains_key(*name))
            .filter(|name| {
                index
                    .package(name, &side[*name])
                    .provides
                    .iter()
                    .any(|provided| chosen.contains(&provided.name))
            })
            .collect();
        let mut reached: BTreeSet<&String> = BTreeSet::new();
        let mut queue: Vec<&String> = side.keys().filter(|name| *name == requested).collect();
        while let Some(name) = queue.pop() {
            if differing.contains(name) || !reached.insert(name) {
                continue;
            }
            let package = index.package(name, &side[name]);
            for relation in package.pre_depends.iter().chain(&package.depends).flatten() {
                for (candidate, version) in side {
                    let meets = *candidate == relation.name
                        || index
                            .package(candidate, version)
                            .provides
                            .iter()
                            .any(|provided| provided.name == relation.name);
                    if meets {
                        queue.push(candidate);
                    }
                }
            }
        }
        unexplained.extend(
            reached
                .iter()
                .filter(|name| !other.contains_key(**name))
                .map(|name| format!("{label}{name}")),
        );
    }
    (unexplained, chosen)
}

/// xbuild's closure for `package` on `target`, or its error.
fn xbuild_closure(
    xbuild: &Xbuild,
    package: &str,
    target: &str,
) -> Result<BTreeMap<String, String>, String> {
    let project = Project::new(&format!(
        "[image]\nname = \"parity\"\ncmd = [\"true\"]\n[packages]\ninclude = [\"{package}\"]\n\
         install-time-dependencies = true\n"
    ));
    let output = xbuild.plan(project.path(), &[target], true);
    if !output.status.success() {
        return Err(last_lines(&output.stderr, 4));
    }
    let report = output.json();
    Ok(report["targets"][0]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets[0].packages in {report}"))
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_owned(),
                entry["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Equal,
    VirtualChoice,
    /// apt cannot install the package: xbuild failed too, or it is skipped.
    AptFails,
    Fail,
}

struct Row {
    package: String,
    arch: &'static str,
    verdict: Verdict,
    detail: String,
}

fn compare(
    apt: &Apt,
    index: &Mutex<Option<Index>>,
    xbuild: &Xbuild,
    target: &str,
    package: &str,
) -> Row {
    let row = |verdict, detail: String| Row {
        package: package.to_owned(),
        arch: apt.arch,
        verdict,
        detail,
    };
    let ours = xbuild_closure(xbuild, package, target);
    let theirs = apt.install_closure(package);
    match (ours, theirs) {
        (Err(ours), Err(theirs)) => row(
            Verdict::AptFails,
            format!("both fail; apt: {theirs}; xbuild: {ours}"),
        ),
        (Ok(ours), Err(theirs)) => row(
            Verdict::AptFails,
            format!(
                "skipped: apt cannot install it ({theirs}); xbuild: {} packages",
                ours.len()
            ),
        ),
        (Err(ours), Ok(theirs)) => row(
            Verdict::Fail,
            format!(
                "xbuild fails where apt installs {} packages: {ours}",
                theirs.len()
            ),
        ),
        (Ok(ours), Ok(theirs)) if ours == theirs => {
            row(Verdict::Equal, format!("{} packages", ours.len()))
        }
        (Ok(ours), Ok(theirs)) => {
            let mut guard = index.lock().unwrap();
            let index = guard.get_or_insert_with(|| Index::read(&apt.packages_lists(), apt.arch));
            let (unexplained, chosen) = unexplained(package, &ours, &theirs, index);
            let sizes = format!("xbuild {} / apt {} packages", ours.len(), theirs.len());
            if !unexplained.is_empty() {
                return row(
                    Verdict::Fail,
                    format!("{sizes}; not explained: {}", unexplained.join(" ")),
                );
            }
            // The check can fail: the same set without the requested
            // package's dependencies is not installable.
            let alone: BTreeMap<String, String> = ours
                .iter()
                .filter(|(name, _)| *name == package)
                .map(|(name, version)| (name.clone(), version.clone()))
                .collect();
            assert!(
                apt.check(&alone, index).is_err(),
                "apt-get check accepts {package} ({}) without its dependencies",
                apt.arch
            );
            match apt.check(&ours, index) {
                Ok(()) => row(
                    Verdict::VirtualChoice,
                    format!(
                        "{sizes}; chose differently for {}",
                        chosen.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
                Err(error) => row(
                    Verdict::Fail,
                    format!("{sizes}; apt-get check rejects xbuild's set: {error}"),
                ),
            }
        }
    }
}

#[test]
fn closures_agree_with_apt_network() {
    let started = Instant::now();
    let packages: Vec<String> = match std::env::var("XBUILD_APT_PARITY_PACKAGES") {
        Ok(list) => list
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
        Err(_) => PACKAGES.iter().map(|name| name.to_string()).collect(),
    };
    let cache = temp_dir("xbuild-parity-cache-");
    // The host's apt sources, as xbuild reads them by default.
    let xbuild = Xbuild::new().with_cache_dir(cache.path()).with_host_apt();
    let mut rows: Vec<Row> = Vec::new();
    let targets: Vec<(&str, &'static str)> = match std::env::var("XBUILD_APT_PARITY_ARCHES") {
        Ok(list) => list
            .split(',')
            .map(|arch| {
                *KNOWN_TARGETS
                    .iter()
                    .find(|(_, known)| *known == arch.trim())
                    .unwrap_or_else(|| {
                        panic!("XBUILD_APT_PARITY_ARCHES: {arch:?} is none of {KNOWN_TARGETS:?}")
                    })
            })
            .collect(),
        Err(_) => TARGETS.to_vec(),
    };
    for &(target, arch) in &targets {
        let apt = Apt::new(arch);
        let index = Mutex::new(None);
        // The first run fetches the index into the shared cache; the rest
        // run two at a time.
        let next = AtomicUsize::new(1);
        let results = Mutex::new(vec![compare(&apt, &index, &xbuild, target, &packages[0])]);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    loop {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(package) = packages.get(position) else {
                            break;
                        };
                        let row = compare(&apt, &index, &xbuild, target, package);
                        results.lock().unwrap().push(row);
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|row| packages.iter().position(|name| *name == row.package));
        rows.extend(results);
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<24} {:<6} {:<26} detail",
        "package", "arch", "result"
    );
    for row in &rows {
        let verdict = match row.verdict {
            Verdict::Equal => "equal",
            Verdict::VirtualChoice => "differs-by-virtual-choice",
            Verdict::AptFails => "apt-fails",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(
            table,
            "{:<24} {:<6} {:<26} {}",
            row.package, row.arch, verdict, row.detail
        );
    }
    for &(_, arch) in &targets {
        let count = |verdict| {
            rows.iter()
                .filter(|row| row.arch == arch && row.verdict == verdict)
                .count()
        };
        let _ = writeln!(
            table,
            "{arch}: {} equal, {} differ by a virtual choice, {} apt cannot install, {} FAIL",
            count(Verdict::Equal),
            count(Verdict::VirtualChoice),
            count(Verdict::AptFails),
            count(Verdict::Fail)
        );
    }
    let _ = writeln!(table, "in {:.0?}", started.elapsed());
    println!("{table}");
    let failures: Vec<String> = rows
        .iter()
        .filter(|row| row.verdict == Verdict::Fail)
        .map(|row| format!("{} ({}): {}", row.package, row.arch, row.detail))
        .collect();
    assert!(
        failures.is_empty(),
        "xbuild's closures differ from apt's:\n{}\n\n{table}",
        failures.join("\n")
    );
}
