//! The sandbox helper: `xbuild` re-executed with [`super::HELPER_VARIABLE`]
//! set, checked first thing in `main` while the process has one thread
//! (`unshare` of a user namespace and `fork` need that).
//!
//! Four processes: the helper H (in the caller's namespaces) forks C,
//! which unshares a user, mount and PID namespace and waits while H writes
//! C's uid and gid maps (H is outside, so as root it can map every id, and
//! `newuidmap` can map a range); C forks D, PID 1 of the new namespace,
//! which mounts the root (the cached tree read-only under a tmpfs overlay),
//! `/proc`, `/dev`, `/tmp`, a binfmt_misc of its own with the emulator
//! registered (a foreign image) and the volumes, pivots into it, and forks E,
//! the command. D forwards signals to E and reaps orphans; each exit
//! status is passed up (a death by signal N as 128+N). A failure of the
//! sandbox itself exits 125 with a message on stderr.

use super::{IdMapping, SandboxConfig};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};

/// The status of a sandbox failure, as podman's.
const FAILED: i32 = 125;

/// Runs the helper with its JSON configuration; returns the exit status.
pub fn helper(config: &OsStr) -> i32 {
    let config: SandboxConfig = match serde_json::from_slice(config.as_bytes()) {
        Ok(config) => config,
        Err(error) => return fail(&format!("bad sandbox configuration: {error}")),
    };
    die_with_parent();
    ignore_terminal_signals();
    let (ready_read, ready_write) = pipe();
    let (go_read, go_write) = pipe();
    // SAFETY: one thread (see the module doc), so the child may do anything.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(ready_read);
            drop(go_write);
            std::process::exit(namespaced(&config, ready_write, go_read))
        }
        child => {
            drop(ready_write);
            drop(go_read);
            let mut byte = [0u8];
            if (&ready_read).read_exact(&mut byte).is_err() {
                return wait_for(child);
            }
            if let Err(message) = write_maps(child, &config.mapping) {
                // SAFETY: our own child.
                unsafe { libc::kill(child, libc::SIGKILL) };
                wait_for(child);
                return fail(&message);
            }
            let _ = (&go_write).write_all(b"g");
            drop(go_write);
            wait_for(child)
        }
    }
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

fn write_maps(child: libc::pid_t, mapping: &IdMapping) -> Result<(), String> {
    let proc = PathBuf::from(format!("/proc/{child}"));
    let write = |name: &str, text: &str| {
        fs::write(proc.join(name), text).map_err(|error| format!("writing {name}: {error}"))
    };
    match mapping {
        IdMapping::Identity => {
            write("uid_map", "0 0 4294967295\n")?;
            write("gid_map", "0 0 4294967295\n")
        }
        IdMapping::Single { uid, gid } => {
            write("setgroups", "deny")?;
            write("uid_map", &format!("0 {uid} 1\n"))?;
            write("gid_map", &format!("0 {gid} 1\n"))
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

/// C: unshares, waits for its maps, forks D and passes its status on.
fn namespaced(config: &SandboxConfig, ready: fs::File, go: fs::File) -> i32 {
    die_with_parent();
    let flags = rustix::thread::UnshareFlags::NEWUSER
        | rustix::thread::UnshareFlags::NEWNS
        | rustix::thread::UnshareFlags::NEWPID;
    // SAFETY: one thread; no descriptor table is unshared.
    if let Err(error) = unsafe { rustix::thread::unshare_unsafe(flags) } {
        return fail(&format!(
            "cannot make a user namespace ({error}): user namespaces may be disabled on this host (sysctl user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)"
        ));
    }
    let _ = (&ready).write_all(b"r");
    drop(ready);
    let mut byte = [0u8];
    if (&go).read_exact(&mut byte).is_err() {
        return FAILED;
    }
    drop(go);
    // SAFETY: one thread.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => std::process::exit(match init(config) {
            Ok(status) => status,
            Err(message) => fail(&message),
        }),
        child => wait_for(child),
    }
}

fn at(root: &Path, guest: &str) -> PathBuf {
    root.join(guest.trim_start_matches('/'))
}

fn errno(what: &str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> String {
    let place = path.display().to_string();
    let what = what.to_owned();
    move |error| format!("{what} {place}: {error}")
}

/// D, PID 1: builds the root, pivots into it, runs E and waits for it.
fn init(config: &SandboxConfig) -> Result<i32, String> {
    die_with_parent();
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(errno("making private", Path::new("/")))?;
    let scratch = &config.scratch;
    rustix::mount::mount("tmpfs", scratch, "tmpfs", MountFlags::empty(), c"mode=0755")
        .map_err(errno("mounting a tmpfs on", scratch))?;
    let new_root = scratch.join("root");
    for dir in ["upper", "work", "root"] {
        fs::create_dir(scratch.join(dir)).map_err(|error| format!("{dir}: {error}"))?;
    }
    mount_overlay(&config.root, scratch, &new_root)?;
    mount_system(&new_root)?;
    if let Some(binfmt) = &config.binfmt {
        register_emulator(&new_root, binfmt)?;
    }
    for volume in &config.volumes {
        mount_volume(&new_root, &volume.host, &volume.guest, volume.read_only)?;
    }
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
    run_command(config)
}

fn mount_overlay(lower: &Path, scratch: &Path, target: &Path) -> Result<(), String> {
    let text = lower.as_os_str().as_bytes();
    if text.iter().any(|byte| matches!(byte, b',' | b':' | b'\\')) {
        return Err(format!(
            "the cache path {} has a ',' or ':' an overlay mount cannot take: set XBUILD_CACHE_DIR elsewhere",
            lower.display()
        ));
    }
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
    use std::os::unix::fs::PermissionsExt;
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

/// `/proc`, a minimal `/dev` and a tmpfs `/tmp`.
fn mount_system(root: &Path) -> Result<(), String> {
    let proc = at(root, "/proc");
    let _ = fs::create_dir_all(&proc);
    let hardened = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if rustix::mount::mount("proc", &proc, "proc", hardened, None).is_err() {
        // A host whose /proc is partly masked refuses a new one: the
        // host's, whole.
        rustix::mount::mount_bind_recursive("/proc", &proc).map_err(errno("mounting", &proc))?;
    }
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

/// Mounts a binfmt_misc of the namespace's own at the root's
/// `/proc/sys/fs/binfmt_misc` (the host's entries are not seen through it)
/// and registers the emulator there, while its host path can be opened (F).
/// A kernel that refuses leaves the host's registration, if allowed.
fn register_emulator(root: &Path, binfmt: &super::PrivateBinfmt) -> Result<(), String> {
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
    if let Err(error) = rustix::mount::mount(
        "binfmt_misc",
        &dir,
        "binfmt_misc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    ) {
        return refused(format!(
            "cannot mount a binfmt_misc on {} ({error})",
            dir.display()
        ));
    }
    let register = dir.join("register");
    if let Err(error) = fs::write(&register, binfmt.registration.as_bytes()) {
        let _ = rustix::mount::unmount(&dir, UnmountFlags::DETACH);
        return refused(format!(
            "cannot register the emulator in {} ({error})",
            register.display()
        ));
    }
    Ok(())
}

fn mount_volume(root: &Path, host: &Path, guest: &str, read_only: bool) -> Result<(), String> {
    let mut parts = super::guest_components(guest).ok_or_else(|| {
        format!("the volume's container path {guest:?} is not absolute and plain")
    })?;
    let name = parts
        .pop()
        .ok_or_else(|| format!("a volume cannot replace the root ({guest:?})"))?;
    // Inside the root, whatever symlinks the image has on the way.
    let dir = super::rootfs::resolve_dir(root, &parts, true)
        .map_err(|error| format!("volume {guest}: {error}"))?
        .expect("created");
    let target = dir.join(name);
    if fs::symlink_metadata(&target).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
        let _ = fs::remove_file(&target);
    }
    if host.is_dir() {
        let _ = fs::create_dir(&target);
    } else if fs::symlink_metadata(&target).is_err() {
        let _ = fs::File::create(&target);
    }
    rustix::mount::mount_bind_recursive(host, &target).map_err(errno("bind-mounting", host))?;
    if read_only {
        // A remount keeps the flags the host's mount locks (nosuid…).
        let locked = rustix::fs::statvfs(&target)
            .map(|stat| stat.f_flag)
            .unwrap_or(rustix::fs::StatVfsMountFlags::empty());
        let mut flags = MountFlags::BIND | MountFlags::RDONLY;
        for (have, add) in [
            (rustix::fs::StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
            (rustix::fs::StatVfsMountFlags::NODEV, MountFlags::NODEV),
            (rustix::fs::StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
            (rustix::fs::StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
            (
                rustix::fs::StatVfsMountFlags::NODIRATIME,
                MountFlags::NODIRATIME,
            ),
            (
                rustix::fs::StatVfsMountFlags::RELATIME,
                MountFlags::RELATIME,
            ),
        ] {
            if locked.contains(have) {
                flags |= add;
            }
        }
        rustix::mount::mount_remount(&target, flags, "")
            .map_err(errno("making read-only", &target))?;
    }
    Ok(())
}

/// The program `name` names: itself with a `/`, else the first
/// executable file of that name in `PATH` (the container's).
fn find_program(name: &str, env: &[String]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|pair| pair.strip_prefix("PATH="))
        .unwrap_or(super::DEFAULT_PATH);
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            let Ok(c) = CString::new(candidate.as_os_str().as_bytes()) else {
                return false;
            };
            // SAFETY: a valid C string.
            candidate.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
        })
}

const FORWARDED: [i32; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// E runs the command; D forwards signals to it and reaps every child.
fn run_command(config: &SandboxConfig) -> Result<i32, String> {
    let argv0 = config
        .argv
        .first()
        .ok_or("the image has no entrypoint or cmd, and no command was given")?;
    let Some(program) = find_program(argv0, &config.env) else {
        let _ = writeln!(
            std::io::stderr(),
            "error: xbuild run: {argv0}: executable file not found in $PATH"
        );
        return Ok(127);
    };
    let cstrings = |items: &[String]| -> Result<Vec<CString>, String> {
        items
            .iter()
            .map(|item| CString::new(item.as_bytes()).map_err(|_| format!("{item:?} has a NUL")))
            .collect()
    };
    let argv = cstrings(&config.argv)?;
    let env = cstrings(&config.env)?;
    let program = CString::new(program.as_os_str().as_bytes()).map_err(|_| "NUL in path")?;
    // SAFETY: sigset_t is plain data, filled by sigemptyset.
    let mut signals: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to the sets above.
    unsafe {
        libc::sigemptyset(&mut signals);
        for signal in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut signals, *signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &signals, &mut previous);
    }
    // SAFETY: one thread.
    let child = unsafe { libc::fork() };
    if child == -1 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        exec(config, &program, &argv, &env, &previous);
    }
    loop {
        // SAFETY: a valid set; the info is not needed.
        let signal = unsafe { libc::sigwaitinfo(&signals, std::ptr::null_mut()) };
        if signal == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: a pointer to our int.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid == child {
                    return Ok(exit_status(status));
                }
                if pid <= 0 {
                    break;
                }
            }
        } else if signal > 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child, signal) };
        }
    }
}

/// E: the image's user, default signal handling, then the command.
fn exec(
    config: &SandboxConfig,
    program: &CString,
    argv: &[CString],
    env: &[CString],
    mask: &libc::sigset_t,
) -> ! {
    // SAFETY: plain libc calls on valid arguments; this process is ours.
    unsafe {
        // SIGPIPE too: Rust's runtime ignores it, and the command must not.
        for signal in FORWARDED.iter().chain(&[libc::SIGPIPE]) {
            libc::signal(*signal, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
        if !matches!(config.mapping, IdMapping::Single { .. }) {
            let groups = [config.gid];
            if libc::setgroups(1, groups.as_ptr()) != 0 {
                std::process::exit(fail(&format!(
                    "setgroups: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        if libc::setresgid(config.gid, config.gid, config.gid) != 0
            || libc::setresuid(config.uid, config.uid, config.uid) != 0
        {
            std::process::exit(fail(&format!(
                "cannot become {}:{} ({})",
                config.uid,
                config.gid,
                std::io::Error::last_os_error()
            )));
        }
        let mut argv: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|var| var.as_ptr()).collect();
        envp.push(std::ptr::null());
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    let error = std::io::Error::last_os_error();
    let _ = writeln!(
        std::io::stderr(),
        "error: xbuild run: cannot run {}: {error}",
        program.to_string_lossy()
    );
    std::process::exit(if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
