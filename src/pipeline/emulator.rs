//! The emulator `xbuild run` registers in its own binfmt_misc: Debian's
//! `qemu-user-static` for the build machine, resolved in the signed index of
//! the build machine's suite, fetched (sha256-verified, once per cache)
//! like any package, and the one program and its binfmt.d registration
//! unpacked into a cached tree. Nothing is installed on the host.

use super::BuildOptions;
use super::fetch::fetch_deb;
use super::package_sources::{PackageSources, SourceUse};
use super::resolve::{ResolveContext, resolve_request};
use crate::Error;
use crate::cache::{Bucket, Cache, CacheError, EntryMeta};
use crate::debian::deb::DebArchive;
use crate::debian::resolve::Request;
use crate::http::HttpClient;
use crate::plan::KeyBuilder;
use crate::progress::Reporter;
use crate::report::Outcomes;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The Debian package the emulators come from.
pub const EMULATOR_PACKAGE: &str = "qemu-user-static";

/// An emulator in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The static qemu-user program.
    pub program: PathBuf,
    /// Its binfmt.d line as the package ships it
    /// (`:name:M::magic:mask:interpreter:flags`).
    pub registration: String,
    /// `qemu-user-static VERSION` it came from.
    pub package: String,
}

/// The qemu-user emulator named `qemu` (`aarch64`, `arm`…) for the build
/// machine: from the cache, or fetched and unpacked into it now.
pub fn emulator(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
    qemu: &str,
) -> Result<Emulator, Error> {
    let http = HttpClient::with_idle_timeout(options.http_timeout)?;
    // The build machine's suite: its programs are the ones that run here.
    let sources = PackageSources::verify(
        options,
        cache,
        &http,
        reporter,
        &[SourceUse::Toolchain],
        &mut Vec::new(),
    )?;
    let context = ResolveContext {
        options,
        sources: &sources,
        purpose: SourceUse::Toolchain,
        cache,
        http: &http,
        reporter,
    };
    let arch = &options.build_platform.debian_arch;
    let request = Request {
        include: vec![EMULATOR_PACKAGE.to_owned()],
        exclude: Vec::new(),
        install_time_dependencies: false,
        without_dependencies: true,
    };
    let what = format!("the emulator for {}", options.build_platform.name);
    let resolution = resolve_request(&context, &what, arch, &request, &mut Vec::new())?;
    let package = resolution
        .packages
        .iter()
        .find(|package| package.name == EMULATOR_PACKAGE)
        .ok_or_else(|| Error::Target {
            target: options.build_platform.name.clone(),
            message: format!(
                "{} has no {EMULATOR_PACKAGE} for {arch}",
                context.describe()
            ),
        })?;
    let key = KeyBuilder::new("emulator")
        .text("format", "qemu-user-static-v1")
        .digest("deb", &package.sha256)
        .text("qemu", qemu)
        .finish();
    let program_name = format!("qemu-{qemu}-static");
    let conf_name = format!("qemu-{qemu}.conf");
    let unpack = |dir: &Path| -> Result<(), Error> {
        let deb = fetch_deb(&context, package, Some(&what), &Outcomes::new())?;
        unpack_emulator(&deb, qemu, dir)
    };
    let (dir, _) = cache.get_or_build_tree(
        Bucket::Toolchains,
        &key,
        EntryMeta::for_platform(options.build_platform.name.clone()),
        unpack,
    )?;
    let conf = dir.join(&conf_name);
    let registration = fs_err::read_to_string(&conf)
        .map_err(|source| CacheError::Io { path: conf, source })?
        .trim()
        .to_owned();
    Ok(Emulator {
        program: dir.join(program_name),
        registration,
        package: format!("{} {}", package.name, package.version),
    })
}

/// Copies `usr/bin/qemu-QEMU-static` and `usr/lib/binfmt.d/qemu-QEMU.conf`
/// out of the `.deb` into `dir`.
fn unpack_emulator(deb: &Path, qemu: &str, dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| {
        Error::Cache(CacheError::Io {
            path: deb.to_owned(),
            source,
        })
    };
    let wanted = [
        (
            format!("usr/bin/qemu-{qemu}-static"),
            format!("qemu-{qemu}-static"),
            0o755,
        ),
        (
            format!("usr/lib/binfmt.d/qemu-{qemu}.conf"),
            format!("qemu-{qemu}.conf"),
            0o644,
        ),
    ];
    let mut found = [false, false];
    let mut archive = DebArchive::open(deb)?;
    let mut data = archive.data()?;
    for entry in data.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        let path = entry.path().map_err(read)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./");
        let Some(index) = wanted.iter().position(|(member, ..)| member == path) else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let (_, name, mode) = &wanted[index];
        let target = dir.join(name);
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(read)?;
        std::fs::write(&target, &bytes)
            .and_then(|()| {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))
            })
            .map_err(|source| CacheError::Io {
                path: target.clone(),
                source,
            })?;
        found[index] = true;
    }
    match found.iter().position(|found| !found) {
        Some(index) => Err(Error::Toolchain {
            target: format!("qemu-{qemu}"),
            message: format!(
                "{} has no {}: this {EMULATOR_PACKAGE} does not emulate qemu-{qemu}",
                deb.display(),
                wanted[index].0
            ),
        }),
        None => Ok(()),
    }
}
