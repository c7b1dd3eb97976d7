//! E, the command, and D's watch over it. E is forked by D inside the
//! built root; before it runs, it unshares a user and a mount namespace of
//! its own, which D maps id for id onto its own (so the image's ids stay
//! what they are). The command is then root of a namespace nested in D's:
//! its copy of D's mounts is owned by a less privileged user namespace, so
//! the kernel locks their read-only, nosuid, nodev and noexec flags (a
//! remount clearing them fails) and every mount under the root (an
//! unmount that would show what a mask or volume covers fails), and it
//! cannot mount a `/proc` of its own while parts of this one are masked.
//! Its capabilities reach only what its own namespaces own. D forwards
//! signals to E and reaps every child.

use super::{FAILED, fail, pipe};
use crate::run::{IdMapping, SandboxConfig};
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
        .unwrap_or(crate::run::DEFAULT_PATH);
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

/// E runs the command; D maps E's namespace, forwards signals to it and
/// reaps every child.
pub(super) fn run(config: &SandboxConfig) -> Result<i32, String> {
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
    let (unshared_read, unshared_write) = pipe();
    let (mapped_read, mapped_write) = pipe();
    // SAFETY: one thread.
    let child = unsafe { libc::fork() };
    if child == -1 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        drop(unshared_read);
        drop(mapped_write);
        nest(unshared_write, mapped_read);
        exec(config, &program, &argv, &env, &previous);
    }
    drop(unshared_write);
    drop(mapped_read);
    let mut byte = [0u8];
    // Nothing to read: E failed before it unshared, and exits.
    if (&unshared_read).read_exact(&mut byte).is_ok() {
        if let Err(message) = map_nested(child) {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            return Err(message);
        }
        let _ = (&mapped_write).write_all(b"m");
    }
    drop(mapped_write);
    loop {
        // SAFETY: a valid set; the info is not needed.
        let signal = unsafe { libc::sigwaitinfo(&signals, std::ptr::null_mut()) };
        if signal == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: a pointer to our int.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid == child {
                    return Ok(super::exit_status(status));
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

/// E: a user and mount namespace of its own, nested in D's; waits for D
/// to map it (see the module doc).
fn nest(unshared: fs::File, mapped: fs::File) {
    // D opens this process's uid_map, which it could not while E is as
    // undumpable as D made itself.
    super::kernel::set_dumpable(true);
    let flags = rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS;
    // SAFETY: one thread; no descriptor table is unshared.
    if let Err(error) = unsafe { rustix::thread::unshare_unsafe(flags) } {
        std::process::exit(fail(&format!(
            "cannot make the command's user namespace, nested in the sandbox's ({error}): the host may forbid user namespaces to unprivileged processes (sysctl kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, user.max_user_namespaces)"
        )));
    }
    let mut byte = [0u8];
    if (&unshared).write_all(b"u").is_err() || (&mapped).read_exact(&mut byte).is_err() {
        std::process::exit(FAILED);
    }
}

/// D: maps E's user namespace onto D's, each id to itself: one extent per
/// extent of D's own maps (an extent must lie within one of the parent's).
fn map_nested(child: libc::pid_t) -> Result<(), String> {
    for name in ["uid_map", "gid_map"] {
        let own = fs::read_to_string(format!("/proc/self/{name}"))
            .map_err(|error| format!("reading /proc/self/{name}: {error}"))?;
        let mut map = String::new();
        for line in own.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [inside, _, count] = fields.as_slice() {
                map.push_str(&format!("{inside} {inside} {count}\n"));
            }
        }
        let path = PathBuf::from(format!("/proc/{child}/{name}"));
        fs::write(&path, map).map_err(|error| format!("writing {}: {error}", path.display()))?;
    }
    Ok(())
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
