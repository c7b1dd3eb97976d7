//! Debian: control files (deb822), dpkg versions, relation fields, signed
//! `InRelease` files, `Packages` indices, the resolver, `.deb` reading, what
//! a package's data tarball may hold, and unpacking it.

pub mod control;
pub mod deb;
pub mod entry_policy;
pub mod index;
pub mod package;
pub mod release;
pub mod repository;
pub mod resolve;
pub mod source;
pub mod unpack;
pub mod version;
