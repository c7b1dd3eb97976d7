//! Looking at what a build left on disk: every file under a directory, the
//! files whose content has a given sha256, and leftovers of interrupted
//! writes.

use std::fs;
use std::path::{Path, PathBuf};

use super::archive::sha256_hex;

/// Every regular file under `root` (recursively, symlinks not followed),
/// sorted. A missing `root` has no files.
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Every file under `root` whose content hashes to one of `digests`
/// (lowercase hex, with or without `sha256:`).
pub fn files_with_sha256(root: &Path, digests: &[String]) -> Vec<PathBuf> {
    let wanted: Vec<&str> = digests
        .iter()
        .map(|digest| digest.trim_start_matches("sha256:"))
        .collect();
    all_files(root)
        .into_iter()
        .filter(|path| {
            fs::read(path).is_ok_and(|bytes| wanted.contains(&sha256_hex(&bytes).as_str()))
        })
        .collect()
}

/// Files that look like an unfinished write: a path component starting with
/// `.tmp` (tempfile's prefix) or ending in `.tmp`, `.part` or `.partial`,
/// and any file inside a directory named `tmp` or `temp`.
pub fn temp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), false)];
    while let Some((dir, inside_temp_dir)) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            let is_dir = entry.file_type().unwrap().is_dir();
            let temp_name = name.starts_with(".tmp")
                || name.ends_with(".tmp")
                || name.ends_with(".part")
                || name.ends_with(".partial");
            if is_dir {
                if temp_name {
                    found.push(entry.path());
                }
                let temp_dir = temp_name || name == "tmp" || name == "temp";
                pending.push((entry.path(), inside_temp_dir || temp_dir));
            } else if temp_name || inside_temp_dir {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Total bytes of the regular files under `root`.
pub fn total_size(root: &Path) -> u64 {
    all_files(root)
        .iter()
        .filter_map(|path| fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// Copies a project's sources (not its `target/` or `result/`) into `to`.
pub fn copy_project(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "result" {
            continue;
        }
        let destination = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_project(&entry.path(), &destination);
        } else {
            std::fs::copy(entry.path(), &destination).unwrap();
        }
    }
}
