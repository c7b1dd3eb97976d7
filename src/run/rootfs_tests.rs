use super::*;

/// Files owned by whoever runs the tests.
fn caller() -> Ownership {
    Ownership::Caller {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    }
}

/// One entry of a test layer.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a str, u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A gzip tar layer of `items`, written into `dir` as `name`.
fn layer(dir: &Path, name: &str, items: &[Item]) -> PathBuf {
    let path = dir.join(name);
    let file = fs::File::create(&path).unwrap();
    let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gzip);
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        match item {
            Item::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, io::empty()).unwrap();
            }
            Item::File(path, text, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(text.len() as u64);
                builder
                    .append_data(&mut header, path, text.as_bytes())
                    .unwrap();
            }
            Item::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Item::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap().finish().unwrap();
    path
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn layers_apply_in_order_with_whiteouts_and_opaque_directories() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let lower = layer(
        work.path(),
        "1",
        &[
            Item::Dir("./etc/"),
            Item::File("./etc/keep", "keep", 0o644),
            Item::File("./etc/gone", "gone", 0o644),
            Item::Dir("./opt/"),
            Item::File("./opt/old", "old", 0o644),
            Item::File("./usr/bin/tool", "v1", 0o755),
            Item::Symlink("./bin", "usr/bin"),
        ],
    );
    let upper = layer(
        work.path(),
        "2",
        &[
            Item::File("./etc/.wh.gone", "", 0o644),
            Item::File("./opt/new", "new", 0o600),
            Item::File("./opt/.wh..wh..opq", "", 0o644),
            // Through the symlink: lands in usr/bin.
            Item::File("./bin/tool", "v2", 0o755),
            Item::HardLink("./etc/again", "./etc/keep"),
        ],
    );
    apply_layers(&root, &[lower, upper], &caller()).unwrap();
    assert_eq!(read(&root.join("etc/keep")), "keep");
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/.wh.gone").exists());
    // The opaque directory keeps only this layer's entries.
    assert!(!root.join("opt/old").exists());
    assert_eq!(read(&root.join("opt/new")), "new");
    assert!(!root.join("opt/.wh..wh..opq").exists());
    assert_eq!(
        fs::metadata(root.join("opt/new"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(read(&root.join("usr/bin/tool")), "v2");
    assert!(fs::symlink_metadata(root.join("bin")).unwrap().is_symlink());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(root.join("etc/again")).unwrap().ino(),
        fs::metadata(root.join("etc/keep")).unwrap().ino()
    );
}

#[test]
fn nothing_is_written_outside_the_root() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let outside = work.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    // An absolute symlink and a relative one climbing out: both resolve
    // inside the root.
    let links = layer(
        work.path(),
        "1",
        &[
            Item::Symlink("./abs", outside.to_str().unwrap()),
            Item::Symlink("./up", "../../../../outside"),
        ],
    );
    let through = layer(
        work.path(),
        "2",
        &[
            Item::File("./abs/a", "a", 0o644),
            Item::File("./up/b", "b", 0o644),
        ],
    );
    apply_layers(&root, &[links, through], &caller()).unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        read(&root.join(outside.strip_prefix("/").unwrap()).join("a")),
        "a"
    );
    assert_eq!(read(&root.join("outside/b")), "b");

    // A path with `..` is refused (tar::Builder refuses to write one, so
    // the name is put in the header by hand).
    let path = work.path().join("3");
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    builder.into_inner().unwrap();
    let error = apply_layers(&root, &[path], &caller()).unwrap_err();
    assert!(matches!(error, RootfsError::Escape { .. }), "{error}");
    assert!(!work.path().join("escape").exists());
}

/// A tar layer of one regular file named `name` (written into the header
/// by hand: archive builders refuse such names).
fn raw_layer(dir: &Path, file: &str, name: &[u8], mode: u32) -> PathBuf {
    let path = dir.join(file);
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(0);
    header.set_cksum();
    builder.append(&header, io::empty()).unwrap();
    builder.into_inner().unwrap();
    path
}

#[test]
fn whiteouts_naming_no_entry_of_their_directory_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree/root");
    fs::create_dir_all(&root).unwrap();
    fs::write(work.path().join("beside"), "keep").unwrap();
    let base = layer(work.path(), "base", &[Item::File("./etc/keep", "k", 0o644)]);
    for (index, name) in [
        &b".wh..."[..],
        b".wh..",
        b".wh.",
        b"etc/.wh...",
        b"etc/.wh..wh.plnk",
    ]
    .into_iter()
    .enumerate()
    {
        let whiteout = raw_layer(work.path(), &format!("w{index}"), name, 0o644);
        let error = apply_layers(&root, &[base.clone(), whiteout.clone()], &caller()).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, RootfsError::Whiteout { .. }),
            "{:?}: {text}",
            String::from_utf8_lossy(name)
        );
        assert!(text.contains(&whiteout.display().to_string()), "{text}");
        assert!(
            text.contains(&String::from_utf8_lossy(name).into_owned()),
            "{text}"
        );
        assert_eq!(read(&work.path().join("beside")), "keep");
        assert_eq!(read(&root.join("etc/keep")), "k");
        fs::remove_dir_all(&root).unwrap();
        fs::create_dir(&root).unwrap();
    }
}

#[test]
fn set_id_bits_are_taken_off_and_recorded_and_devices_left_out() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let lower = layer(
        work.path(),
        "1",
        &[
            Item::File("./bin/su", "su", 0o4755),
            Item::File("./bin/wall", "wall", 0o2755),
            Item::HardLink("./bin/su-again", "./bin/su"),
            Item::File("./bin/plain", "p", 0o755),
        ],
    );
    let path = work.path().join("2");
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_mode(0o666);
    header.set_size(0);
    header.set_device_major(1).unwrap();
    header.set_device_minor(3).unwrap();
    builder
        .append_data(&mut header, "dev/null", io::empty())
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o2775);
    header.set_size(0);
    builder
        .append_data(&mut header, "var/mail/", io::empty())
        .unwrap();
    builder.into_inner().unwrap();
    let applied = apply_layers(&root, &[lower, path], &caller()).unwrap();
    assert_eq!(applied.devices_skipped, 1);
    assert!(!root.join("dev/null").exists());
    let modes: Vec<(&str, u32)> = applied
        .set_id
        .iter()
        .map(|entry| (entry.path.as_str(), entry.mode))
        .collect();
    assert_eq!(
        modes,
        [
            ("bin/su", 0o4755),
            ("bin/su-again", 0o4755),
            ("bin/wall", 0o2755),
            ("var/mail", 0o2775)
        ]
    );
    let mode = |path: &str| fs::symlink_metadata(root.join(path)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o755);
    assert_eq!(mode("bin/wall"), 0o755);
    assert_eq!(mode("var/mail"), 0o775);
    assert_eq!(mode("bin/plain"), 0o755);
}
