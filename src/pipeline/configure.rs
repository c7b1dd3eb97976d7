//! Each target's configure layer (see [`crate::configure`]): its key, for
//! the plan, and realizing it — a hit in `Bucket::Layer` is used as it
//! is; a miss fetches the target's `.deb`s (usually already in the cache
//! from its package layers), configures a staging directory from them and
//! the manifest, and stores it as a layer.

use super::fetch::fetch_deb;
use super::realize::{
    LayerRecord, package_filter, store_owned_directory_layer, with_package_filter,
};
use super::resolve::ResolveContext;
use super::{BuildOptions, ResolvedPackage};
use crate::Error;
use crate::cache::{Bucket, EntryMeta};
use crate::configure::{self, ConfigurePackage, Settings, SuiteRelease};
use crate::hash::Sha256Digest;
use crate::plan::{Detail, KeyBuilder, LayerContents, NodeKind, Plan};
use crate::report::{NodeOutcome, Outcome, Outcomes};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The configure layer's key: the format, the suite, the target's `.deb`s
/// in image order, and every manifest setting configuring reads.
pub(super) fn configure_key(
    options: &BuildOptions,
    suite: &SuiteRelease,
    packages: &[ResolvedPackage],
) -> Sha256Digest {
    let manifest = &options.manifest;
    let mut key = KeyBuilder::new("layer")
        .text("format", configure::FORMAT)
        .number("gzip-level", options.compression_level as u64)
        .text("codename", &suite.codename)
        .text("version", suite.version.as_deref().unwrap_or(""))
        .text("user", manifest.image.user.as_deref().unwrap_or(""));
    key = with_package_filter(key, options);
    for account in &manifest.accounts {
        key = key
            .text("account", &account.name)
            .number("uid", account.uid.into())
            .number("gid", account.gid.into())
            .text("gid-given", if account.gid_given { "yes" } else { "no" })
            .text("home", &account.home)
            .text("shell", &account.shell);
    }
    for certificate in &manifest.image.ca_certificates {
        key = key
            .text("ca-certificate", &certificate.name)
            .digest("ca-contents", &Sha256Digest::of(&certificate.contents));
    }
    for package in packages {
        key = key
            .text("package", &package.name)
            .digest("deb", &package.sha256);
    }
    key.finish()
}

/// The suite configuring writes os-release from.
pub(super) fn suite_release(resolved: &super::resolve::Resolved) -> SuiteRelease {
    let main = resolved
        .sources
        .main(super::package_sources::SourceUse::Image);
    let release = &main.release.release;
    SuiteRelease {
        codename: release
            .codename
            .clone()
            .unwrap_or_else(|| main.repository.suite.clone()),
        version: release.version.clone(),
    }
}

/// Realizes every needed configure layer of the plan, by key.
pub(super) fn realize_configure(
    context: &ResolveContext,
    plan: &Plan,
    suite: &SuiteRelease,
    outcomes: &Outcomes,
) -> Result<BTreeMap<Sha256Digest, (LayerRecord, Outcome)>, Error> {
    let (options, cache) = (context.options, context.cache);
    let mut layers = BTreeMap::new();
    for node in plan.needed_of(NodeKind::Layer) {
        if !matches!(
            node.detail,
            Detail::Layer {
                contents: LayerContents::Configure
            }
        ) || layers.contains_key(&node.key)
        {
            continue;
        }
        let _lock = cache.lock(Bucket::Layer, &node.key)?;
        if let Some(record) = cache.get_entry::<LayerRecord>(Bucket::Layer, &node.key)?
            && cache
                .verified_blob(&record.digest, Some(record.size))?
                .is_some()
        {
            outcomes.record(
                NodeKind::Layer,
                &node.key,
                NodeOutcome::new(Outcome::Local)
                    .with_bytes(record.size)
                    .with_saved_seconds(record.seconds),
            );
            layers.insert(node.key, (record, Outcome::Local));
            continue;
        }
        let packages: Vec<&ResolvedPackage> = plan
            .inputs(node)
            .filter_map(|input| match &input.detail {
                Detail::Deb { package, .. } => Some(package),
                _ => None,
            })
            .collect();
        let target = node.target.as_deref().unwrap_or("");
        let mut debs: Vec<PathBuf> = Vec::new();
        for package in &packages {
            debs.push(fetch_deb(context, package, Some(target), outcomes)?);
        }
        let staging = cache.temp_dir(".staging-")?;
        let inputs: Vec<ConfigurePackage> = packages
            .iter()
            .zip(&debs)
            .map(|(package, deb)| ConfigurePackage {
                name: &package.name,
                deb,
            })
            .collect();
        let manifest = &options.manifest;
        let filter = package_filter(options);
        let settings = Settings {
            manifest: &manifest.path,
            accounts: &manifest.accounts,
            user: manifest
                .image
                .user
                .as_deref()
                .map(|user| (user, manifest.image.user_position)),
            ca_certificates: &manifest.image.ca_certificates,
            filter: &filter,
        };
        let configured =
            configure::configure(staging.path(), &inputs, suite, &settings).map_err(|source| {
                Error::Configure {
                    target: target.to_owned(),
                    source,
                }
            })?;
        let mut record = store_owned_directory_layer(
            options,
            cache,
            staging.path(),
            &configured.owners,
            &format!("configure ({target})"),
        )?;
        record.native_effects = configured.notes;
        let platform = match packages.iter().find(|p| p.architecture != "all") {
            Some(package) => format!("debian-{}", package.architecture),
            None => "any".to_owned(),
        };
        let meta = EntryMeta::for_platform(platform).with_blob(record.blob());
        cache.put_entry(Bucket::Layer, &node.key, &record, meta)?;
        outcomes.record(
            NodeKind::Layer,
            &node.key,
            NodeOutcome::new(Outcome::Built)
                .with_bytes(record.size)
                .with_seconds(record.seconds),
        );
        layers.insert(node.key, (record, Outcome::Built));
    }
    Ok(layers)
}
