//! The sandbox helper: `xbuild` re-executed with [`super::HELPER_VARIABLE`]
//! set, checked first thing in `main` while the process has one thread
//! (`unshare` of a user namespace and `fork` need that).
//!
//! Five processes. The helper H (in the caller's namespaces, with the
//! caller's privileges) opens the cached root filesystem and forks C,
//! which unshares a user, mount, PID, UTS and IPC namespace and waits
//! while H writes its uid and gid maps: a caller other than root is root
//! inside (with its subordinate ids via `newuidmap` when the image's user
//! is not root); root's sandbox ids are a subordinate range, never the
//! host's root ([`super::identity`]). For a root caller, H also clones
//! each volume's host tree (`open_tree`), idmapped through the sandbox's
//! user namespace and read-only if asked, and hands the trees to C over a
//! socket; H later registers a foreign image's emulator in the
//! binfmt_misc D made, with H's own access to the cache. C forks D, PID 1
//! of the new namespaces, which builds the root ([`init`]: the cached
//! tree read-only under a tmpfs overlay, `/proc` with `/proc/sys` and the
//! like read-only and the rest runtimes mask masked, `/dev`, `/tmp`, the
//! volumes), pivots into it, and forks E, the command ([`command`]), which
//! unshares a user and mount namespace of its own before it runs: every
//! mount is copied into a namespace owned by a less privileged user
//! namespace, so the kernel locks their read-only flags and keeps what
//! they cover covered. D is not dumpable, so the command cannot trace it
//! or open its descriptors. D forwards signals to E and reaps orphans;
//! each exit status is passed up (a death by signal N as 128+N). A failure
//! of the sandbox itself exits 125 with a message on stderr.

mod command;
mod init;
mod kernel;
mod volumes;

use super::{IdMapping, SandboxConfig};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::PathBuf;

/// The status of a sandbox failure, as podman's.
const FAILED: i32 = 125;

/// C to H: the namespaces exist, their maps may be written.
const READY: &[u8] = b"ready";
/// H to C: the maps are written (the volume trees attached, if any).
const GO: &[u8] = b"go";
/// D to H: register the emulator in this binfmt_misc (attached).
const REGISTER: &[u8] = b"register";
/// H to D: done.
const DONE: &[u8] = b"done";

/// `BINFMTFS_MAGIC`: the filesystem type of binfmt_misc.
const BINFMT_MISC_MAGIC: i64 = 0x4249_4e4d;

/// Runs the helper with its JSON configuration; returns the exit status.
pub fn helper(config: &OsStr) -> i32 {
    let config: SandboxConfig = match serde_json::from_slice(config.as_bytes()) {
        Ok(config) => config,
        Err(error) => return fail(&format!("bad sandbox configuration: {error}")),
    };
    die_with_parent();
    ignore_terminal_signals();
    // Reached through /proc/self/fd later: the sandbox's root may not be
    // allowed through the directories above the cache (root's ~/.cache).
    let lower = match kernel::open_path(&config.root) {
        Ok(fd) => fd,
        Err(error) => {
            return fail(&format!(
                "cannot open the root filesystem {}: {error}",
                config.root.display()
            ));
        }
    };
    let (host_end, sandbox_end) = match kernel::socket_pair() {
        Ok(pair) => pair,
        Err(error) => return fail(&format!("socketpair: {error}")),
    };
    // SAFETY: one thread (see the module doc), so the child may do anything.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(host_end);
            std::process::exit(namespaced(&config, sandbox_end, lower))
        }
        child => {
            drop(sandbox_end);
            drop(lower);
            supervise(&config, child, host_end.as_fd())
        }
    }
}

/// H: maps C's ids, hands over the volume trees, serves the emulator's
/// registration, and waits for C.
fn supervise(config: &SandboxConfig, child: libc::pid_t, channel: BorrowedFd<'_>) -> i32 {
    match kernel::receive(channel) {
        Ok(Some((message, _))) if message == READY => {}
        _ => return wait_for(child),
    }
    let prepared =
        write_maps(child, &config.mapping).and_then(|()| volumes::host_trees(config, child));
    let trees = match prepared {
        Ok(trees) => trees,
        Err(message) => {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            wait_for(child);
            return fail(&message);
        }
    };
    let borrowed: Vec<BorrowedFd<'_>> = trees.iter().map(AsFd::as_fd).collect();
    if kernel::send(channel, GO, &borrowed).is_err() {
        return wait_for(child);
    }
    drop(borrowed);
    drop(trees);
    // Until the sandbox closes its end (before the command runs).
    while let Ok(Some((message, fds))) = kernel::receive(channel) {
        let reply = match message.as_slice() {
            REGISTER => register_emulator(config, &fds),
            _ => Err("an unknown request".to_owned()),
        };
        let reply = match reply {
            Ok(()) => DONE.to_vec(),
            Err(message) => message.into_bytes(),
        };
        if kernel::send(channel, &reply, &[]).is_err() {
            break;
        }
    }
    wait_for(child)
}

/// H: writes the registration of the emulator into the `register` file of
/// the binfmt_misc mount D made, opened by H: the F flag makes the kernel
/// open the emulator now, as H and in H's mount namespace, so the cached
/// program is found wherever the cache is (the sandbox's root may not
/// search root's home directory).
fn register_emulator(config: &SandboxConfig, fds: &[OwnedFd]) -> Result<(), String> {
    let Some(binfmt) = &config.binfmt else {
        return Err("no emulator to register".into());
    };
    let [mount] = fds else {
        return Err("expected one binfmt_misc mount".into());
    };
    if !kernel::is_filesystem(mount, BINFMT_MISC_MAGIC) {
        return Err("the mount sent is not a binfmt_misc".into());
    }
    let register = rustix::fs::openat(
        mount,
        "register",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|error| format!("cannot open its register file ({error})"))?;
    fs::File::from(register)
        .write_all(binfmt.registration.as_bytes())
        .map_err(|error| format!("cannot register the emulator ({error})"))
}

fn fail(message: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "error: xbuild run: {message}");
    FAILED
}

fn pipe() -> (fs::File, fs::File) {
    let mut fds = [0; 2];
    // SAFETY: two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        std::process::exit(fail(&format!("pipe: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: fresh descriptors we own.
    unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) }
}

fn die_with_parent() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}

/// The terminal's interrupt reaches the command itself (same process
/// group); the processes around it wait for it instead of dying first.
fn ignore_terminal_signals() {
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: setting a disposition to SIG_IGN.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// Waits for `child`; its status as an exit status.
fn wait_for(child: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: a pointer to our int.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        if waited == child {
            return exit_status(status);
        }
        if waited == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return fail(&format!("waitpid: {}", std::io::Error::last_os_error()));
        }
    }
}

fn exit_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        FAILED
    }
}

/// Writes `map` as the uid or gid map (`name`) of process `pid`.
fn write_map(pid: libc::pid_t, name: &str, map: &str) -> Result<(), String> {
    let path = PathBuf::from(format!("/proc/{pid}/{name}"));
    fs::write(&path, map).map_err(|error| format!("writing {}: {error}", path.display()))
}

fn write_maps(child: libc::pid_t, mapping: &IdMapping) -> Result<(), String> {
    match mapping {
        IdMapping::Shifted { uids, gids } => {
            write_map(
                child,
                "uid_map",
                &format!("0 {} {}\n", uids.start, uids.count),
            )?;
            write_map(
                child,
                "gid_map",
                &format!("0 {} {}\n", gids.start, gids.count),
            )
        }
        IdMapping::Single { uid, gid } => {
            write_map(child, "setgroups", "deny")?;
            write_map(child, "uid_map", &format!("0 {uid} 1\n"))?;
            write_map(child, "gid_map", &format!("0 {gid} 1\n"))
        }
        IdMapping::Subordinate {
            uid,
            gid,
            uids,
            gids,
        } => {
            for (program, own, range) in [("newuidmap", uid, uids), ("newgidmap", gid, gids)] {
                let status = std::process::Command::new(program)
                    .arg(child.to_string())
                    .args(["0", &own.to_string(), "1", "1"])
                    .args([range.0.to_string(), range.1.to_string()])
                    .status()
                    .map_err(|error| format!("cannot run {program}: {error}"))?;
                if !status.success() {
                    return Err(format!("{program} failed ({status})"));
                }
            }
            Ok(())
        }
    }
}

/// C, its maps written: root of the namespace. A root caller's own ids
/// (the host's 0) are not mapped in it; they and root's supplementary
/// groups (the host's root group among them, which would still open
/// group-readable files of the host) are replaced by the namespace's 0.
fn become_root(mapping: &IdMapping) -> Result<(), String> {
    // SAFETY: plain libc calls; this process is ours.
    unsafe {
        if !matches!(mapping, IdMapping::Single { .. }) && libc::setgroups(1, [0].as_ptr()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
            return Err(format!(
                "cannot become the namespace's root ({})",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// C: unshares, waits for its maps (and the volume trees), forks D and
/// passes its status on.
fn namespaced(config: &SandboxConfig, channel: OwnedFd, lower: OwnedFd) -> i32 {
    die_with_parent();
    let flags = rustix::thread::UnshareFlags::NEWUSER
        | rustix::thread::UnshareFlags::NEWNS
        | rustix::thread::UnshareFlags::NEWPID
        | rustix::thread::UnshareFlags::NEWUTS
        | rustix::thread::UnshareFlags::NEWIPC;
    // SAFETY: one thread; no descriptor table is unshared.
    if let Err(error) = unsafe { rustix::thread::unshare_unsafe(flags) } {
        return fail(&format!(
            "cannot make a user namespace ({error}): user namespaces may be disabled on this host (sysctl user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)"
        ));
    }
    if kernel::send(channel.as_fd(), READY, &[]).is_err() {
        return FAILED;
    }
    let trees = match kernel::receive(channel.as_fd()) {
        Ok(Some((message, fds))) if message == GO => fds,
        _ => return FAILED,
    };
    if let Err(message) = become_root(&config.mapping) {
        return fail(&message);
    }
    // SAFETY: one thread.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => std::process::exit(match init::init(config, channel, lower, trees) {
            Ok(status) => status,
            Err(message) => fail(&message),
        }),
        child => {
            drop(channel);
            drop(lower);
            drop(trees);
            wait_for(child)
        }
    }
}
