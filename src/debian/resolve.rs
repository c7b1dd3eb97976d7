//! (being written by the resolver engineer; this placeholder only declares
//! the interface so the rest of the crate compiles meanwhile)

use crate::debian::package::Package;

#[derive(Debug, thiserror::Error)]
#[error("resolver not written yet")]
pub struct ResolveError;

pub struct Universe;
impl Universe {
    pub fn new(_packages: Vec<Package>) -> Self {
        Universe
    }
}
pub struct Request {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub install_time_dependencies: bool,
}
pub enum Reason {
    Requested,
    Dependency { parent: String, relation: String, field: &'static str },
}
pub struct Resolved {
    pub package: Package,
    pub reason: Reason,
}
pub struct Resolution {
    pub packages: Vec<Resolved>,
    pub skipped: Vec<String>,
}
pub fn resolve(_universe: &Universe, _request: &Request) -> Result<Resolution, ResolveError> {
    Err(ResolveError)
}
