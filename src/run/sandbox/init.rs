//! D, PID 1 of the sandbox: builds the command's root and pivots into it.
//! The cached tree is mounted read-only under a tmpfs overlay of the run's
//! own (its set-id bits, kept off on disk, put back in the overlay); then
//! a `/proc` of the sandbox's PID namespace whose `/proc/sys`,
//! `/proc/sysrq-trigger`, `/proc/bus`, `/proc/fs` and `/proc/irq` are
//! read-only and whose `kcore`, `keys`, `timer_list` and the other entries
//! runtimes mask are masked (`/dev/null`, or an empty read-only tmpfs), a
//! minimal `/dev`, a tmpfs `/tmp`, a binfmt_misc of the sandbox's own with
//! a foreign image's emulator registered (read-only once it is), and the
//! volumes. None of these flags binds the command by itself: it is root of
//! a namespace nested in D's ([`super::command`]), and the copy of D's
//! mounts it gets is what the kernel locks.

use super::kernel;
use super::{BorrowedFd, DONE, OwnedFd, REGISTER};
use crate::run::SandboxConfig;
use crate::run::rootfs::SetId;
use rustix::fd::AsFd;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Entries of `/proc` made read-only (runc's and podman's list).
const READ_ONLY_PROC: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Entries of `/proc` masked: files by `/dev/null`, directories by an
/// empty read-only tmpfs (runc's and podman's list).
const MASKED_PROC: [&str; 10] = [
    "acpi",
    "asound",
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi",
    "timer_list",
    "timer_stats",
];

pub(super) fn at(root: &Path, guest: &str) -> PathBuf {
    root.join(guest.trim_start_matches('/'))
}

pub(super) fn errno(what: &str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> String {
    let place = path.display().to_string();
    let what = what.to_owned();
    move |error| format!("{what} {place}: {error}")
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let place = path.display().to_string();
    let what = what.to_owned();
    move |error| format!("{what} {place}: {error}")
}

/// D, PID 1: builds the root, pivots into it, runs E and waits for it.
/// `lower` is the cached tree, `channel` the socket to H, `trees` the
/// volume trees H cloned (none for a caller other than root).
pub(super) fn init(
    config: &SandboxConfig,
    channel: OwnedFd,
    lower: OwnedFd,
    trees: Vec<OwnedFd>,
) -> Result<i32, String> {
    super::die_with_parent();
    // Nothing in the sandbox may trace D or open its descriptors (it has
    // the capabilities of the namespace the command's is nested in).
    kernel::set_dumpable(false);
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(errno("making private", Path::new("/")))?;
    let scratch = &config.scratch;
    rustix::mount::mount("tmpfs", scratch, "tmpfs", MountFlags::empty(), c"mode=0755").map_err(
        |error| {
            format!(
                "mounting a tmpfs on {}: {error} (TMPDIR must be a directory whose parents everyone may search)",
                scratch.display()
            )
        },
    )?;
    let new_root = scratch.join("root");
    for dir in ["upper", "work", "root"] {
        fs::create_dir(scratch.join(dir)).map_err(|error| format!("{dir}: {error}"))?;
    }
    mount_overlay(&kernel::fd_path(lower.as_fd()), scratch, &new_root)?;
    drop(lower);
    restore_set_id(&new_root, &config.set_id)?;
    mount_proc(&new_root)?;
    mount_dev_and_tmp(&new_root)?;
    if let Some(binfmt) = &config.binfmt {
        register_emulator(&new_root, binfmt, channel.as_fd())?;
    }
    drop(channel);
    super::volumes::attach(&new_root, &config.volumes, trees)?;
    rustix::process::chdir(&new_root).map_err(errno("chdir", &new_root))?;
    rustix::process::pivot_root(".", ".").map_err(errno("pivot_root into", &new_root))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(errno("unmounting", &new_root))?;
    rustix::process::chdir("/").map_err(errno("chdir", Path::new("/")))?;
    let workdir = Path::new(&config.workdir);
    if fs::create_dir_all(workdir).is_err() || rustix::process::chdir(workdir).is_err() {
        return Err(format!(
            "cannot enter the working directory {}",
            config.workdir
        ));
    }
    super::command::run(config)
}

fn mount_overlay(lower: &Path, scratch: &Path, target: &Path) -> Result<(), String> {
    let options = |extra: &str| {
        CString::new(format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            lower.display(),
            scratch.join("upper").display(),
            scratch.join("work").display()
        ))
        .map_err(|_| "a path with a NUL byte".to_owned())
    };
    let mut last = None;
    for extra in [",userxattr", ""] {
        let data = options(extra)?;
        match rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), &*data) {
            Ok(()) => return Ok(()),
            Err(error) => last = Some(error),
        }
    }
    // No overlay here: a private copy in the tmpfs does the same.
    copy_tree(lower, target).map_err(|error| {
        format!(
            "cannot mount an overlay on the root ({}), nor copy it: {error}",
            last.expect("tried")
        )
    })?;
    rustix::mount::mount_bind(target, target).map_err(errno("bind-mounting", target))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fs::create_dir(&dest)?;
            copy_tree(&source, &dest)?;
            let mode = entry.metadata()?.permissions().mode();
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &dest)?;
        } else if kind.is_file() {
            fs::copy(&source, &dest)?;
        }
    }
    Ok(())
}

/// Gives the image's set-id files and directories their bits back, in
/// the overlay (the change is copied up into the run's tmpfs).
fn restore_set_id(root: &Path, entries: &[SetId]) -> Result<(), String> {
    for entry in entries {
        let path = root.join(&entry.path);
        if !path.starts_with(root) || entry.path.split('/').any(|part| part == "..") {
            return Err(format!("a set-id path {:?} leaves the root", entry.path));
        }
        let metadata = fs::symlink_metadata(&path).map_err(io_error("restoring", &path))?;
        if metadata.file_type().is_symlink() {
            continue;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode))
            .map_err(io_error("restoring the mode of", &path))?;
    }
    Ok(())
}

/// `/proc` of the sandbox's PID namespace (or the host's, whole, when the
/// kernel refuses a new one), with [`READ_ONLY_PROC`] read-only and
/// [`MASKED_PROC`] masked.
fn mount_proc(root: &Path) -> Result<(), String> {
    let proc = at(root, "/proc");
    let _ = fs::create_dir_all(&proc);
    let hardened = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if rustix::mount::mount("proc", &proc, "proc", hardened, None).is_err() {
        // A host whose /proc is partly masked refuses a new one: the
        // host's, whole.
        rustix::mount::mount_bind_recursive("/proc", &proc).map_err(errno("mounting", &proc))?;
    }
    for name in READ_ONLY_PROC {
        let path = proc.join(name);
        if fs::symlink_metadata(&path).is_err() {
            continue;
        }
        rustix::mount::mount_bind_recursive(&path, &path).map_err(errno("bind-mounting", &path))?;
        kernel::make_read_only(&path).map_err(io_error("making read-only", &path))?;
    }
    for name in MASKED_PROC {
        let path = proc.join(name);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {
                rustix::mount::mount(
                    "tmpfs",
                    &path,
                    "tmpfs",
                    hardened | MountFlags::RDONLY,
                    c"size=0,mode=0555",
                )
                .map_err(errno("masking", &path))?;
            }
            Ok(_) => {
                rustix::mount::mount_bind("/dev/null", &path).map_err(errno("masking", &path))?;
                kernel::make_read_only(&path).map_err(io_error("making read-only", &path))?;
            }
            Err(_) => continue,
        }
    }
    Ok(())
}

/// A minimal `/dev` and a tmpfs `/tmp`.
fn mount_dev_and_tmp(root: &Path) -> Result<(), String> {
    let hardened = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let dev = at(root, "/dev");
    let _ = fs::create_dir_all(&dev);
    rustix::mount::mount(
        "tmpfs",
        &dev,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"mode=0755",
    )
    .map_err(errno("mounting a tmpfs on", &dev))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        let guest = dev.join(name);
        if !host.exists() {
            continue;
        }
        fs::File::create(&guest).map_err(|error| format!("{}: {error}", guest.display()))?;
        rustix::mount::mount_bind(&host, &guest).map_err(errno("bind-mounting", &host))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(name));
    }
    let shm = dev.join("shm");
    let _ = fs::create_dir(&shm);
    let _ = rustix::mount::mount("shm", &shm, "tmpfs", hardened, c"mode=1777");
    let pts = dev.join("pts");
    let _ = fs::create_dir(&pts);
    if rustix::mount::mount(
        "devpts",
        &pts,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"newinstance,ptmxmode=0666,mode=0620",
    )
    .is_ok()
    {
        let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    }
    let tmp = at(root, "/tmp");
    let _ = fs::create_dir_all(&tmp);
    rustix::mount::mount(
        "tmpfs",
        &tmp,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"mode=1777",
    )
    .map_err(errno("mounting a tmpfs on", &tmp))
}

/// A binfmt_misc of the sandbox's own (its user namespace's; the host's
/// entries are not seen through it), not yet attached.
fn new_binfmt_misc() -> rustix::io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let context = rustix::mount::fsopen("binfmt_misc", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_create(&context)?;
    rustix::mount::fsmount(
        &context,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
}

/// Makes a binfmt_misc of the sandbox's own, has H register the emulator
/// in it (the F flag opens the program as H: see
/// [`super::register_emulator`]), and mounts it read-only at the root's
/// `/proc/sys/fs/binfmt_misc`. A kernel that refuses to make one leaves
/// the host's registration, if allowed.
fn register_emulator(
    root: &Path,
    binfmt: &crate::run::PrivateBinfmt,
    channel: BorrowedFd<'_>,
) -> Result<(), String> {
    let dir = at(root, "/proc/sys/fs/binfmt_misc");
    let refused = |what: String| {
        if binfmt.host_fallback {
            Ok(())
        } else {
            Err(format!(
                "{what}: a binfmt_misc of a user namespace's own needs Linux 6.7 or later; register qemu-user on the host with the F flag (scripts/setup.sh) and unset XBUILD_RUN_BINFMT=private"
            ))
        }
    };
    let mount = match new_binfmt_misc() {
        Ok(mount) => mount,
        Err(error) => return refused(format!("cannot mount a binfmt_misc ({error})")),
    };
    // From here the sandbox's user namespace has a binfmt_misc of its
    // own, used instead of the host's even if empty: no falling back.
    let reply =
        kernel::send(channel, REGISTER, &[mount.as_fd()]).and_then(|()| kernel::receive(channel));
    match reply {
        Ok(Some((message, _))) if message == DONE => {}
        Ok(Some((message, _))) => {
            return Err(format!(
                "cannot register the emulator in the sandbox's binfmt_misc: {}",
                String::from_utf8_lossy(&message)
            ));
        }
        Ok(None) => return Err("the helper is gone".into()),
        Err(error) => return Err(format!("cannot reach the helper ({error})")),
    }
    rustix::mount::move_mount(
        mount.as_fd(),
        "",
        rustix::fs::CWD,
        &dir,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno("mounting a binfmt_misc on", &dir))?;
    kernel::make_read_only(&dir).map_err(io_error("making read-only", &dir))
}
