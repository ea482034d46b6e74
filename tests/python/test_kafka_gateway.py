"""confluent-kafka (PyPI; librdkafka bundled) through Capstan's Kafka gateway to a shared cluster
on `capstan dev`: topic administration, producing, a consumer group of two that rebalances, and
resuming from committed offsets, with SCRAM-SHA-512 and SCRAM-SHA-256."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from support import call, client_config


def member(config, group):
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "session.timeout.ms": 10000})
    consumer.subscribe(["orders"])
    return consumer


def poll(consumer, seen, who):
    """One poll; a message is committed at once, so reads survive rebalances."""
    message = consumer.poll(0.1)
    if message is None or message.error():
        return
    consumer.commit(message=message, asynchronous=False)
    seen[message.value().decode()] = who


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_admin_produce_group_of_two_and_resume(capstan, mechanism):
    cluster = call(capstan["api"], "POST", "/v2/kafka/cluster", capstan["auth"],
                   {"name": f"py-{mechanism[-3:]}", "region": "eu-west-1"})
    assert cluster["placement"] == "shared" and cluster["tcp_endpoint"] == capstan["kafka"]
    config = client_config(cluster, mechanism)

    admin = AdminClient(config)
    for future in admin.create_topics([NewTopic("orders", num_partitions=2, replication_factor=1,
                                                config={"retention.ms": "3600000"})]).values():
        future.result()
    assert sorted(admin.list_topics(timeout=10).topics) == ["orders"]
    registered = call(capstan["api"], "GET", f"/v2/kafka/topics/{cluster['cluster_id']}", capstan["auth"])
    assert [(t["topic_name"], t["partitions"], t["retention_time"]) for t in registered] == [("orders", 2, 3600000)]
    for future in admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "orders")]).values():
        assert future.result()["retention.ms"].value == "3600000"
    with pytest.raises(KafkaException) as refused:
        for future in admin.create_topics([NewTopic("huge", num_partitions=100000, replication_factor=1)]).values():
            future.result()
    assert refused.value.args[0].name() == "POLICY_VIOLATION"

    producer = Producer(config)
    for i in range(100):
        producer.produce("orders", key=f"m{i}", value=f"m{i}")
    assert producer.flush(30) == 0

    seen = {}
    first = member(config, "g")
    deadline = time.time() + 60
    while len(seen) < 10:
        assert time.time() < deadline, "the first member got nothing"
        poll(first, seen, 1)
    second = member(config, "g")
    while len(seen) < 100 or not first.assignment() or not second.assignment():
        assert time.time() < deadline, f"{len(seen)} messages; assignments {first.assignment()} {second.assignment()}"
        poll(first, seen, 1)
        poll(second, seen, 2)
    first.close()
    second.close()
    assert 2 in seen.values(), "the second member took partitions over"

    for value in ("late-1", "late-2", "late-3"):
        producer.produce("orders", key=value, value=value)
    assert producer.flush(30) == 0
    resumed = {}
    third = member(config, "g")
    deadline = time.time() + 60
    while len(resumed) < 3:
        assert time.time() < deadline, resumed
        poll(third, resumed, 3)
    quiet = time.time() + 2  # a quiet spell: nothing committed comes again
    while time.time() < quiet:
        poll(third, resumed, 3)
    third.close()
    assert sorted(resumed) == ["late-1", "late-2", "late-3"]
