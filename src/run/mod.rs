//! `xbuild run`: an image of a build's OCI layout run here, without a
//! container engine. Its layers are applied once into a cached root
//! filesystem ([`rootfs`]: no device nodes, no set-id bits, nothing
//! outside the tree) keyed by the manifest digest and who owns the files;
//! each run mounts that root read-only under a writable overlay of its
//! own in a user, mount, PID, UTS and IPC namespace made by a helper
//! process ([`sandbox`]: `xbuild` re-executed while it has one thread),
//! with ids that are never the host's root ([`identity`]). A foreign image
//! runs through the emulator xbuild fetched into the cache (Debian's
//! `qemu-user-static`), registered in a binfmt_misc of the sandbox's own
//! (Linux 6.7 on), else through the host's qemu-user registration
//! ([`emulation`]).

pub mod emulation;
pub mod identity;
pub mod rootfs;
#[cfg(target_os = "linux")]
pub mod sandbox;

pub use emulation::{
    BINFMT_MODE, BinfmtMode, EmulatorChoice, IGNORE_HOST_BINFMT, PrivateBinfmt, check_emulation,
    kernel_has_private_binfmt, private_registration, wants_own_emulator,
};
pub use identity::{IdMapping, id_mapping, resolve_user};

use crate::cache::{Bucket, Cache, CacheError, EntryMeta};
use crate::hash::Sha256Digest;
use crate::image::oci::{ImageConfiguration, ImageManifest};
use crate::plan::KeyBuilder;
use crate::platform::Platform;
use rootfs::{Ownership, SetId};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Set (to the JSON of a [`SandboxConfig`]) in the environment of the
/// helper: `main` checks it before anything else.
pub const HELPER_VARIABLE: &str = "XBUILD_RUN_SANDBOX";

/// `PATH` when the image sets none (podman's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A host path mounted in the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// Everything the helper needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The cached root filesystem (never written).
    pub root: PathBuf,
    /// The image's set-id files and directories, their bits given back in
    /// the run's overlay.
    #[serde(default)]
    pub set_id: Vec<SetId>,
    /// An empty directory the run's tmpfs is mounted on.
    pub scratch: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub mapping: IdMapping,
    pub volumes: Vec<Volume>,
    /// Registered in the sandbox's own binfmt_misc before the command runs.
    #[serde(default)]
    pub binfmt: Option<PrivateBinfmt>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read the image {digest} from {}", layout.display())]
    Image {
        layout: PathBuf,
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the image {digest} in {} is malformed: {reason}", layout.display())]
    BadImage {
        layout: PathBuf,
        digest: String,
        reason: String,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error("cannot run a {target} image on this {host} host: {reason}")]
    NoEmulator {
        target: String,
        host: String,
        qemu: String,
        oci: String,
        reason: String,
    },
    #[error("the image's user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("--volume {value:?}: {reason}")]
    Volume { value: String, reason: String },
    #[error("--env {value:?}: expected NAME=VALUE or NAME")]
    Env { value: String },
    #[error("{BINFMT_MODE}={value:?}: expected auto, private or host")]
    BinfmtMode { value: String },
    #[error(
        "the emulator's binfmt.d line {line:?} is not `:name:type:offset:magic:mask:interpreter:flags`"
    )]
    BadRegistration { line: String },
    #[error(
        "{file} gives root the ids {start}+{count}: expected a start above 0 and a count above 0 within 32 bits"
    )]
    RootRange {
        file: String,
        start: u32,
        count: u32,
    },
    #[error("the root filesystem of the image in the cache at {} is damaged ({reason})", path.display())]
    BadRootfs { path: PathBuf, reason: String },
    #[error("cannot start the sandbox helper")]
    Helper(#[source] std::io::Error),
    #[error("xbuild run needs Linux (user, mount and PID namespaces)")]
    NotLinux,
}

impl RunError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RunError::NoEmulator { qemu, oci, .. } => Some(format!(
                "on Linux 6.7 and later xbuild registers Debian's qemu-user-static, fetched into its cache, in a binfmt_misc of the sandbox's own; elsewhere register qemu-user with binfmt_misc and the F flag: `apt install qemu-user-static` (Debian's package registers qemu-{qemu} so), or scripts/setup.sh; or run the image with `podman run --platform {oci}`"
            )),
            RunError::User { .. } => Some(
                "an image whose user is not root needs subordinate ids for the caller in /etc/subuid and /etc/subgid, and newuidmap and newgidmap (Debian's uidmap package); or run xbuild run as root".into(),
            ),
            RunError::NotLinux => Some("run the image with `podman run` or `docker run`".into()),
            RunError::Rootfs(error) => error.hint(),
            RunError::BadRootfs { .. } => {
                Some("delete that directory: the next run applies the image's layers again".into())
            }
            _ => None,
        }
    }
}

/// What to run: an image of a layout, and what the command line adds.
pub struct RunRequest {
    pub layout: PathBuf,
    pub manifest_digest: String,
    pub target: Platform,
    pub host: Platform,
    /// Replace the image's cmd when not empty.
    pub args: Vec<String>,
    /// `--env` values: NAME=VALUE, or NAME (the caller's value).
    pub env: Vec<String>,
    /// `--volume` values: HOST:GUEST[:ro].
    pub volumes: Vec<String>,
    /// The emulator found for a foreign image ([`wants_own_emulator`]).
    pub emulator: EmulatorChoice,
}

/// The components of an absolute container path, `None` if it is
/// relative or has `..`.
pub fn guest_components(path: &str) -> Option<Vec<OsString>> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            name => parts.push(OsString::from(name)),
        }
    }
    Some(parts)
}

/// A layout's blob, by digest.
fn blob_path(layout: &Path, digest: &Sha256Digest) -> PathBuf {
    layout.join("blobs/sha256").join(digest.hex())
}

fn read_json<T: serde::de::DeserializeOwned>(
    request: &RunRequest,
    digest: &Sha256Digest,
) -> Result<T, RunError> {
    let bytes =
        std::fs::read(blob_path(&request.layout, digest)).map_err(|source| RunError::Image {
            layout: request.layout.clone(),
            digest: digest.oci(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|error| RunError::BadImage {
        layout: request.layout.clone(),
        digest: digest.oci(),
        reason: error.to_string(),
    })
}

/// The record of a root filesystem tree, beside its `root/`.
const SET_ID_RECORD: &str = "set-id.json";

/// An image's root filesystem in the cache.
#[derive(Debug, Clone)]
pub struct PreparedRoot {
    /// The tree (`rootfs-v1/<key>/root`).
    pub root: PathBuf,
    /// Its set-id entries, their bits off on disk.
    pub set_id: Vec<SetId>,
}

/// The image's root filesystem in the cache, applied now if it is not.
pub fn root_filesystem(
    cache: &Cache,
    request: &RunRequest,
    manifest: &ImageManifest,
    manifest_digest: &Sha256Digest,
) -> Result<PathBuf, RunError> {
    prepare_root(cache, request, manifest, manifest_digest).map(|prepared| prepared.root)
}

/// The image's root filesystem in the cache (`rootfs-v1/<key>/root`, the
/// key naming the manifest and who owns the files on disk), with its
/// set-id record (`rootfs-v1/<key>/set-id.json`), applied now if it is
/// not.
pub fn prepare_root(
    cache: &Cache,
    request: &RunRequest,
    manifest: &ImageManifest,
    manifest_digest: &Sha256Digest,
) -> Result<PreparedRoot, RunError> {
    let layers: Vec<PathBuf> = manifest
        .layers
        .iter()
        .map(|layer| blob_path(&request.layout, &layer.digest))
        .collect();
    let ownership = identity::ownership()?;
    let key = KeyBuilder::new("rootfs")
        .text("format", "rootfs-tree-v2")
        .digest("manifest", manifest_digest)
        .text("ownership", &ownership.key_text())
        .finish();
    let (tree, _) = cache.get_or_build_tree(
        Bucket::RootFs,
        &key,
        EntryMeta::for_platform(request.target.name.clone()),
        |dir| build_root(dir, &layers, &ownership),
    )?;
    let record = tree.join(SET_ID_RECORD);
    let damaged = |reason: String| RunError::BadRootfs {
        path: tree.clone(),
        reason,
    };
    let text = std::fs::read(&record)
        .map_err(|error| damaged(format!("{}: {error}", record.display())))?;
    let set_id = serde_json::from_slice(&text)
        .map_err(|error| damaged(format!("{}: {error}", record.display())))?;
    Ok(PreparedRoot {
        root: tree.join("root"),
        set_id,
    })
}

/// Applies the layers into `dir/root` and writes the set-id record.
fn build_root(dir: &Path, layers: &[PathBuf], ownership: &Ownership) -> Result<(), RunError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RunError::Cache(CacheError::Io { path, source })
    };
    let root = dir.join("root");
    std::fs::create_dir(&root).map_err(io(&root))?;
    let applied = rootfs::apply_layers(&root, layers, ownership)?;
    let record = dir.join(SET_ID_RECORD);
    let json = serde_json::to_vec_pretty(&applied.set_id).expect("serializable");
    std::fs::write(&record, json).map_err(io(&record))
}

/// The digest of the manifest for `target` in the OCI image layout
/// `layout` (`xbuild run --image`): the one its `index.json` lists for the
/// target's platform, or its only manifest if that names no platform.
pub fn layout_manifest(layout: &Path, target: &Platform) -> Result<String, RunError> {
    let path = layout.join("index.json");
    let bad = |reason: String| RunError::BadImage {
        layout: layout.to_owned(),
        digest: "index.json".into(),
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|source| RunError::Image {
        layout: layout.to_owned(),
        digest: "index.json".into(),
        source,
    })?;
    let index: crate::image::oci::ImageIndex =
        serde_json::from_slice(&bytes).map_err(|error| bad(error.to_string()))?;
    let wanted = &target.oci;
    let matching: Vec<_> = index
        .manifests
        .iter()
        .filter(|manifest| match &manifest.platform {
            Some(platform) => {
                platform.os == wanted.os
                    && platform.architecture == wanted.architecture
                    && (platform.variant.is_none()
                        || wanted.variant.is_none()
                        || platform.variant == wanted.variant)
            }
            None => index.manifests.len() == 1,
        })
        .collect();
    match matching.as_slice() {
        [manifest] => Ok(manifest.digest.oci()),
        [] => Err(bad(format!("it lists no manifest for {wanted}"))),
        _ => Err(bad(format!("it lists several manifests for {wanted}"))),
    }
}

fn parse_volume(value: &str) -> Result<Volume, RunError> {
    let error = |reason: &str| RunError::Volume {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let (rest, read_only) = match value.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (value.strip_suffix(":rw").unwrap_or(value), false),
    };
    let (host, guest) = rest
        .split_once(':')
        .ok_or_else(|| error("expected HOST:GUEST or HOST:GUEST:ro"))?;
    if guest_components(guest).is_none_or(|parts| parts.is_empty()) {
        return Err(error(
            "the container path must be absolute, without `..`, and not /",
        ));
    }
    let host = std::fs::canonicalize(host).map_err(|_| error("the host path does not exist"))?;
    Ok(Volume {
        host,
        guest: guest.to_owned(),
        read_only,
    })
}

/// The command's environment: the image's, `PATH` and `HOME` if it sets
/// none, then `--env` (a later value of a name replaces an earlier one).
fn environment(image: &[String], extra: &[String]) -> Result<Vec<String>, RunError> {
    let mut env: Vec<String> = image.to_vec();
    let mut set = |pair: String| {
        let name = pair.split('=').next().unwrap_or("").to_owned();
        env.retain(|old| old.split('=').next() != Some(&name));
        env.push(pair);
    };
    let has = |name: &str| {
        image
            .iter()
            .any(|pair| pair.starts_with(&format!("{name}=")))
    };
    if !has("PATH") {
        set(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME") {
        set("HOME=/root".to_owned());
    }
    for value in extra {
        match value.split_once('=') {
            Some((name, _)) if !name.is_empty() => set(value.clone()),
            None if !value.is_empty() => {
                if let Some(host) = std::env::var_os(value) {
                    set(format!("{value}={}", host.to_string_lossy()));
                }
            }
            _ => {
                return Err(RunError::Env {
                    value: value.clone(),
                });
            }
        }
    }
    Ok(env)
}

/// Runs the image; returns the command's exit status.
pub fn run(cache: &Cache, request: &RunRequest) -> Result<i32, RunError> {
    run_with(cache, request, spawn_helper)
}

/// What a run printed, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs the image with no input, its output captured instead of passed
/// through (`[image] slim` compares runs).
pub fn run_captured(cache: &Cache, request: &RunRequest) -> Result<Captured, RunError> {
    run_with(cache, request, spawn_helper_captured)
}

/// The sandbox configuration of `request`, handed to `spawn`.
fn run_with<T>(
    cache: &Cache,
    request: &RunRequest,
    spawn: fn(&SandboxConfig) -> Result<T, RunError>,
) -> Result<T, RunError> {
    if !cfg!(target_os = "linux") {
        return Err(RunError::NotLinux);
    }
    let digest =
        Sha256Digest::parse(&request.manifest_digest).ok_or_else(|| RunError::BadImage {
            layout: request.layout.clone(),
            digest: request.manifest_digest.clone(),
            reason: "not a sha256 digest".into(),
        })?;
    let manifest: ImageManifest = read_json(request, &digest)?;
    let image: ImageConfiguration = read_json(request, &manifest.config.digest)?;
    let binfmt = emulation::emulation(request, BinfmtMode::from_environment()?)?;
    let volumes = request
        .volumes
        .iter()
        .map(|value| parse_volume(value))
        .collect::<Result<Vec<_>, _>>()?;
    let env = environment(&image.config.env, &request.env)?;
    let prepared = prepare_root(cache, request, &manifest, &digest)?;
    let root = prepared.root;
    let user = image.config.user.clone().unwrap_or_default();
    let (uid, gid) = resolve_user(&root, &user)?;
    let mapping = id_mapping(&user, uid, gid)?;
    let mut argv = image.config.entrypoint.clone().unwrap_or_default();
    if request.args.is_empty() {
        argv.extend(image.config.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(request.args.iter().cloned());
    }
    let scratch = tempfile::Builder::new()
        .prefix("xbuild-run-")
        .tempdir()
        .map_err(RunError::Helper)?;
    let workdir = image
        .config
        .working_dir
        .clone()
        .filter(|dir| dir.starts_with('/'))
        .unwrap_or_else(|| "/".to_owned());
    let config = SandboxConfig {
        root,
        set_id: prepared.set_id,
        scratch: scratch.path().to_owned(),
        argv,
        env,
        workdir,
        uid,
        gid,
        mapping,
        volumes,
        binfmt,
    };
    spawn(&config)
}

#[cfg(target_os = "linux")]
fn spawn_helper(config: &SandboxConfig) -> Result<i32, RunError> {
    use std::os::unix::process::ExitStatusExt;
    let json = serde_json::to_string(config).expect("serializable");
    // The terminal's interrupt is the command's to handle; this process
    // waits for its status.
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: setting a disposition to SIG_IGN.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let status = std::process::Command::new("/proc/self/exe")
        .env(HELPER_VARIABLE, json)
        .status()
        .map_err(RunError::Helper)?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

#[cfg(not(target_os = "linux"))]
fn spawn_helper(_: &SandboxConfig) -> Result<i32, RunError> {
    Err(RunError::NotLinux)
}

/// The helper with stdin from /dev/null and its output collected.
fn spawn_helper_captured(config: &SandboxConfig) -> Result<Captured, RunError> {
    use std::os::unix::process::ExitStatusExt;
    let json = serde_json::to_string(config).expect("serializable");
    let output = std::process::Command::new("/proc/self/exe")
        .env(HELPER_VARIABLE, json)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(RunError::Helper)?;
    Ok(Captured {
        status: output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}
