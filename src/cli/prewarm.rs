//! `xbuild cache prewarm` and `xbuild cache keygen`: filling a shared cache
//! from one machine, and the key its entries are signed with.

use super::build::{Setup, setup};
use super::progress::BarReporter;
use super::{KeygenArgs, PrewarmArgs};
use std::io::Write as _;
use xbuild::Error;
use xbuild::pipeline;

/// Builds what the targets need (outputs into a temporary directory) and
/// uploads every entry the build used to the remotes that lack it.
pub fn prewarm(args: PrewarmArgs, quiet: bool) -> Result<(), Error> {
    if args.common.shared.signing_key.is_none() {
        return Err(Error::Target {
            target: "cache prewarm".into(),
            message: "needs --sign FILE (or XBUILD_SIGNING_KEY_FILE): remotes only hold signed entries; make a key with `xbuild cache keygen --name NAME --out FILE`".into(),
        });
    }
    if args.common.shared.remote_read_only {
        return Err(Error::Target {
            target: "cache prewarm".into(),
            message: "--remote-read-only leaves nothing to prewarm".into(),
        });
    }
    let Setup {
        mut options,
        cache,
        shared,
    } = setup(&args.common, None, true)?;
    let Some(shared) = shared else {
        return Err(Error::Target {
            target: "cache prewarm".into(),
            message: "names no remote: give --remote URL (or XBUILD_REMOTE, or [cache] remote in xbuild.toml)".into(),
        });
    };
    let out = cache.temp_dir(".prewarm-")?;
    options.out_dir = out.path().to_owned();
    options.allow_toolchain_build = args.allow_toolchain_build;
    options.quiet = quiet;
    let reporter = BarReporter::new(quiet);
    let result = pipeline::build(&options, &cache, &reporter);
    reporter.finish_after(result.is_err());
    let mut report = match result {
        Ok(report) => report,
        Err(error) => {
            // What was made before the failure is on the remote all the same.
            if let Some(upload) = shared.finish_uploads()
                && !quiet
            {
                eprint!("{}", xbuild::shared::render_upload(&upload));
            }
            return Err(error);
        }
    };
    shared.mark_remote_hits(&cache, &mut report);
    super::cache::record_build(&cache, &report);
    let upload = shared
        .push(&cache, &report)?
        .expect("a prewarm has a signing key and writable remotes");
    if args.common.json {
        let value = serde_json::json!({ "build": report, "upload": upload });
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &value);
        let _ = writeln!(stdout);
    }
    if !quiet {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{}", report.render_text());
        let _ = write!(stderr, "{}", xbuild::shared::render_upload(&upload));
    }
    let failures: usize = upload
        .remotes
        .iter()
        .map(|remote| remote.failures.len())
        .sum();
    if failures > 0 {
        return Err(Error::UploadFailed { failures });
    }
    Ok(())
}

/// Writes a new secret key file and prints its public key.
pub fn keygen(args: &KeygenArgs) -> Result<(), Error> {
    let (secret, public) = xbuild::cache::sign::generate(&args.name)?;
    xbuild::cache::sign::write_secret_key_file(&args.out, &secret)?;
    let _ = writeln!(std::io::stdout().lock(), "{public}");
    let _ = writeln!(
        std::io::stderr().lock(),
        "wrote the secret key to {} (mode 0600): keep it out of version control; trust its entries with --trust {public}",
        args.out.display()
    );
    Ok(())
}
