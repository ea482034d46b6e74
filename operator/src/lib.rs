//! Capstan's Kubernetes operator, as far as it is built: the `KafkaCluster` custom resource
//! (`capstan.dev/v1alpha1`) defined in Rust, its CRD, and the pure rendering of every object a
//! cluster owns. The reconciler that applies them is not built yet (see the README).

mod crd;
mod render;

pub use crd::{
    ExternalListener, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus, Listeners, Storage,
    ZoneMode, crd_yaml,
};
pub use render::{RenderInput, render, rendered_yaml};

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource's spec breaks a rule the schema cannot express.
    #[error("invalid KafkaCluster: {0}")]
    Invalid(String),
    /// An object could not be serialized.
    #[error("could not serialize: {0}")]
    Serialize(String),
}
