//! The way out: an answer from the pool, put back into the tenant's names, with everything
//! that is not the tenant's left out and every broker address replaced by the gateway's.

use kafka_protocol::{messages::*, protocol::StrBytes};

use super::{backend::BackendPool, names::Names, requests::Context};

/// Where clients reach the gateway: the bootstrap address, and per broker of a pool either the
/// same address (single-broker pools) or a port of its own (`node_port_base + node id`).
#[derive(Clone, Debug)]
pub struct Advertised {
    /// Host name or address clients connect to.
    pub host: String,
    /// The bootstrap port.
    pub port: u16,
    /// When set, broker `n` is advertised at port `node_port_base + n`.
    pub node_port_base: Option<u16>,
}

impl Advertised {
    /// The advertised host and port of broker `node` (the bootstrap port for a node id
    /// outside the node ports).
    pub fn node(&self, node: i32) -> (StrBytes, i32) {
        let port = self
            .node_port_base
            .and_then(|base| i32::from(base).checked_add(node))
            .filter(|port| (1..=65_535).contains(port))
            .unwrap_or(i32::from(self.port));
        (StrBytes::from_string(self.host.clone()), port)
    }
}

/// What the rewrite of one answer needs.
#[derive(Debug)]
pub struct Rewriter<'a> {
    /// The tenant's names.
    pub names: &'a Names,
    /// The gateway's addresses.
    pub advertised: &'a Advertised,
    /// The tenant's cluster id, shown as the Kafka cluster id.
    pub cluster_id: &'a str,
    /// The backend (its catalog learns from Metadata answers).
    pub pool: &'a BackendPool,
}

const TOPIC_RESOURCE: i8 = 2;

impl Rewriter<'_> {
    /// Rewrites `response` (at `version`) to the request that `context` describes.
    pub fn rewrite(&self, response: &mut ResponseKind, context: Context, version: i16) {
        let names = self.names;
        match (response, context) {
            (ResponseKind::Produce(r), Context::Produce(local)) => {
                r.responses.retain_mut(|t| self.strip_topic(&mut t.name));
                r.responses.extend(local);
                self.endpoints(&mut r.node_endpoints);
            }
            (ResponseKind::Fetch(r), Context::Fetch(local, _)) => {
                r.session_id = 0;
                r.responses
                    .retain_mut(|t| t.topic.is_empty() || self.strip_topic(&mut t.topic));
                r.responses.extend(local);
                for endpoint in &mut r.node_endpoints {
                    (endpoint.host, endpoint.port) = self.advertised.node(endpoint.node_id.0);
                }
            }
            (ResponseKind::ListOffsets(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
            }
            (ResponseKind::Metadata(r), Context::Metadata { all, none, refused }) => {
                self.pool.catalog.observe(r, all, version >= 10);
                for broker in &mut r.brokers {
                    (broker.host, broker.port) = self.advertised.node(broker.node_id.0);
                }
                r.cluster_id = Some(StrBytes::from_string(self.cluster_id.to_owned()));
                if none {
                    r.topics.clear();
                }
                r.topics.retain_mut(|t| match &mut t.name {
                    Some(name) => !t.is_internal && self.strip_topic(name),
                    None => false,
                });
                r.topics.extend(refused);
            }
            (ResponseKind::OffsetCommit(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
            }
            (ResponseKind::OffsetFetch(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
                r.groups.retain_mut(|g| {
                    g.topics.retain_mut(|t| self.strip_topic(&mut t.name));
                    strip(names, &mut g.group_id.0)
                });
            }
            (ResponseKind::FindCoordinator(r), _) => {
                // Up to v3 one coordinator at the top level; from v4 a list.
                if version <= 3 && r.node_id.0 >= 0 && r.error_code == 0 {
                    (r.host, r.port) = self.advertised.node(r.node_id.0);
                }
                r.coordinators.retain_mut(|c| {
                    if c.node_id.0 >= 0 && c.error_code == 0 {
                        (c.host, c.port) = self.advertised.node(c.node_id.0);
                    }
                    strip(names, &mut c.key)
                });
            }
            (ResponseKind::DescribeGroups(r), _) => {
                r.groups.retain_mut(|g| strip(names, &mut g.group_id.0));
            }
            (ResponseKind::ListGroups(r), _) => {
                r.groups.retain_mut(|g| strip(names, &mut g.group_id.0));
            }
            (ResponseKind::DeleteGroups(r), _) => {
                r.results.retain_mut(|g| strip(names, &mut g.group_id.0));
            }
            (ResponseKind::OffsetDelete(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
            }
            (ResponseKind::InitProducerId(r), Context::InitProducerId) if r.error_code == 0 => {
                self.pool
                    .catalog
                    .issued_producer(r.producer_id.0, r.producer_epoch);
            }
            (ResponseKind::AddPartitionsToTxn(r), _) => {
                r.results_by_topic_v3_and_below
                    .retain_mut(|t| self.strip_topic(&mut t.name));
                r.results_by_transaction.retain_mut(|t| {
                    t.topic_results
                        .retain_mut(|t| self.strip_topic(&mut t.name));
                    strip(names, &mut t.transactional_id.0)
                });
            }
            (ResponseKind::TxnOffsetCommit(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
            }
            (ResponseKind::OffsetForLeaderEpoch(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.topic));
            }
            (ResponseKind::DeleteRecords(r), _) => {
                r.topics.retain_mut(|t| self.strip_topic(&mut t.name));
            }
            (ResponseKind::DescribeConfigs(r), context) => {
                r.results.retain_mut(|res| {
                    let mut topic = TopicName(std::mem::take(&mut res.resource_name));
                    let kept = res.resource_type == TOPIC_RESOURCE && self.strip_topic(&mut topic);
                    res.resource_name = topic.0;
                    kept
                });
                if let Context::DescribeConfigs(local) = context {
                    r.results.extend(local);
                }
            }
            (ResponseKind::DescribeLogDirs(r), _) => {
                for dir in &mut r.results {
                    dir.topics.retain_mut(|t| self.strip_topic(&mut t.name));
                    // The pool's disks are not the tenant's business.
                    dir.total_bytes = -1;
                    dir.usable_bytes = -1;
                    dir.log_dir = StrBytes::from_static_str("");
                }
            }
            (ResponseKind::DescribeCluster(r), _) => {
                for broker in &mut r.brokers {
                    (broker.host, broker.port) = self.advertised.node(broker.broker_id.0);
                }
                r.cluster_id = StrBytes::from_string(self.cluster_id.to_owned());
            }
            // Answers that name nothing of the tenant's.
            _ => {}
        }
    }

    /// Replaces a pool topic name with the tenant's; false (drop the entry) when it is not the
    /// tenant's, or outside the credential's scope.
    fn strip_topic(&self, name: &mut TopicName) -> bool {
        match self.names.virtual_topic(name) {
            Some(stripped) => {
                *name = stripped;
                true
            }
            None => false,
        }
    }

    fn endpoints(&self, endpoints: &mut [produce_response::NodeEndpoint]) {
        for endpoint in endpoints {
            (endpoint.host, endpoint.port) = self.advertised.node(endpoint.node_id.0);
        }
    }
}

/// Replaces a pool name with the tenant's; false (drop the entry) when it is not the tenant's.
fn strip(names: &Names, name: &mut StrBytes) -> bool {
    match names.virtual_name(name) {
        Some(stripped) => {
            *name = stripped;
            true
        }
        None => false,
    }
}
