//! The price cap and the free plan over TCP: a rate-limited cluster's Kafka clients are
//! throttled the way Kafka's quotas throttle (KIP-219: the answer's throttle time, the
//! connection muted), down to the allowance the REST gateway uses, counted in messages; raising
//! the budget lifts it at once.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use capstan_api::{plans::Plan, state::PlatformConfig};
use capstan_billing::pricing::PriceList;
use rdkafka::{
    ClientContext, Message, Statistics,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    producer::{FutureProducer, FutureRecord},
};
use serde_json::Value;
use support::{produce_tcp, start_with, tcp};

/// Messages a limited cluster may move a second in these tests.
const ALLOWANCE: u64 = 10;
/// Messages per produce round: each round is one batch (one partition, waited for).
const ROUND: u64 = 30;

/// The largest throttle time librdkafka reported (its statistics, in milliseconds).
#[derive(Clone, Default)]
struct Throttle(Arc<AtomicI64>);

impl ClientContext for Throttle {
    fn stats(&self, statistics: Statistics) {
        for broker in statistics.brokers.values() {
            if let Some(window) = &broker.throttle {
                self.0.fetch_max(window.max, Ordering::Relaxed);
            }
        }
    }
}

impl ConsumerContext for Throttle {}

impl Throttle {
    fn max_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Waits (polling, bounded) for librdkafka to report a throttle time.
    async fn reported(&self) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.max_ms() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.max_ms()
    }
}

/// Produces `rounds` rounds of [`ROUND`] messages, each round waited for; returns when each
/// round was acknowledged, measured from the start.
async fn produce_rounds(cluster: &Value, throttle: &Throttle, rounds: u64) -> Vec<Duration> {
    let producer: FutureProducer<Throttle> = tcp(cluster)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("statistics.interval.ms", "100")
        .create_with_context(throttle.clone())
        .unwrap();
    let start = Instant::now();
    let mut acknowledged = Vec::new();
    for _ in 0..rounds {
        let sent: Vec<_> = (0..ROUND)
            .map(|_| {
                producer
                    .send_result(FutureRecord::<(), str>::to("t").payload("m"))
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for delivery in sent {
            delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
        acknowledged.push(start.elapsed());
    }
    acknowledged
}

/// The allowance holds: before the last round was sent, the cluster cannot have moved more
/// than one second's worth plus the allowance for the time since the first.
fn assert_within_allowance(acknowledged: &[Duration]) {
    let before_last = ROUND * (acknowledged.len() as u64 - 1);
    let waited = acknowledged[acknowledged.len() - 2].as_secs_f64();
    let mut floor =
        (before_last - ALLOWANCE) as f64 / ALLOWANCE as f64 - ROUND as f64 / ALLOWANCE as f64;
    floor = floor.max(0.0);
    assert!(
        waited >= floor,
        "{before_last} messages moved in {waited:.2}s: more than {ALLOWANCE} a second ({acknowledged:?})"
    );
}

fn prices() -> PriceList {
    PriceList {
        single_zone_message_micros: 10_000, // a cent a message: $1 is 100 messages
        free_daily_messages: 40,
        limited_messages_per_second: ALLOWANCE as i64,
        ..Default::default()
    }
}

/// A producer of `cluster` is throttled (librdkafka reports a throttle time) and moves no more
/// than the allowance.
async fn assert_producer_throttled(cluster: &Value) {
    let throttle = Throttle::default();
    let acknowledged = produce_rounds(cluster, &throttle, 4).await;
    assert!(
        throttle.reported().await > 0,
        "the producer saw a throttle time"
    );
    assert_within_allowance(&acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_cluster_is_throttled_over_tcp_and_a_higher_budget_lifts_it_at_once() {
    let run = start_with(false, PlatformConfig::default(), prices()).await;
    let cluster = run.cluster("capped", &[("t", 1)]).await;
    run.set_budget(&cluster, 1).await;

    // Before the cap: not throttled.
    let free_flowing = Throttle::default();
    produce_rounds(&cluster, &free_flowing, 4).await;
    assert_eq!(free_flowing.max_ms(), 0, "not throttled below the cap");
    run.sweep_and_enforce().await;
    let cost = run.cost(&cluster).await;
    assert_eq!(
        cost["month_to_date_cents"], 100,
        "never above the cap: {cost}"
    );

    // At the cap: producers are throttled to the allowance and told so.
    assert_producer_throttled(&cluster).await;

    // So are consumers: the records come a few at a time, within the allowance.
    let consumer_throttle = Throttle::default();
    let consumer: BaseConsumer<Throttle> = tcp(&cluster)
        .set("group.id", "readers")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "100")
        .create_with_context(consumer_throttle.clone())
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let wanted = 3 * ROUND;
    let (received, first, last) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut received, mut first, mut last) = (0u64, None, Instant::now());
        while received < wanted && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                assert_eq!(message.topic(), "t");
                received += 1;
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
            }
        }
        (received, first.unwrap(), last)
    })
    .await
    .unwrap();
    assert_eq!(
        received, wanted,
        "a throttled consumer still gets its records"
    );
    let spread = last.duration_since(first).as_secs_f64();
    // The first batch of a round came at once; the rest only as the allowance allowed.
    let floor = (wanted - ROUND - ALLOWANCE) as f64 / ALLOWANCE as f64 - 1.0;
    assert!(
        spread >= floor,
        "{wanted} records in {spread:.2}s: more than {ALLOWANCE} a second"
    );
    assert!(
        consumer_throttle.reported().await > 0,
        "the consumer saw a throttle time"
    );

    // Raising the budget lifts the limit for the next request, without a metering sweep.
    run.set_budget(&cluster, 50).await;
    let lifted = Throttle::default();
    let acknowledged = produce_rounds(&cluster, &lifted, 4).await;
    assert_eq!(
        lifted.max_ms(),
        0,
        "not throttled once the budget was raised ({acknowledged:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_cluster_past_its_daily_messages_is_throttled_over_tcp() {
    let platform = PlatformConfig {
        default_plan: Plan::Free,
        ..Default::default()
    };
    let run = start_with(false, platform, prices()).await;
    let cluster = run.cluster("free", &[("t", 1)]).await;
    produce_tcp(&cluster, "t", 30, 1).await;
    run.sweep_and_enforce().await;
    let below = Throttle::default();
    produce_rounds(&cluster, &below, 1).await;
    assert_eq!(below.max_ms(), 0, "30 of 40 messages: not throttled");
    run.sweep_and_enforce().await;
    assert_producer_throttled(&cluster).await;
}
