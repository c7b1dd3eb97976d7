//! Images: layers streamed from `.deb` data, OCI config/manifest/index, the
//! OCI image layout and the docker-archive.

pub mod dir_layer;
pub mod filter;
pub mod layer;
pub mod layout;
pub mod oci;
