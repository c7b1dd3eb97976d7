//! OCI image layouts crafted entry by entry, for `xbuild run --image`:
//! layers holding whiteouts, symlinks, hard links, device nodes and set-id
//! files, with names and link targets written into the tar headers by hand
//! (no archive builder writes `..` or `.wh...` for us), and the sandbox
//! tests' image program: `probe.c` compiled statically by the host's gcc.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The host's platform as xbuild and OCI name it: the crafted images run
/// natively.
pub fn host_platform() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("x86_64-linux", "amd64"),
        "aarch64" => ("aarch64-linux", "arm64"),
        other => panic!("no crafted images for {other} hosts"),
    }
}

/// The probe program (see `probe.c`), compiled once per test binary.
pub fn probe() -> &'static [u8] {
    static PROBE: OnceLock<Vec<u8>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/probe.c");
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("probe");
        let output = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&program)
            .arg(&source)
            .output()
            .expect("gcc (scripts/setup.sh installs gcc and libc6-dev)");
        assert!(
            output.status.success(),
            "gcc -static failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        fs::read(&program).unwrap()
    })
}

/// One layer, as an uncompressed tar.
#[derive(Default)]
pub struct Layer {
    tar: Vec<u8>,
}

/// An entry's header fields.
struct Entry<'a> {
    path: &'a [u8],
    kind: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    link: &'a [u8],
    device: (u32, u32),
    contents: &'a [u8],
}

impl Layer {
    pub fn new() -> Layer {
        Layer::default()
    }

    fn entry(mut self, entry: Entry<'_>) -> Layer {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        assert!(entry.path.len() < 100 && entry.link.len() < 100);
        old.name[..entry.path.len()].copy_from_slice(entry.path);
        old.linkname[..entry.link.len()].copy_from_slice(entry.link);
        header.set_entry_type(entry.kind);
        header.set_mode(entry.mode);
        header.set_uid(entry.owner.0);
        header.set_gid(entry.owner.1);
        header.set_mtime(0);
        header.set_size(entry.contents.len() as u64);
        if matches!(entry.kind, tar::EntryType::Char | tar::EntryType::Block) {
            header.set_device_major(entry.device.0).unwrap();
            header.set_device_minor(entry.device.1).unwrap();
        }
        header.set_cksum();
        self.tar.extend_from_slice(header.as_bytes());
        self.tar.extend_from_slice(entry.contents);
        let padding = (512 - entry.contents.len() % 512) % 512;
        self.tar.extend(std::iter::repeat_n(0u8, padding));
        self
    }

    fn plain<'a>(path: &'a str, kind: tar::EntryType, mode: u32) -> Entry<'a> {
        Entry {
            path: path.as_bytes(),
            kind,
            mode,
            owner: (0, 0),
            link: b"",
            device: (0, 0),
            contents: b"",
        }
    }

    pub fn dir(self, path: &str, mode: u32) -> Layer {
        self.entry(Layer::plain(path, tar::EntryType::Directory, mode))
    }

    pub fn file(self, path: &str, contents: &[u8], mode: u32) -> Layer {
        self.file_owned(path, contents, mode, (0, 0))
    }

    pub fn file_owned(self, path: &str, contents: &[u8], mode: u32, owner: (u64, u64)) -> Layer {
        self.entry(Entry {
            contents,
            owner,
            ..Layer::plain(path, tar::EntryType::Regular, mode)
        })
    }

    /// An empty regular file: what a whiteout is.
    pub fn whiteout(self, path: &str) -> Layer {
        self.file(path, b"", 0o644)
    }

    pub fn symlink(self, path: &str, target: &str) -> Layer {
        self.entry(Entry {
            link: target.as_bytes(),
            ..Layer::plain(path, tar::EntryType::Symlink, 0o777)
        })
    }

    pub fn hard_link(self, path: &str, target: &str) -> Layer {
        self.entry(Entry {
            link: target.as_bytes(),
            ..Layer::plain(path, tar::EntryType::Link, 0o644)
        })
    }

    pub fn device(self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Layer {
        self.entry(Entry {
            device: (major, minor),
            ..Layer::plain(path, kind, 0o666)
        })
    }

    /// The base of every crafted image: `/bin/probe`, `/etc/passwd` and
    /// `/etc/group` (root and nobody), and the directories a root has.
    pub fn base() -> Layer {
        Layer::new()
            .dir("bin/", 0o755)
            .file("bin/probe", probe(), 0o755)
            .dir("etc/", 0o755)
            .file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/probe\nnobody:x:65534:65534:nobody:/nonexistent:/bin/probe\n",
                0o644,
            )
            .file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
            .dir("proc/", 0o555)
            .dir("dev/", 0o755)
            .dir("tmp/", 0o1777)
            .dir("root/", 0o700)
    }

    pub fn into_bytes(mut self) -> Vec<u8> {
        self.tar.extend(std::iter::repeat_n(0u8, 1024));
        self.tar
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes `bytes` as a blob of the layout at `dir`; its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let hex = sha256(bytes);
    fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    serde_json::json!({
        "mediaType": media_type,
        "digest": format!("sha256:{hex}"),
        "size": bytes.len(),
    })
}

/// An OCI image layout at `dir` (created) of one image for the host's
/// platform: `layers` lowest first, run as `user` (root if `None`).
pub fn write_layout(dir: &Path, layers: Vec<Layer>, user: Option<&str>) -> PathBuf {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (_, architecture) = host_platform();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let bytes = layer.into_bytes();
        diff_ids.push(format!("sha256:{}", sha256(&bytes)));
        descriptors.push(blob(dir, "application/vnd.oci.image.layer.v1.tar", &bytes));
    }
    let mut config = serde_json::json!({
        "Env": ["PATH=/bin"],
        "Cmd": ["/bin/probe", "echo", "hello"],
    });
    if let Some(user) = user {
        config["User"] = user.into();
    }
    let configuration = serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&configuration).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descriptors,
    });
    let mut manifest = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    manifest["platform"] = serde_json::json!({"architecture": architecture, "os": "linux"});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir.to_path_buf()
}
