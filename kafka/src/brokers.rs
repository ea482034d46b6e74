//! The brokers of one cluster as one admin task sees them: connections opened as needed, by
//! node id or address, and the listings several tasks share (consumer groups, coordinators).

use std::collections::HashMap;

use kafka_protocol::{
    messages::{FindCoordinatorRequest, ListGroupsRequest, MetadataRequest, MetadataResponse},
    protocol::StrBytes,
};

use crate::connection::{Connection, Credentials};
use crate::{Error, Result};

const METADATA_VERSION: i16 = 12;
const LIST_GROUPS_VERSION: i16 = 2;
const FIND_COORDINATOR_VERSION: i16 = 2;

/// Broker connections of one task, opened as needed.
pub(crate) struct Brokers {
    credentials: Credentials,
    addresses: HashMap<i32, String>,
    open: HashMap<String, Connection>,
}

impl Brokers {
    /// Nothing opened yet.
    pub(crate) fn new(credentials: &Credentials) -> Self {
        Brokers {
            credentials: credentials.clone(),
            addresses: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// The connection to `address`, opened on first use.
    pub(crate) async fn at(&mut self, address: &str) -> Result<&mut Connection> {
        if !self.open.contains_key(address) {
            let connection = self.credentials.connect_to(address).await?;
            self.open.insert(address.to_owned(), connection);
        }
        self.open
            .get_mut(address)
            .ok_or_else(|| Error::Protocol("connection vanished".into()))
    }

    /// The connection to the bootstrap broker.
    pub(crate) async fn bootstrap(&mut self) -> Result<&mut Connection> {
        let address = self.credentials.bootstrap.clone();
        self.at(&address).await
    }

    /// Every topic of the cluster (Metadata for all topics, from the bootstrap broker); the
    /// brokers it lists become reachable by node id.
    pub(crate) async fn metadata(&mut self) -> Result<MetadataResponse> {
        let metadata = self
            .bootstrap()
            .await?
            .call(
                MetadataRequest::default().with_topics(None),
                METADATA_VERSION,
            )
            .await?;
        for broker in &metadata.brokers {
            self.addresses
                .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
        }
        Ok(metadata)
    }

    /// Drops every open connection (after a failure that may have broken one).
    pub(crate) fn reset(&mut self) {
        self.open.clear();
    }

    /// Drops the connection to broker `id` (after a failure: the next call opens a new one).
    pub(crate) fn forget(&mut self, id: i32) {
        if let Some(address) = self.addresses.get(&id) {
            self.open.remove(address);
        }
    }

    /// The connection to broker `id` (known from [`Brokers::metadata`]).
    pub(crate) async fn node(&mut self, id: i32) -> Result<&mut Connection> {
        let address = self
            .addresses
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::Protocol(format!("unknown broker {id}")))?;
        self.at(&address).await
    }

    /// The ids of every consumer group whose name starts with `prefix`, sorted: each broker
    /// lists the groups it coordinates, so every broker of [`Brokers::metadata`] is asked.
    pub(crate) async fn groups(&mut self, prefix: &str) -> Result<Vec<String>> {
        let mut groups = Vec::new();
        let nodes: Vec<i32> = self.addresses.keys().copied().collect();
        for node in nodes {
            let listed = self
                .node(node)
                .await?
                .call(ListGroupsRequest::default(), LIST_GROUPS_VERSION)
                .await?;
            if listed.error_code != 0 {
                return Err(Error::Protocol(format!(
                    "ListGroups failed with error {}",
                    listed.error_code
                )));
            }
            groups.extend(
                listed
                    .groups
                    .into_iter()
                    .map(|g| g.group_id.to_string())
                    .filter(|g| g.starts_with(prefix)),
            );
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// The connection to `group`'s coordinator; `None` (logged) when the cluster names none.
    pub(crate) async fn coordinator(&mut self, group: &str) -> Result<Option<&mut Connection>> {
        let coordinator = self
            .bootstrap()
            .await?
            .call(
                FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_owned())),
                FIND_COORDINATOR_VERSION,
            )
            .await?;
        if coordinator.error_code != 0 {
            tracing::debug!(%group, code = coordinator.error_code, "no coordinator for a group");
            return Ok(None);
        }
        let address = format!("{}:{}", coordinator.host, coordinator.port);
        Ok(Some(self.at(&address).await?))
    }
}
