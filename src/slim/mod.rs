//! `[image] slim = true`: an image cut down to the files its command and
//! probes use, found by running them.
//!
//! 1. The full image runs here (`xbuild run`'s sandbox, [`crate::run`])
//!    once for its command and once per `slim-probes` entry, each under
//!    qemu-user with system-call logging: `QEMU_LOG=strace` and
//!    `QEMU_LOG_FILENAME` naming a FIFO in a host directory mounted into
//!    the sandbox. The environment is inherited, so every qemu that
//!    binfmt_misc starts for a child process logs into the same FIFO,
//!    which this process reads while the run goes and keeps open for
//!    writing itself, so a moment with no writer (an `execve`) is no end
//!    of file. Per-process log files would lose lines on re-exec.
//! 2. The log gives every path a call succeeded on ([`trace`]); the
//!    closure adds what qemu and the kernel load unseen ([`closure`],
//!    [`elf`]), the dpkg records, and `[image] keep`.
//! 3. Each layer is filtered to the kept set ([`layer`]); the slim image
//!    runs the command and probes again, and the build fails when any
//!    output or exit status differs from the full image's.
//!
//! A target that runs natively (no qemu) cannot be traced this way yet:
//! the build says so.

pub mod closure;
pub mod elf;
pub mod layer;
pub mod trace;

use crate::cache::Cache;
use crate::error::ErrorClass;
use crate::hash::Sha256Digest;
use crate::manifest::ImageSpec;
use crate::platform::Platform;
use crate::run::{Captured, RunError, RunRequest};
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Where the trace directory is mounted in the sandbox.
const TRACE_DIR: &str = "/.xbuild-trace";
/// The last line written into the FIFO, by this process, after the run.
const END_OF_TRACE: &str = "xbuild-trace-end";

#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    #[error(
        "slim = true needs the image's programs traced under qemu-user, and {target} runs natively on this {host} host"
    )]
    Native { target: String, host: String },
    #[error("cannot run {probe} on the {which} image for {target}")]
    Run {
        probe: String,
        which: &'static str,
        target: String,
        #[source]
        source: RunError,
    },
    #[error("cannot trace {probe} for {target} (FIFO in {})", dir.display())]
    Fifo {
        probe: String,
        target: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the slim layer for {target}")]
    Layer {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{probe} behaves differently on the slim image for {target}:\n{difference}")]
    ProbeDiffers {
        probe: String,
        target: String,
        difference: String,
    },
}

impl SlimError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SlimError::Native { .. } => ErrorClass::Input,
            SlimError::ProbeDiffers { .. } => ErrorClass::Build,
            SlimError::Run { source, .. } => match source {
                RunError::NoEmulator { .. } | RunError::NotLinux => ErrorClass::Input,
                _ => ErrorClass::Local,
            },
            SlimError::Fifo { .. } | SlimError::Layer { .. } => ErrorClass::Local,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            SlimError::Native { .. } => Some(
                "build a foreign target (e.g. --target aarch64-linux), or leave slim out for this one".into(),
            ),
            SlimError::ProbeDiffers { .. } => Some(
                "the probe needs files tracing did not see (a directory listing, a file found by name only): add them to [image] keep, or add a probe that uses them".into(),
            ),
            SlimError::Run { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// A command run on an image: the image's own, or a probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// How errors name it: "the image's command `cowsay hello world`".
    pub label: String,
    /// What replaces the image's cmd (empty: the image's own command).
    pub args: Vec<String>,
    /// The full command line (entrypoint and cmd, or args).
    pub argv: Vec<String>,
}

/// A command line as errors show it: words joined by spaces, newlines
/// and tabs escaped.
fn shown(words: &[String]) -> String {
    words
        .iter()
        .map(|word| word.replace('\n', "\\n").replace('\t', "\\t"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The image's command (entrypoint and cmd, when it has one) and each probe.
pub fn probes(image: &ImageSpec) -> Vec<Probe> {
    let entrypoint = image.entrypoint.clone().unwrap_or_default();
    let mut probes = Vec::new();
    let mut own = entrypoint.clone();
    own.extend(image.cmd.clone().unwrap_or_default());
    if !own.is_empty() {
        probes.push(Probe {
            label: format!("the image's command `{}`", shown(&own)),
            args: Vec::new(),
            argv: own,
        });
    }
    for (index, args) in image.slim_probes.iter().enumerate() {
        let mut argv = entrypoint.clone();
        argv.extend(args.iter().cloned());
        probes.push(Probe {
            label: format!("slim-probes[{index}] `{}`", shown(args)),
            args: args.clone(),
            argv,
        });
    }
    probes
}

/// One traced run.
#[derive(Debug, Clone)]
pub struct TracedRun {
    pub output: Captured,
    pub trace: trace::Trace,
}

/// Where an image is and what runs it.
pub struct ImageRun<'a> {
    pub cache: &'a Cache,
    /// An OCI layout holding the image's blobs.
    pub layout: &'a Path,
    pub manifest_digest: Sha256Digest,
    pub target: &'a Platform,
    pub host: &'a Platform,
    /// "full" or "slim", for errors.
    pub which: &'static str,
    /// The emulator the runs register (or the host's registration).
    pub emulator: &'a crate::run::EmulatorChoice,
}

/// Refuses a target that runs natively: nothing would trace it.
pub fn check_traceable(target: &Platform, host: &Platform) -> Result<(), SlimError> {
    let native = target.debian_arch == host.debian_arch
        || (host.debian_arch == "amd64" && target.debian_arch == "i386");
    if native {
        return Err(SlimError::Native {
            target: target.name.clone(),
            host: host.name.clone(),
        });
    }
    Ok(())
}

/// Runs `probe` on the image with qemu's system-call log read from a FIFO.
pub fn traced_run(run: &ImageRun, probe: &Probe, workdir: &str) -> Result<TracedRun, SlimError> {
    let fifo_error = |dir: &Path| {
        let dir = dir.to_owned();
        let probe = probe.label.clone();
        let target = run.target.name.clone();
        move |source| SlimError::Fifo {
            probe,
            target,
            dir,
            source,
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("xbuild-trace-")
        .tempdir()
        .map_err(fifo_error(Path::new("/tmp")))?;
    let fifo = dir.path().join("log");
    make_fifo(&fifo).map_err(fifo_error(dir.path()))?;
    // Read and write: the FIFO never reaches end of file while this
    // process holds it, whichever qemu comes and goes.
    let file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(fifo_error(dir.path()))?;
    let mut writer = file.file().try_clone().map_err(fifo_error(dir.path()))?;
    let mut parser = trace::TraceParser::new(workdir);
    let reader = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if text.trim_end() == END_OF_TRACE {
                break;
            }
            parser.line(&text);
        }
        parser.finish()
    });
    let request = RunRequest {
        layout: run.layout.to_owned(),
        manifest_digest: run.manifest_digest.oci(),
        target: run.target.clone(),
        host: run.host.clone(),
        args: probe.args.clone(),
        env: vec![
            "QEMU_LOG=strace".to_owned(),
            format!("QEMU_LOG_FILENAME={TRACE_DIR}/log"),
        ],
        volumes: vec![format!("{}:{TRACE_DIR}", dir.path().display())],
        emulator: run.emulator.clone(),
    };
    let output = crate::run::run_captured(run.cache, &request);
    // Every process of the run is gone (the sandbox's PID namespace
    // ended with it): what they wrote is in the FIFO, before this line.
    let _ = writer.write_all(format!("\n{END_OF_TRACE}\n").as_bytes());
    let trace = reader.join().unwrap_or_default();
    let output = output.map_err(|source| SlimError::Run {
        probe: probe.label.clone(),
        which: run.which,
        target: run.target.name.clone(),
        source,
    })?;
    Ok(TracedRun { output, trace })
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("NUL in path"))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(name.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The program a command's first word names in the image: itself with a
/// `/` (against the workdir), else the first match in the image's `PATH`.
fn program_of(root: &closure::Root, argv0: &str, path: &str, workdir: &str) -> Option<String> {
    if argv0.contains('/') {
        return Some(trace::normalize(workdir, argv0));
    }
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| format!("{}/{argv0}", dir.trim_end_matches('/')))
        .find(|candidate| root.resolve(candidate, &mut BTreeSet::new()).is_some())
}

/// The kept set of an image whose root filesystem is `root`, from the
/// traces of its probes.
pub fn kept_paths(
    root: &Path,
    target: &Platform,
    image: &ImageSpec,
    runs: &[(Probe, TracedRun)],
) -> BTreeSet<String> {
    let tree = closure::Root::new(root, &target.multiarch);
    let workdir = image.workdir.clone().unwrap_or_else(|| "/".to_owned());
    let path = image
        .env
        .get("PATH")
        .cloned()
        .unwrap_or_else(|| crate::manifest::DEFAULT_PATH.to_owned());
    let mut seeds = closure::Seeds::default();
    // The working directory the runtime enters.
    seeds.paths.insert(workdir.clone());
    for (probe, run) in runs {
        seeds.paths.extend(run.trace.paths.iter().cloned());
        seeds.executed.extend(run.trace.executed.iter().cloned());
        if let Some(argv0) = probe.argv.first()
            && let Some(program) = program_of(&tree, argv0, &path, &workdir)
        {
            seeds.executed.insert(program);
        }
    }
    seeds.paths.retain(|path| !path.starts_with(TRACE_DIR));
    seeds.prefixes = closure::ALWAYS_KEPT
        .iter()
        .map(|prefix| (*prefix).to_owned())
        .chain(image.keep.iter().cloned())
        .collect();
    tree.closure(&seeds)
}

/// A stable digest of the kept set (part of every slim layer's key).
pub fn kept_digest(kept: &BTreeSet<String>) -> Sha256Digest {
    let mut text = String::new();
    for path in kept {
        text.push_str(path);
        text.push('\0');
    }
    Sha256Digest::of(text.as_bytes())
}

/// How the slim run of `probe` differs from the full one; `None` if it
/// does not.
pub fn difference(full: &Captured, slim: &Captured) -> Option<String> {
    let mut text = String::new();
    if full.status != slim.status {
        text.push_str(&format!(
            "  exit status: {} on the full image, {} on the slim one\n",
            full.status, slim.status
        ));
    }
    for (name, full, slim) in [
        ("stdout", &full.stdout, &slim.stdout),
        ("stderr", &full.stderr, &slim.stderr),
    ] {
        if full != slim {
            text.push_str(&format!("  {name} differs:\n"));
            text.push_str(&line_difference(
                &String::from_utf8_lossy(full),
                &String::from_utf8_lossy(slim),
            ));
        }
    }
    (!text.is_empty()).then_some(text)
}

/// The lines after a common beginning: `- full`, `+ slim`, a few each.
fn line_difference(full: &str, slim: &str) -> String {
    const SHOWN: usize = 12;
    let full: Vec<&str> = full.lines().collect();
    let slim: Vec<&str> = slim.lines().collect();
    let common = full
        .iter()
        .zip(&slim)
        .take_while(|(left, right)| left == right)
        .count();
    let mut text = format!("    (the first {common} lines are the same)\n");
    for (sign, lines) in [("-", &full), ("+", &slim)] {
        let rest = &lines[common.min(lines.len())..];
        for line in rest.iter().take(SHOWN) {
            text.push_str(&format!("    {sign} {line}\n"));
        }
        if rest.len() > SHOWN {
            text.push_str(&format!("    {sign} … {} more lines\n", rest.len() - SHOWN));
        }
    }
    if full.len() == slim.len() && common == full.len() {
        text.push_str("    (the same lines; the bytes differ, e.g. a last newline)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(status: i32, stdout: &str) -> Captured {
        Captured {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        }
    }

    #[test]
    fn the_same_output_is_no_difference() {
        assert_eq!(difference(&captured(0, "a\n"), &captured(0, "a\n")), None);
    }

    #[test]
    fn a_difference_shows_status_and_lines() {
        let text = difference(&captured(0, "a\nb\n51\n"), &captured(1, "a\nb\n3\n")).unwrap();
        assert!(
            text.contains("exit status: 0 on the full image, 1"),
            "{text}"
        );
        assert!(text.contains("first 2 lines are the same"), "{text}");
        assert!(text.contains("- 51") && text.contains("+ 3"), "{text}");
    }
}
