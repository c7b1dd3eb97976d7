//! Builders for the sources an image cross-compiles for its target: the
//! user's own Rust code through cargo ([`cargo`]), with the environment that
//! points cargo, the `cc` crate and pkg-config at the target's toolchain and
//! sysroot. C recipes (autotools, make, cmake) will live here too.

pub mod c;
pub mod cargo;
pub mod cargo_config;
