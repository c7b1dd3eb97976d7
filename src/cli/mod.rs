//! Command-line interface: argument parsing (clap), the subcommands, error
//! rendering with hints and exit codes, and progress bars. Nothing else in
//! the crate prints.

mod build;
mod progress;
mod targets;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use xbuild::Error;

#[derive(Parser)]
#[command(
    name = "xbuild",
    version,
    about = "Build container images for any Linux CPU architecture, from any host, without emulation",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print less (no progress bars, no summary).
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build the image described by DIR/xbuild.toml for each target.
    Build(BuildArgs),
    /// Resolve and show what a build would fetch, with cache status, and do nothing else.
    Plan(PlanArgs),
    /// List the platforms xbuild knows.
    Targets(TargetsArgs),
}

#[derive(Args)]
struct CommonArgs {
    /// Directory holding xbuild.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Target platform (repeatable): aarch64-linux, arm64, linux/arm64, aarch64-unknown-linux-gnu…
    #[arg(short, long = "target", required = true)]
    targets: Vec<String>,
    /// Cache directory [default: the user's cache directory + /xbuild].
    #[arg(long, env = "XBUILD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Debian mirror URL, overriding the manifest's repository and the host's apt sources.
    #[arg(long, env = "XBUILD_MIRROR")]
    mirror: Option<String>,
    /// Where `mirror` came from, for errors: `--mirror` or `XBUILD_MIRROR`.
    #[arg(skip)]
    mirror_option: &'static str,
    /// Print the report as JSON on stdout (human output goes to stderr).
    #[arg(long)]
    json: bool,
    /// Ask the mirror for a fresh InRelease even if the cached one is recent.
    #[arg(long)]
    refresh: bool,
    /// Seconds a download may go without receiving data before the attempt
    /// is abandoned and retried (a slow download that keeps moving is never
    /// cut off) [default: 30].
    #[arg(long, env = "XBUILD_HTTP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    http_timeout: Option<std::time::Duration>,
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 86_400.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| "expected a number of seconds greater than 0, such as 30 or 0.5 (--http-timeout, or XBUILD_HTTP_TIMEOUT in the environment)".to_owned())
}

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Output directory [default: DIR/result].
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Parallel workers fetching and building layers.
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Fail before doing anything if more than N builds would run (cache misses).
    #[arg(long, value_name = "N")]
    max_builds: Option<usize>,
    /// Build a cross toolchain from source when Debian has no binary for the
    /// pair (e.g. a C recipe for a musl target): tens of minutes, once per cache.
    #[arg(long)]
    allow_toolchain_build: bool,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// For every build: its key, its inputs, and why it misses the cache.
    #[arg(long)]
    explain: bool,
}

#[derive(Args)]
struct TargetsArgs {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command line; returns the process exit status.
pub fn run() -> i32 {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let from_environment = matches.subcommand().is_some_and(|(_, matches)| {
        matches.value_source("mirror") == Some(clap::parser::ValueSource::EnvVariable)
    });
    if let Command::Build(BuildArgs { common, .. }) | Command::Plan(PlanArgs { common, .. }) =
        &mut cli.command
    {
        common.mirror_option = if from_environment {
            "XBUILD_MIRROR"
        } else {
            "--mirror"
        };
        // An empty variable means unset (an empty --mirror is an error).
        if from_environment && common.mirror.as_deref() == Some("") {
            common.mirror = None;
        }
    }
    let result = match cli.command {
        Command::Build(args) => build::build(args, cli.quiet),
        Command::Plan(args) => build::plan(args, cli.quiet),
        Command::Targets(args) => targets::list(args),
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            render_error(&error);
            error.class().exit_code()
        }
    }
}

fn render_error(error: &Error) {
    use std::error::Error as _;
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(inner) = source {
        eprintln!("  Caused by: {inner}");
        source = inner.source();
    }
    if let Some(hint) = error.hint() {
        eprintln!("hint: {hint}");
    }
}
