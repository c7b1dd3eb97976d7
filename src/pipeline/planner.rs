//! The plan step: what resolving found (each target's closure and sysroot,
//! the indices consulted, every `[[build]]` planned with its compiler and
//! sources) becomes the nodes of one [`Plan`], with what the local cache
//! holds of each. It reads the cache and writes nothing.
//!
//! Per target, in this order: the `.deb`s and layers of its packages (the
//! merged-/usr layer first); for each build, the `.deb`s
//! and tree of its toolchain, its sysroot, the compiler joining them, the
//! Rust standard library, its sources, and the build; then the image, made
//! of the layers (package layers, then the target's configure layer) and
//! the builds' outputs. Nodes shared by targets (an
//! `all` package's `.deb` and layer) are one node.

use super::assemble::merged_usr_key;
use super::compile::{self, PlannedBuild, ToolchainPlan, ToolchainProvider};
use super::configure::configure_key;
use super::fetch::deb_label;
use super::realize::{cached_layer, plan_layers};
use super::resolve::IndexUse;
use super::sources::{self, PlannedSource};
use super::{BuildOptions, ResolvedPackage, TargetResolution};
use crate::Error;
use crate::cache::{BlobOrigin, Cache};
use crate::hash::Sha256Digest;
use crate::plan::{
    Availability, CacheLocation, Cost, Detail, KeyBuilder, LayerContents, Nearest, NewNode, NodeId,
    NodeKind, NodeSource, Plan, PlanBuilder, Provider, Purpose, RemoteStatus,
};
use crate::platform::Platform;
use crate::toolchain::rust::RustToolchain;

/// What the plan is made from.
pub(super) struct PlanInputs<'a> {
    /// The package sources, in order, and what to know about them.
    pub sources: Vec<crate::plan::SourceSummary>,
    pub notes: Vec<String>,
    pub targets: &'a [TargetResolution],
    /// Every index resolving and build planning consulted.
    pub indices: &'a [IndexUse],
    /// Per target, in manifest order.
    pub builds: &'a [Vec<PlannedBuild>],
    pub rust: Option<&'a RustToolchain>,
    /// The suite's codename and version, for the configure layers.
    pub suite_release: crate::configure::SuiteRelease,
}

fn local_or(present: bool, otherwise: NodeSource) -> Availability {
    if present {
        Availability::Local
    } else {
        Availability::Missing(otherwise)
    }
}

/// Builds the plan (see the module doc).
pub(super) fn plan(
    options: &BuildOptions,
    cache: &Cache,
    inputs: &PlanInputs,
    remote: &dyn RemoteStatus,
) -> Result<Plan, Error> {
    let build_platform = &options.build_platform;
    let mut planner = Planner {
        options,
        cache,
        builder: PlanBuilder::new(
            &build_platform.name,
            inputs.sources.clone(),
            inputs.notes.clone(),
        ),
    };
    planner.indices(inputs.indices);
    let layers = plan_layers(options, inputs.targets);
    // With a remote behind the cache, the layers it lacks are asked of the
    // remote all at once rather than one by one below.
    if cache.has_fallback() {
        let keys: Vec<_> = layers
            .per_target
            .iter()
            .flatten()
            .map(|layer| layer.key)
            .collect();
        crate::cache::backend::parallel_map(8, &keys, |key| {
            let _ = cache.get_entry::<serde::de::IgnoredAny>(crate::cache::Bucket::Layer, key);
        });
    }
    let merged_usr = planner.merged_usr()?;
    for ((target, layers), builds) in inputs
        .targets
        .iter()
        .zip(&layers.per_target)
        .zip(inputs.builds)
    {
        let platform = &target.platform;
        let mut image_inputs: Vec<NodeId> = vec![merged_usr];
        for layer in layers {
            let debs: Vec<NodeId> = layer
                .packages
                .iter()
                .map(|package| planner.deb(package, Purpose::Image, platform))
                .collect();
            let record = cached_layer(cache, &layer.key)?;
            let all = layer.packages.iter().all(|p| p.architecture == "all");
            image_inputs.push(
                planner.builder.add(
                    NewNode::new(
                        NodeKind::Layer,
                        layer.label(),
                        layer.key,
                        Provider::DebLayer,
                        local_or(record.is_some(), NodeSource::Build),
                        Detail::Layer {
                            contents: LayerContents::Packages,
                        },
                    )
                    .with_platforms((!all).then_some(platform.name.as_str()), None)
                    .with_inputs(debs)
                    .with_cost(Cost {
                        seconds: record.map(|record| record.seconds).filter(|s| *s > 0.0),
                        download_bytes: 0,
                    }),
                ),
            );
        }
        image_inputs.push(planner.configure(target, &inputs.suite_release)?);
        for build in builds {
            image_inputs.push(planner.build(build, inputs.rust)?);
        }
        let pair = format!("{} → {}", build_platform.name, platform.name);
        let key = image_key(options, platform, &planner, &image_inputs);
        let reference = options.manifest.image.reference();
        planner.builder.add_image(
            &pair,
            NewNode::new(
                NodeKind::Image,
                format!("{reference} ({})", platform.name),
                key,
                Provider::Oci,
                Availability::Derived { present: false },
                Detail::Image {
                    target: platform.name.clone(),
                    reference,
                },
            )
            .with_target(Some(&platform.name))
            .with_platforms(Some(&platform.name), None)
            .with_inputs(image_inputs),
        );
    }
    Ok(planner.builder.finish(remote))
}

/// An image's key: its layers' keys, the target and its OCI config.
fn image_key(
    options: &BuildOptions,
    platform: &Platform,
    planner: &Planner,
    layers: &[NodeId],
) -> Sha256Digest {
    let image = &options.manifest.image;
    let list = |items: &Option<Vec<String>>| items.clone().unwrap_or_default();
    let labels: Vec<String> = image
        .labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let ports: Vec<String> = image.ports.iter().map(ToString::to_string).collect();
    let mut key = KeyBuilder::new("image")
        .text("format", "oci-image-v1")
        .text("target", &platform.name)
        .text("reference", &image.reference())
        .number("epoch", options.epoch)
        .list("cmd", list(&image.cmd).iter().map(String::as_str))
        .list(
            "entrypoint",
            list(&image.entrypoint).iter().map(String::as_str),
        )
        .list("env", image.env_list().iter().map(String::as_str))
        .text("workdir", image.workdir.as_deref().unwrap_or(""))
        .text("user", image.user.as_deref().unwrap_or(""))
        .list("labels", labels.iter().map(String::as_str))
        .list("ports", ports.iter().map(String::as_str));
    for layer in layers {
        key = key.digest("layer", &planner.builder.node(*layer).key);
    }
    key.finish()
}

struct Planner<'a> {
    options: &'a BuildOptions,
    cache: &'a Cache,
    builder: PlanBuilder,
}

impl Planner<'_> {
    /// One node per index, however many resolutions read it; fetched
    /// beats found in the cache.
    fn indices(&mut self, indices: &[IndexUse]) {
        let mut merged: Vec<&IndexUse> = Vec::new();
        for index in indices {
            match merged.iter_mut().find(|seen| seen.digest == index.digest) {
                Some(seen) if index.origin == BlobOrigin::Downloaded => *seen = index,
                Some(_) => {}
                None => merged.push(index),
            }
        }
        for index in merged {
            let (source, cost) = match index.origin {
                BlobOrigin::Local => (NodeSource::Local, Cost::default()),
                BlobOrigin::Downloaded => (
                    NodeSource::Upstream,
                    Cost {
                        seconds: Some(index.seconds),
                        download_bytes: index.bytes,
                    },
                ),
            };
            self.builder.add(
                NewNode::new(
                    NodeKind::Index,
                    &index.name,
                    index.digest,
                    Provider::DebianArchive,
                    Availability::Settled(source),
                    Detail::Index,
                )
                .with_target(index.target.as_deref())
                .with_cost(cost),
            );
        }
    }

    /// The node of a `.deb` (its key is its digest), for `platform` or the
    /// build machine.
    fn deb(&mut self, package: &ResolvedPackage, purpose: Purpose, platform: &Platform) -> NodeId {
        if let Some(id) = self.builder.find(NodeKind::Deb, &package.sha256) {
            return id;
        }
        let runs_on = if package.architecture == "all" {
            None
        } else if package.architecture == self.options.build_platform.debian_arch
            && purpose == Purpose::Toolchain
        {
            Some(self.options.build_platform.name.as_str())
        } else {
            Some(platform.name.as_str())
        };
        let node = NewNode::new(
            NodeKind::Deb,
            deb_label(package),
            package.sha256,
            Provider::DebianArchive,
            local_or(self.cache.has_blob(&package.sha256), NodeSource::Upstream),
            Detail::Deb {
                package: package.clone(),
                purpose,
            },
        )
        .with_platforms(runs_on, None)
        .with_cost(Cost {
            seconds: None,
            download_bytes: package.size,
        });
        self.builder.add(node)
    }

    fn merged_usr(&mut self) -> Result<NodeId, Error> {
        let key = merged_usr_key(self.options);
        let record = cached_layer(self.cache, &key)?;
        Ok(self.builder.add(NewNode::new(
            NodeKind::Layer,
            "merged-/usr symlinks",
            key,
            Provider::MergedUsr,
            local_or(record.is_some(), NodeSource::Build),
            Detail::Layer {
                contents: LayerContents::MergedUsr,
            },
        )))
    }

    /// A target's configure layer, made from all its `.deb`s.
    fn configure(
        &mut self,
        target: &TargetResolution,
        suite: &crate::configure::SuiteRelease,
    ) -> Result<NodeId, Error> {
        let platform = &target.platform;
        let key = configure_key(self.options, suite, &target.packages);
        let record = cached_layer(self.cache, &key)?;
        let debs: Vec<NodeId> = target
            .packages
            .iter()
            .map(|package| self.deb(package, Purpose::Image, platform))
            .collect();
        Ok(self.builder.add(
            NewNode::new(
                NodeKind::Layer,
                format!("configure ({})", platform.name),
                key,
                Provider::Configure,
                local_or(record.is_some(), NodeSource::Build),
                Detail::Layer {
                    contents: LayerContents::Configure,
                },
            )
            .with_target(Some(&platform.name))
            .with_platforms(Some(&platform.name), None)
            .with_inputs(debs)
            .with_cost(Cost {
                seconds: record.map(|record| record.seconds).filter(|s| *s > 0.0),
                download_bytes: 0,
            }),
        ))
    }

    /// A toolchain's node (`None` for no C compiler): Debian's programs
    /// from their `.deb`s, or a GCC built from source from its sources.
    fn toolchain(&mut self, toolchain: &ToolchainPlan) -> Result<Option<NodeId>, Error> {
        let provider = match &toolchain.provider {
            ToolchainProvider::Debian { native: true } => Provider::DebianNative,
            ToolchainProvider::Debian { native: false } => Provider::DebianCross,
            ToolchainProvider::Source { .. } => Provider::GccFromSource,
            ToolchainProvider::None => return Ok(None),
        };
        if let Some(id) = self.builder.find(NodeKind::Toolchain, &toolchain.key) {
            return Ok(Some(id));
        }
        let target = &toolchain.platform;
        let cached = compile::toolchain_cached(self.cache, toolchain);
        let mut inputs = Vec::new();
        let mut cost = Cost::default();
        match &toolchain.provider {
            ToolchainProvider::Source {
                kernel_headers,
                libc,
            } => {
                // Host-side packages from the build machine's suite; the
                // kernel headers (the plan's last package) from the
                // target's; the C library's sources.
                let (host, _) = toolchain.packages.split_at(toolchain.packages.len() - 1);
                for package in host {
                    inputs.push(self.deb(package, Purpose::Toolchain, target));
                }
                inputs.push(self.deb(kernel_headers, Purpose::Image, target));
                inputs.extend(self.source(libc, Purpose::Toolchain)?);
                cost.seconds = if cached {
                    compile::recorded_toolchain_build(self.cache, toolchain)?
                } else {
                    Some(compile::estimate_toolchain_build(self.cache)?)
                };
            }
            _ => {
                for package in &toolchain.packages {
                    inputs.push(self.deb(package, Purpose::Toolchain, target));
                }
            }
        }
        let build_platform = self.options.build_platform.name.as_str();
        Ok(Some(
            self.builder.add(
                NewNode::new(
                    NodeKind::Toolchain,
                    &toolchain.name,
                    toolchain.key,
                    provider,
                    local_or(cached, NodeSource::Build),
                    Detail::Toolchain {
                        toolchain: Box::new(toolchain.clone()),
                    },
                )
                .with_target(Some(&target.name))
                .with_platforms(Some(build_platform), Some(&target.name))
                .with_inputs(inputs)
                .with_cost(cost),
            ),
        ))
    }

    /// A build's sources, unless they are a local directory (read while
    /// planning: its digest is in the build's key).
    fn source(
        &mut self,
        source: &PlannedSource,
        purpose: Purpose,
    ) -> Result<Option<NodeId>, Error> {
        let provider = match source {
            PlannedSource::Path(_) => return Ok(None),
            PlannedSource::Debian(_) => Provider::DebianSource,
            PlannedSource::Url { .. } => Provider::Url,
        };
        let download_bytes = match source {
            PlannedSource::Debian(package) => package.files.iter().map(|file| file.size).sum(),
            _ => 0,
        };
        let cached = sources::source_cached(self.cache, source)?;
        Ok(Some(
            self.builder.add(
                NewNode::new(
                    NodeKind::Source,
                    format!("source {}", source.describe()),
                    source.digest()?,
                    provider,
                    local_or(cached, NodeSource::Upstream),
                    Detail::Source {
                        source: source.clone(),
                        purpose,
                    },
                )
                .with_cost(Cost {
                    seconds: None,
                    download_bytes,
                }),
            ),
        ))
    }

    /// A build and what it needs: its compiler (toolchain and sysroot
    /// joined, or a toolchain alone), the Rust standard library, sources.
    fn build(
        &mut self,
        build: &PlannedBuild,
        rust: Option<&RustToolchain>,
    ) -> Result<NodeId, Error> {
        let platform = &build.target_platform;
        let build_platform = self.options.build_platform.name.clone();
        let mut inputs = Vec::new();
        let toolchain = self.toolchain(&build.toolchain)?;
        match (&build.sysroot, toolchain) {
            (Some(sysroot), Some(toolchain)) => {
                let debs: Vec<NodeId> = sysroot
                    .packages
                    .iter()
                    .map(|package| self.deb(package, Purpose::Image, platform))
                    .collect();
                let sysroot_node = self.builder.add(
                    NewNode::new(
                        NodeKind::Sysroot,
                        sysroot.name(platform),
                        sysroot.key,
                        Provider::DebianSysroot,
                        local_or(
                            compile::sysroot_cached(self.cache, sysroot),
                            NodeSource::Build,
                        ),
                        Detail::Sysroot {
                            sysroot: sysroot.clone(),
                        },
                    )
                    .with_target(Some(&platform.name))
                    .with_platforms(Some(&platform.name), None)
                    .with_inputs(debs),
                );
                let present = compile::compiler_cached(self.cache, &build.toolchain, sysroot);
                inputs.push(
                    self.builder.add(
                        NewNode::new(
                            NodeKind::Compiler,
                            format!("{} + {}", build.toolchain.name, sysroot.name(platform)),
                            compile::compiler_key(&build.toolchain.key, &sysroot.key),
                            Provider::Compose,
                            Availability::Derived { present },
                            Detail::Compiler,
                        )
                        .with_target(Some(&platform.name))
                        .with_platforms(Some(&build_platform), Some(&platform.name))
                        .with_inputs([toolchain, sysroot_node]),
                    ),
                );
            }
            (_, toolchain) => inputs.extend(toolchain),
        }
        if let Some(rust) = rust.filter(|_| build.kind == crate::manifest::BuildKind::Cargo) {
            let triple = platform.rust_triple();
            let identity = rust.target_library_identity(triple);
            let key = KeyBuilder::new("rust-target")
                .text("rustc", &rust.rustc_version)
                .text("triple", triple)
                .text("library", &identity)
                .finish();
            let installed = rust.target_library_dir(triple).is_dir();
            inputs.push(
                self.builder.add(
                    NewNode::new(
                        NodeKind::Toolchain,
                        format!("rust-std {triple}"),
                        key,
                        Provider::Rustup,
                        local_or(installed, NodeSource::Upstream),
                        Detail::RustTarget {
                            rust: rust.clone(),
                            triple: triple.to_owned(),
                        },
                    )
                    .with_target(Some(&platform.name))
                    .with_platforms(Some(&build_platform), Some(&platform.name)),
                ),
            );
        }
        inputs.extend(self.source(&build.source, Purpose::Image)?);
        let (record, nearest) = compile::explain(self.cache, build)?;
        let provider = match build.kind {
            crate::manifest::BuildKind::Cargo => Provider::Cargo,
            crate::manifest::BuildKind::Autotools => Provider::Autotools,
            crate::manifest::BuildKind::Make => Provider::Make,
            crate::manifest::BuildKind::Cmake => Provider::Cmake,
        };
        let seconds = match (&record, &nearest) {
            (Some(record), _) => Some(record.seconds),
            (None, Some((_, seconds))) => Some(*seconds),
            (None, None) => None,
        };
        // An entry with the same inputs whose layer blob is gone is no
        // nearer than none.
        let nearest = nearest
            .filter(|(differences, _)| !differences.is_empty())
            .map(|(differences, seconds)| Nearest {
                cache: CacheLocation::Local,
                differences,
                seconds,
            });
        Ok(self.builder.add(
            NewNode::new(
                NodeKind::Build,
                &build.name,
                build.key,
                provider,
                local_or(record.is_some(), NodeSource::Build),
                Detail::Build {
                    build: Box::new(build.clone()),
                },
            )
            .with_target(Some(&platform.name))
            .with_platforms(Some(&platform.name), None)
            .with_inputs(inputs)
            .with_key_inputs(build.inputs.clone(), nearest)
            .with_cost(Cost {
                seconds,
                download_bytes: 0,
            }),
        ))
    }
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
