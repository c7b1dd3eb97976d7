//! Foreign images: whether an image's programs run here natively, through
//! the emulator xbuild fetched into the cache (Debian's
//! `qemu-user-static`, registered in a binfmt_misc of the sandbox's own on
//! Linux 6.7 and later), or through the host's qemu-user registration.

use super::{RunError, RunRequest};
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Set to anything but empty: the host's binfmt_misc entries are not used
/// (as on a host without them).
pub const IGNORE_HOST_BINFMT: &str = "XBUILD_IGNORE_HOST_BINFMT";

/// How a foreign image's programs are run: `auto` (the default: the
/// emulator in the cache, registered in the sandbox's own binfmt_misc,
/// else the host's registration), `private` (only the former) or `host`
/// (only the latter).
pub const BINFMT_MODE: &str = "XBUILD_RUN_BINFMT";

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The first Linux release whose binfmt_misc can be mounted in a user
/// namespace, with entries of its own.
const PRIVATE_BINFMT_SINCE: (u32, u32) = (6, 7);

/// Where a foreign image's emulator comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinfmtMode {
    Auto,
    Private,
    Host,
}

impl BinfmtMode {
    /// [`BINFMT_MODE`]'s value.
    pub fn from_environment() -> Result<BinfmtMode, RunError> {
        match std::env::var(BINFMT_MODE).unwrap_or_default().as_str() {
            "" | "auto" => Ok(BinfmtMode::Auto),
            "private" => Ok(BinfmtMode::Private),
            "host" => Ok(BinfmtMode::Host),
            other => Err(RunError::BinfmtMode {
                value: other.to_owned(),
            }),
        }
    }
}

/// The emulator of a foreign image, as the caller found it.
#[derive(Debug, Clone)]
pub enum EmulatorChoice {
    /// The image runs natively, or the host's registration is to be used.
    None,
    /// In the cache: registered in the sandbox's own binfmt_misc.
    Private(crate::pipeline::emulator::Emulator),
    /// Wanted, but not to be had (the reason).
    Unavailable(String),
}

/// The private binfmt_misc entry the sandbox registers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivateBinfmt {
    /// The line written to `register`, naming the cached emulator.
    pub registration: String,
    /// Whether the host's registration may be used if the kernel refuses.
    pub host_fallback: bool,
}

/// Whether `target`'s programs run on `host` without an emulator.
fn runs_natively(target: &Platform, host: &Platform) -> bool {
    target.debian_arch == host.debian_arch
        || (host.debian_arch == "amd64" && target.debian_arch == "i386")
}

/// Checks that the kernel runs `target`'s programs: natively, or through
/// the host's qemu-user registration, enabled and with the F flag (its
/// interpreter opened at registration, so found from inside the root).
pub fn check_emulation(target: &Platform, host: &Platform) -> Result<(), RunError> {
    if runs_natively(target, host) {
        return Ok(());
    }
    let error = |reason: String| RunError::NoEmulator {
        target: target.name.clone(),
        host: host.name.clone(),
        qemu: target.qemu.clone(),
        oci: target.oci.to_string(),
        reason,
    };
    if std::env::var_os(IGNORE_HOST_BINFMT).is_some_and(|value| !value.is_empty()) {
        return Err(error(format!(
            "the host's binfmt_misc entries are ignored ({IGNORE_HOST_BINFMT} is set)"
        )));
    }
    let status = std::fs::read_to_string(Path::new(BINFMT).join("status")).unwrap_or_default();
    if status.trim() != "enabled" {
        return Err(error(format!(
            "binfmt_misc is not mounted or not enabled at {BINFMT}"
        )));
    }
    let entry = Path::new(BINFMT).join(format!("qemu-{}", target.qemu));
    let text = std::fs::read_to_string(&entry).map_err(|_| {
        error(format!(
            "no qemu-user is registered for it ({} is missing)",
            entry.display()
        ))
    })?;
    if text.lines().next() != Some("enabled") {
        return Err(error(format!("{} is disabled", entry.display())));
    }
    let flags = text
        .lines()
        .find_map(|line| line.strip_prefix("flags: "))
        .unwrap_or("");
    if !flags.contains('F') {
        return Err(error(format!(
            "{} is registered without the F flag, so its interpreter cannot be found inside the image's root",
            entry.display()
        )));
    }
    Ok(())
}

/// Whether this kernel lets a user namespace mount a binfmt_misc of its
/// own (Linux 6.7 on).
pub fn kernel_has_private_binfmt() -> bool {
    #[cfg(target_os = "linux")]
    {
        release_has_private_binfmt(&rustix::system::uname().release().to_string_lossy())
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether a kernel release (`uname -r`: `6.18.44-…`) is 6.7 or later.
fn release_has_private_binfmt(release: &str) -> bool {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= PRIVATE_BINFMT_SINCE
}

/// Whether a run of a `target` image here wants xbuild's own emulator
/// (fetched into the cache by the caller).
pub fn wants_own_emulator(target: &Platform, host: &Platform, mode: BinfmtMode) -> bool {
    !runs_natively(target, host)
        && match mode {
            BinfmtMode::Host => false,
            BinfmtMode::Private => true,
            BinfmtMode::Auto => kernel_has_private_binfmt(),
        }
}

/// The binfmt_misc line registering `emulator`: the package's, with its
/// interpreter replaced by the cached program and the F flag (the program
/// is opened at registration, outside the image's root).
pub fn private_registration(
    emulator: &crate::pipeline::emulator::Emulator,
) -> Result<String, RunError> {
    let bad = || RunError::BadRegistration {
        line: emulator.registration.clone(),
    };
    let mut fields: Vec<String> = emulator
        .registration
        .split(':')
        .map(str::to_owned)
        .collect();
    if fields.len() != 8 || !fields[0].is_empty() || fields[2] != "M" {
        return Err(bad());
    }
    let program = emulator.program.to_string_lossy();
    if program.contains(':') {
        return Err(RunError::BadRegistration {
            line: format!(
                "{} (the cache path {program} has a ':'; set XBUILD_CACHE_DIR elsewhere)",
                emulator.registration
            ),
        });
    }
    fields[6] = program.into_owned();
    if !fields[7].contains('F') {
        fields[7].push('F');
    }
    Ok(fields.join(":"))
}

/// How the sandbox gets the image's programs run: `None` for a native
/// image or the host's registration, checked now.
pub(super) fn emulation(
    request: &RunRequest,
    mode: BinfmtMode,
) -> Result<Option<PrivateBinfmt>, RunError> {
    if runs_natively(&request.target, &request.host) {
        return Ok(None);
    }
    let host = || check_emulation(&request.target, &request.host);
    match &request.emulator {
        EmulatorChoice::Private(emulator) => Ok(Some(PrivateBinfmt {
            registration: private_registration(emulator)?,
            host_fallback: mode == BinfmtMode::Auto && host().is_ok(),
        })),
        EmulatorChoice::Unavailable(why) if mode != BinfmtMode::Host => match host() {
            Ok(()) if mode == BinfmtMode::Auto => Ok(None),
            Ok(()) => Err(no_emulator(request, why.clone())),
            Err(RunError::NoEmulator { reason, .. }) => {
                Err(no_emulator(request, format!("{why}; and {reason}")))
            }
            Err(other) => Err(other),
        },
        _ => host().map(|()| None),
    }
}

fn no_emulator(request: &RunRequest, reason: String) -> RunError {
    RunError::NoEmulator {
        target: request.target.name.clone(),
        host: request.host.name.clone(),
        qemu: request.target.qemu.clone(),
        oci: request.target.oci.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::emulator::Emulator;
    use std::path::PathBuf;

    fn emulator(registration: &str, program: &str) -> Emulator {
        Emulator {
            program: PathBuf::from(program),
            registration: registration.to_owned(),
            package: "qemu-user-static 1:7.2".to_owned(),
        }
    }

    #[test]
    fn the_registration_names_the_cached_program_with_the_f_flag() {
        let debian = r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02:\xff\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OP";
        let line = private_registration(&emulator(debian, "/cache/t/qemu-aarch64-static")).unwrap();
        assert_eq!(
            line,
            r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02:\xff\xff\xff\xff\xff:/cache/t/qemu-aarch64-static:OPF"
        );
        let with_f = debian.replace(":OP", ":OPF");
        let line = private_registration(&emulator(&with_f, "/c/q")).unwrap();
        assert!(line.ends_with(":/c/q:OPF"), "{line}");
    }

    #[test]
    fn a_malformed_registration_or_cache_path_is_refused() {
        for bad in [
            "qemu-aarch64:M::\\x7f:\\xff:/x:F",
            ":qemu-aarch64:E::.exe::/x:F",
            ":qemu-aarch64:M::\\x7f:\\xff:/x",
        ] {
            assert!(
                matches!(
                    private_registration(&emulator(bad, "/c/q")),
                    Err(RunError::BadRegistration { .. })
                ),
                "{bad}"
            );
        }
        let good = ":qemu-arm:M::\\x7f:\\xff:/x:F";
        let error = private_registration(&emulator(good, "/a:b/q")).unwrap_err();
        assert!(error.to_string().contains("XBUILD_CACHE_DIR"), "{error}");
    }

    #[test]
    fn linux_6_7_and_later_have_a_private_binfmt() {
        for (release, allows) in [
            ("6.18.44-fc-v857", true),
            ("6.7.0", true),
            ("7.0.1-arch1", true),
            ("6.6.30-cloud-amd64", false),
            ("5.15.0-91-generic", false),
            ("", false),
        ] {
            assert_eq!(release_has_private_binfmt(release), allows, "{release}");
        }
    }
}
