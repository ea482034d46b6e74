//! The state every request handler and background task shares.

use std::sync::Arc;

use crate::{
    billing::{BillingSource, RequestLimiter},
    crypto::SecretKey,
    login_limit::LoginLimiter,
    metrics::Metrics,
    plans::Plan,
    provisioner::Provisioner,
    store::Store,
    usage::{DeliveryCounter, FinalMeter, UsageSource},
};

/// Platform settings the domain needs (the binary builds them from its command line).
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// Regions a cluster may be created in.
    pub regions: Vec<String>,
    /// The plan of new clusters.
    pub default_plan: Plan,
    /// Every plan's limits (`--plan-limits`; Upstash's published limits by default).
    pub plan_limits: crate::plans::PlanLimits,
    /// How old an entry of the provisioning journal must be before recovery settles it (see
    /// [`crate::journal`]): 0 when this process is the only control plane on its store.
    pub recovery_grace: std::time::Duration,
    /// How often the provisioning journal is checked for changes a crash interrupted, besides
    /// at start (a minute; tests shorten it).
    pub journal_check_every: std::time::Duration,
    /// Whether the sweep also removes resources of clusters the store has never known
    /// (`--sweep-unknown-resources`; see [`crate::orphans`]). Off, they are only reported.
    pub sweep_unknown_resources: bool,
    /// API keys an account may hold.
    pub max_api_keys: u32,
    /// Live clusters an account may hold.
    pub max_clusters_per_account: u32,
    /// Scoped credentials a cluster may hold (besides its default one).
    pub max_credentials_per_cluster: u32,
    /// Lifetime of a log-in session token, seconds.
    pub session_ttl_seconds: i64,
    /// Host (and port) of the REST data gateway, shown as `rest_endpoint`; empty means the
    /// gateway's own listen address.
    pub rest_endpoint: String,
    /// Host and port of the Kafka gateway, the `tcp_endpoint` of shared clusters; empty means
    /// the gateway's own listen address.
    pub kafka_endpoint: String,
    /// Placement of new clusters when the request does not say: `shared` or `dedicated`.
    pub default_placement: &'static str,
    /// Proxies (ingress controllers, load balancers) whose `X-Forwarded-For` names the client
    /// for the per-address limits; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::client_address::Cidr>,
    /// The bearer token `/metrics` asks for; without one, `/metrics` answers only clients on
    /// the same host (loopback), because it lists cluster ids.
    pub metrics_token: Option<MetricsToken>,
    /// Where mail to account owners goes (`--smtp-url`, `--mail-from`).
    pub mail: crate::mail::MailSettings,
    /// Whether a sign-up creates its account only once the address is confirmed by a mailed
    /// link (`--sign-up-confirmation`; see [`crate::sign_up`]).
    pub confirm_sign_ups: bool,
    /// The console's address as its users reach it (`--public-url`), for links in mail; empty
    /// means the API's own listen address.
    pub public_url: String,
    /// Connections and timeouts of each HTTP listener (the API and the REST gateway).
    pub http_limits: crate::listener::ConnectionLimits,
}

/// The token that opens `/metrics` to Prometheus (`--metrics-token`); never printed.
#[derive(Clone)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Accepts a token of at least 16 characters.
    pub fn new(token: &str) -> crate::Result<Self> {
        if token.trim().len() < 16 {
            return Err(crate::Error::Invalid(
                "the metrics token must be at least 16 characters (for example `openssl rand -hex 24`)"
                    .into(),
            ));
        }
        Ok(MetricsToken(token.trim().to_owned()))
    }

    /// Whether `given` is the token (in constant time).
    pub fn matches(&self, given: &str) -> bool {
        crate::crypto::constant_time_eq(&self.0, given)
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            default_plan: Plan::Payg,
            plan_limits: crate::plans::PlanLimits::default(),
            recovery_grace: std::time::Duration::from_secs(600),
            journal_check_every: std::time::Duration::from_secs(60),
            sweep_unknown_resources: false,
            max_api_keys: 37,
            max_clusters_per_account: 10,
            max_credentials_per_cluster: 10,
            session_ttl_seconds: 3600,
            rest_endpoint: String::new(),
            kafka_endpoint: String::new(),
            default_placement: crate::clusters::SHARED,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            mail: crate::mail::MailSettings::Off,
            confirm_sign_ups: false,
            public_url: String::new(),
            http_limits: crate::listener::ConnectionLimits::default(),
        }
    }
}

/// Shared, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The platform secret key.
    pub key: SecretKey,
    /// Makes brokers for clusters.
    pub provisioner: Arc<dyn Provisioner>,
    /// Platform settings.
    pub config: Arc<PlatformConfig>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Where usage is read from (the metering pipeline).
    pub usage: Arc<dyn UsageSource>,
    /// Where records delivered to Kafka clients are counted (the metering pipeline).
    pub deliveries: Arc<dyn DeliveryCounter>,
    /// Meters a cluster once more before it or a topic of it is deleted (the metering pipeline).
    pub final_meter: Arc<dyn FinalMeter>,
    /// Failed log-ins and sign-ups per account and client address, for the API and the console.
    pub login_limit: Arc<LoginLimiter>,
    /// Requests in progress per account on the API.
    pub per_account: Arc<crate::concurrency::PerTenant>,
    /// Where cost and invoices are read from (billing).
    pub billing: Arc<dyn BillingSource>,
    /// Decides which clusters are rate-limited, if anything does.
    pub limiter: Option<Arc<dyn RequestLimiter>>,
    /// Sends mail to account owners (password reset and sign-up links).
    pub mailer: Arc<dyn crate::mail::Mailer>,
}
