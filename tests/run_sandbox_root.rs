//! `xbuild run`'s sandbox holds (issue 16), for root and for an
//! unprivileged caller (nobody, through setpriv): the command cannot write
//! `/proc/sys` or `/proc/sysrq-trigger` nor set the hostname, is never the
//! host's root, cannot make a read-only volume (or any mount under it)
//! writable, and no crafted layer reaches outside the image's root
//! filesystem in the cache or leaves set-id files or device nodes there.
//! Every check runs the real binary on images crafted here (no network):
//! a static program compiled by the host's gcc (`tests/support/probe.c`),
//! which tries each thing and prints what the kernel answered. Root is
//! needed to run as both callers.
//!
//! Writes that must fail use what the host already has (its hostname, its
//! core_pattern), so even a failing test changes nothing; a test that
//! finds them changed puts them back before it fails.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use support::image::{Layer, probe};
use support::sandbox::{
    CALLERS, Caller, NOBODY, Probed, ROOT_RANGE_START, Scene, SubordinateIds, assert_unchanged,
    host_value, walk,
};

#[test]
fn root_run_cannot_write_proc_sys_sysrq_or_the_hostname() {
    let hostname = host_value("/proc/sys/kernel/hostname");
    let core_pattern = host_value("/proc/sys/kernel/core_pattern");
    for caller in CALLERS {
        let scene = Scene::new(caller);
        let image = scene.image("image", vec![Layer::base()]);
        let probed = scene.probe(
            &image,
            &["--volume", "/:/host:ro"],
            &[
                "id",
                "statvfs",
                "/proc/sys",
                "statvfs",
                "/proc/bus",
                "statvfs",
                "/proc/fs",
                "statvfs",
                "/proc/irq",
                "write",
                "/proc/sys/kernel/hostname",
                &hostname,
                "write",
                "/proc/sys/kernel/core_pattern",
                &core_pattern,
                // `h` only prints help to the kernel log, should it pass.
                "write",
                "/proc/sysrq-trigger",
                "h",
                "sethostname",
                &hostname,
                "writable-under",
                "/proc/sys",
                "read",
                "/proc/keys",
                "read",
                "/proc/timer_list",
                // Locked: not writable again, not to be taken away, and no
                // fresh /proc instead.
                "remount-rw",
                "/proc/sys",
                "setattr-rw",
                "/proc/sys",
                "umount",
                "/proc/sys",
                "umount",
                "/proc/keys",
                "mount-proc",
                "/tmp",
                "write",
                "/proc/sys/kernel/hostname",
                &hostname,
                // D, PID 1, holds the capabilities of the namespace the
                // command's is nested in: it cannot be traced or read.
                "read",
                "/proc/1/environ",
                // Not the host's root: what only root may read stays shut.
                "read",
                "/host/etc/shadow",
                "read",
                "/host/proc/1/environ",
            ],
        );
        assert_unchanged("/proc/sys/kernel/hostname", &hostname);
        assert_unchanged("/proc/sys/kernel/core_pattern", &core_pattern);
        probed.expect("id", "0:0 euid 0");
        for path in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] {
            probed.expect(&format!("statvfs {path}"), "ro");
        }
        // EACCES (not the host's root) or EROFS (read-only), whichever
        // the kernel checks first; ENOENT for a kernel without sysrq.
        probed.refused("write /proc/sys/kernel/hostname");
        probed.refused("write /proc/sys/kernel/core_pattern");
        probed.refused("write /proc/sysrq-trigger");
        probed.expect(&format!("sethostname {hostname}"), "EPERM");
        let writable = probed.answer("writable-under /proc/sys");
        let (count, total) = writable.split_once(" of ").unwrap();
        assert_eq!(count, "0", "{:?}:\n{}", caller, probed.output);
        assert!(total.parse::<u32>().unwrap() > 100, "{writable}");
        probed.expect("read /proc/keys", "0 bytes");
        probed.expect("read /proc/timer_list", "0 bytes");
        probed.expect("remount-rw /proc/sys", "EPERM");
        probed.expect("setattr-rw /proc/sys", "EPERM");
        probed.refused("umount /proc/sys");
        probed.refused("umount /proc/keys");
        probed.refused("mount-proc /tmp");
        probed.expect("read /proc/1/environ", "EACCES");
        probed.expect("read /host/etc/shadow", "EACCES");
        probed.expect("read /host/proc/1/environ", "EACCES");
    }
}

/// A host path removed when the test ends.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn root_run_read_only_volumes_and_the_mounts_under_them_stay_read_only() {
    let hostname = host_value("/proc/sys/kernel/hostname");
    for caller in CALLERS {
        let scene = Scene::new(caller);
        let image = scene.image("image", vec![Layer::base()]);
        let read_only = scene.path("read-only");
        fs::create_dir(&read_only).unwrap();
        fs::write(read_only.join("in"), "from the host\n").unwrap();
        let read_only_file = scene.path("read-only-file");
        fs::write(&read_only_file, "a file\n").unwrap();
        let writable = scene.path("writable");
        fs::create_dir(&writable).unwrap();
        for path in [&read_only, &read_only_file, &writable] {
            scene.own(path);
        }
        // A file name no one else uses, tried in the host's /dev/shm.
        let shm_name = format!("xbuild-sandbox-test-{}", std::process::id());
        let shm = format!("/host/dev/shm/{shm_name}");
        // Should the run write it, it goes again however the test ends.
        let _leak = RemovedOnDrop(Path::new("/dev/shm").join(&shm_name));
        let volume = |host: &Path, guest: &str| format!("{}:{guest}", host.display());
        let probed = scene.probe(
            &image,
            &[
                "--volume",
                &format!("{}:ro", volume(&read_only, "/ro")),
                "--volume",
                &format!("{}:ro", volume(&read_only_file, "/ro-file")),
                "--volume",
                &volume(&writable, "/rw"),
                "--volume",
                "/:/host:ro",
            ],
            &[
                "read",
                "/ro/in",
                "create",
                "/ro/new",
                "write",
                "/ro/in",
                "changed",
                "remount-rw",
                "/ro",
                "setattr-rw",
                "/ro",
                "umount",
                "/ro",
                "statvfs",
                "/ro",
                "create",
                "/ro/new",
                "write",
                "/ro-file",
                "changed",
                "remount-rw",
                "/ro-file",
                "umount",
                "/ro-file",
                // Sub-mounts of a recursive volume: the host's /dev/shm
                // (a tmpfs of its own), cgroups, /proc/sys.
                "statvfs",
                "/host/dev/shm",
                "create",
                &shm,
                "remount-rw",
                "/host/dev/shm",
                "setattr-rw",
                "/host/dev/shm",
                "umount",
                "/host/dev/shm",
                "create",
                &shm,
                "statvfs",
                "/host/sys/fs/cgroup",
                "remount-rw",
                "/host/sys/fs/cgroup",
                "statvfs",
                "/host/proc/sys",
                "remount-rw",
                "/host/proc",
                "write",
                "/host/proc/sys/kernel/hostname",
                &hostname,
                "remount-rw",
                "/host",
                "setattr-rw",
                "/host",
                // What is writable is: a volume without :ro, and the
                // command's own mounts (it has the capabilities for them:
                // the refusals above are the kernel's locks).
                "create",
                "/rw/out",
                "stat",
                "/rw/out",
                "mount-tmpfs",
                "/tmp",
            ],
        );
        assert_unchanged("/proc/sys/kernel/hostname", &hostname);
        probed.expect("read /ro/in", "14 bytes");
        probed.expect("statvfs /ro", "ro");
        for action in [
            "create /ro/new",
            "write /ro/in",
            "write /ro-file",
            &format!("create {shm}"),
        ] {
            probed.expect(action, "EROFS");
        }
        probed.refused("write /host/proc/sys/kernel/hostname");
        for path in [
            "/ro",
            "/ro-file",
            "/host/dev/shm",
            "/host/sys/fs/cgroup",
            "/host/proc",
            "/host",
        ] {
            probed.expect(&format!("remount-rw {path}"), "EPERM");
        }
        for path in ["/ro", "/host/dev/shm", "/host"] {
            probed.expect(&format!("setattr-rw {path}"), "EPERM");
        }
        for path in ["/ro", "/ro-file", "/host/dev/shm"] {
            probed.refused(&format!("umount {path}"));
        }
        for path in ["/host/dev/shm", "/host/sys/fs/cgroup", "/host/proc/sys"] {
            probed.expect(&format!("statvfs {path}"), "ro");
        }
        probed.expect("create /rw/out", "ok");
        probed.expect("stat /rw/out", "100644 0:0");
        probed.expect("mount-tmpfs /tmp", "ok");
        // Nothing reached the host but the writable volume's file, which
        // is the caller's.
        assert_eq!(
            fs::read_to_string(read_only.join("in")).unwrap(),
            "from the host\n"
        );
        assert_eq!(fs::read_dir(&read_only).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(&read_only_file).unwrap(), "a file\n");
        assert!(!Path::new("/dev/shm").join(&shm_name).exists());
        let out = fs::metadata(writable.join("out")).unwrap();
        let owner = if caller == Caller::Root { 0 } else { NOBODY };
        assert_eq!((out.uid(), out.gid()), (owner, owner), "{caller:?}");
    }
}

#[test]
fn root_run_keeps_set_id_bits_and_device_nodes_off_the_disk() {
    // nobody's image users other than root need subordinate ids.
    let _ids = SubordinateIds::add("nobody:400000:65536");
    for caller in CALLERS {
        let scene = Scene::new(caller);
        let special = Layer::new()
            .file("bin/set-uid", probe(), 0o4755)
            .file("bin/set-gid", b"#!/bin/probe\n", 0o2755)
            .hard_link("bin/set-uid-again", "bin/set-uid")
            .dir("var/", 0o755)
            .dir("var/mail/", 0o2775)
            .device("etc/null-device", tar::EntryType::Char, 1, 3)
            .device("etc/disk", tar::EntryType::Block, 8, 0);
        let image = scene.image_as("image", vec![Layer::base(), special], Some("nobody"));
        let probed = scene.probe(
            &image,
            &[],
            &[
                "stat",
                "/bin/set-uid",
                "stat",
                "/bin/set-uid-again",
                "stat",
                "/bin/set-gid",
                "stat",
                "/var/mail",
                "stat",
                "/etc/null-device",
                "stat",
                "/etc/disk",
                "stat",
                "/dev/null",
                "id",
                "create",
                "/etc/new",
                "create",
                "/tmp/new",
            ],
        );
        // Inside, the image's modes, and its user.
        probed.expect("stat /bin/set-uid", "104755 0:0");
        probed.expect("stat /bin/set-uid-again", "104755 0:0");
        probed.expect("stat /bin/set-gid", "102755 0:0");
        probed.expect("stat /var/mail", "42775 0:0");
        probed.expect("stat /etc/null-device", "ENOENT");
        probed.expect("stat /etc/disk", "ENOENT");
        assert!(probed.answer("stat /dev/null").starts_with("20666 "));
        probed.expect("id", "65534:65534 euid 65534");
        probed.expect("create /etc/new", "EACCES");
        probed.expect("create /tmp/new", "ok");
        // The set-uid program works: root inside.
        let output = scene.run(&image, &[], &["/bin/set-uid", "id"]);
        output.success();
        assert_eq!(output.stdout, "id: 65534:65534 euid 0\n", "{caller:?}");
        // On disk, in the cache, no set-id bit and no device node, and
        // (for root) no file of the host's root.
        let trees = scene.cache().join("rootfs-v1");
        let entries = walk(&trees);
        assert!(entries.len() > 10, "{entries:?}");
        for (path, metadata) in &entries {
            assert_eq!(
                metadata.mode() & 0o6000,
                0,
                "{caller:?}: {}",
                path.display()
            );
            let kind = metadata.file_type();
            assert!(
                !kind.is_char_device() && !kind.is_block_device(),
                "{caller:?}: {}",
                path.display()
            );
            let in_a_root = path.components().any(|part| part.as_os_str() == "root");
            if in_a_root {
                let owner = match caller {
                    Caller::Root => metadata.uid() >= ROOT_RANGE_START,
                    Caller::Nobody => metadata.uid() == NOBODY,
                };
                assert!(
                    owner,
                    "{caller:?}: {} is {}'s",
                    path.display(),
                    metadata.uid()
                );
            }
        }
    }
}

/// What a crafted image must come to.
enum Outcome {
    /// `xbuild run` refuses it (125), naming the entry and saying this.
    Refused(&'static str),
    /// It runs; the probe's answers to these actions are these, and
    /// these paths are in the image's tree in the cache (the run's `/tmp`
    /// covers what an image has under its own `/tmp`).
    Runs(Vec<(String, &'static str)>, Vec<String>),
}

/// A crafted image: its layers, and what it must come to.
struct Trick {
    name: &'static str,
    layers: Vec<Layer>,
    entry: String,
    outcome: Outcome,
}

/// The tricks of issue 16 for `run`, each in an image of its own. `canary`
/// is the absolute path of a directory beside the image trees in the
/// cache (`rootfs-v1/canary`, holding `keep`).
fn tricks(canary: &str) -> Vec<Trick> {
    let refused = |name, layers, entry: &str, why| Trick {
        name,
        layers,
        entry: entry.to_owned(),
        outcome: Outcome::Refused(why),
    };
    let runs_with = |name, layers, checks: &[(&str, &'static str)], inside: &[String]| Trick {
        name,
        layers,
        entry: String::new(),
        outcome: Outcome::Runs(
            checks
                .iter()
                .map(|(action, answer)| (action.to_string(), *answer))
                .collect(),
            inside.to_vec(),
        ),
    };
    let runs = |name, layers, checks: &[(&str, &'static str)]| runs_with(name, layers, checks, &[]);
    let no_file = "refused";
    let leaves = "leaves the root filesystem";
    vec![
        // `.wh.` + "..", ".", "": the directory above, the directory
        // itself, nothing; at the root, below it, through symlinks to
        // `..` and `/` planted in the same layer or one below.
        refused(
            "dot-dot",
            vec![Layer::base().whiteout(".wh...")],
            ".wh...",
            no_file,
        ),
        refused(
            "dot",
            vec![Layer::base().whiteout(".wh..")],
            ".wh..",
            no_file,
        ),
        refused(
            "empty",
            vec![Layer::base().whiteout(".wh.")],
            ".wh.",
            no_file,
        ),
        refused(
            "dot-dot-below",
            vec![Layer::base(), Layer::new().whiteout("etc/.wh...")],
            "etc/.wh...",
            no_file,
        ),
        refused(
            "dot-dot-through-relative-link",
            vec![Layer::base().symlink("up", "..").whiteout("up/.wh...")],
            "up/.wh...",
            no_file,
        ),
        refused(
            "dot-dot-through-absolute-link",
            vec![
                Layer::base().symlink("top", "/"),
                Layer::new().whiteout("top/.wh..."),
            ],
            "top/.wh...",
            no_file,
        ),
        refused(
            "reserved-name",
            vec![Layer::base(), Layer::new().whiteout("etc/.wh..wh.plnk")],
            "etc/.wh..wh.plnk",
            no_file,
        ),
        // Whiteouts, opaque markers and files through symlinks that point
        // out of the root: they land inside it (or find nothing there).
        runs(
            "whiteouts-through-links",
            vec![
                Layer::base()
                    .symlink("up1", "../canary")
                    .symlink("up2", "../../canary")
                    .symlink("up3", "../../../canary")
                    .symlink("abs", canary)
                    .whiteout("up2/.wh.keep"),
                Layer::new()
                    .whiteout("up1/.wh.keep")
                    .whiteout("up3/.wh.keep")
                    .whiteout("abs/.wh.keep")
                    .whiteout("up2/.wh..wh..opq")
                    .whiteout("abs/.wh..wh..opq"),
            ],
            &[],
        ),
        runs_with(
            "files-through-links",
            vec![
                Layer::base()
                    .symlink("up", "../../..")
                    .symlink("abs", canary)
                    .file("up/canary/new", b"new", 0o644),
                Layer::new()
                    .file("abs/new2", b"new2", 0o644)
                    .dir("up/up/canary/dir/", 0o755),
            ],
            &[
                ("read /canary/new", "3 bytes"),
                ("stat /canary/dir", "40755 0:0"),
            ],
            &[format!("{}/new2", canary.trim_start_matches('/'))],
        ),
        // Hard links: to a path with `..` (refused), to an absolute path
        // and through a symlink to `..` (both inside the root).
        refused(
            "hard-link-up",
            vec![
                Layer::base(),
                Layer::new().hard_link("etc/h", "../../canary/keep"),
            ],
            "etc/h",
            leaves,
        ),
        runs(
            "hard-link-absolute",
            vec![
                Layer::base().file(&format!("{canary}/keep"), b"inside", 0o644),
                Layer::new().hard_link("etc/h", &format!("{canary}/keep")),
            ],
            &[("read /etc/h", "6 bytes")],
        ),
        runs(
            "hard-link-through-link",
            vec![
                Layer::base()
                    .symlink("up", "../..")
                    .file("canary/keep", b"inside", 0o644),
                Layer::new().hard_link("etc/h", "up/up/canary/keep"),
            ],
            &[("read /etc/h", "6 bytes")],
        ),
    ]
}

/// The image trees in the cache (not the canary, not temporaries).
fn trees(cache: &Path) -> Vec<PathBuf> {
    let mut trees: Vec<PathBuf> = fs::read_dir(cache.join("rootfs-v1"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            path.is_dir() && !name.starts_with('.') && name != "canary"
        })
        .collect();
    trees.sort();
    trees
}

#[test]
fn root_run_crafted_layers_never_reach_outside_the_root() {
    for caller in CALLERS {
        let scene = Scene::new(caller);
        // Another image's root filesystem in the cache, as a concurrent
        // run would have it.
        let good = scene.image("good", vec![Layer::base()]);
        scene.probe(&good, &[], &["echo", "good"]);
        let before: Vec<(PathBuf, usize)> = trees(&scene.cache())
            .into_iter()
            .map(|tree| {
                let count = walk(&tree).len();
                (tree, count)
            })
            .collect();
        assert_eq!(before.len(), 1, "{before:?}");
        let canary = scene.cache().join("rootfs-v1/canary");
        fs::create_dir(&canary).unwrap();
        fs::write(canary.join("keep"), "keep").unwrap();
        let cache_file = scene.cache().join("canary");
        fs::write(&cache_file, "keep").unwrap();
        scene.own(&canary);
        scene.own(&cache_file);
        for trick in tricks(canary.to_str().unwrap()) {
            let context = format!("{caller:?}, {}", trick.name);
            let image = scene.image(trick.name, trick.layers);
            let known = trees(&scene.cache());
            let mut command = vec!["/bin/probe".to_owned(), "echo".to_owned(), "ran".to_owned()];
            if let Outcome::Runs(checks, _) = &trick.outcome {
                for (action, _) in checks {
                    let (verb, operand) = action.split_once(' ').unwrap();
                    command.extend([verb.to_owned(), operand.to_owned()]);
                }
            }
            let command: Vec<&str> = command.iter().map(String::as_str).collect();
            let output = scene.run(&image, &[], &command);
            // Nothing outside the root changed: the canaries, the other
            // image's tree.
            let names: Vec<_> = fs::read_dir(&canary)
                .unwrap_or_else(|error| {
                    panic!("{context}: {}: {error}\n{output}", canary.display())
                })
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(names, ["keep"], "{context}\n{output}");
            for file in [canary.join("keep"), cache_file.clone()] {
                assert_eq!(fs::read_to_string(&file).unwrap(), "keep", "{context}");
                assert_eq!(fs::metadata(&file).unwrap().nlink(), 1, "{context}");
            }
            for (tree, count) in &before {
                assert!(
                    tree.is_dir(),
                    "{context}: {} is gone\n{output}",
                    tree.display()
                );
                assert_eq!(walk(tree).len(), *count, "{context}: {}", tree.display());
            }
            match trick.outcome {
                Outcome::Refused(why) => {
                    assert_eq!(output.status.code(), Some(125), "{context}:\n{output}");
                    let layer = image.join("blobs/sha256");
                    for wanted in [&format!("{:?}", trick.entry), why, layer.to_str().unwrap()] {
                        assert!(
                            output.stderr.contains(wanted),
                            "{context}: no {wanted:?} in:\n{output}"
                        );
                    }
                    assert!(!output.stdout.contains("ran"), "{context}:\n{output}");
                }
                Outcome::Runs(checks, inside) => {
                    assert!(output.status.success(), "{context}:\n{output}");
                    let probed = Probed { caller, output };
                    for (action, answer) in &checks {
                        assert_eq!(
                            probed.answer(action),
                            *answer,
                            "{context}:\n{}",
                            probed.output
                        );
                    }
                    let made: Vec<PathBuf> = trees(&scene.cache())
                        .into_iter()
                        .filter(|tree| !known.contains(tree))
                        .collect();
                    assert_eq!(made.len(), 1, "{context}: {made:?}");
                    for path in inside {
                        let path = made[0].join("root").join(path);
                        assert!(path.is_file(), "{context}: no {}", path.display());
                    }
                }
            }
        }
        let again = scene.probe(&good, &[], &["echo", "still"]);
        assert_eq!(again.output.stdout, "still\n");
    }
}
