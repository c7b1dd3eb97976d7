//! `xbuild run`: build (or reuse) one target's image as `build` does, or
//! take it from an OCI image layout (`--image`), then run it here (see
//! `xbuild::run`). The command's exit status is xbuild's; xbuild's own
//! failures exit 125, as podman's do.

use super::build::{Setup, setup};
use super::progress::BarReporter;
use super::{CommonArgs, render_error};
use clap::Args;
use std::path::PathBuf;
use xbuild::pipeline;
use xbuild::platform::Platforms;
use xbuild::run::{BinfmtMode, EmulatorChoice, RunError, RunRequest};

/// The status of a failure of xbuild itself (not of the command).
const FAILED: i32 = 125;

#[derive(Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output directory of the build [default: DIR/result].
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Run the image of this OCI image layout (a directory with
    /// index.json, as OUT/oci) for the target instead of building DIR's
    /// (DIR's xbuild.toml, if there is one, only says where a foreign
    /// image's emulator comes from).
    #[arg(long, value_name = "LAYOUT")]
    image: Option<PathBuf>,
    /// A variable of the command's environment (repeatable): NAME=VALUE, or
    /// NAME for this process's value.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Mount a host path in the container (repeatable): HOST:GUEST, or
    /// HOST:GUEST:ro for read-only.
    #[arg(short, long = "volume", value_name = "HOST:GUEST[:ro]")]
    volume: Vec<String>,
    /// The command and arguments replacing the image's cmd (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub(super) fn run(args: RunArgs, quiet: bool) -> i32 {
    match build_and_run(args, quiet) {
        Ok(status) => status,
        Err(Failure::Build(error)) => {
            render_error(&error);
            FAILED
        }
        Err(Failure::Run(error)) => {
            render_run_error(&error);
            FAILED
        }
    }
}

enum Failure {
    Build(xbuild::Error),
    Run(RunError),
}

impl From<xbuild::Error> for Failure {
    fn from(error: xbuild::Error) -> Self {
        Failure::Build(error)
    }
}

impl From<RunError> for Failure {
    fn from(error: RunError) -> Self {
        Failure::Run(error)
    }
}

fn build_and_run(args: RunArgs, quiet: bool) -> Result<i32, Failure> {
    if args.common.targets.len() != 1 {
        return Err(Failure::Build(xbuild::Error::Target {
            target: "--target".into(),
            message: "xbuild run runs one image: give one --target".into(),
        }));
    }
    let platforms = Platforms::from_environment().map_err(xbuild::Error::from)?;
    let host = platforms.host().map_err(xbuild::Error::from)?.clone();
    let (layout, manifest_digest, target, cache, options) = match &args.image {
        Some(layout) => {
            let target = platforms
                .parse(&args.common.targets[0])
                .map_err(xbuild::Error::from)?
                .clone();
            let digest = xbuild::run::layout_manifest(layout, &target)?;
            // The project, if any, only for where the emulator comes from.
            let setup = if args.common.dir.join("xbuild.toml").is_file() {
                Some(setup(&args.common, None, true)?)
            } else {
                None
            };
            let (cache, options) = match setup {
                Some(Setup { options, cache, .. }) => (cache, Some(options)),
                None => {
                    let root = super::cache::root(args.common.cache_dir.as_deref())?;
                    (
                        xbuild::cache::Cache::open(&root).map_err(RunError::from)?,
                        None,
                    )
                }
            };
            (layout.clone(), digest, target, cache, options)
        }
        None => {
            let Setup {
                mut options, cache, ..
            } = setup(&args.common, None, true)?;
            if let Some(out) = &args.out {
                options.out_dir = out.clone();
            }
            options.quiet = quiet;
            let reporter = BarReporter::new(quiet);
            let result = pipeline::build(&options, &cache, &reporter);
            reporter.finish_after(result.is_err());
            let report = result?;
            super::cache::record_build(&cache, &report);
            let target = options.targets[0].clone();
            let manifest_digest = report
                .targets
                .iter()
                .find(|built| built.target == target.name)
                .or(report.targets.first())
                .map(|built| built.manifest_digest.clone())
                .unwrap_or_default();
            let layout = PathBuf::from(&report.oci_layout);
            (layout, manifest_digest, target, cache, Some(options))
        }
    };
    let mode = BinfmtMode::from_environment()?;
    let emulator = if xbuild::run::wants_own_emulator(&target, &host, mode) {
        let found = match &options {
            Some(options) => {
                let reporter = BarReporter::new(quiet);
                let found = pipeline::emulator::emulator(options, &cache, &reporter, &target.qemu);
                reporter.finish_after(found.is_err());
                found.map_err(|error| error.to_string())
            }
            None => Err(format!(
                "{} has no xbuild.toml to say which Debian archive it comes from",
                args.common.dir.display()
            )),
        };
        match found {
            Ok(emulator) => EmulatorChoice::Private(emulator),
            Err(error) if mode == BinfmtMode::Private => {
                return Err(Failure::Build(xbuild::Error::Target {
                    target: target.name.clone(),
                    message: format!("xbuild's own emulator is not to be had ({error})"),
                }));
            }
            Err(error) => EmulatorChoice::Unavailable(format!(
                "xbuild's own emulator is not to be had ({error})"
            )),
        }
    } else {
        EmulatorChoice::None
    };
    let request = RunRequest {
        layout,
        manifest_digest,
        target,
        host,
        args: args.args,
        env: args.env,
        volumes: args.volume,
        emulator,
    };
    Ok(xbuild::run::run(&cache, &request)?)
}

fn render_run_error(error: &RunError) {
    use std::error::Error as _;
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    let mut source = error.source();
    while let Some(inner) = source {
        let _ = writeln!(stderr, "  Caused by: {inner}");
        source = inner.source();
    }
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
