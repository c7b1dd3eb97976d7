//! The kept set: the traced paths plus what tracing cannot see, resolved
//! inside an image's root filesystem (a directory on the host).
//!
//! Tracing misses the programs the kernel and qemu load themselves: each
//! executed file, its `#!` interpreter (recursively), each ELF's program
//! interpreter and its `DT_NEEDED` libraries (found as the dynamic loader
//! finds them: `DT_RUNPATH`, then the target's multiarch directories,
//! `/lib` and `/usr/lib`). Every kept path brings the directories and
//! symlinks on the way to it, and each symlink its target, so the slim
//! image resolves the same names the same way.

use super::elf;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Symlinks followed on the way to one path at most (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// Paths every slim image keeps when the image has them: the package
/// records scanners read, and the release the records belong to.
pub const ALWAYS_KEPT: &[&str] = &[
    "/var/lib/dpkg/status.d",
    "/etc/os-release",
    "/usr/lib/os-release",
];

/// What the closure starts from.
#[derive(Debug, Default, Clone)]
pub struct Seeds {
    /// Paths a traced call succeeded on.
    pub paths: BTreeSet<String>,
    /// Programs executed (the commands themselves and every `execve`).
    pub executed: BTreeSet<String>,
    /// Prefixes kept whole (`[image] keep`, [`ALWAYS_KEPT`]).
    pub prefixes: Vec<String>,
}

/// An image's root filesystem unpacked at a host directory.
pub struct Root<'a> {
    dir: &'a Path,
    /// Library directories searched after `DT_RUNPATH`.
    library_dirs: Vec<String>,
}

impl<'a> Root<'a> {
    /// `multiarch`: the target's library directory name (`aarch64-linux-gnu`).
    pub fn new(dir: &'a Path, multiarch: &str) -> Root<'a> {
        let library_dirs = [
            format!("/lib/{multiarch}"),
            format!("/usr/lib/{multiarch}"),
            "/lib".to_owned(),
            "/usr/lib".to_owned(),
            "/lib64".to_owned(),
            "/usr/lib64".to_owned(),
        ]
        .into();
        Root { dir, library_dirs }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    /// Follows `path` inside the root, adding every directory and symlink
    /// on the way (and the final entry) to `kept`; the final path, if it
    /// exists. Nothing is added when it does not.
    pub fn resolve(&self, path: &str, kept: &mut BTreeSet<String>) -> Option<String> {
        let mut seen = BTreeSet::new();
        let resolved = self.walk(path, &mut seen)?;
        kept.extend(seen);
        Some(resolved)
    }

    fn walk(&self, path: &str, seen: &mut BTreeSet<String>) -> Option<String> {
        let mut pending: Vec<String> = components(path).into_iter().rev().collect();
        let mut current = String::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                current.truncate(current.rfind('/').unwrap_or(0));
                continue;
            }
            let candidate = format!("{current}/{part}");
            let metadata = std::fs::symlink_metadata(self.host(&candidate)).ok()?;
            seen.insert(candidate.clone());
            if metadata.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(self.host(&candidate)).ok()?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(components(&target).into_iter().rev());
            } else if metadata.is_dir() || pending.is_empty() {
                current = candidate;
            } else {
                // A file with more path after it.
                return None;
            }
        }
        Some(if current.is_empty() {
            "/".to_owned()
        } else {
            current
        })
    }

    /// Every path under `prefix` (whole trees), with the way to it.
    fn add_tree(&self, prefix: &str, kept: &mut BTreeSet<String>) {
        let Some(resolved) = self.resolve(prefix, kept) else {
            return;
        };
        let mut stack = vec![resolved];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.host(&dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = format!(
                    "{}/{}",
                    dir.trim_end_matches('/'),
                    entry.file_name().to_string_lossy()
                );
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    stack.push(path.clone());
                }
                kept.insert(path);
            }
        }
    }

    /// The first `name` in `dirs` that exists, resolved.
    fn find_library(&self, name: &str, origin: &str, runpath: &[String]) -> Option<String> {
        let runpath = runpath
            .iter()
            .map(|dir| dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin));
        runpath
            .chain(self.library_dirs.iter().cloned())
            .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
            .find(|candidate| {
                let mut scratch = BTreeSet::new();
                self.walk(candidate, &mut scratch).is_some()
            })
    }

    /// The kept set of `seeds`: absolute image paths.
    pub fn closure(&self, seeds: &Seeds) -> BTreeSet<String> {
        let mut kept = BTreeSet::from(["/".to_owned()]);
        for prefix in &seeds.prefixes {
            self.add_tree(prefix, &mut kept);
        }
        let mut work: Vec<(String, bool)> = seeds
            .paths
            .iter()
            .filter(|path| !is_runtime(path))
            .map(|path| (path.clone(), seeds.executed.contains(path)))
            .collect();
        work.extend(seeds.executed.iter().map(|path| (path.clone(), true)));
        let mut done = BTreeSet::new();
        while let Some((path, executed)) = work.pop() {
            if !done.insert((path.clone(), executed)) {
                continue;
            }
            let Some(resolved) = self.resolve(&path, &mut kept) else {
                continue;
            };
            let host = self.host(&resolved);
            let Ok(metadata) = std::fs::metadata(&host) else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let mut head = [0u8; 256];
            let Ok(length) = std::fs::File::open(&host).and_then(|mut file| file.read(&mut head))
            else {
                continue;
            };
            let head = &head[..length];
            if executed && let Some(interpreter) = elf::shebang(head) {
                work.push((interpreter, true));
            }
            // Executable or shared object (mode bits are not a promise:
            // libraries are often 0644).
            if !elf::is_elf(head) || metadata.size() > 1 << 30 {
                continue;
            }
            let Ok(bytes) = std::fs::read(&host) else {
                continue;
            };
            let Some(dynamic) = elf::read(&bytes) else {
                continue;
            };
            if let Some(interpreter) = dynamic.interpreter {
                work.push((interpreter, false));
            }
            let origin = resolved[..resolved.rfind('/').unwrap_or(0)].to_owned();
            for name in &dynamic.needed {
                if let Some(library) = self.find_library(name, &origin, &dynamic.runpath) {
                    work.push((library, false));
                }
            }
        }
        kept
    }
}

/// The parts of a path, without empty ones and `.`.
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .map(str::to_owned)
        .collect()
}

/// Paths of the run's own mounts, never taken from the image.
fn is_runtime(path: &str) -> bool {
    ["/proc", "/sys", "/dev", "/tmp"]
        .iter()
        .any(|mount| path == *mount || path.starts_with(&format!("{mount}/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let at = |path: &str| dir.path().join(path);
        std::fs::create_dir_all(at("usr/bin")).unwrap();
        std::fs::create_dir_all(at("usr/share/data")).unwrap();
        symlink("usr/bin", at("bin")).unwrap();
        std::fs::write(at("usr/bin/script"), "#!/bin/tool -x\necho\n").unwrap();
        std::fs::write(at("usr/bin/tool-1"), "plain").unwrap();
        symlink("/usr/bin/tool-1", at("usr/bin/tool")).unwrap();
        std::fs::write(at("usr/share/data/a"), "a").unwrap();
        std::fs::write(at("usr/share/data/b"), "b").unwrap();
        std::fs::write(at("usr/share/other"), "o").unwrap();
        dir
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn symlinks_on_the_way_and_their_targets_are_kept() {
        let dir = root();
        let root = Root::new(dir.path(), "aarch64-linux-gnu");
        let mut kept = BTreeSet::new();
        assert_eq!(
            root.resolve("/bin/tool", &mut kept).as_deref(),
            Some("/usr/bin/tool-1")
        );
        assert_eq!(
            kept,
            set(&[
                "/bin",
                "/usr",
                "/usr/bin",
                "/usr/bin/tool",
                "/usr/bin/tool-1"
            ])
        );
        let mut none = BTreeSet::new();
        assert_eq!(root.resolve("/bin/missing", &mut none), None);
        assert!(none.is_empty());
    }

    #[test]
    fn executed_scripts_bring_their_interpreters_and_prefixes_whole_trees() {
        let dir = root();
        let root = Root::new(dir.path(), "aarch64-linux-gnu");
        let seeds = Seeds {
            paths: set(&["/proc/self/exe", "/usr/share/data"]),
            executed: set(&["/bin/script"]),
            prefixes: vec!["/usr/share/data".to_owned()],
        };
        let kept = root.closure(&seeds);
        assert_eq!(
            kept,
            set(&[
                "/",
                "/bin",
                "/usr",
                "/usr/bin",
                "/usr/bin/script",
                "/usr/bin/tool",
                "/usr/bin/tool-1",
                "/usr/share",
                "/usr/share/data",
                "/usr/share/data/a",
                "/usr/share/data/b",
            ])
        );
    }
}
