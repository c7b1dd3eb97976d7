//! Command-line interface: argument parsing (clap), the subcommands, error
//! rendering with hints and exit codes, and progress bars. Nothing else in
//! the crate prints.

mod build;
mod cache;
mod ci;
mod prewarm;
mod progress;
mod push;
mod run;
mod targets;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use xbuild::Error;

#[derive(Parser)]
#[command(
    name = "xbuild",
    version,
    about = "Build container images for any Linux CPU architecture, from any host, without emulation",
    long_about = "Build container images for any Linux CPU architecture, from any host, without emulation.\n\nWithout a command, xbuild builds: `xbuild --target aarch64-linux` is `xbuild build . --target aarch64-linux`.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print less (no progress bars, no summary, and cargo's own output quiet).
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build the image described by DIR/xbuild.toml for each target (the default command).
    Build(BuildArgs),
    /// Resolve and show what a build would fetch, with cache status, and do nothing else.
    Plan(PlanArgs),
    /// List the platforms xbuild knows.
    Targets(TargetsArgs),
    /// Inspect and maintain the cache: stats, gc, verify.
    Cache(CacheArgs),
    /// Push the images of a build's output (DIR/result/oci) to a registry.
    Push(PushArgs),
    /// Images in registries: `image merge` joins them into one multi-platform tag.
    Image(ImageArgs),
    /// CI pipelines: `ci matrix` prints a project's targets as a job matrix.
    Ci(ci::CiArgs),
    /// Build (or reuse) the image for one target and run it here: its
    /// entrypoint and cmd, or ARGS after `--` (exit status: the command's;
    /// 125 when xbuild itself fails).
    Run(run::RunArgs),
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
    /// Seconds after another machine checked it that an InRelease from a
    /// remote cache is used without asking the mirror (a replayed old one
    /// is then refused) [default: 300].
    #[arg(long, env = "XBUILD_SHARED_INDEX_MAX_AGE", value_name = "SECONDS", value_parser = parse_seconds)]
    shared_index_max_age: Option<std::time::Duration>,
    /// The Debian suite compiler programs come from [default: the one the
    /// host's apt uses from this archive, else the image's].
    #[arg(long, env = "XBUILD_TOOLCHAIN_SUITE", value_name = "SUITE")]
    toolchain_suite: Option<String>,
    /// Seconds a download may go without receiving data before the attempt
    /// is abandoned and retried (a slow download that keeps moving is never
    /// cut off) [default: 30].
    #[arg(long, env = "XBUILD_HTTP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    http_timeout: Option<std::time::Duration>,
    /// Fail (exit status 8) before doing anything if any node would be
    /// built, naming each and what differs from the nearest cached entry;
    /// `--require-hits=all`: or downloaded upstream.
    #[arg(
        long,
        value_name = "WHAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "builds"
    )]
    require_hits: Option<RequireHitsArg>,
    #[command(flatten)]
    shared: SharedArgs,
}

/// The shared remote caches a build reads, and writes when it signs.
#[derive(Args, Clone, Default)]
struct SharedArgs {
    /// A remote cache (repeatable, asked in order): file:///PATH,
    /// http(s)://HOST/PREFIX (WebDAV PUT), oci://REGISTRY/REPOSITORY.
    #[arg(
        long = "remote",
        value_name = "URL",
        env = "XBUILD_REMOTE",
        value_delimiter = ','
    )]
    remotes: Vec<String>,
    /// A public key whose signed entries are used (repeatable): NAME:<base64>,
    /// as `xbuild cache keygen` prints it.
    #[arg(long = "trust", value_name = "NAME:KEY")]
    trusted_keys: Vec<String>,
    /// Sign what this build uses and makes with this secret key, and upload
    /// it to the remotes that lack it.
    #[arg(long = "sign", value_name = "FILE", env = "XBUILD_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
    /// Read from the remotes, never write to them.
    #[arg(long)]
    remote_read_only: bool,
}

/// The values of `--require-hits`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RequireHitsArg {
    /// No node is built (the default of a bare `--require-hits`).
    Builds,
    /// No node is built or downloaded upstream.
    All,
}

impl From<RequireHitsArg> for xbuild::plan::RequireHits {
    fn from(value: RequireHitsArg) -> Self {
        match value {
            RequireHitsArg::Builds => xbuild::plan::RequireHits::Builds,
            RequireHitsArg::All => xbuild::plan::RequireHits::All,
        }
    }
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
    /// Push the image to a registry: HOST[:PORT]/REPOSITORY[:TAG]. Several
    /// targets push one multi-arch index.
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// How to reach registries (`--push`, `xbuild push`).
#[derive(Args, Clone, Default)]
struct RegistryArgs {
    /// Speak plain HTTP to this registry host[:port] (repeatable); loopback
    /// registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Trust this CA certificate (PEM) for registries, besides the system's
    /// (also read from SSL_CERT_FILE).
    #[arg(long = "registry-ca", value_name = "FILE")]
    registry_ca: Option<PathBuf>,
}

#[derive(Args)]
struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Push one index at DEST holding the platforms of every SRC (tags or
    /// digests on DEST's registry; single-platform images or indexes).
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// HOST[:PORT]/REPOSITORY:TAG to write the index to.
    dest: String,
    /// The images to join: HOST[:PORT]/REPOSITORY[:TAG|@DIGEST].
    #[arg(required = true)]
    sources: Vec<String>,
    /// An annotation of the index (repeatable): KEY=VALUE.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Print the merge report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Seconds a registry may go without sending data before the attempt
    /// is abandoned and retried; a read of a manifest or config is also
    /// given 30 s in all, scaled by this over 30 [default: 30].
    #[arg(long, env = "XBUILD_HTTP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    http_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args)]
struct PushArgs {
    /// [DIR] REF: the directory holding xbuild.toml (default `.`; its
    /// output DIR/result is pushed), then HOST[:PORT]/REPOSITORY[:TAG].
    #[arg(value_name = "[DIR] REF", num_args = 1..=2, required = true)]
    operands: Vec<String>,
    /// The build's output directory [default: DIR/result].
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Cache directory [default: the user's cache directory + /xbuild].
    #[arg(long, env = "XBUILD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the push report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Seconds a registry may go without sending data before the attempt
    /// is abandoned and retried; a read of a manifest or config is also
    /// given 30 s in all, scaled by this over 30 [default: 30].
    #[arg(long, env = "XBUILD_HTTP_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    http_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl PushArgs {
    /// `DIR`, `.` when only `REF` is given.
    fn dir(&self) -> PathBuf {
        match self.operands.as_slice() {
            [dir, _] => PathBuf::from(dir),
            _ => PathBuf::from("."),
        }
    }

    /// `REF`: the last operand.
    fn reference(&self) -> &str {
        self.operands.last().map_or("", String::as_str)
    }
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// For every build: its key, its inputs, and why it misses the cache.
    #[arg(long)]
    explain: bool,
    /// Plan as another build machine would (its compiler packages and
    /// toolchain keys); build keys of a target are the same on every
    /// machine with the same compiler.
    #[arg(long, value_name = "PLATFORM")]
    build_platform: Option<String>,
}

#[derive(Args)]
struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Entries and bytes per bucket, blobs, trees, and the hit rates of recent builds.
    Stats(CacheDirArgs),
    /// Remove the least recently used entries, blobs and trees until the cache fits
    /// (never one a kept entry needs; waits for running builds).
    Gc(GcArgs),
    /// Re-hash every blob and check every entry and packed tree; remove what is
    /// corrupt, and exit with status 4 if anything was.
    Verify(CacheDirArgs),
    /// Fetch and build everything the targets' builds need, and upload to the
    /// remotes (--remote, signed with --sign) what they lack.
    Prewarm(Box<PrewarmArgs>),
    /// Make a signing key: writes the secret key file (mode 0600, never
    /// overwriting) and prints the public key NAME:<base64> for --trust.
    Keygen(KeygenArgs),
}

#[derive(Args)]
struct PrewarmArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Build a cross toolchain from source when Debian has no binary for the pair.
    #[arg(long)]
    allow_toolchain_build: bool,
}

#[derive(Args)]
struct KeygenArgs {
    /// The key's name, shown with every entry it signs.
    #[arg(long)]
    name: String,
    /// The secret key file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
struct CacheDirArgs {
    /// Cache directory [default: the user's cache directory + /xbuild].
    #[arg(long, env = "XBUILD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GcArgs {
    #[command(flatten)]
    cache: CacheDirArgs,
    /// The size to shrink the cache to: 10G, 500M, 1.5GiB, bytes (K, M, G, T are
    /// powers of 1000, KiB, MiB, GiB, TiB of 1024).
    #[arg(long, value_name = "SIZE", value_parser = xbuild::cache::gc::parse_size)]
    max_size: u64,
}

#[derive(Args)]
struct TargetsArgs {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command line; returns the process exit status.
pub fn run() -> i32 {
    let matches =
        Cli::command().get_matches_from(with_default_command(std::env::args_os().collect()));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let from_environment = matches.subcommand().is_some_and(|(name, matches)| {
        matches!(name, "build" | "plan")
            && matches.value_source("mirror") == Some(clap::parser::ValueSource::EnvVariable)
    });
    let prewarm = match &mut cli.command {
        Command::Cache(CacheArgs {
            command: CacheCommand::Prewarm(args),
        }) => Some(&mut args.common),
        _ => None,
    };
    if let Some(common) = prewarm {
        common.mirror_option = "--mirror";
    }
    if let Command::Build(BuildArgs { common, .. })
    | Command::Plan(PlanArgs { common, .. })
    | Command::Run(run::RunArgs { common, .. }) = &mut cli.command
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
        Command::Cache(args) => cache::run(args, cli.quiet),
        Command::Push(args) => push::push(args, cli.quiet),
        Command::Image(ImageArgs {
            command: ImageCommand::Merge(args),
        }) => push::merge(args, cli.quiet),
        Command::Ci(args) => ci::run(args),
        Command::Run(args) => return run::run(args, cli.quiet),
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            render_error(&error);
            error.class().exit_code()
        }
    }
}

/// The arguments with `build` inserted where no command is named:
/// `xbuild --target T` is `xbuild build --target T` (global flags such as
/// `-q` may come first; `--help` and `--version` stay xbuild's own).
fn with_default_command(mut arguments: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const COMMANDS: [&str; 9] = [
        "build", "plan", "targets", "cache", "push", "image", "ci", "run", "help",
    ];
    const OWN: [&str; 4] = ["-h", "--help", "-V", "--version"];
    let first = arguments
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, argument)| !matches!(argument.to_str(), Some("-q" | "--quiet")));
    match first {
        Some((_, argument))
            if argument
                .to_str()
                .is_some_and(|text| COMMANDS.contains(&text) || OWN.contains(&text)) => {}
        Some((index, _)) => arguments.insert(index, "build".into()),
        None if arguments.len() > 1 => arguments.push("build".into()),
        None => {}
    }
    arguments
}

fn render_error(error: &Error) {
    use std::error::Error as _;
    use std::io::Write;
    // A closed stderr is not an error (and must not turn into a panic).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(arguments: &[&str]) -> Vec<std::ffi::OsString> {
        arguments
            .iter()
            .map(|argument| (*argument).into())
            .collect()
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        // What clap checks in debug builds only, checked in every build.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn push_takes_an_optional_directory_before_the_reference() {
        let push = |arguments: &[&str]| match Cli::try_parse_from(words(arguments))
            .map(|cli| cli.command)
        {
            Ok(Command::Push(args)) => (args.dir(), args.reference().to_owned()),
            _ => panic!("not a push: {arguments:?}"),
        };
        assert_eq!(
            push(&["xbuild", "push", "127.0.0.1:5000/app"]),
            (PathBuf::from("."), "127.0.0.1:5000/app".to_owned())
        );
        assert_eq!(
            push(&["xbuild", "push", "examples/cowsay", "127.0.0.1:5000/app:v1"]),
            (
                PathBuf::from("examples/cowsay"),
                "127.0.0.1:5000/app:v1".to_owned()
            )
        );
        assert!(Cli::try_parse_from(words(&["xbuild", "push"])).is_err());
        assert!(Cli::try_parse_from(words(&["xbuild", "push", "a", "b", "c"])).is_err());
    }

    #[test]
    fn build_is_inserted_where_no_command_is_named() {
        let with = |arguments: &[&str]| with_default_command(words(arguments));
        assert_eq!(
            with(&["xbuild", "--target", "arm64"]),
            words(&["xbuild", "build", "--target", "arm64"])
        );
        assert_eq!(
            with(&["xbuild", "-q", "dir", "-t", "arm64"]),
            words(&["xbuild", "-q", "build", "dir", "-t", "arm64"])
        );
        assert_eq!(
            with(&["xbuild", "-q", "plan", "-t", "arm64"]),
            words(&["xbuild", "-q", "plan", "-t", "arm64"])
        );
        assert_eq!(with(&["xbuild", "targets"]), words(&["xbuild", "targets"]));
        assert_eq!(
            with(&["xbuild", "run", "-t", "arm64"]),
            words(&["xbuild", "run", "-t", "arm64"])
        );
        assert_eq!(
            with(&["xbuild", "cache", "gc", "--max-size", "1G"]),
            words(&["xbuild", "cache", "gc", "--max-size", "1G"])
        );
        assert_eq!(with(&["xbuild", "--help"]), words(&["xbuild", "--help"]));
        assert_eq!(with(&["xbuild"]), words(&["xbuild"]));
        assert_eq!(with(&["xbuild", "-q"]), words(&["xbuild", "-q", "build"]));
        // A directory named like nothing else is a directory to build.
        assert!(Cli::try_parse_from(with(&["xbuild", ".", "--target", "arm64"])).is_ok());
    }
}
