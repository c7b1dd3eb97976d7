//! The seam for remote caches: while a plan is built, the nodes the local
//! cache lacks are asked of a [`RemoteStatus`] in one batch, and those it
//! holds are planned as `remote` hits. Without a remote ([`NoRemote`])
//! nothing is. The remote backends implement it; so does any
//! `Fn(&[NodeRef]) -> Vec<bool>`.

use super::explain::Inputs;
use super::node::NodeRef;

/// What remote caches hold, as a plan needs to know it.
pub trait RemoteStatus: Sync {
    /// For each of `nodes` (in order), whether a remote holds it. Called
    /// once per plan, so an implementation can check them concurrently.
    fn holds(&self, nodes: &[NodeRef]) -> Vec<bool>;

    /// The named inputs of the entries a remote holds for nodes named
    /// `name` (the latest last), with how long each took to build: what
    /// `--require-hits` and `plan --explain` compare a miss with, besides
    /// the local cache's entries. A remote that cannot list keeps a
    /// pointer per name. Default: none.
    fn candidates(&self, node: NodeRef, name: &str) -> Vec<(Inputs, f64)> {
        let _ = (node, name);
        Vec::new()
    }
}

/// No remote cache: nothing is a remote hit.
pub struct NoRemote;

impl RemoteStatus for NoRemote {
    fn holds(&self, nodes: &[NodeRef]) -> Vec<bool> {
        vec![false; nodes.len()]
    }
}

impl<F> RemoteStatus for F
where
    F: Fn(&[NodeRef]) -> Vec<bool> + Sync,
{
    fn holds(&self, nodes: &[NodeRef]) -> Vec<bool> {
        self(nodes)
    }
}
