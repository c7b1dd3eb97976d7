//! Who the command is: the image's user, looked up in its root
//! filesystem, and how the sandbox's ids map to the host's. A caller other
//! than root is root inside, mapped to itself (and ids 1… to its
//! subordinate ranges when the image's user is not root, via newuidmap).
//! Root is never mapped to itself: the sandbox's ids 0… are root's
//! subordinate ranges (its `/etc/subuid` and `/etc/subgid` lines), else
//! [`ROOT_DEFAULT_START`]…, so the command is never the host's root, whose
//! uid alone opens `/proc/sys` and the like.

use super::RunError;
use super::rootfs::{self, IdRange, Ownership};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::Path;

/// The first host id of the sandbox's ids when root runs an image and has
/// no subordinate ids of its own: 0x70000000, above the ranges `useradd`
/// hands out (100000…600100000) and systemd's container ranges
/// (524288…1879048191), below its foreign range (0x7FFE0000) and the ids
/// with the top bit set.
pub const ROOT_DEFAULT_START: u32 = 0x7000_0000;

/// How many ids the sandbox has then (the 16-bit ids images use).
pub const ROOT_DEFAULT_COUNT: u32 = 65536;

/// How ids of the namespace map to the caller's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum IdMapping {
    /// The caller is root: ids 0… are the host ids of the ranges.
    Shifted { uids: IdRange, gids: IdRange },
    /// The caller is root inside, and there is no other id.
    Single { uid: u32, gid: u32 },
    /// The caller is root inside, ids 1… are the subordinate ranges
    /// (start, count) of `/etc/subuid` and `/etc/subgid`, via newuidmap.
    Subordinate {
        uid: u32,
        gid: u32,
        uids: (u32, u32),
        gids: (u32, u32),
    },
}

#[cfg(target_os = "linux")]
pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(target_os = "linux"))]
pub(super) fn is_root() -> bool {
    false
}

/// Root's range in `file` (`/etc/subuid` or `/etc/subgid`), else the
/// default one.
fn root_range(file: &str) -> Result<IdRange, RunError> {
    let Some((start, count)) = subordinate_range(file, Some("root"), 0) else {
        return Ok(IdRange {
            start: ROOT_DEFAULT_START,
            count: ROOT_DEFAULT_COUNT,
        });
    };
    if start == 0 || count == 0 || start.checked_add(count).is_none() {
        return Err(RunError::RootRange {
            file: file.to_owned(),
            start,
            count,
        });
    }
    Ok(IdRange { start, count })
}

/// Who owns the files of the image's root filesystem on disk: the ids the
/// sandbox maps to 0… when the caller is root, else the caller.
pub fn ownership() -> Result<Ownership, RunError> {
    if is_root() {
        return Ok(Ownership::Shifted {
            uids: root_range("/etc/subuid")?,
            gids: root_range("/etc/subgid")?,
        });
    }
    let (uid, gid) = caller_ids();
    Ok(Ownership::Caller { uid, gid })
}

/// A line of a passwd or group file whose name (or id) is `who`.
fn lookup(file: &Path, who: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|line| line.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && (fields[0] == who || fields[2] == who))
}

/// The numeric uid and gid of the image's `User` (`name`, `uid`,
/// `uid:gid`, `name:group`), looked up in the root's /etc files.
pub fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32), RunError> {
    let user = user.trim();
    if user.is_empty() {
        return Ok((0, 0));
    }
    let error = |reason: String| RunError::User {
        user: user.to_owned(),
        reason,
    };
    let etc = rootfs::resolve_dir(root, &[OsString::from("etc")], false)
        .ok()
        .flatten()
        .unwrap_or_else(|| root.join("etc"));
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let entry = lookup(&etc.join("passwd"), name);
    let uid = match name.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .as_ref()
            .and_then(|fields| fields[2].parse().ok())
            .ok_or_else(|| error(format!("no user {name} in the image's /etc/passwd")))?,
    };
    let gid = match group {
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup(&etc.join("group"), group)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| error(format!("no group {group} in the image's /etc/group")))?,
        },
        None => entry
            .as_ref()
            .and_then(|fields| fields[3].parse().ok())
            .unwrap_or(0),
    };
    Ok((uid, gid))
}

/// The subordinate range (start, count) of the caller in `file`.
fn subordinate_range(file: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let who = fields.next()?;
        let start = fields.next()?.trim().parse().ok()?;
        let count = fields.next()?.trim().parse().ok()?;
        (Some(who) == name || who == id.to_string()).then_some((start, count))
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(target_os = "linux")]
fn caller_ids() -> (u32, u32) {
    (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    )
}

#[cfg(not(target_os = "linux"))]
fn caller_ids() -> (u32, u32) {
    (0, 0)
}

/// How the namespace's ids map to the caller's, for a command run as
/// `uid:gid`.
pub fn id_mapping(user: &str, uid: u32, gid: u32) -> Result<IdMapping, RunError> {
    let error = |reason: String| RunError::User {
        user: user.to_owned(),
        reason,
    };
    if let Ownership::Shifted { uids, gids } = ownership()? {
        if uid >= uids.count || gid >= gids.count {
            return Err(error(format!(
                "it runs as {uid}:{gid}, beyond the {} uids and {} gids root's range maps",
                uids.count, gids.count
            )));
        }
        return Ok(IdMapping::Shifted { uids, gids });
    }
    let (own_uid, own_gid) = caller_ids();
    if uid == 0 && gid == 0 {
        return Ok(IdMapping::Single {
            uid: own_uid,
            gid: own_gid,
        });
    }
    let name =
        lookup(Path::new("/etc/passwd"), &own_uid.to_string()).map(|fields| fields[0].clone());
    let uids = subordinate_range("/etc/subuid", name.as_deref(), own_uid);
    let gids = subordinate_range("/etc/subgid", name.as_deref(), own_uid);
    let (Some(uids), Some(gids)) = (uids, gids) else {
        return Err(error(format!(
            "it runs as {uid}:{gid}, and uid {own_uid} has no subordinate ids in /etc/subuid and /etc/subgid to map it to"
        )));
    };
    if !on_path("newuidmap") || !on_path("newgidmap") {
        return Err(error(format!(
            "it runs as {uid}:{gid}, which needs newuidmap and newgidmap (Debian's uidmap package)"
        )));
    }
    if uid > uids.1 || gid > gids.1 {
        return Err(error(format!(
            "it runs as {uid}:{gid}, beyond the subordinate ranges of uid {own_uid}"
        )));
    }
    Ok(IdMapping::Subordinate {
        uid: own_uid,
        gid: own_gid,
        uids,
        gids,
    })
}
