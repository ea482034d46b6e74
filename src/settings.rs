//! Command line and environment (`CAPSTAN_…`) settings.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use capstan::platform::MeteringSettings;
use capstan_api::{
    app::{KafkaListen, Settings},
    crypto::SecretKey,
    mail::MailSettings,
    plans::{Plan, PlanLimits},
    state::PlatformConfig,
};
use capstan_billing::{
    pricing::{DOLLAR, PriceList},
    stripe::StripeConfig,
};
use capstan_kafka::gateway::NodeListeners;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Self-hostable serverless Kafka.
#[derive(Debug, Parser)]
#[command(name = "capstan", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "CAPSTAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written (to standard error).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object a line.
    Json,
}

/// How sign-ups are confirmed (`--sign-up-confirmation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SignUpConfirmation {
    /// By a link mailed to the address.
    Email,
    /// Not at all: the account is created at once.
    Off,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on embedded defaults: SQLite and a generated secret key under the data
    /// directory, local brokers, API on 127.0.0.1:8080.
    Dev(Box<DevArgs>),
    /// The production control plane: needs --database-url and --secret-key.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
    /// Monthly invoices.
    #[command(subcommand)]
    Invoices(InvoicesCommand),
    /// Print the KafkaCluster CustomResourceDefinition (YAML).
    Crd,
    /// Run the Kubernetes operator (in a cluster, or against KUBECONFIG).
    Operator(OperatorArgs),
}

/// Options shared by `dev` and `serve`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The tansu executable that runs local brokers (default: Capstan's cache, then PATH).
    #[arg(long, env = "CAPSTAN_BROKER_BIN")]
    pub broker_bin: Option<PathBuf>,
    /// Regions users may create clusters in (comma-separated).
    #[arg(
        long,
        env = "CAPSTAN_REGIONS",
        value_delimiter = ',',
        default_value = "eu-west-1,us-east-1"
    )]
    pub regions: Vec<String>,
    /// Plan of new clusters: free, payg or pro.
    #[arg(long, env = "CAPSTAN_DEFAULT_PLAN", default_value = "payg")]
    pub default_plan: String,
    /// A JSON file overriding plans' limits, e.g. {"pro": {"max_partitions": 2000}} (default:
    /// Upstash's published limits; see docs/api.md).
    #[arg(long, env = "CAPSTAN_PLAN_LIMITS")]
    pub plan_limits: Option<PathBuf>,
    /// Age, in seconds, at which a change a crash interrupted (a provisioning journal entry) is
    /// finished or rolled back: long enough that another control plane on the same database
    /// is surely done with it (default 600 for `serve`, 0 for `dev`, which is alone on its
    /// SQLite file).
    #[arg(long, env = "CAPSTAN_RECOVERY_GRACE_SECONDS")]
    pub recovery_grace_seconds: Option<u64>,
    /// Also remove brokers and pool prefixes of clusters this store has never known (those of
    /// deleted clusters always go). Only when this store is the one truth for the data
    /// directory or namespace: pointed at the wrong database, it would delete every tenant's
    /// data it does not know of. Without it they are reported (`capstan_unowned_resources`).
    #[arg(long, env = "CAPSTAN_SWEEP_UNKNOWN_RESOURCES")]
    pub sweep_unknown_resources: bool,
    /// Host[:port] of the REST data gateway shown to users as `rest_endpoint` (default: the
    /// gateway's listen address).
    #[arg(long, env = "CAPSTAN_REST_ENDPOINT")]
    pub rest_endpoint: Option<String>,
    /// API keys per account.
    #[arg(long, env = "CAPSTAN_MAX_API_KEYS", default_value_t = 37)]
    pub max_api_keys: u32,
    /// Live clusters per account.
    #[arg(long, env = "CAPSTAN_MAX_CLUSTERS", default_value_t = 10)]
    pub max_clusters: u32,
    /// Scoped credentials per cluster.
    #[arg(long, env = "CAPSTAN_MAX_CREDENTIALS", default_value_t = 10)]
    pub max_credentials: u32,
    /// Seconds between metering sweeps (default: 10 in dev, 60 in serve).
    #[arg(long, env = "CAPSTAN_METERING_INTERVAL")]
    pub metering_interval: Option<u64>,
    /// Clusters metered at once.
    #[arg(long, env = "CAPSTAN_METERING_CONCURRENCY", default_value_t = 8)]
    pub metering_concurrency: usize,
    #[command(flatten)]
    pub pricing: PricingArgs,
    #[command(flatten)]
    pub stripe: StripeArgs,
    /// URL that receives a JSON POST when a cluster reaches 70%, 90% or 100% of its cap.
    #[arg(long, env = "CAPSTAN_NOTIFY_WEBHOOK_URL")]
    pub notify_webhook_url: Option<String>,
    /// Lifetime of log-in session tokens, seconds.
    #[arg(long, env = "CAPSTAN_SESSION_TTL", default_value_t = 3600)]
    pub session_ttl: i64,
    /// Networks of the proxies in front of the API (an ingress controller's pods, a load
    /// balancer), comma-separated CIDRs: their `X-Forwarded-For` then names the client for the
    /// per-address log-in and sign-up limits. Without it, the TCP peer is the client.
    #[arg(long, env = "CAPSTAN_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<capstan_api::client_address::Cidr>,
    /// Bearer token that opens `/metrics` to scrapers on other hosts (at least 16
    /// characters); without it, `/metrics` answers only clients on the same host.
    #[arg(long, env = "CAPSTAN_METRICS_TOKEN", hide_env_values = true, value_parser = parse_metrics_token)]
    pub metrics_token: Option<capstan_api::state::MetricsToken>,
    /// Placement of new clusters when the request does not say: `shared` (a virtual cluster
    /// on the shared broker pool, reached through the Kafka gateway) or `dedicated`.
    #[arg(long, env = "CAPSTAN_DEFAULT_PLACEMENT", default_value = "shared")]
    pub default_placement: String,
    /// `host[:port]` of the Kafka gateway shown to users as shared clusters' `tcp_endpoint`
    /// (default: its listen address; `localhost` when listening on every address).
    #[arg(long, env = "CAPSTAN_KAFKA_ADVERTISE")]
    pub kafka_advertise: Option<String>,
    /// Per-broker listeners of the Kafka gateway for pools of several brokers, `FIRST:COUNT`:
    /// broker n of a pool on port FIRST+n (node ids 0 to COUNT-1). Not needed for one broker.
    #[arg(long, env = "CAPSTAN_KAFKA_NODE_PORTS", value_parser = parse_node_ports)]
    pub kafka_node_ports: Option<NodeListeners>,
    /// PEM certificate chain of the Kafka gateway: with `--kafka-tls-key`, every Kafka listener
    /// is TLS (clients use SASL_SSL, and PLAIN is offered besides SCRAM).
    #[arg(long, env = "CAPSTAN_KAFKA_TLS_CERT", requires = "kafka_tls_key")]
    pub kafka_tls_cert: Option<PathBuf>,
    /// PEM private key of `--kafka-tls-cert`.
    #[arg(long, env = "CAPSTAN_KAFKA_TLS_KEY", requires = "kafka_tls_cert")]
    pub kafka_tls_key: Option<PathBuf>,
    /// SMTP server for mail to account owners (password reset links):
    /// `smtps://user:password@host:465` (TLS), `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:port` (unencrypted: a relay on the same host only). Without
    /// it `dev` prints mail to its output and `serve` sends none (password reset then cannot
    /// work).
    #[arg(long, env = "CAPSTAN_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The `From` of that mail.
    #[arg(
        long,
        env = "CAPSTAN_MAIL_FROM",
        default_value = "Capstan <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// `email`: a sign-up creates its account only once the address is confirmed by a mailed
    /// link, so sign-up never tells anyone which addresses have accounts; `off`: at once (a
    /// taken address is then answered 409). Default: `email` when `--smtp-url` is set.
    #[arg(long, env = "CAPSTAN_SIGN_UP_CONFIRMATION", value_enum)]
    pub sign_up_confirmation: Option<SignUpConfirmation>,
    /// The console's address as users reach it, for links in mail, e.g.
    /// `https://console.example.com` (default: `http://` and the API's listen address).
    #[arg(long, env = "CAPSTAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Open connections each HTTP listener (API, REST gateway) serves at once; more wait in
    /// the kernel's accept queue.
    #[arg(long, env = "CAPSTAN_HTTP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub http_max_connections: usize,
    /// Seconds a client has to send a request's headers (and to start the next request on a
    /// kept-alive connection) before the connection is closed.
    #[arg(long, env = "CAPSTAN_HTTP_HEADER_TIMEOUT", default_value_t = 15)]
    pub http_header_timeout: u64,
    /// Seconds requests in progress get to finish once shutdown begins.
    #[arg(long, env = "CAPSTAN_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
}

fn parse_cidr(text: &str) -> Result<capstan_api::client_address::Cidr, String> {
    text.parse().map_err(|e: capstan_api::Error| e.to_string())
}

fn parse_metrics_token(text: &str) -> Result<capstan_api::state::MetricsToken, String> {
    capstan_api::state::MetricsToken::new(text).map_err(|e| e.to_string())
}

fn parse_node_ports(text: &str) -> Result<NodeListeners, String> {
    let (first, count) = text
        .split_once(':')
        .ok_or("expected FIRST:COUNT, for example 9093:3")?;
    let first: u16 = first
        .parse()
        .map_err(|_| format!("{first:?} is not a port"))?;
    let count: u16 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a count"))?;
    if count == 0 || u32::from(first) + u32::from(count) > 65_536 {
        return Err("the ports must fit below 65536 and COUNT must be at least 1".into());
    }
    Ok(NodeListeners { first, count })
}

impl CommonArgs {
    fn kafka(&self, listen: SocketAddr, next_free_port: bool) -> KafkaListen {
        KafkaListen {
            listen,
            next_free_port,
            advertise: self.kafka_advertise.clone(),
            node_ports: self.kafka_node_ports,
            tls: self.kafka_tls_cert.clone().zip(self.kafka_tls_key.clone()),
        }
    }

    /// Whether sign-ups are confirmed by mail: asked for, or else whenever mail can be sent.
    fn confirm_sign_ups(&self, alone: bool) -> anyhow::Result<bool> {
        let confirm = match self.sign_up_confirmation {
            Some(SignUpConfirmation::Email) => true,
            Some(SignUpConfirmation::Off) => false,
            None => self.smtp_url.is_some(),
        };
        if confirm && self.smtp_url.is_none() && !alone {
            anyhow::bail!(
                "--sign-up-confirmation email needs a way to send the links: set --smtp-url (and --mail-from)"
            );
        }
        if !confirm && !alone {
            tracing::warn!(
                "sign-ups are not confirmed by mail, so a sign-up with a taken address is answered 409 and tells anyone that the address has an account: set --smtp-url to confirm sign-ups by mail"
            );
        }
        Ok(confirm)
    }

    /// The platform's settings; `alone` when this control plane is surely the only one on its
    /// store (`capstan dev`).
    fn platform(&self, alone: bool) -> anyhow::Result<PlatformConfig> {
        Ok(PlatformConfig {
            regions: self
                .regions
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
            default_plan: Plan::parse(&self.default_plan)
                .map_err(|e| anyhow::anyhow!(e.to_string()))?,
            recovery_grace: std::time::Duration::from_secs(
                self.recovery_grace_seconds
                    .unwrap_or(if alone { 0 } else { 600 }),
            ),
            journal_check_every: PlatformConfig::default().journal_check_every,
            plan_limits: match &self.plan_limits {
                None => PlanLimits::default(),
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        anyhow::anyhow!("cannot read --plan-limits {}: {e}", path.display())
                    })?;
                    PlanLimits::with_overrides(&text)
                        .map_err(|e| anyhow::anyhow!("--plan-limits {}: {e}", path.display()))?
                }
            },
            sweep_unknown_resources: self.sweep_unknown_resources,
            max_api_keys: self.max_api_keys,
            max_clusters_per_account: self.max_clusters,
            max_credentials_per_cluster: self.max_credentials,
            session_ttl_seconds: self.session_ttl,
            rest_endpoint: self.rest_endpoint.clone().unwrap_or_default(),
            kafka_endpoint: self.kafka_advertise.clone().unwrap_or_default(),
            default_placement: capstan_api::clusters::parse_placement(&self.default_placement)
                .map_err(|e| anyhow::anyhow!("--default-placement: {e}"))?,
            metrics_token: self.metrics_token.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            mail: match &self.smtp_url {
                Some(url) => MailSettings::Smtp {
                    url: url.clone(),
                    from: self.mail_from.clone(),
                },
                None if alone => MailSettings::Print,
                None => MailSettings::Off,
            },
            confirm_sign_ups: self.confirm_sign_ups(alone)?,
            public_url: self.public_url.clone().unwrap_or_default(),
            http_limits: capstan_api::listener::ConnectionLimits {
                max_connections: self.http_max_connections.max(1),
                header_timeout: std::time::Duration::from_secs(self.http_header_timeout.max(1)),
                shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace),
            },
        })
    }
}

/// Prices and limits; money in integer micro-dollars (1 $ = 1,000,000).
#[derive(Debug, Args)]
pub struct PricingArgs {
    /// Price of a message on a single-zone cluster (2 = $0.20 per 100K).
    #[arg(
        long,
        env = "CAPSTAN_PRICE_MESSAGE_SINGLE_ZONE_MICROS",
        default_value_t = 2
    )]
    pub price_message_single_zone_micros: i64,
    /// Price of a message on a multi-zone cluster (6 = $0.60 per 100K).
    #[arg(
        long,
        env = "CAPSTAN_PRICE_MESSAGE_MULTI_ZONE_MICROS",
        default_value_t = 6
    )]
    pub price_message_multi_zone_micros: i64,
    /// Price of a GB-month of storage, replicas summed.
    #[arg(
        long,
        env = "CAPSTAN_PRICE_STORAGE_GB_MONTH_MICROS",
        default_value_t = 250_000
    )]
    pub price_storage_gb_month_micros: i64,
    /// Monthly ceiling of a single-zone cluster, dollars.
    #[arg(
        long,
        env = "CAPSTAN_CEILING_SINGLE_ZONE_DOLLARS",
        default_value_t = 120
    )]
    pub ceiling_single_zone_dollars: i64,
    /// Monthly ceiling of a multi-zone cluster, dollars.
    #[arg(
        long,
        env = "CAPSTAN_CEILING_MULTI_ZONE_DOLLARS",
        default_value_t = 360
    )]
    pub ceiling_multi_zone_dollars: i64,
    /// Messages a free cluster may move per UTC day.
    #[arg(long, env = "CAPSTAN_FREE_DAILY_MESSAGES", default_value_t = 10_000)]
    pub free_daily_messages: i64,
    /// Messages per second a rate-limited cluster (at its price cap, or free and past its
    /// day's messages) may still move, over REST and Kafka together.
    #[arg(
        long,
        env = "CAPSTAN_LIMITED_MESSAGES_PER_SECOND",
        default_value_t = 10
    )]
    pub limited_messages_per_second: i64,
}

impl PricingArgs {
    /// The price list.
    pub fn prices(&self) -> anyhow::Result<PriceList> {
        let values = [
            self.price_message_single_zone_micros,
            self.price_message_multi_zone_micros,
            self.price_storage_gb_month_micros,
            self.ceiling_single_zone_dollars,
            self.ceiling_multi_zone_dollars,
            self.free_daily_messages,
        ];
        if self.limited_messages_per_second < 1 {
            anyhow::bail!(
                "--limited-messages-per-second must be 1 or more (a limited cluster is slowed, never stopped)"
            );
        }
        if values.iter().any(|v| *v < 0)
            || self.ceiling_single_zone_dollars > 1_000_000_000
            || self.ceiling_multi_zone_dollars > 1_000_000_000
        {
            anyhow::bail!(
                "prices, ceilings and limits must be 0 or more (and ceilings at most $1,000,000,000)"
            );
        }
        Ok(PriceList {
            single_zone_message_micros: self.price_message_single_zone_micros,
            multi_zone_message_micros: self.price_message_multi_zone_micros,
            storage_gb_month_micros: self.price_storage_gb_month_micros,
            single_zone_ceiling_micros: self.ceiling_single_zone_dollars * DOLLAR,
            multi_zone_ceiling_micros: self.ceiling_multi_zone_dollars * DOLLAR,
            free_daily_messages: self.free_daily_messages,
            limited_messages_per_second: self.limited_messages_per_second,
        })
    }
}

/// Stripe: invoices are sent there when a secret key is given.
#[derive(Debug, Args)]
pub struct StripeArgs {
    /// Stripe secret API key (`sk_…`); without it, invoices stay in Capstan.
    #[arg(long, env = "CAPSTAN_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Signing secret of the Stripe webhook endpoint `/v2/stripe/webhook` (`whsec_…`).
    #[arg(long, env = "CAPSTAN_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe API base URL (a local stand-in such as localstripe for testing).
    #[arg(
        long,
        env = "CAPSTAN_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
}

impl StripeArgs {
    /// The Stripe configuration, if Stripe is configured.
    pub fn config(&self) -> anyhow::Result<Option<StripeConfig>> {
        match (&self.stripe_secret_key, &self.stripe_webhook_secret) {
            (None, _) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "--stripe-secret-key needs --stripe-webhook-secret (the webhook's signing secret)"
            ),
            (Some(key), Some(webhook)) => Ok(Some(StripeConfig {
                api_base: self.stripe_api_base.clone(),
                secret_key: key.clone(),
                webhook_secret: webhook.clone(),
                // Another API base is a local stand-in (localstripe), which speaks an older
                // dialect of the invoice API.
                stand_in: self.stripe_api_base.trim_end_matches('/') != "https://api.stripe.com",
            })),
        }
    }
}

/// `capstan invoices …`.
#[derive(Debug, Subcommand)]
pub enum InvoicesCommand {
    /// Create and finalize the invoices of a month that has ended (idempotent). Waits for
    /// nothing: refuses while live clusters have not been metered through the month's end
    /// (a running control plane does that within a sweep of midnight), unless `--force`.
    Close(CloseNowArgs),
    /// Void an open invoice that was not sent to Stripe (an operator's correction).
    Void(VoidArgs),
    /// Recompute every invoice of a closed month from its usage rows and report any difference
    /// (exit code 1 when there is one). Give the prices the month was closed with.
    Verify(CloseArgs),
}

/// `capstan invoices void`.
#[derive(Debug, Args)]
pub struct VoidArgs {
    /// The invoice's id (as `GET /v2/invoices` shows it).
    pub invoice_id: String,
    /// Database URL.
    #[arg(long, env = "CAPSTAN_DATABASE_URL")]
    pub database_url: String,
}

/// `capstan invoices close`.
#[derive(Debug, Args)]
pub struct CloseNowArgs {
    #[command(flatten)]
    pub target: CloseArgs,
    /// Close even though some live clusters have not been metered through the month's end
    /// (their brokers are unreachable): their late usage then counts in the next month.
    #[arg(long)]
    pub force: bool,
}

/// `capstan invoices close` and `capstan invoices verify`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The month, YYYY-MM (UTC); default: the previous month.
    #[arg(long)]
    pub month: Option<String>,
    /// Database URL.
    #[arg(long, env = "CAPSTAN_DATABASE_URL")]
    pub database_url: String,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

/// `capstan dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the database, the secret key and broker data live.
    #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "./.capstan")]
    pub data_dir: PathBuf,
    /// Address of the console and provisioning API.
    #[arg(long, env = "CAPSTAN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the REST data gateway.
    #[arg(long, env = "CAPSTAN_GATEWAY_LISTEN", default_value = "127.0.0.1:8081")]
    pub gateway_listen: SocketAddr,
    /// Address of the Kafka gateway (the next free port is taken when this one is in use).
    #[arg(long, env = "CAPSTAN_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: SocketAddr,
    /// Database URL (default: an SQLite file in the data directory).
    #[arg(long, env = "CAPSTAN_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `capstan serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Database URL: postgres://USER@HOST/DB (or sqlite://PATH).
    #[arg(long, env = "CAPSTAN_DATABASE_URL")]
    pub database_url: String,
    /// The platform secret key: 32 bytes of standard base64 (`openssl rand -base64 32`).
    #[arg(long, env = "CAPSTAN_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Address of the console and provisioning API.
    #[arg(long, env = "CAPSTAN_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of the REST data gateway.
    #[arg(long, env = "CAPSTAN_GATEWAY_LISTEN", default_value = "0.0.0.0:8081")]
    pub gateway_listen: SocketAddr,
    /// Address of the Kafka gateway's bootstrap listener.
    #[arg(long, env = "CAPSTAN_KAFKA_LISTEN", default_value = "0.0.0.0:9092")]
    pub kafka_listen: SocketAddr,
    /// Where local brokers keep their data.
    #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "/var/lib/capstan")]
    pub data_dir: PathBuf,
    /// What makes the brokers of clusters.
    #[arg(long, env = "CAPSTAN_PROVISIONER", value_enum, default_value_t = ProvisionerKind::Local)]
    pub provisioner: ProvisionerKind,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Who makes the brokers of clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProvisionerKind {
    /// One local broker process (tansu) per cluster on this machine.
    Local,
    /// A `KafkaCluster` resource per cluster, made into Apache Kafka by `capstan operator`.
    Kubernetes,
}

/// How clusters are shaped with `--provisioner kubernetes`.
#[derive(Clone, Debug, Args)]
pub struct KubernetesArgs {
    /// Namespace of the clusters' `KafkaCluster` resources.
    #[arg(
        long,
        env = "CAPSTAN_KUBERNETES_NAMESPACE",
        default_value = "capstan-clusters"
    )]
    pub kubernetes_namespace: String,
    /// The three zones multi-zone clusters span (comma-separated), e.g. `eu-west-1a,eu-west-1b,eu-west-1c`.
    #[arg(long, env = "CAPSTAN_KUBERNETES_ZONES", value_delimiter = ',')]
    pub kubernetes_zones: Vec<String>,
    /// Apache Kafka version of new clusters.
    #[arg(long, env = "CAPSTAN_KAFKA_VERSION", default_value = "3.9.1")]
    pub kafka_version: String,
    /// Volume size of each broker.
    #[arg(long, env = "CAPSTAN_KAFKA_STORAGE_SIZE", default_value = "10Gi")]
    pub kafka_storage_size: String,
    /// Storage class of broker volumes (default: the cluster's default class).
    #[arg(long, env = "CAPSTAN_KAFKA_STORAGE_CLASS")]
    pub kafka_storage_class: Option<String>,
    /// Name of the shared single-zone broker pool (a `KafkaCluster`, made on first use).
    #[arg(
        long,
        env = "CAPSTAN_KUBERNETES_POOL_SINGLE_ZONE",
        default_value = "shared-single-zone"
    )]
    pub kubernetes_pool_single_zone: String,
    /// Name of the shared multi-zone broker pool.
    #[arg(
        long,
        env = "CAPSTAN_KUBERNETES_POOL_MULTI_ZONE",
        default_value = "shared-multi-zone"
    )]
    pub kubernetes_pool_multi_zone: String,
    /// Brokers per zone of each shared pool.
    #[arg(
        long,
        env = "CAPSTAN_KUBERNETES_POOL_BROKERS_PER_ZONE",
        default_value_t = 3
    )]
    pub kubernetes_pool_brokers_per_zone: u16,
    /// How clients of dedicated clusters connect: `gateway` (through the Kafka gateway, which
    /// applies scopes, plan limits and the cap and meters what it delivers) or `direct` (to
    /// their own brokers, which apply the scopes as ACLs and the cap as client quotas).
    #[arg(
        long,
        env = "CAPSTAN_KUBERNETES_DEDICATED_ACCESS",
        value_enum,
        default_value_t = capstan::kubernetes::DedicatedAccess::Gateway
    )]
    pub kubernetes_dedicated_access: capstan::kubernetes::DedicatedAccess,
}

impl KubernetesArgs {
    /// The shared pools.
    pub fn pools(&self) -> capstan::kubernetes::Pools {
        capstan::kubernetes::Pools {
            single_zone: self.kubernetes_pool_single_zone.clone(),
            multi_zone: self.kubernetes_pool_multi_zone.clone(),
            brokers_per_zone: self.kubernetes_pool_brokers_per_zone.max(1),
        }
    }

    /// The shape of new clusters.
    pub fn template(&self) -> anyhow::Result<capstan_operator::provisioner::ClusterTemplate> {
        if self.kubernetes_zones.len() != 3 {
            anyhow::bail!(
                "--provisioner kubernetes needs the three zones of multi-zone clusters: --kubernetes-zones a,b,c (got {})",
                self.kubernetes_zones.len()
            );
        }
        Ok(capstan_operator::provisioner::ClusterTemplate {
            namespace: self.kubernetes_namespace.clone(),
            zones: self.kubernetes_zones.clone(),
            version: self.kafka_version.clone(),
            storage: capstan_operator::Storage {
                size: self.kafka_storage_size.clone(),
                storage_class_name: self.kafka_storage_class.clone(),
                // Deleting a cluster through the API removes its data, as the user asked.
                delete_claim: true,
            },
        })
    }
}

/// `capstan operator`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OperatorArgs {
    /// Address of `/healthz` and `/metrics`.
    #[arg(long, env = "CAPSTAN_OPERATOR_LISTEN", default_value = "0.0.0.0:8090")]
    pub listen: SocketAddr,
    /// The Lease replicas elect their leader on, in the operator's namespace: only its holder
    /// reconciles.
    #[arg(
        long,
        env = "CAPSTAN_OPERATOR_LEASE",
        default_value = "capstan-operator"
    )]
    pub lease: String,
    /// This replica's name in the Lease (default: the pod's name, from HOSTNAME).
    #[arg(long, env = "CAPSTAN_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Namespaces whose KafkaClusters to reconcile (comma-separated or repeated); every
    /// namespace when absent. With a list, Roles in those namespaces are all it needs.
    #[arg(
        long = "namespace",
        env = "CAPSTAN_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Without one, the operator runs.
    #[command(subcommand)]
    pub action: Option<OperatorAction>,
}

/// `capstan operator …`.
#[derive(Debug, Subcommand)]
pub enum OperatorAction {
    /// Print, as YAML, every object the operator would apply for a KafkaCluster (a dry run).
    Render {
        /// The KafkaCluster's YAML file (`-` for standard input).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
}

/// `capstan migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Database URL.
    #[arg(long, env = "CAPSTAN_DATABASE_URL")]
    pub database_url: String,
}

/// Settings ready for the application, plus whether the broker binary was named explicitly.
#[derive(Debug)]
pub struct Resolved {
    pub app: Settings,
    pub metering: MeteringSettings,
    pub explicit_broker: Option<PathBuf>,
    /// Set when clusters are made on Kubernetes instead of by local brokers.
    pub kubernetes: Option<KubernetesArgs>,
}

impl CommonArgs {
    fn metering(&self, default_interval: u64) -> anyhow::Result<MeteringSettings> {
        Ok(MeteringSettings {
            prices: self.pricing.prices()?,
            stripe: self.stripe.config()?,
            notify_url: self.notify_webhook_url.clone(),
            interval: std::time::Duration::from_secs(
                self.metering_interval.unwrap_or(default_interval).max(1),
            ),
            concurrency: self.metering_concurrency.max(1),
        })
    }
}

impl DevArgs {
    /// Creates the data directory and the secret key on first use.
    pub fn into_settings(self) -> anyhow::Result<Resolved> {
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "could not create the data directory {}",
                self.data_dir.display()
            )
        })?;
        let data_dir = std::fs::canonicalize(&self.data_dir)?;
        let key = dev_secret_key(&data_dir)?;
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("capstan.db").display()));
        Ok(Resolved {
            app: Settings {
                database_url,
                listen: self.listen,
                gateway_listen: self.gateway_listen,
                key,
                data_dir,
                broker_binary: PathBuf::new(),
                platform: self.common.platform(true)?,
                kafka: self.common.kafka(self.kafka_listen, true),
            },
            metering: self.common.metering(10)?,
            explicit_broker: self.common.broker_bin,
            kubernetes: None,
        })
    }
}

impl ServeArgs {
    /// Checks the secret key.
    pub fn into_settings(self) -> anyhow::Result<Resolved> {
        let key = SecretKey::from_base64(&self.secret_key)
            .map_err(|e| anyhow::anyhow!("--secret-key: {e}"))?;
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "could not create the data directory {}",
                self.data_dir.display()
            )
        })?;
        Ok(Resolved {
            app: Settings {
                database_url: self.database_url,
                listen: self.listen,
                gateway_listen: self.gateway_listen,
                key,
                data_dir: self.data_dir,
                broker_binary: PathBuf::new(),
                platform: self.common.platform(false)?,
                kafka: self.common.kafka(self.kafka_listen, false),
            },
            metering: self.common.metering(60)?,
            explicit_broker: self.common.broker_bin,
            kubernetes: (self.provisioner == ProvisionerKind::Kubernetes)
                .then_some(self.kubernetes),
        })
    }
}

/// Reads `secret.key` from the data directory, or writes a new one (mode 0600).
fn dev_secret_key(data_dir: &std::path::Path) -> anyhow::Result<SecretKey> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("secret.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        return SecretKey::from_base64(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key = SecretKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("could not create {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.to_base64().as_bytes())?;
    Ok(key)
}
