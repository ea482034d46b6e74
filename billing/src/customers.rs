//! What billing needs to know of the platform's clusters, handed to it by the control plane.

use async_trait::async_trait;

use crate::{Result, pricing::Tariff};

/// A cluster, for billing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillableCluster {
    /// Cluster id.
    pub cluster_id: String,
    /// Owner.
    pub account_id: String,
    /// Display name (shown on invoices).
    pub name: String,
    /// Zone mode, plan and budget.
    pub tariff: Tariff,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Deletion time, unix seconds, for deleted clusters.
    pub deleted_at: Option<i64>,
}

/// The platform's clusters, deleted ones included (their last month is still billed).
#[async_trait]
pub trait Customers: Send + Sync + std::fmt::Debug {
    /// Every cluster, with its budget now.
    async fn clusters(&self) -> Result<Vec<BillableCluster>>;
    /// Every cluster, with the budget that was in force at `at` (unix seconds): what a month
    /// ending at `at` is invoiced with.
    async fn clusters_as_of(&self, at: i64) -> Result<Vec<BillableCluster>>;
    /// One cluster, as it is now (its current budget).
    async fn cluster(&self, cluster_id: &str) -> Result<Option<BillableCluster>>;
}
