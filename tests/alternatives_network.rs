//! `xbuild::configure::alternatives` against two real oracles, on arm64
//! packages of bookworm from the host's mirror (network).
//!
//! 1. `network_alternatives_match_update_alternatives`: ~20 packages that
//!    register alternatives are extracted into two roots; xbuild reads
//!    their postinsts and applies the calls to R1, the host's
//!    `update-alternatives --root R2 --install …` makes the same calls in
//!    R2. The databases, `--query` of every group and every link must be
//!    equal.
//! 2. `network_root_alternatives_match_mmdebstrap`: mmdebstrap installs a
//!    modest set with the real maintainer scripts run under qemu (root);
//!    xbuild reads the postinsts dpkg kept in that root and applies them
//!    to an empty R1 in dpkg's configure order. Every group of R3 must be
//!    in R1, equal, unless a call of it was reported unreadable.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::mirror::host_mirror;
use support::run_ok;
use support::xbuild::temp_dir;
use tempfile::TempDir;
use xbuild::configure::alternatives::{Chosen, Install, Unreadable, apply, parse_postinst};

const SUITE: &str = "bookworm";
const ARCHITECTURE: &str = "arm64";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Editors, awk, pagers, browsers, BLAS/LAPACK, netcat, pinentry, rename;
/// procps and openjdk-17-jre-headless register theirs in a function and in
/// a loop (reported unreadable).
const PACKAGES: &[&str] = &[
    "mawk",
    "original-awk",
    "gawk",
    "vim-tiny",
    "vim-nox",
    "nano",
    "ed",
    "less",
    "w3m",
    "lynx",
    "libblas3",
    "liblapack3",
    "libopenblas0-pthread",
    "libatlas3-base",
    "libblis4-pthread",
    "netcat-openbsd",
    "netcat-traditional",
    "pinentry-curses",
    "rename",
    "procps",
    "openjdk-17-jre-headless",
];

/// What mmdebstrap installs (with their dependencies) for the second
/// oracle: few enough for qemu to configure in a few minutes.
const MMDEBSTRAP_PACKAGES: &[&str] = &[
    "mawk",
    "gawk",
    "original-awk",
    "nano",
    "vim-tiny",
    "ed",
    "less",
    "libblas3",
    "liblapack3",
    "libopenblas0-pthread",
    "netcat-openbsd",
    "pinentry-curses",
];

/// A private apt for arm64 (own lists, cache and empty status; the host's
/// apt state is never touched), for `apt-get download`.
struct Apt {
    dir: TempDir,
}

impl Apt {
    fn new() -> Apt {
        let dir = temp_dir("xbuild-alternatives-apt-");
        let root = dir.path();
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            fs_err::create_dir_all(root.join(sub)).unwrap();
        }
        fs_err::write(root.join("status"), "").unwrap();
        fs_err::write(
            root.join("etc/sources.list"),
            format!(
                "deb [arch={ARCHITECTURE} signed-by={KEYRING}] {} {SUITE} main\n",
                host_mirror()
            ),
        )
        .unwrap();
        let root_text = root.display();
        fs_err::write(
            root.join("apt.conf"),
            format!(
                "Dir::Etc \"{root_text}/etc\";\n\
                 Dir::State \"{root_text}\";\n\
                 Dir::State::lists \"{root_text}/lists\";\n\
                 Dir::State::status \"{root_text}/status\";\n\
                 Dir::Cache \"{root_text}/cache\";\n\
                 Dir::Log \"{root_text}/log\";\n\
                 APT::Architecture \"{ARCHITECTURE}\";\n\
                 APT::Architectures {{ \"{ARCHITECTURE}\"; }};\n\
                 APT::Sandbox::User \"root\";\n\
                 Acquire::Languages \"none\";\n\
                 Debug::NoLocking \"true\";\n"
            ),
        )
        .unwrap();
        let apt = Apt { dir };
        run_ok(apt.command().arg("update"));
        apt
    }

    fn command(&self) -> Command {
        let mut command = Command::new("apt-get");
        command
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .env("LC_ALL", "C")
            .arg("-q");
        command
    }

    /// Downloads `packages` into `into`; returns (package, .deb path).
    fn download(&self, packages: &[&str], into: &Path) -> Vec<(String, PathBuf)> {
        run_ok(
            self.command()
                .current_dir(into)
                .arg("download")
                .args(packages),
        );
        packages
            .iter()
            .map(|package| {
                let deb = fs_err::read_dir(into)
                    .unwrap()
                    .map(|entry| entry.unwrap().path())
                    .find(|path| {
                        path.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(&format!("{package}_"))
                    })
                    .unwrap_or_else(|| panic!("{package} was not downloaded"));
                (package.to_string(), deb)
            })
            .collect()
    }
}

/// Whether the absolute image `path` exists in `root`, following symlinks
/// inside the root (as `stat` in a chroot would).
fn exists_in(root: &Path, path: &str) -> bool {
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut current: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "" | "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => current.push(component),
        }
        let full = root.join(current.join("/"));
        match fs_err::symlink_metadata(&full) {
            Err(_) => return false,
            Ok(metadata) if metadata.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return false;
                }
                let target = fs_err::read_link(&full).unwrap();
                let target = target.to_string_lossy();
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(target.split('/').rev().map(str::to_owned));
            }
            Ok(_) => {}
        }
    }
    true
}

fn update_alternatives(root: &Path) -> Command {
    let mut command = Command::new("update-alternatives");
    command.arg("--root").arg(root).env("LC_ALL", "C");
    command
}

fn make_admin_dirs(root: &Path) {
    for sub in ["etc/alternatives", "var/lib/dpkg/alternatives", "var/log"] {
        fs_err::create_dir_all(root.join(sub)).unwrap();
    }
}

/// The host's `update-alternatives --root` making `install`.
fn install_with_host(root: &Path, install: &Install) {
    let mut command = update_alternatives(root);
    command
        .arg("--install")
        .args([&install.link, &install.name, &install.path])
        .arg(install.priority.to_string());
    for slave in &install.slaves {
        command
            .arg("--slave")
            .args([&slave.link, &slave.name, &slave.path]);
    }
    run_ok(&mut command);
}

/// The group names in `root`'s database.
fn group_names(root: &Path) -> BTreeSet<String> {
    let directory = root.join("var/lib/dpkg/alternatives");
    if !directory.exists() {
        return BTreeSet::new();
    }
    fs_err::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The symlink at image path `path` in `root`, if any.
fn link_target(root: &Path, path: &str) -> Option<String> {
    let full = root.join(path.trim_start_matches('/'));
    let metadata = fs_err::symlink_metadata(&full).ok()?;
    assert!(
        metadata.file_type().is_symlink(),
        "{} is not a symlink",
        full.display()
    );
    Some(
        fs_err::read_link(&full)
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    )
}

/// Everything of group `name` that must be equal in both roots: its
/// database file, `--query`, and each of its links (master, slaves and
/// their `/etc/alternatives` entries; absent ones as `None`).
fn group_state(root: &Path, name: &str) -> String {
    let database = fs_err::read_to_string(root.join("var/lib/dpkg/alternatives").join(name))
        .unwrap_or_else(|error| format!("<no database: {error}>"));
    let query = update_alternatives(root)
        .args(["--query", name])
        .output()
        .unwrap();
    let mut state = format!(
        "database:\n{database}\nquery (exit {}):\n{}{}\nlinks:\n",
        query.status,
        String::from_utf8_lossy(&query.stdout),
        String::from_utf8_lossy(&query.stderr)
    );
    let mut lines = database.lines();
    lines.next();
    let mut links = vec![(name.to_owned(), lines.next().unwrap_or_default().to_owned())];
    while let (Some(slave), Some(link)) = (lines.next(), lines.next()) {
        if slave.is_empty() {
            break;
        }
        links.push((slave.to_owned(), link.to_owned()));
    }
    for (link_name, link) in links {
        let alternatives = format!("/etc/alternatives/{link_name}");
        state.push_str(&format!(
            "{link} -> {:?}\n{alternatives} -> {:?}\n",
            link_target(root, &link),
            link_target(root, &alternatives)
        ));
    }
    state
}

fn extract(deb: &Path, root: &Path) {
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
}

fn postinst(deb: &Path, scratch: &Path) -> Option<String> {
    let control = scratch.join(deb.file_name().unwrap());
    run_ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    fs_err::read_to_string(control.join("postinst")).ok()
}

fn print_unreadable(unreadable: &[Unreadable]) {
    for call in unreadable {
        eprintln!("unreadable: {call}");
    }
}

#[test]
fn network_alternatives_match_update_alternatives() {
    let apt = Apt::new();
    let work = temp_dir("xbuild-alternatives-");
    let debs_dir = work.path().join("debs");
    let scratch = work.path().join("control");
    let xbuild_root = work.path().join("r1");
    let host_root = work.path().join("r2");
    for dir in [&debs_dir, &scratch, &xbuild_root, &host_root] {
        fs_err::create_dir_all(dir).unwrap();
    }
    let debs = apt.download(PACKAGES, &debs_dir);

    let mut installs: Vec<(String, Install)> = Vec::new();
    let mut unreadable: BTreeMap<String, Vec<Unreadable>> = BTreeMap::new();
    for (package, deb) in &debs {
        extract(deb, &xbuild_root);
        extract(deb, &host_root);
        let script = postinst(deb, &scratch).unwrap_or_default();
        let parsed = parse_postinst(package, &script);
        assert!(
            script.contains("update-alternatives"),
            "{package}'s postinst registers no alternative: take it out of PACKAGES"
        );
        assert!(
            !parsed.installs.is_empty() || !parsed.unreadable.is_empty(),
            "{package}: nothing read from a postinst that calls update-alternatives"
        );
        installs.extend(
            parsed
                .installs
                .into_iter()
                .map(|install| (package.clone(), install)),
        );
        unreadable
            .entry(package.clone())
            .or_default()
            .extend(parsed.unreadable);
    }
    print_unreadable(&unreadable.values().flatten().cloned().collect::<Vec<_>>());
    // The known cases: procps' function, java's loop. Everything else reads.
    let unreadable_packages: Vec<&str> = unreadable
        .iter()
        .filter(|(_, calls)| !calls.is_empty())
        .map(|(package, _)| package.as_str())
        .collect();
    assert_eq!(
        unreadable_packages,
        ["openjdk-17-jre-headless", "procps"],
        "{unreadable:#?}"
    );

    let chosen = apply(&xbuild_root, &installs, &|path| {
        exists_in(&xbuild_root, path)
    })
    .unwrap();
    make_admin_dirs(&host_root);
    for (_, install) in &installs {
        if exists_in(&host_root, &install.path) {
            install_with_host(&host_root, install);
        }
    }
    for chosen in &chosen {
        eprintln!("{chosen:?}");
    }
    let names = group_names(&host_root);
    assert_eq!(group_names(&xbuild_root), names);
    for expected in [
        "awk",
        "editor",
        "pager",
        "nc",
        "libblas.so.3-aarch64-linux-gnu",
        "vi",
    ] {
        assert!(names.contains(expected), "no group {expected}: {names:?}");
    }
    for name in &names {
        let expected = group_state(&host_root, name);
        let actual = group_state(&xbuild_root, name);
        assert_eq!(
            actual, expected,
            "group {name}: xbuild (left) vs update-alternatives"
        );
    }
    // libopenblas0-pthread (100) over atlas (35), blis (75), reference (10).
    assert_eq!(
        link_target(
            &xbuild_root,
            "/etc/alternatives/libblas.so.3-aarch64-linux-gnu"
        )
        .as_deref(),
        Some("/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3")
    );
    assert_eq!(
        link_target(&xbuild_root, "/etc/alternatives/awk").as_deref(),
        Some("/usr/bin/gawk")
    );
}

/// dpkg's configure order in `root`: packages as `dpkg.log` says they
/// reached `installed`, first time each.
fn configure_order(root: &Path) -> Vec<String> {
    let log = fs_err::read_to_string(root.join("var/log/dpkg.log")).unwrap();
    let mut order: Vec<String> = Vec::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // DATE TIME status installed PACKAGE:ARCH VERSION
        if let [_, _, "status", "installed", package, _] = words[..] {
            let package = package.split(':').next().unwrap().to_owned();
            if !order.contains(&package) {
                order.push(package);
            }
        }
    }
    order
}

#[test]
fn network_root_alternatives_match_mmdebstrap() {
    assert!(
        Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        "qemu-aarch64 is not registered with binfmt_misc: run .ci/run"
    );
    let work = temp_dir("xbuild-alternatives-mmdebstrap-");
    let reference = work.path().join("r3");
    let xbuild_root = work.path().join("r1");
    fs_err::create_dir_all(&xbuild_root).unwrap();
    run_ok(
        Command::new("mmdebstrap")
            .args([
                "--quiet",
                "--mode=root",
                "--variant=apt",
                // Keeps var/log/dpkg.log: the configure order.
                "--skip=cleanup/reproducible",
                &format!("--architectures={ARCHITECTURE}"),
                &format!("--include={}", MMDEBSTRAP_PACKAGES.join(",")),
                &format!("--keyring={KEYRING}"),
                SUITE,
            ])
            .arg(&reference)
            .arg(host_mirror()),
    );

    let mut installs = Vec::new();
    let mut unreadable_names = BTreeSet::new();
    let mut unreadable = Vec::new();
    for package in configure_order(&reference) {
        let info = reference.join("var/lib/dpkg/info");
        let script = [
            format!("{package}.postinst"),
            format!("{package}:{ARCHITECTURE}.postinst"),
        ]
        .iter()
        .find_map(|name| fs_err::read_to_string(info.join(name)).ok());
        let Some(script) = script else { continue };
        let parsed = parse_postinst(&package, &script);
        for call in &parsed.unreadable {
            // The group a call would have touched cannot be compared: the
            // `--install NAME` word when literal, else the package's.
            let words: Vec<&str> = call.text.split_whitespace().collect();
            if let Some(position) = words.iter().position(|word| *word == "--install")
                && let Some(name) = words.get(position + 2)
            {
                unreadable_names.insert((*name).to_owned());
            }
        }
        unreadable.extend(parsed.unreadable);
        installs.extend(
            parsed
                .installs
                .into_iter()
                .map(|install| (package.clone(), install)),
        );
    }
    print_unreadable(&unreadable);
    let chosen = apply(&xbuild_root, &installs, &|path| exists_in(&reference, path)).unwrap();
    for chosen in &chosen {
        eprintln!("{chosen:?}");
        assert!(
            !matches!(chosen, Chosen::Skipped { .. }),
            "a call dpkg ran was skipped: {chosen:?}"
        );
    }
    let names = group_names(&reference);
    for expected in [
        "awk",
        "editor",
        "pager",
        "nc",
        "libblas.so.3-aarch64-linux-gnu",
    ] {
        assert!(
            names.contains(expected),
            "no group {expected} in R3: {names:?}"
        );
    }
    let mut compared = 0;
    for name in &names {
        if unreadable_names.contains(name) {
            eprintln!("not compared (a call of it is unreadable): {name}");
            continue;
        }
        // Compare database and link targets, not `--query` (R1 holds no
        // package files for it to stat).
        let database = |root: &Path| {
            fs_err::read_to_string(root.join("var/lib/dpkg/alternatives").join(name)).ok()
        };
        assert_eq!(
            database(&xbuild_root),
            database(&reference),
            "database of {name}"
        );
        let text = database(&reference).unwrap();
        let mut lines = text.lines().skip(1);
        let mut links = vec![(name.clone(), lines.next().unwrap().to_owned())];
        while let (Some(slave), Some(link)) = (lines.next(), lines.next()) {
            if slave.is_empty() {
                break;
            }
            links.push((slave.to_owned(), link.to_owned()));
        }
        for (link_name, link) in links {
            let alternatives = format!("/etc/alternatives/{link_name}");
            for path in [link.as_str(), alternatives.as_str()] {
                assert_eq!(
                    link_target(&xbuild_root, path),
                    link_target(&reference, path),
                    "{name}: {path}"
                );
            }
        }
        compared += 1;
    }
    assert_eq!(
        group_names(&xbuild_root).len(),
        compared,
        "R1 has groups R3 lacks: {:?} vs {names:?}",
        group_names(&xbuild_root)
    );
    eprintln!("{compared} groups equal to mmdebstrap's");
}
