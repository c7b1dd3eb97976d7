//! `--volume HOST:GUEST[:ro]`: host paths mounted in the root, with every
//! mount below them (`--volume /:/host` brings `/host/dev/shm` and the
//! rest), read-only all the way down for `:ro` (`mount_setattr` with
//! `AT_RECURSIVE`). The flags are set before the command's namespace
//! exists, so the kernel locks them in the command's copy.
//!
//! For a caller other than root, D binds each host path itself (with the
//! caller's access). Root's sandbox ids are not the host's root, so H,
//! while still the host's root, clones each host tree (`open_tree`) and
//! idmaps it through the sandbox's user namespace: host root's files are
//! the container root's, and what the command writes there is owned by
//! the caller as it would be for `podman run -v` as root. A filesystem
//! that refuses idmapping (procfs, sysfs…) is mounted as it is, said on
//! stderr: its owners are seen unmapped (root's files as nobody's).

use super::init::errno;
use super::kernel;
use super::{AsFd, OwnedFd};
use crate::run::{IdMapping, SandboxConfig, Volume};
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// H: the volume trees of a root caller (none otherwise), in order.
pub(super) fn host_trees(
    config: &SandboxConfig,
    child: libc::pid_t,
) -> Result<Vec<OwnedFd>, String> {
    let IdMapping::Shifted { uids, .. } = &config.mapping else {
        return Ok(Vec::new());
    };
    if config.volumes.is_empty() {
        return Ok(Vec::new());
    }
    if config.volumes.len() > kernel::MAX_FDS {
        return Err(format!("more than {} volumes", kernel::MAX_FDS));
    }
    let namespace_path = format!("/proc/{child}/ns/user");
    let namespace = fs::File::open(&namespace_path)
        .map_err(|error| format!("opening {namespace_path}: {error}"))?;
    let mut trees = Vec::new();
    for volume in &config.volumes {
        let name = volume_name(volume);
        use rustix::mount::OpenTreeFlags;
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            &volume.host,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|error| format!("--volume {name}: cannot clone the host's tree ({error})"))?;
        let attributes = kernel::Attributes {
            set: if volume.read_only {
                kernel::MOUNT_ATTR_RDONLY
            } else {
                0
            },
            propagation_private: true,
            userns: Some(namespace.as_raw_fd()),
        };
        let empty = Path::new("");
        if let Err(error) = kernel::mount_setattr(Some(tree.as_fd()), empty, true, attributes) {
            let _ = writeln!(
                std::io::stderr(),
                "xbuild run: note: --volume {name}: a filesystem there refuses an idmapped mount ({error}): the command sees host owners unmapped (root's files as nobody's), and what it writes there is owned by uid {}",
                uids.start
            );
            let plain = kernel::Attributes {
                userns: None,
                ..attributes
            };
            kernel::mount_setattr(Some(tree.as_fd()), empty, true, plain)
                .map_err(|error| format!("--volume {name}: cannot set its flags ({error})"))?;
        }
        trees.push(tree);
    }
    Ok(trees)
}

fn volume_name(volume: &Volume) -> String {
    format!(
        "{}:{}{}",
        volume.host.display(),
        volume.guest,
        if volume.read_only { ":ro" } else { "" }
    )
}

/// D: mounts each volume in the root: the tree H cloned, or the host path
/// bound now.
pub(super) fn attach(root: &Path, volumes: &[Volume], trees: Vec<OwnedFd>) -> Result<(), String> {
    if !trees.is_empty() && trees.len() != volumes.len() {
        return Err(format!(
            "{} volume trees for {} volumes",
            trees.len(),
            volumes.len()
        ));
    }
    let mut trees = trees.into_iter();
    for volume in volumes {
        let name = volume_name(volume);
        let tree = trees.next();
        let is_dir = match &tree {
            Some(tree) => rustix::fs::fstat(tree)
                .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir())
                .map_err(|error| format!("--volume {name}: {error}"))?,
            None => volume.host.is_dir(),
        };
        let target = target(root, &volume.guest, is_dir)?;
        match tree {
            Some(tree) => rustix::mount::move_mount(
                tree.as_fd(),
                "",
                rustix::fs::CWD,
                &target,
                rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(errno("mounting the volume tree on", &target))?,
            None => {
                rustix::mount::mount_bind_recursive(&volume.host, &target)
                    .map_err(errno("bind-mounting", &volume.host))?;
                if volume.read_only {
                    kernel::make_read_only(&target).map_err(|error| {
                        format!(
                            "--volume {name}: cannot make it read-only ({error}; Linux 5.12 or later has mount_setattr)"
                        )
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// The mount point of a volume at `guest` in the root (made, inside the
/// root whatever symlinks the image has on the way).
fn target(root: &Path, guest: &str, is_dir: bool) -> Result<PathBuf, String> {
    let mut parts = crate::run::guest_components(guest).ok_or_else(|| {
        format!("the volume's container path {guest:?} is not absolute and plain")
    })?;
    let name = parts
        .pop()
        .ok_or_else(|| format!("a volume cannot replace the root ({guest:?})"))?;
    let dir = crate::run::rootfs::resolve_dir(root, &parts, true)
        .map_err(|error| format!("volume {guest}: {error}"))?
        .expect("created");
    let target = dir.join(name);
    if fs::symlink_metadata(&target).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
        let _ = fs::remove_file(&target);
    }
    if is_dir {
        let _ = fs::create_dir(&target);
    } else if fs::symlink_metadata(&target).is_err() {
        let _ = fs::File::create(&target);
    }
    Ok(target)
}
