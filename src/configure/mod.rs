//! Configuration done natively in an image's staging root, in place of
//! the maintainer scripts xbuild never runs.

pub mod alternatives;
