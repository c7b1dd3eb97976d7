//! Merged /usr in image layers, as Debian's `usrmerge` package and
//! rules_distroless' `mergedusr` do it: an entry under `bin/`, `sbin/`,
//! `lib/`, `lib32/`, `lib64/` or `libx32/` moves to the same place under
//! `usr/` (`/usr/sbin` stays apart from `/usr/bin`, as in Debian), and the
//! image's first layer holds the `bin -> usr/bin`, … symlinks instead of
//! those directories.
//!
//! Paths here are normalised layer paths (relative, `/`-separated, no `.`,
//! `..` or empty components, no trailing `/`). A relative symlink target is
//! resolved lexically against its entry's original parent (the directories
//! of a package are real directories, not symlinks), mapped into the
//! merged tree, and expressed again from the entry's new parent, so that it
//! names the same file; an absolute target is kept, since it resolves
//! through the merged-/usr symlinks.

/// The top-level directories that are symlinks into `usr/` in a merged-/usr
/// image, in the order the symlink layer writes them.
pub const MERGED_DIRECTORIES: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Where an entry goes in a merged-/usr tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergedPath {
    /// One of [`MERGED_DIRECTORIES`] itself: the symlink layer provides it.
    Root,
    /// Under a merged directory: its new path under `usr/`.
    Moved(Vec<u8>),
    /// Anywhere else: the path stays.
    Unchanged,
}

fn is_merged_directory(component: &[u8]) -> bool {
    MERGED_DIRECTORIES
        .iter()
        .any(|directory| directory.as_bytes() == component)
}

/// Where the normalised path `path` goes.
pub fn merged_path(path: &[u8]) -> MergedPath {
    let (first, rest) = match path.iter().position(|byte| *byte == b'/') {
        Some(slash) => (&path[..slash], Some(&path[slash..])),
        None => (path, None),
    };
    if !is_merged_directory(first) {
        return MergedPath::Unchanged;
    }
    match rest {
        None => MergedPath::Root,
        Some(rest) => {
            let mut moved = b"usr/".to_vec();
            moved.extend_from_slice(first);
            moved.extend_from_slice(rest);
            MergedPath::Moved(moved)
        }
    }
}

/// `path` in the merged tree: a merged directory itself included
/// (`lib` is `usr/lib`).
fn canonical(path: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    match path.first() {
        Some(first) if is_merged_directory(first) => {
            let mut merged = vec![b"usr".to_vec()];
            merged.extend(path);
            merged
        }
        _ => path,
    }
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|byte| *byte == b'/')
        .filter(|component| !component.is_empty() && *component != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

fn parent(path: &[u8]) -> Vec<Vec<u8>> {
    let mut parent = components(path);
    parent.pop();
    parent
}

/// Resolves the relative `target` of a symlink at the normalised `path`
/// lexically, as on a system without merged /usr (`..` at the root stays
/// at the root, as in the kernel). Also says whether the walk took `..`
/// from a top-level merged directory, where the merged system differs
/// (`/lib/..` is `/usr` there).
fn resolve(path: &[u8], target: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut here = parent(path);
    let mut through_merged = false;
    for component in target.split(|byte| *byte == b'/') {
        if component.is_empty() || component == b"." {
            continue;
        }
        if component == b".." {
            through_merged |= here.len() == 1 && is_merged_directory(&here[0]);
            here.pop();
        } else {
            here.push(component.to_vec());
        }
    }
    (here, through_merged)
}

/// The target a symlink at `path` (its original, normalised path) needs at
/// `new_path` in the merged tree to name the same file as `target` did;
/// `None` when `target` can stay as it is: absolute, or relative from an
/// entry that did not move and not taking `..` from a merged directory.
pub fn merged_symlink_target(path: &[u8], new_path: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    if target.starts_with(b"/") {
        return None;
    }
    let (resolved, through_merged) = resolve(path, target);
    if path == new_path && !through_merged {
        return None;
    }
    Some(relative_to(&parent(new_path), &canonical(resolved)))
}

/// Where the symlink at the merged-tree path `new_path` with `target`
/// (already rewritten) leads, as a merged-tree path, lexically.
pub fn merged_link_destination(new_path: &[u8], target: &[u8]) -> Vec<u8> {
    let resolved = if target.starts_with(b"/") {
        let (resolved, _) = resolve(b"x", target);
        resolved
    } else {
        resolve(new_path, target).0
    };
    canonical(resolved).join(&b'/')
}

/// The relative path from the directory `from` to `to`.
fn relative_to(from: &[Vec<u8>], to: &[Vec<u8>]) -> Vec<u8> {
    let common = from
        .iter()
        .zip(to)
        .take_while(|(left, right)| left == right)
        .count();
    let mut parts: Vec<&[u8]> = vec![b".."; from.len() - common];
    parts.extend(to[common..].iter().map(Vec::as_slice));
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

#[cfg(test)]
#[path = "usrmerge_tests.rs"]
mod tests;
