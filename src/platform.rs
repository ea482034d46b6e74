//! The whole platform wired together: the control plane (`capstan-api`) and metering and
//! billing (`capstan-billing`), which know nothing of each other; the adapters here connect them.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use capstan_api::{
    app::{Application, Settings},
    billing::{BillingSource, CostView, Limit, RequestLimiter},
    clusters::{self, ClusterRow},
    gateway::FetchObserver,
    provisioner::{ClusterSpec, Placement},
    state::AppState,
    store::Store,
    usage::{TopicUsage, UsagePoint, UsageSource},
};
use capstan_billing::{
    ClusterTarget, Collector, Fleet, Meter,
    customers::{BillableCluster, Customers},
    enforcement::Enforcer,
    invoices,
    ledger::{self, Month},
    metering::DeliveryLedger,
    metering::{CollectorMetrics, unix_now},
    pricing::{DOLLAR, PriceList, Tariff},
    stripe::{Stripe, StripeConfig, SyncReport},
};
use capstan_kafka::Credentials;

use crate::enforcement::Enforcement;
use serde_json::Value;

/// How metering and billing run.
#[derive(Clone, Debug)]
pub struct MeteringSettings {
    /// Time between sweeps (and between evaluations of caps and budgets).
    pub interval: Duration,
    /// Clusters swept at once.
    pub concurrency: usize,
    /// Prices, ceilings and free-plan limits.
    pub prices: PriceList,
    /// Stripe, when configured.
    pub stripe: Option<StripeConfig>,
    /// Where 70% / 90% / 100% cap notifications are POSTed, if anywhere.
    pub notify_url: Option<String>,
}

/// The control plane's clusters, as the collector sees them.
#[derive(Debug)]
pub struct ControlPlaneFleet {
    state: AppState,
}

pub(crate) fn fleet_error(error: capstan_api::Error) -> capstan_billing::Error {
    capstan_billing::Error::Fleet(capstan_api::cause_chain(&error))
}

impl ControlPlaneFleet {
    /// The clusters of this control plane.
    pub fn new(state: AppState) -> Self {
        ControlPlaneFleet { state }
    }
}

impl ControlPlaneFleet {
    /// How the collector reaches a cluster's brokers.
    fn target(&self, row: ClusterRow) -> ClusterTarget {
        let config = self
            .state
            .provisioner
            .client_config(&row.spec(), &row.tcp_endpoint);
        let setting = |key: &str| config.get(key).unwrap_or_default().to_owned();
        ClusterTarget {
            credentials: Credentials {
                // A shared cluster's brokers are its pool's, not its (gateway) endpoint.
                bootstrap: setting("bootstrap.servers"),
                username: setting("sasl.username"),
                password: setting("sasl.password"),
                tls: None,
            },
            multizone: row.multizone != 0,
            consumption_from_offsets: !row.through_gateway(self.state.provisioner.as_ref()),
            prefix: row.prefix,
            pool: row.pool,
            cluster_id: row.id,
        }
    }
}

#[async_trait]
impl Fleet for ControlPlaneFleet {
    async fn clusters(&self) -> capstan_billing::Result<Vec<ClusterTarget>> {
        let rows = clusters::all_live(&self.state.store)
            .await
            .map_err(fleet_error)?;
        Ok(rows.into_iter().map(|row| self.target(row)).collect())
    }

    async fn cluster(&self, cluster_id: &str) -> capstan_billing::Result<Option<ClusterTarget>> {
        match clusters::find_live(&self.state.store, cluster_id).await {
            Ok(row) => Ok(Some(self.target(row))),
            Err(capstan_api::Error::NotFound(_)) => Ok(None),
            Err(error) => Err(fleet_error(error)),
        }
    }

    async fn stored_bytes(
        &self,
        cluster: &ClusterTarget,
    ) -> capstan_billing::Result<BTreeMap<String, i64>> {
        // What `clusters` listed is enough: no second read of the store per cluster and sweep.
        let spec = ClusterSpec {
            id: cluster.cluster_id.clone(),
            multizone: cluster.multizone,
            placement: if cluster.prefix.is_empty() {
                Placement::Dedicated
            } else {
                Placement::Shared {
                    pool: cluster.pool.clone(),
                    prefix: cluster.prefix.clone(),
                }
            },
        };
        self.state
            .provisioner
            .stored_bytes(&spec)
            .await
            .map_err(fleet_error)
    }
}

/// Usage for the control plane, read from the meter.
#[derive(Debug)]
pub struct MeteredUsage(pub Meter);

fn usage_error(error: capstan_billing::Error) -> capstan_api::Error {
    capstan_api::Error::internal("could not read usage", error)
}

#[async_trait]
impl UsageSource for MeteredUsage {
    async fn hourly(
        &self,
        cluster_id: &str,
        topic: Option<&str>,
        from: i64,
        to: i64,
    ) -> capstan_api::Result<Vec<UsagePoint>> {
        let hours = self
            .0
            .hourly(cluster_id, topic, from, to)
            .await
            .map_err(usage_error)?;
        Ok(hours
            .into_iter()
            .map(|h| UsagePoint {
                time: h.hour,
                produced: h.produced,
                consumed: h.consumed,
                storage_bytes: h.storage_bytes,
            })
            .collect())
    }

    async fn topic_totals(
        &self,
        cluster_id: &str,
        from: i64,
        to: i64,
    ) -> capstan_api::Result<Vec<TopicUsage>> {
        let totals = self
            .0
            .topic_totals(cluster_id, from, to)
            .await
            .map_err(usage_error)?;
        Ok(totals
            .into_iter()
            .map(|t| TopicUsage {
                topic: t.topic,
                produced: t.produced,
                consumed: t.consumed,
            })
            .collect())
    }
}

/// Counts what the REST gateway delivers into the meter before it answers; a count that
/// cannot be written then goes to the delivery ledger, which retries it until it is.
#[derive(Debug)]
pub struct FetchCounter(pub Meter, pub Arc<DeliveryLedger>);

#[async_trait]
impl FetchObserver for FetchCounter {
    async fn fetched(&self, cluster_id: &str, topic: &str, messages: u64) {
        let now = capstan_billing::metering::unix_now();
        if let Err(error) = self
            .0
            .record_fetch(cluster_id, topic, messages as i64, now)
            .await
        {
            tracing::warn!(%cluster_id, %topic, messages, %error, "could not count a REST delivery now; the delivery ledger retries it");
            self.1.add(cluster_id, topic, messages, now);
        }
    }
}

/// Meters a cluster with the collector before it or one of its topics is deleted.
#[derive(Debug)]
pub struct CollectorFinalMeter(pub Arc<Collector>);

fn metering_error(error: capstan_billing::Error) -> capstan_api::Error {
    capstan_api::Error::internal("could not meter the cluster", error)
}

#[async_trait]
impl capstan_api::usage::FinalMeter for CollectorFinalMeter {
    async fn meter_now(&self, cluster_id: &str) -> capstan_api::Result<()> {
        self.0
            .meter_now(cluster_id, unix_now())
            .await
            .map_err(metering_error)
    }

    async fn forget_topic(&self, cluster_id: &str, topic: &str) -> capstan_api::Result<()> {
        self.0
            .forget_topic(cluster_id, topic)
            .await
            .map_err(metering_error)
    }
}

/// Records the Kafka gateway delivers, counted into the delivery ledger.
#[derive(Debug)]
pub struct DeliveryCounter(pub Arc<DeliveryLedger>);

impl capstan_api::usage::DeliveryCounter for DeliveryCounter {
    fn delivered(&self, cluster_id: &str, topic: &str, messages: u64) {
        self.0.add(cluster_id, topic, messages, unix_now());
    }
}

/// The control plane's clusters, as billing sees them.
#[derive(Debug)]
pub struct ControlPlaneCustomers {
    store: Store,
}

impl ControlPlaneCustomers {
    /// The clusters of the store.
    pub fn new(store: Store) -> Self {
        ControlPlaneCustomers { store }
    }

    /// Every cluster, or one account's, deleted ones included.
    async fn billable(
        &self,
        account_id: Option<&str>,
    ) -> capstan_billing::Result<Vec<BillableCluster>> {
        billable_all(clusters::all_for_billing(&self.store, account_id).await)
    }
}

/// Billing's view of clusters the store read.
fn billable_all(
    rows: capstan_api::Result<Vec<ClusterRow>>,
) -> capstan_billing::Result<Vec<BillableCluster>> {
    Ok(rows
        .map_err(fleet_error)?
        .into_iter()
        .map(billable)
        .collect())
}

fn billable(row: ClusterRow) -> BillableCluster {
    BillableCluster {
        tariff: Tariff {
            multizone: row.multizone != 0,
            free: row.plan == "free",
            budget_micros: row.budget_dollars.saturating_mul(DOLLAR),
        },
        cluster_id: row.id,
        account_id: row.account_id,
        name: row.name,
        created_at: row.created_at,
        deleted_at: row.deleted_at,
    }
}

#[async_trait]
impl Customers for ControlPlaneCustomers {
    async fn clusters(&self) -> capstan_billing::Result<Vec<BillableCluster>> {
        self.billable(None).await
    }

    async fn clusters_as_of(&self, at: i64) -> capstan_billing::Result<Vec<BillableCluster>> {
        billable_all(clusters::all_for_billing_as_of(&self.store, at).await)
    }

    async fn cluster(&self, cluster_id: &str) -> capstan_billing::Result<Option<BillableCluster>> {
        Ok(clusters::any_by_id(&self.store, cluster_id)
            .await
            .map_err(fleet_error)?
            .map(billable))
    }
}

fn billing_error(error: capstan_billing::Error) -> capstan_api::Error {
    match error {
        capstan_billing::Error::NotFound(what) => capstan_api::Error::NotFound(what),
        capstan_billing::Error::Invalid(message) => capstan_api::Error::Invalid(message),
        other => capstan_api::Error::internal("billing failed", other),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> capstan_api::Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| capstan_api::Error::internal("could not encode billing data", e))
}

/// Cost and invoices for the control plane, from billing.
#[derive(Debug)]
pub struct Billing {
    store: Store,
    prices: PriceList,
    customers: Arc<ControlPlaneCustomers>,
    enforcer: Arc<Enforcer>,
    stripe: Option<Stripe>,
}

impl Billing {
    /// A cluster's month so far, priced at `now`.
    async fn month_cost(&self, cluster_id: &str, now: i64) -> capstan_api::Result<ledger::Cost> {
        let cluster = self
            .customers
            .cluster(cluster_id)
            .await
            .map_err(billing_error)?
            .ok_or(capstan_api::Error::NotFound("cluster"))?;
        ledger::cluster_cost(self.store.pool(), &self.prices, &cluster, now)
            .await
            .map_err(billing_error)
    }

    /// The account's invoice, or `None` when it does not exist or belongs to someone else.
    async fn owned_invoice(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> capstan_api::Result<Option<invoices::Invoice>> {
        match invoices::get(self.store.pool(), account_id, invoice_id).await {
            Ok(invoice) => Ok(Some(invoice)),
            Err(capstan_billing::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(billing_error(e)),
        }
    }
}

#[async_trait]
impl BillingSource for Billing {
    async fn month_so_far_cents(&self, cluster_id: &str) -> capstan_api::Result<i64> {
        Ok(self
            .month_cost(cluster_id, unix_now())
            .await?
            .month_to_date_cents)
    }

    async fn budget_changed(&self, cluster_id: &str) -> capstan_api::Result<()> {
        self.enforcer
            .rearm(cluster_id, unix_now())
            .await
            .map_err(billing_error)
    }

    async fn cost(&self, cluster_id: &str) -> capstan_api::Result<CostView> {
        let now = unix_now();
        let cost = self.month_cost(cluster_id, now).await?;
        Ok(CostView {
            month: cost.month.clone(),
            month_to_date_cents: cost.month_to_date_cents,
            forecast_cents: cost.forecast_cents,
            cap_cents: cost.cap_cents,
            budget_dollars: cost.budget_dollars,
            notifications: self
                .enforcer
                .notifications(cluster_id, now)
                .await
                .map_err(billing_error)?,
            lines: to_json(&cost.lines)?,
        })
    }

    async fn invoices(&self, account_id: &str) -> capstan_api::Result<Value> {
        to_json(
            &invoices::list(self.store.pool(), account_id)
                .await
                .map_err(billing_error)?,
        )
    }

    async fn invoice(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> capstan_api::Result<Option<Value>> {
        self.owned_invoice(account_id, invoice_id)
            .await?
            .map(|invoice| to_json(&invoice))
            .transpose()
    }

    async fn account_cost(&self, account_id: &str) -> capstan_api::Result<Value> {
        let now = unix_now();
        let mut clusters = Vec::new();
        let (mut total, mut forecast) = (0i64, 0i64);
        // Only this account's clusters are read (the console asks on every list view).
        for cluster in self
            .customers
            .billable(Some(account_id))
            .await
            .map_err(billing_error)?
        {
            if cluster
                .deleted_at
                .is_some_and(|d| d < Month::of(now).start())
            {
                continue;
            }
            let cost = ledger::cluster_cost(self.store.pool(), &self.prices, &cluster, now)
                .await
                .map_err(billing_error)?;
            total += cost.month_to_date_cents;
            forecast += cost.forecast_cents;
            clusters.push(serde_json::json!({
                "cluster_id": cluster.cluster_id, "name": cluster.name, "deleted": cluster.deleted_at.is_some(),
                "month_to_date_cents": cost.month_to_date_cents, "forecast_cents": cost.forecast_cents, "cap_cents": cost.cap_cents,
            }));
        }
        Ok(
            serde_json::json!({ "month": Month::of(now).label(), "month_to_date_cents": total, "forecast_cents": forecast, "clusters": clusters }),
        )
    }

    async fn invoice_usage_csv(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> capstan_api::Result<Option<String>> {
        let Some(invoice) = self.owned_invoice(account_id, invoice_id).await? else {
            return Ok(None);
        };
        invoices::usage_csv(self.store.pool(), &invoice)
            .await
            .map(Some)
            .map_err(billing_error)
    }

    async fn stripe_webhook(&self, payload: &[u8], signature: &str) -> capstan_api::Result<()> {
        let stripe = self
            .stripe
            .as_ref()
            .ok_or(capstan_api::Error::NotFound("Stripe webhook endpoint"))?;
        stripe
            .handle_webhook(self.store.pool(), payload, signature, unix_now())
            .await
            .map_err(billing_error)
    }

    async fn invoice_csv(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> capstan_api::Result<Option<String>> {
        Ok(self
            .owned_invoice(account_id, invoice_id)
            .await?
            .map(|invoice| invoices::csv(&invoice)))
    }
}

/// The gateway's rate limiter: the enforcer's decisions.
#[derive(Debug)]
pub struct Limiter(pub Arc<Enforcer>);

#[async_trait]
impl RequestLimiter for Limiter {
    async fn limit(&self, cluster_id: &str) -> Option<Limit> {
        let (reason, wait) = self.0.limit(cluster_id, unix_now()).await?;
        Some(Limit { reason, wait })
    }
    fn charge(&self, cluster_id: &str, messages: u64) -> Duration {
        self.0.charge(cluster_id, messages)
    }
}

/// The built platform: the application and its collector.
#[derive(Debug)]
pub struct Platform {
    application: Application,
    collector: Arc<Collector>,
    deliveries: Arc<DeliveryLedger>,
    enforcement: Arc<Enforcement>,
    customers: Arc<ControlPlaneCustomers>,
    stripe: Option<Stripe>,
    metering: MeteringSettings,
}

impl Platform {
    /// Builds the control plane and wires metering into it.
    pub async fn build(
        settings: Settings,
        metering: MeteringSettings,
    ) -> capstan_api::Result<Self> {
        Self::build_with(settings, metering, None).await
    }

    /// As [`Platform::build`], with clusters made by `provisioner` when one is given (the
    /// Kubernetes provisioner) instead of local brokers.
    pub async fn build_with(
        settings: Settings,
        metering: MeteringSettings,
        provisioner: Option<Arc<dyn capstan_api::provisioner::Provisioner>>,
    ) -> capstan_api::Result<Self> {
        let application = Application::build_with(settings, provisioner).await?;
        let state = application.state().clone();
        let meter = Meter::new(state.store.pool().clone());
        let metrics = CollectorMetrics::register(&state.metrics.registry)
            .map_err(|e| capstan_api::Error::internal("could not register metering metrics", e))?;
        let collector = Collector::new(
            state.store.pool().clone(),
            Arc::new(ControlPlaneFleet {
                state: state.clone(),
            }),
            metering.concurrency,
        )
        .with_metrics(metrics);
        let customers = Arc::new(ControlPlaneCustomers::new(state.store.clone()));
        let enforcer = Arc::new(
            Enforcer::new(
                state.store.pool().clone(),
                metering.prices.clone(),
                customers.clone(),
            )
            .with_notify_url(metering.notify_url.clone()),
        );
        let stripe = match &metering.stripe {
            Some(config) => Some(Stripe::new(config.clone()).map_err(billing_error)?),
            None => None,
        };
        let billing = Billing {
            store: state.store.clone(),
            prices: metering.prices.clone(),
            customers: customers.clone(),
            enforcer: enforcer.clone(),
            stripe: stripe.clone(),
        };
        let deliveries = Arc::new(DeliveryLedger::new(state.store.pool().clone()));
        let collector = Arc::new(collector);
        let application = application
            .with_metering(
                Arc::new(MeteredUsage(meter.clone())),
                Arc::new(FetchCounter(meter, deliveries.clone())),
                Arc::new(DeliveryCounter(deliveries.clone())),
                Arc::new(CollectorFinalMeter(collector.clone())),
            )
            .with_billing(Arc::new(billing), Arc::new(Limiter(enforcer.clone())));
        let console = capstan_web::router(application.state().clone(), metering.prices.clone());
        let application = application.with_console(console);
        let enforcement = Arc::new(Enforcement::new(
            enforcer,
            application.state().clone(),
            &metering.prices,
        ));
        Ok(Platform {
            application,
            collector,
            deliveries,
            enforcement,
            customers,
            stripe,
            metering,
        })
    }

    /// The control plane.
    pub fn application(&self) -> &Application {
        &self.application
    }

    /// The metering collector (to sweep on demand).
    pub fn collector(&self) -> Arc<Collector> {
        self.collector.clone()
    }

    /// The ledger of records delivered by the Kafka gateway (to write on demand).
    pub fn deliveries(&self) -> Arc<DeliveryLedger> {
        self.deliveries.clone()
    }

    /// The enforcement of caps, budgets and the free plan (to run on demand).
    pub fn enforcement(&self) -> Arc<Enforcement> {
        self.enforcement.clone()
    }

    /// Sends open invoices to Stripe now (it also happens every interval); `None` without Stripe.
    pub async fn sync_stripe(&self) -> Option<capstan_billing::Result<SyncReport>> {
        let stripe = self.stripe.as_ref()?;
        Some(sync_stripe(stripe, &self.application.state().store).await)
    }

    /// Serves and meters until `shutdown`; metering stops first, then the control plane.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> capstan_api::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Deliveries are written until the gateways have stopped, so the last answers count.
        let (served_tx, served_rx) = tokio::sync::watch::channel(false);
        let deliveries = self.deliveries.clone();
        let deliveries = tokio::spawn(async move { deliveries.run(served_rx).await });
        let metering = tokio::spawn(
            self.collector
                .clone()
                .run(self.metering.interval, stop_rx.clone()),
        );
        let billing = tokio::spawn(run_billing(
            self.application.state().store.clone(),
            self.metering.clone(),
            self.enforcement.clone(),
            self.customers.clone(),
            self.stripe.clone(),
            stop_rx,
        ));
        let served = self
            .application
            .run_until(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await;
        let _ = served_tx.send(true);
        let _ = deliveries.await;
        let _ = metering.await;
        let _ = billing.await;
        served
    }
}

/// Every interval: re-evaluate and enforce caps, budgets and free-plan limits; once a month has ended,
/// close it (idempotent, so a restart or a second replica closes nothing twice).
async fn run_billing(
    store: Store,
    settings: MeteringSettings,
    enforcement: Arc<Enforcement>,
    customers: Arc<ControlPlaneCustomers>,
    stripe: Option<Stripe>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed: Option<Month> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let now = unix_now();
        if let Err(error) = enforcement.run(now).await {
            tracing::warn!(%error, "could not enforce caps, budgets and the free plan; retrying at the next interval");
        }
        let previous = Month::of(now).previous();
        if closed != Some(previous) && may_close(&store, customers.as_ref(), previous, now).await {
            match invoices::close_month(
                store.pool(),
                &settings.prices,
                customers.as_ref(),
                previous,
                now,
            )
            .await
            {
                Ok(report) => {
                    if report.created > 0 {
                        tracing::info!(month = %previous.label(), invoices = report.created, "closed a month");
                    }
                    closed = Some(previous);
                }
                Err(error) => {
                    tracing::warn!(%error, month = %previous.label(), "could not close a month; retrying at the next interval")
                }
            }
        }
        if let Some(stripe) = &stripe {
            // A failure leaves the rest for the next interval: the retry back-off is the interval.
            if let Err(error) = sync_stripe(stripe, &store).await {
                tracing::warn!(%error, "could not send invoices to Stripe; retrying at the next interval");
            }
        }
    }
}

/// Whether `month` may be closed now: every live cluster metered through its end, or the wait
/// for late ones is over (they are named, and their late usage counts in the next month).
async fn may_close(
    store: &Store,
    customers: &ControlPlaneCustomers,
    month: Month,
    now: i64,
) -> bool {
    match invoices::readiness(store.pool(), customers, month, now).await {
        Ok(readiness) if readiness.may_close() => {
            if !readiness.behind.is_empty() {
                tracing::warn!(month = %month.label(), clusters = ?readiness.behind,
                    "closing a month without these clusters metered through its end (their brokers were unreachable); their late usage counts in the next month");
            }
            true
        }
        Ok(readiness) => {
            tracing::info!(month = %month.label(), clusters = ?readiness.behind,
                "waiting for these clusters to be metered through the end of the month before closing it");
            false
        }
        Err(error) => {
            tracing::warn!(%error, month = %month.label(), "could not check whether a month may be closed; retrying at the next interval");
            false
        }
    }
}

async fn sync_stripe(stripe: &Stripe, store: &Store) -> capstan_billing::Result<SyncReport> {
    let emails = capstan_api::accounts::emails(store)
        .await
        .map_err(fleet_error)?;
    stripe.sync_open_invoices(store.pool(), &emails).await
}
