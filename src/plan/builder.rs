//! Assembling a [`Plan`]: nodes are added inputs first (a node of the
//! same kind and key as one already there is that node), then
//! [`PlanBuilder::finish`] decides, without touching anything:
//!
//! 1. each node's source — the local cache's answer the caller gave, else
//!    a remote's (asked once, for every miss), else its fallback
//!    (`upstream` or `build`); a derived node (a composed compiler, an
//!    image's config and manifest) is a hit when all its inputs are;
//! 2. which targets each shared node serves (a node every image of which
//!    is one target's is that target's);
//! 3. which nodes realizing needs: every image, every index, and the
//!    inputs of whatever is built or derived — a hit needs none of its own.

use super::explain::{self, Inputs};
use super::node::{
    CacheLocation, Cost, Detail, Nearest, Node, NodeId, NodeRef, NodeSource, Provider,
};
use super::remote::RemoteStatus;
use super::{NodeKind, PLAN_FORMAT, Plan, PlannedImage};
use crate::hash::Sha256Digest;
use std::collections::{BTreeSet, HashMap};

/// What the local cache says of a node, as the caller found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The local cache has it.
    Local,
    /// The local cache lacks it; without a remote it comes from here
    /// (`upstream` or `build`).
    Missing(NodeSource),
    /// Made from its inputs, cheaply (a compiler composed of programs and
    /// a sysroot, an image's config and manifest): a hit when it is in the
    /// local cache (`present`) or all its inputs are hits.
    Derived { present: bool },
    /// Already obtained while planning (an index): its source is known.
    Settled(NodeSource),
}

/// A node to add: everything the plan does not decide itself.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub kind: NodeKind,
    pub name: String,
    pub target: Option<String>,
    pub key: Sha256Digest,
    pub provider: Provider,
    pub runs_on: Option<String>,
    pub emits_for: Option<String>,
    pub inputs: Vec<NodeId>,
    pub key_inputs: Inputs,
    pub cost: Cost,
    /// For a local miss with named inputs: the nearest local entry.
    pub nearest: Option<Nearest>,
    pub availability: Availability,
    pub detail: Detail,
}

impl NewNode {
    /// A node with no inputs, platforms, costs or history: the callers
    /// fill in what applies.
    pub fn new(
        kind: NodeKind,
        name: impl Into<String>,
        key: Sha256Digest,
        provider: Provider,
        availability: Availability,
        detail: Detail,
    ) -> NewNode {
        NewNode {
            kind,
            name: name.into(),
            target: None,
            key,
            provider,
            runs_on: None,
            emits_for: None,
            inputs: Vec::new(),
            key_inputs: Vec::new(),
            cost: Cost::default(),
            nearest: None,
            availability,
            detail,
        }
    }

    pub fn with_target(mut self, target: Option<&str>) -> NewNode {
        self.target = target.map(str::to_owned);
        self
    }

    pub fn with_platforms(mut self, runs_on: Option<&str>, emits_for: Option<&str>) -> NewNode {
        self.runs_on = runs_on.map(str::to_owned);
        self.emits_for = emits_for.map(str::to_owned);
        self
    }

    pub fn with_inputs(mut self, inputs: impl IntoIterator<Item = NodeId>) -> NewNode {
        self.inputs.extend(inputs);
        self
    }

    pub fn with_cost(mut self, cost: Cost) -> NewNode {
        self.cost = cost;
        self
    }

    pub fn with_key_inputs(mut self, inputs: Inputs, nearest: Option<Nearest>) -> NewNode {
        self.key_inputs = inputs;
        self.nearest = nearest;
        self
    }
}

/// Builds a [`Plan`] (see the module doc).
pub struct PlanBuilder {
    plan: Plan,
    availability: Vec<Availability>,
    by_reference: HashMap<NodeRef, NodeId>,
}

impl PlanBuilder {
    pub fn new(
        build_platform: &str,
        sources: Vec<super::SourceSummary>,
        notes: Vec<String>,
    ) -> PlanBuilder {
        PlanBuilder {
            plan: Plan {
                format: PLAN_FORMAT.to_owned(),
                build_platform: build_platform.to_owned(),
                sources,
                notes,
                images: Vec::new(),
                nodes: Vec::new(),
            },
            availability: Vec::new(),
            by_reference: HashMap::new(),
        }
    }

    /// The node already added with this kind and key.
    pub fn find(&self, kind: NodeKind, key: &Sha256Digest) -> Option<NodeId> {
        self.by_reference.get(&NodeRef { kind, key: *key }).copied()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.plan.node(id)
    }

    /// Adds `node`, or returns the node of the same kind and key added
    /// before (the first one's name and detail stay).
    pub fn add(&mut self, node: NewNode) -> NodeId {
        if let Some(id) = self.find(node.kind, &node.key) {
            return id;
        }
        let id = NodeId(self.plan.nodes.len());
        assert!(
            node.inputs.iter().all(|input| input.0 < id.0),
            "a node's inputs are added before it"
        );
        self.by_reference.insert(
            NodeRef {
                kind: node.kind,
                key: node.key,
            },
            id,
        );
        self.availability.push(node.availability);
        self.plan.nodes.push(Node {
            id,
            kind: node.kind,
            name: node.name,
            target: node.target,
            key: node.key,
            provider: node.provider,
            runs_on: node.runs_on,
            emits_for: node.emits_for,
            inputs: node.inputs,
            key_inputs: node.key_inputs,
            cost: node.cost,
            // Decided by `finish`.
            source: NodeSource::Build,
            needed: false,
            nearest: node.nearest,
            detail: node.detail,
        });
        id
    }

    /// Adds a target's image node (see [`PlanBuilder::add`]) and records
    /// it as that target's.
    pub fn add_image(&mut self, pair: &str, node: NewNode) -> NodeId {
        let target = match &node.detail {
            Detail::Image { target, .. } => target.clone(),
            _ => panic!("add_image adds image nodes"),
        };
        let image = self.add(node);
        self.plan.images.push(PlannedImage {
            target,
            pair: pair.to_owned(),
            image,
        });
        image
    }

    /// Decides every node's source and need (see the module doc).
    pub fn finish(mut self, remote: &dyn RemoteStatus) -> Plan {
        let count = self.plan.nodes.len();
        // 1. Sources: local, then one batch to the remote, then derived
        // nodes in topological order, then fallbacks.
        let mut sources: Vec<Option<NodeSource>> = vec![None; count];
        let mut asked = Vec::new();
        for (index, availability) in self.availability.iter().enumerate() {
            match availability {
                Availability::Local => sources[index] = Some(NodeSource::Local),
                Availability::Settled(source) => sources[index] = Some(*source),
                Availability::Missing(_) => asked.push(index),
                Availability::Derived { .. } => {}
            }
        }
        if !asked.is_empty() {
            let references: Vec<NodeRef> = asked
                .iter()
                .map(|index| self.plan.nodes[*index].reference())
                .collect();
            let held = remote.holds(&references);
            for (index, held) in asked.iter().zip(held) {
                if held {
                    sources[*index] = Some(NodeSource::Remote);
                }
            }
        }
        for index in 0..count {
            let source = match self.availability[index] {
                Availability::Missing(fallback) => sources[index].unwrap_or(fallback),
                Availability::Derived { present } => {
                    let inputs_hit = self.plan.nodes[index]
                        .inputs
                        .iter()
                        .all(|input| sources[input.0].is_some_and(NodeSource::is_hit));
                    if present || inputs_hit {
                        NodeSource::Local
                    } else {
                        NodeSource::Build
                    }
                }
                _ => sources[index].expect("set above"),
            };
            sources[index] = Some(source);
            let node = &mut self.plan.nodes[index];
            node.source = source;
            if source != NodeSource::Upstream {
                node.cost.download_bytes = 0;
            }
            if source.is_hit() {
                node.nearest = None;
            }
        }
        // The remote's entries of the same name, where they are nearer.
        for node in &mut self.plan.nodes {
            if node.source != NodeSource::Build || node.key_inputs.is_empty() {
                continue;
            }
            let candidates = remote.candidates(node.reference(), &node.name);
            let inputs: Vec<Inputs> = candidates
                .iter()
                .map(|(inputs, _)| inputs.clone())
                .collect();
            if let Some(differences) = explain::nearest(&node.key_inputs, &inputs)
                && node
                    .nearest
                    .as_ref()
                    .is_none_or(|local| differences.len() < local.differences.len())
            {
                let seconds = candidates
                    .iter()
                    .rev()
                    .find(|(inputs, _)| {
                        explain::differences(inputs, &node.key_inputs) == differences
                    })
                    .map_or(0.0, |(_, seconds)| *seconds);
                node.nearest = Some(Nearest {
                    cache: CacheLocation::Remote,
                    differences,
                    seconds,
                });
            }
        }
        // 2. Targets of shared nodes: those of the images reaching them.
        let mut targets: Vec<BTreeSet<String>> = vec![BTreeSet::new(); count];
        for image in &self.plan.images {
            targets[image.image.0].insert(image.target.clone());
        }
        for index in (0..count).rev() {
            let reached = targets[index].clone();
            for input in self.plan.nodes[index].inputs.clone() {
                targets[input.0].extend(reached.iter().cloned());
            }
        }
        for (node, targets) in self.plan.nodes.iter_mut().zip(&targets) {
            if node.target.is_none()
                && node.kind != NodeKind::Index
                && let [only] = targets.iter().collect::<Vec<_>>().as_slice()
            {
                node.target = Some((*only).clone());
            }
        }
        // 3. Need: images and indices; below them, the inputs of what is
        // built or derived.
        let mut needed = vec![false; count];
        for image in &self.plan.images {
            needed[image.image.0] = true;
        }
        for (index, node) in self.plan.nodes.iter().enumerate() {
            if node.kind == NodeKind::Index {
                needed[index] = true;
            }
        }
        for index in (0..count).rev() {
            let derived = matches!(self.availability[index], Availability::Derived { .. });
            if needed[index] && (derived || sources[index] == Some(NodeSource::Build)) {
                for input in &self.plan.nodes[index].inputs {
                    needed[input.0] = true;
                }
            }
        }
        for (node, needed) in self.plan.nodes.iter_mut().zip(needed) {
            node.needed = needed;
            if !needed {
                node.cost.download_bytes = 0;
            }
        }
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::node::LayerContents;
    use crate::plan::{NoRemote, RequireHits};

    fn key(name: &str) -> Sha256Digest {
        Sha256Digest::of(name.as_bytes())
    }

    /// A `.deb`-like node (its detail does not matter to the builder).
    fn leaf(name: &str, availability: Availability) -> NewNode {
        NewNode::new(
            NodeKind::Deb,
            name,
            key(name),
            Provider::DebianArchive,
            availability,
            Detail::Index,
        )
        .with_cost(Cost {
            seconds: None,
            download_bytes: 100,
        })
    }

    fn layer(name: &str, availability: Availability, inputs: &[NodeId]) -> NewNode {
        NewNode::new(
            NodeKind::Layer,
            name,
            key(name),
            Provider::DebLayer,
            availability,
            Detail::Layer {
                contents: LayerContents::Packages,
            },
        )
        .with_inputs(inputs.iter().copied())
    }

    fn image(target: &str, inputs: &[NodeId]) -> NewNode {
        NewNode::new(
            NodeKind::Image,
            format!("app ({target})"),
            key(target),
            Provider::Oci,
            Availability::Derived { present: false },
            Detail::Image {
                target: target.to_owned(),
                reference: "app:latest".to_owned(),
            },
        )
        .with_target(Some(target))
        .with_inputs(inputs.iter().copied())
    }

    const MISSING: Availability = Availability::Missing(NodeSource::Upstream);
    const UNBUILT: Availability = Availability::Missing(NodeSource::Build);

    /// Two targets sharing an `all` package: one cached layer, one not.
    fn two_targets() -> PlanBuilder {
        let mut builder = PlanBuilder::new("x86_64-linux", Vec::new(), Vec::new());
        let shared = builder.add(leaf("data.deb", Availability::Local));
        let shared_layer = builder.add(layer("data", Availability::Local, &[shared]));
        let arm = builder.add(leaf("arm.deb", MISSING));
        let arm_layer = builder.add(layer("arm", UNBUILT, &[arm]));
        builder.add_image("x → arm", image("arm", &[shared_layer, arm_layer]));
        // The shared node again: the same node.
        assert_eq!(builder.add(leaf("data.deb", MISSING)), shared);
        let s390x = builder.add(leaf("s390x.deb", Availability::Local));
        let s390x_layer = builder.add(layer("s390x", Availability::Local, &[s390x]));
        builder.add_image("x → s390x", image("s390x", &[shared_layer, s390x_layer]));
        builder
    }

    fn summary(plan: &Plan) -> Vec<(String, NodeSource, bool, Option<String>)> {
        plan.nodes
            .iter()
            .map(|node| {
                (
                    node.name.clone(),
                    node.source,
                    node.needed,
                    node.target.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn sources_need_and_targets_follow_from_the_cache_and_the_edges() {
        let plan = two_targets().finish(&NoRemote);
        let row = |name: &str, source, needed, target: Option<&str>| {
            (name.to_owned(), source, needed, target.map(str::to_owned))
        };
        use NodeSource::*;
        assert_eq!(
            summary(&plan),
            vec![
                // A cached layer needs none of its .debs.
                row("data.deb", Local, false, None),
                row("data", Local, true, None),
                row("arm.deb", Upstream, true, Some("arm")),
                row("arm", Build, true, Some("arm")),
                // Made of a layer that is built: built.
                row("app (arm)", Build, true, Some("arm")),
                row("s390x.deb", Local, false, Some("s390x")),
                row("s390x", Local, true, Some("s390x")),
                // Made of hits only: a hit, though nothing cached it.
                row("app (s390x)", Local, true, Some("s390x")),
            ]
        );
        assert_eq!(plan.images.len(), 2);
        assert_eq!(plan.node(plan.images[1].image).name, "app (s390x)");
        // Only what is downloaded costs bytes.
        assert_eq!(plan.download_bytes(), 100);
        let counts = plan.counts();
        assert_eq!((counts.local, counts.upstream, counts.build), (3, 1, 2));
    }

    #[test]
    fn a_remote_hit_needs_none_of_its_inputs() {
        let asked = std::sync::Mutex::new(Vec::new());
        let remote = |nodes: &[NodeRef]| {
            asked.lock().unwrap().extend(nodes.iter().copied());
            nodes
                .iter()
                .map(|node| node.kind == NodeKind::Layer)
                .collect()
        };
        let plan = two_targets().finish(&remote);
        // One batch, of exactly the local misses.
        assert_eq!(
            *asked.lock().unwrap(),
            vec![
                NodeRef {
                    kind: NodeKind::Deb,
                    key: key("arm.deb")
                },
                NodeRef {
                    kind: NodeKind::Layer,
                    key: key("arm")
                },
            ]
        );
        let arm_layer = plan.find(NodeKind::Layer, &key("arm")).unwrap();
        assert_eq!(arm_layer.source, NodeSource::Remote);
        let arm_deb = plan.find(NodeKind::Deb, &key("arm.deb")).unwrap();
        assert!(!arm_deb.needed, "{arm_deb:?}");
        assert_eq!(arm_deb.cost.download_bytes, 0);
        // Every layer a hit: both images are.
        for image in &plan.images {
            assert_eq!(plan.node(image.image).source, NodeSource::Local);
        }
        assert!(plan.missing_hits(RequireHits::All).is_empty());
    }

    #[test]
    fn require_hits_names_what_would_be_built_and_with_all_downloaded() {
        let plan = two_targets().finish(&NoRemote);
        let names = |require| -> Vec<String> {
            plan.missing_hits(require)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            names(RequireHits::Builds),
            [
                "layer arm for arm: would be built; not in the cache",
                "image app (arm): would be built; made of nodes that miss",
            ]
        );
        assert_eq!(
            names(RequireHits::All),
            [
                "deb arm.deb for arm: would be downloaded; not in the cache",
                "layer arm for arm: would be built; not in the cache",
                "image app (arm): would be built; made of nodes that miss",
            ]
        );
    }

    #[test]
    fn a_remote_entry_nearer_than_the_local_one_is_the_one_explained() {
        let inputs = |source: &str| -> Inputs {
            vec![
                ("source".to_owned(), source.to_owned()),
                ("target".to_owned(), "arm".to_owned()),
            ]
        };
        let local = Nearest {
            cache: CacheLocation::Local,
            differences: explain::differences(
                &vec![("source".to_owned(), "s0".to_owned())],
                &inputs("s2"),
            ),
            seconds: 1.0,
        };
        let mut builder = PlanBuilder::new("x86_64-linux", Vec::new(), Vec::new());
        let build = builder.add(
            NewNode::new(
                NodeKind::Build,
                "cargo . (arm)",
                key("build"),
                Provider::Cargo,
                UNBUILT,
                Detail::Index,
            )
            .with_key_inputs(inputs("s2"), Some(local)),
        );
        builder.add_image("x → arm", image("arm", &[build]));
        struct Pointers;
        impl RemoteStatus for Pointers {
            fn holds(&self, nodes: &[NodeRef]) -> Vec<bool> {
                vec![false; nodes.len()]
            }
            fn candidates(&self, _: NodeRef, name: &str) -> Vec<(Inputs, f64)> {
                assert_eq!(name, "cargo . (arm)");
                vec![(
                    vec![
                        ("source".to_owned(), "s1".to_owned()),
                        ("target".to_owned(), "arm".to_owned()),
                    ],
                    7.0,
                )]
            }
        }
        let plan = builder.finish(&Pointers);
        let nearest = plan.node(build).nearest.clone().unwrap();
        assert_eq!(nearest.cache, CacheLocation::Remote);
        assert_eq!(nearest.seconds, 7.0);
        assert_eq!(nearest.differences[0].to_string(), "source: s1 → s2");
        assert_eq!(
            plan.missing_hits(RequireHits::Builds)[0].to_string(),
            "build cargo . (arm): would be built; differs from the nearest remote entry in source: s1 → s2"
        );
    }
}
