use super::*;

fn moved(path: &str) -> MergedPath {
    MergedPath::Moved(path.as_bytes().to_vec())
}

fn target(path: &str, new_path: &str, target: &str) -> Option<String> {
    merged_symlink_target(path.as_bytes(), new_path.as_bytes(), target.as_bytes())
        .map(|target| String::from_utf8(target).unwrap())
}

#[test]
fn entries_under_merged_directories_move_under_usr_and_sbin_stays_apart() {
    assert_eq!(merged_path(b"bin/ls"), moved("usr/bin/ls"));
    assert_eq!(merged_path(b"sbin/ip"), moved("usr/sbin/ip"));
    assert_eq!(
        merged_path(b"lib/aarch64-linux-gnu/libc.so.6"),
        moved("usr/lib/aarch64-linux-gnu/libc.so.6")
    );
    assert_eq!(merged_path(b"lib32/x"), moved("usr/lib32/x"));
    assert_eq!(merged_path(b"lib64/ld.so"), moved("usr/lib64/ld.so"));
    assert_eq!(merged_path(b"libx32/x"), moved("usr/libx32/x"));
    for root in MERGED_DIRECTORIES {
        assert_eq!(merged_path(root.as_bytes()), MergedPath::Root, "{root}");
    }
    for unchanged in [
        "usr/bin/ls",
        "etc/bin/x",
        "library/x",
        "binary",
        "libexec/x",
        "usr",
    ] {
        assert_eq!(
            merged_path(unchanged.as_bytes()),
            MergedPath::Unchanged,
            "{unchanged}"
        );
    }
}

#[test]
fn a_relative_target_of_a_moved_entry_names_the_same_file_from_its_new_place() {
    // bin/foo -> ../usr/bin/bar was /usr/bin/bar: from usr/bin it is `bar`.
    assert_eq!(
        target("bin/foo", "usr/bin/foo", "../usr/bin/bar").as_deref(),
        Some("bar")
    );
    // A shared library link two levels down into /usr/lib.
    assert_eq!(
        target(
            "lib/x86_64-linux-gnu/libfoo.so.1",
            "usr/lib/x86_64-linux-gnu/libfoo.so.1",
            "../../usr/lib/x86_64-linux-gnu/libfoo.so.1.2"
        )
        .as_deref(),
        Some("libfoo.so.1.2")
    );
    // A link staying inside its moved directory: the same text again.
    assert_eq!(
        target("bin/sh", "usr/bin/sh", "dash").as_deref(),
        Some("dash")
    );
    assert_eq!(
        target(
            "lib/ld-linux-aarch64.so.1",
            "usr/lib/ld-linux-aarch64.so.1",
            "aarch64-linux-gnu/ld-linux-aarch64.so.1"
        )
        .as_deref(),
        Some("aarch64-linux-gnu/ld-linux-aarch64.so.1")
    );
    // Out of /lib into /etc: one more `..` from the deeper place.
    assert_eq!(
        target("lib/foo/conf", "usr/lib/foo/conf", "../../etc/foo.conf").as_deref(),
        Some("../../../etc/foo.conf")
    );
    // Into another merged directory: lib64 is usr/lib64.
    assert_eq!(
        target(
            "lib64/ld.so",
            "usr/lib64/ld.so",
            "../lib/x86_64-linux-gnu/ld.so"
        )
        .as_deref(),
        Some("../lib/x86_64-linux-gnu/ld.so")
    );
    // `.` and `x/..` in the target, and `..` past the root (stays there).
    assert_eq!(
        target("bin/a", "usr/bin/a", "./../sbin/./x/../y").as_deref(),
        Some("../sbin/y")
    );
    assert_eq!(
        target("bin/a", "usr/bin/a", "../../../../etc/a").as_deref(),
        Some("../../etc/a")
    );
}

#[test]
fn absolute_targets_and_unmoved_relative_ones_stay() {
    assert_eq!(target("bin/foo", "usr/bin/foo", "/usr/bin/bar"), None);
    assert_eq!(target("bin/foo", "usr/bin/foo", "/bin/bar"), None);
    assert_eq!(target("usr/bin/foo", "usr/bin/foo", "bar"), None);
    // Through /lib with a plain component: the symlink leads to the same file.
    assert_eq!(
        target("usr/bin/foo", "usr/bin/foo", "../../lib/foo/bar"),
        None
    );
}

#[test]
fn a_dot_dot_out_of_a_merged_directory_is_rewritten_for_unmoved_entries_too() {
    // Unmerged, /lib/.. is /; merged, /lib -> usr/lib and /lib/.. is /usr.
    assert_eq!(
        target("usr/bin/foo", "usr/bin/foo", "../../lib/../etc/foo").as_deref(),
        Some("../../etc/foo")
    );
}

#[test]
fn a_link_to_the_root_or_its_own_directory() {
    assert_eq!(
        target("bin/root", "usr/bin/root", "..").as_deref(),
        Some("../..")
    );
    assert_eq!(
        target("bin/here", "usr/bin/here", ".").as_deref(),
        Some(".")
    );
}

#[test]
fn link_destinations_are_merged_tree_paths() {
    assert_eq!(
        merged_link_destination(b"usr/bin/foo", b"/bin/foo"),
        b"usr/bin/foo"
    );
    assert_eq!(
        merged_link_destination(b"usr/bin/foo", b"../../bin/foo"),
        b"usr/bin/foo"
    );
    assert_eq!(
        merged_link_destination(b"usr/bin/foo", b"bar"),
        b"usr/bin/bar"
    );
    assert_eq!(
        merged_link_destination(b"usr/lib/x/l.so", b"/lib64/l.so"),
        b"usr/lib64/l.so"
    );
}
