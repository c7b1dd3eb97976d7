//! Thin wrappers of the kernel calls the sandbox needs that rustix does
//! not wrap (`mount_setattr`), and the helper's channel to the sandbox: a
//! Unix socket pair carrying short messages and file descriptors
//! (`SCM_RIGHTS`).

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Descriptors one message carries at most (the kernel's SCM_MAX_FD is
/// 253).
pub const MAX_FDS: usize = 64;

/// `struct mount_attr` of `<linux/mount.h>` (version 0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// What a `mount_setattr` call changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes {
    pub set: u64,
    pub propagation_private: bool,
    /// A user namespace: the mount is idmapped through it.
    pub userns: Option<i32>,
}

/// `mount_setattr(dirfd, path, flags, attr)`: `path` relative to `dirfd`
/// (or `dirfd` itself when `path` is empty), with `AT_RECURSIVE` when
/// `recursive`: every mount below too.
pub fn mount_setattr(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    recursive: bool,
    attributes: Attributes,
) -> std::io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    let mut flags = 0;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    if path.as_bytes().is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mut set = attributes.set;
    if attributes.userns.is_some() {
        set |= MOUNT_ATTR_IDMAP;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: if attributes.propagation_private {
            libc::MS_PRIVATE
        } else {
            0
        },
        userns_fd: attributes.userns.unwrap_or(0) as u64,
    };
    let dirfd = dirfd.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: a valid C string and a pointer to a struct of the size given.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes the mount at `path` (and every mount below it) read-only.
pub fn make_read_only(path: &Path) -> std::io::Result<()> {
    mount_setattr(
        None,
        path,
        true,
        Attributes {
            set: MOUNT_ATTR_RDONLY,
            ..Attributes::default()
        },
    )
}

/// `PR_SET_DUMPABLE`: a process that is not dumpable cannot be traced, nor
/// its `/proc/PID` files opened, by anyone without `CAP_SYS_PTRACE` over
/// the namespace it was started in (the host's).
pub fn set_dumpable(dumpable: bool) {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(dumpable),
            0,
            0,
            0,
        )
    };
}

/// An `O_PATH` descriptor of `path` (close-on-exec): reachable later
/// through `/proc/self/fd/N` whatever the directories above it allow.
pub fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
}

/// `/proc/self/fd/N` of `fd`.
pub fn fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A connected pair of sequenced-packet Unix sockets (close-on-exec).
pub fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
}

/// Sends one message with `fds`.
pub fn send(socket: BorrowedFd<'_>, message: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one message",
        ));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(message)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one message and the descriptors it carries (close-on-exec);
/// `None` when the other end is closed.
pub fn receive(socket: BorrowedFd<'_>) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buffer = [0u8; 4096];
    let received = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if received.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((buffer[..received.bytes].to_vec(), fds)))
}

/// Whether `fd` is on a filesystem of type `magic` (`statfs`'s `f_type`,
/// whose type differs between architectures).
#[allow(clippy::unnecessary_cast)]
pub fn is_filesystem(fd: impl AsFd, magic: i64) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|stat| stat.f_type as i64 == magic)
}
