//! Capstan's Kubernetes operator, as far as it is built: the `KafkaCluster` custom resource
//! (`capstan.dev/v1alpha1`) defined in Rust, its CRD, the pure rendering of every object a
//! cluster owns, and the reconciler that applies them.

mod certificates;
mod crd;
mod dry_run;
pub mod leader;
pub mod metrics;
pub mod provisioner;
pub mod reconciler;
mod render;
pub mod rolling;
mod run;
mod scaling;
mod secrets;
mod storage;

pub use crd::{
    Authorization, CONTROLLERS, Controllers, ExternalListener, InternalListener, KafkaCluster,
    KafkaClusterSpec, KafkaClusterStatus, ListenerTls, Listeners, Storage, ZoneMode, crd_yaml,
};
pub use dry_run::dry_run;
pub use render::{CONFIG_HASH_ANNOTATION, RenderInput, render, rendered_yaml};
pub use run::{LEASE_DURATION, run, run_with_client};

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
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(String),
}

impl Error {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::Serialize(_) => "serialize",
            Error::Kube(_) => "kubernetes_api",
        }
    }
}
