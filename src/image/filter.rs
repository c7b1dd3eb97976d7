//! What a package layer leaves out: documentation, man and info pages, and
//! locales other than `C`, unless the manifest keeps them (`[image] keep`,
//! `docs = true`). Decided per normalised path (no leading `/`, no trailing
//! `/`), as [`super::layer`] writes it.

/// Trees left out of package layers, as normalised path prefixes.
const DOC_TREES: [&[u8]; 3] = [b"usr/share/doc", b"usr/share/man", b"usr/share/info"];

/// Trees whose subdirectories are locales: each one but `C` is left out.
const LOCALE_TREES: [&[u8]; 2] = [b"usr/share/locale", b"usr/lib/locale"];

/// Locale directories kept: the ones every image may use.
const KEPT_LOCALES: [&[u8]; 4] = [b"C", b"C.UTF-8", b"C.utf8", b"C.UTF8"];

/// The kind of a tar entry, as far as the filter cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    Symlink,
    /// A regular file, hard link or device node.
    Other,
}

/// Which paths of a package's files go into its layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathFilter {
    /// Leave out documentation and locales (`docs = false`, the default of
    /// an image; [`PathFilter::keep_all`] does not).
    small: bool,
    /// Normalised prefixes kept anyway, sorted, without duplicates.
    keep: Vec<Vec<u8>>,
}

impl PathFilter {
    /// Keeps everything: `docs = true`, and layers that are not packages'.
    pub fn keep_all() -> PathFilter {
        PathFilter::default()
    }

    /// Leaves documentation and locales out, except under the absolute
    /// paths in `keep` (each a path prefix, matched component by component).
    pub fn small<S: AsRef<str>>(keep: &[S]) -> PathFilter {
        let mut keep: Vec<Vec<u8>> = keep
            .iter()
            .map(|path| normalise(path.as_ref().as_bytes()))
            .collect();
        keep.sort();
        keep.dedup();
        PathFilter { small: true, keep }
    }

    /// Whether anything is left out.
    pub fn is_small(&self) -> bool {
        self.small
    }

    /// The kept prefixes, normalised and sorted (for cache keys).
    pub fn kept(&self) -> impl Iterator<Item = &[u8]> {
        self.keep.iter().map(Vec::as_slice)
    }

    /// Whether the entry at `path` is left out of the layer. Directories
    /// never are (they cost a header, and `usr/share/doc/<package>/` holds
    /// the kept `copyright`).
    pub fn leaves_out(&self, path: &[u8], kind: EntryKind) -> bool {
        if !self.small || kind == EntryKind::Directory {
            return false;
        }
        if !excluded_tree(path) {
            return false;
        }
        if let Some(rest) = under(path, b"usr/share/doc") {
            let parts: Vec<&[u8]> = rest.split(|byte| *byte == b'/').collect();
            match parts.as_slice() {
                // `usr/share/doc/<package>/copyright`: licences stay.
                [_, b"copyright"] => return false,
                // `usr/share/doc/libfoo1 -> libfoo-common`, which keeps the
                // copyright reachable.
                [_] if kind == EntryKind::Symlink => return false,
                _ => {}
            }
        }
        !self.keep.iter().any(|kept| under(path, kept).is_some())
    }
}

/// Whether `path` is in one of the trees a small image leaves out.
fn excluded_tree(path: &[u8]) -> bool {
    if DOC_TREES.iter().any(|tree| under(path, tree).is_some()) {
        return true;
    }
    LOCALE_TREES.iter().any(|tree| {
        under(path, tree).is_some_and(|rest| {
            let mut parts = rest.split(|byte| *byte == b'/');
            let locale = parts.next().unwrap_or_default();
            // Files directly in the tree (`locale.alias`) are no locale's.
            parts.next().is_some() && !KEPT_LOCALES.contains(&locale)
        })
    })
}

/// The rest of `path` below `prefix` (empty for `prefix` itself), when
/// `prefix` is `path` or one of its ancestors.
fn under<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix(b"/")
    }
}

/// A manifest path without its leading `/`, trailing `/`, empty and `.`
/// components.
fn normalise(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path
        .split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect();
    parts.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(filter: &PathFilter, path: &str) -> bool {
        filter.leaves_out(path.as_bytes(), EntryKind::Other)
    }

    #[test]
    fn documentation_man_and_info_pages_are_left_out() {
        let filter = PathFilter::small::<&str>(&[]);
        assert!(out(&filter, "usr/share/doc/hello/README"));
        assert!(out(&filter, "usr/share/doc/hello/changelog.Debian.gz"));
        assert!(out(&filter, "usr/share/doc/hello/examples/a/copyright"));
        assert!(out(&filter, "usr/share/man/man1/hello.1.gz"));
        assert!(out(&filter, "usr/share/info/hello.info.gz"));
        assert!(!out(&filter, "usr/bin/hello"));
        assert!(!out(&filter, "usr/share/doc-base/hello"));
        assert!(!out(&filter, "usr/share/manual"));
        assert!(!out(&filter, "etc/doc/usr/share/doc/x"));
    }

    #[test]
    fn copyright_files_directories_and_package_doc_links_stay() {
        let filter = PathFilter::small::<&str>(&[]);
        assert!(!out(&filter, "usr/share/doc/hello/copyright"));
        assert!(!filter.leaves_out(b"usr/share/doc/hello", EntryKind::Directory));
        assert!(!filter.leaves_out(b"usr/share/man/man1", EntryKind::Directory));
        assert!(!filter.leaves_out(b"usr/share/doc/libfoo1", EntryKind::Symlink));
        // Only a link standing for a package's whole directory.
        assert!(filter.leaves_out(b"usr/share/doc/hello/NEWS", EntryKind::Symlink));
        assert!(filter.leaves_out(b"usr/share/doc/libfoo1", EntryKind::Other));
        assert!(filter.leaves_out(b"usr/share/man/man1/x.1.gz", EntryKind::Symlink));
    }

    #[test]
    fn locales_other_than_c_are_left_out() {
        let filter = PathFilter::small::<&str>(&[]);
        assert!(out(&filter, "usr/share/locale/de/LC_MESSAGES/hello.mo"));
        assert!(out(&filter, "usr/share/locale/pt_BR/LC_MESSAGES/hello.mo"));
        assert!(out(&filter, "usr/lib/locale/de_DE.utf8/LC_CTYPE"));
        assert!(!out(&filter, "usr/lib/locale/C.utf8/LC_CTYPE"));
        assert!(!out(&filter, "usr/lib/locale/C.UTF-8/LC_CTYPE"));
        assert!(!out(&filter, "usr/share/locale/C/LC_MESSAGES/x.mo"));
        assert!(!out(&filter, "usr/share/locale/locale.alias"));
        assert!(!out(&filter, "usr/share/localedata/x"));
    }

    #[test]
    fn kept_prefixes_match_whole_components() {
        let filter = PathFilter::small(&[
            "/usr/share/man/",
            "/usr/share/locale/de",
            "/usr/share/doc/hello/README",
        ]);
        assert!(!out(&filter, "usr/share/man/man1/hello.1.gz"));
        assert!(!out(&filter, "usr/share/locale/de/LC_MESSAGES/hello.mo"));
        assert!(out(&filter, "usr/share/locale/de_AT/LC_MESSAGES/hello.mo"));
        assert!(!out(&filter, "usr/share/doc/hello/README"));
        assert!(out(&filter, "usr/share/doc/hello/README.md"));
        assert!(out(&filter, "usr/share/info/hello.info.gz"));
    }

    #[test]
    fn keep_all_keeps_everything_and_keys_are_sorted() {
        let filter = PathFilter::keep_all();
        assert!(!filter.is_small());
        assert!(!out(&filter, "usr/share/doc/hello/README"));
        assert!(!out(&filter, "usr/share/locale/de/LC_MESSAGES/hello.mo"));
        let a = PathFilter::small(&["/b", "/a/", "/a"]);
        let b = PathFilter::small(&["/a", "/b"]);
        assert_eq!(a, b);
        assert_eq!(a.kept().collect::<Vec<_>>(), [b"a".as_slice(), b"b"]);
    }
}
