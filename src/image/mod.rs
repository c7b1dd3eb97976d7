//! Images: layers streamed from `.deb` data, OCI config/manifest/index, the
//! OCI image layout and the docker-archive; every layer is written for a
//! merged-/usr image (`usrmerge`).

pub mod dir_layer;
pub mod filter;
pub mod layer;
pub mod layout;
pub mod oci;
pub mod usrmerge;
