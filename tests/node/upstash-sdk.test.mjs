// The real @upstash/kafka SDK (pinned), unchanged, against a running capstan dev: only the URL
// and credentials differ from code written for Upstash.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka } from "@upstash/kafka";
import { Kafka as KafkaJs, logLevel } from "kafkajs";
import { createTopic, eventually, startCapstan } from "./harness.mjs";

let capstan, cluster, kafka;
const run = `${Date.now()}`;
const T1 = `sdk-one-${run}`; // 3 partitions
const T2 = `sdk-two-${run}`; // 1 partition
const T3 = `sdk-three-${run}`; // 2 partitions

before(async () => {
  capstan = await startCapstan();
  cluster = await capstan.request("POST", "/v2/kafka/cluster", { name: "sdk", region: "eu-west-1", multizone: false });
  await createTopic(capstan, cluster.cluster_id, T1, 3);
  await createTopic(capstan, cluster.cluster_id, T2, 1);
  await createTopic(capstan, cluster.cluster_id, T3, 2);
  kafka = new Kafka({ url: `http://${cluster.rest_endpoint}`, username: cluster.username, password: cluster.password });
});

after(async () => {
  await capstan?.stop();
});

function kafkajs() {
  return new KafkaJs({
    clientId: "sdk-test",
    brokers: [cluster.tcp_endpoint],
    sasl: { mechanism: "scram-sha-512", username: cluster.username, password: cluster.password },
    logLevel: logLevel.NOTHING,
  });
}

describe("producing", () => {
  test("produce with key, partition and headers, then fetch the same message at its offset", async () => {
    const headers = [{ key: "trace", value: "abc" }, { key: "trace", value: "def" }];
    const sent = await kafka.producer().produce(T1, { hello: "world" }, { key: "k1", partition: 2, headers });
    assert.equal(sent.topic, T1);
    assert.equal(sent.partition, 2);
    assert.equal(typeof sent.offset, "number");
    assert.ok(sent.timestamp > 1_600_000_000_000, "timestamps are milliseconds");
    const found = await kafka.consumer().fetch({ topic: T1, partition: 2, offset: sent.offset });
    assert.equal(found[0].value, JSON.stringify({ hello: "world" }));
    assert.equal(found[0].key, "k1");
    assert.deepEqual(found[0].headers, headers);
    assert.equal(found[0].offset, sent.offset);
  });

  test("produceMany keeps request order and sends equal keys to one partition", async () => {
    const sent = await kafka.producer().produceMany([
      { topic: T1, value: "a", key: "same" },
      { topic: T1, value: "b", key: "same" },
      { topic: T2, value: "c" },
      { topic: T1, value: "d", key: "same", timestamp: 1_700_000_000_000 },
    ]);
    assert.equal(sent.length, 4);
    assert.deepEqual(sent.map((m) => m.topic), [T1, T1, T2, T1]);
    assert.equal(new Set([sent[0].partition, sent[1].partition, sent[3].partition]).size, 1);
    assert.ok(sent[1].offset > sent[0].offset);
  });

  test("REST and kafkajs producers put a key on the same partition (Kafka's murmur2)", async () => {
    const producer = kafkajs().producer();
    await producer.connect();
    for (const key of ["user-1", "user-42", "order-7", "x"]) {
      const [viaTcp] = await producer.send({ topic: T1, messages: [{ key, value: "tcp" }] });
      const viaRest = await kafka.producer().produce(T1, "rest", { key });
      assert.equal(viaRest.partition, viaTcp.partition, `key ${key}`);
    }
    await producer.disconnect();
  });
});

describe("fetching without a group", () => {
  test("topicPartitionOffsets: one request per triple, each answer starts at its offset", async () => {
    const a = await kafka.producer().produce(T2, "first-of-two");
    const b = await kafka.producer().produce(T3, "first-of-three", { partition: 1 });
    const found = await kafka.consumer().fetch({
      topicPartitionOffsets: [
        { topic: T2, partition: 0, offset: a.offset },
        { topic: T3, partition: 1, offset: b.offset },
      ],
      timeout: 1000,
    });
    assert.equal(found[0].value, "first-of-two");
    assert.ok(found.some((m) => m.value === "first-of-three" && m.offset === b.offset));
  });

  test("an empty partition answers an empty array", async () => {
    const latest = await kafka.admin().topicPartitionOffsets({ timestamp: "latest", topicPartition: { topic: T3, partition: 0 } });
    const found = await kafka.consumer().fetch({ topic: T3, partition: 0, offset: latest[0].offset, timeout: 200 });
    assert.deepEqual(found, []);
  });
});

describe("consumer groups", () => {
  test("earliest, one topic, auto-commit on: data arrives and the group's offset moves", async () => {
    await kafka.producer().produce(T2, "for-group-one");
    const consumer = kafka.consumer();
    const messages = await eventually(async () => {
      const got = await consumer.consume({ consumerGroupId: `g1-${run}`, instanceId: "i1", topics: [T2], autoOffsetReset: "earliest", autoCommitInterval: 500 });
      return got.some((m) => m.value === "for-group-one") ? got : null;
    }, "messages for group one");
    assert.ok(messages.every((m) => m.topic === T2));
    const last = Math.max(...messages.map((m) => m.offset));
    await eventually(async () => {
      await consumer.consume({ consumerGroupId: `g1-${run}`, instanceId: "i1", topics: [T2], timeout: 100 });
      const [c] = await consumer.committed({ consumerGroupId: `g1-${run}`, instanceId: "i1", topicPartitions: [{ topic: T2, partition: 0 }] });
      return c.offset === last + 1;
    }, "auto-commit to reach the consumed position");
  });

  test("several topics in one instance", async () => {
    await kafka.producer().produceMany([{ topic: T1, value: "multi-1" }, { topic: T3, value: "multi-3" }]);
    const consumer = kafka.consumer();
    const seen = new Set();
    await eventually(async () => {
      const got = await consumer.consume({ consumerGroupId: `g2-${run}`, instanceId: "i1", topics: [T1, T3], autoOffsetReset: "earliest" });
      for (const m of got) if (m.value.startsWith("multi-")) seen.add(m.topic);
      return seen.size === 2;
    }, "messages from both topics");
  });

  test("latest: only messages produced after the instance joined", async () => {
    const consumer = kafka.consumer();
    const group = { consumerGroupId: `g3-${run}`, instanceId: "i1", topics: [T3], autoOffsetReset: "latest" };
    await kafka.producer().produce(T3, "before-join");
    await eventually(async () => {
      await consumer.consume({ ...group, timeout: 200 });
      const consumers = await kafka.admin().consumers();
      return consumers.find((g) => g.name === group.consumerGroupId)?.instances[0]?.topics.some((t) => t.topic === T3);
    }, "the instance to be assigned its partitions");
    // Kafka resolves "latest" when the consumer first fetches a partition, which can be after
    // the assignment is listed: a message produced in between is before that position. So a
    // new message is produced until one arrives; the one from before the join never may.
    const seen = [];
    let sent = 0;
    await eventually(async () => {
      await kafka.producer().produce(T3, `after-join-${sent++}`);
      seen.push(...(await consumer.consume({ ...group, timeout: 500 })));
      return seen.some((m) => m.value.startsWith("after-join-"));
    }, "a message produced after the join");
    assert.ok(!seen.some((m) => m.value === "before-join"), JSON.stringify(seen.map((m) => m.value)));
  });

  test("auto-commit off: commit() commits the positions, an explicit offset is stored exactly", async () => {
    const consumer = kafka.consumer();
    const ids = { consumerGroupId: `g4-${run}`, instanceId: "i1" };
    const tp = { topic: T2, partition: 0 };
    // Right after the instance exists and before any commit: one entry, offset -1.
    await consumer.consume({ ...ids, topics: [T2], autoCommit: false, autoOffsetReset: "earliest", timeout: 100 });
    const before = await kafka.admin().committedOffsets({ ...ids, topicPartition: tp });
    assert.equal(before.length, 1);
    assert.equal(typeof before[0].offset, "number");
    const produced = await kafka.producer().produce(T2, "commit-me");
    const messages = await eventually(async () => {
      const got = await consumer.consume({ ...ids, topics: [T2] });
      return got.some((m) => m.value === "commit-me") ? got : null;
    }, "the message to commit");
    const last = Math.max(...messages.map((m) => m.offset));
    await consumer.commit(ids);
    const [committed] = await consumer.committed({ ...ids, topicPartitions: [tp] });
    assert.equal(committed.offset, last + 1, "commit() with no offsets commits last returned + 1");
    await consumer.commit({ ...ids, offset: { ...tp, offset: produced.offset } });
    const [exact] = await consumer.committed({ ...ids, topicPartitions: [tp] });
    assert.equal(exact.offset, produced.offset, "an explicit offset is stored as given, no +1");
    assert.notEqual(exact.offset, committed.offset);
  });
});

describe("admin", () => {
  test("topics, partition offsets by earliest, latest and a timestamp in seconds", async () => {
    const topics = await kafka.admin().topics();
    assert.equal(topics[T1], 3);
    assert.equal(topics[T2], 1);
    const tps = [{ topic: T2, partition: 0 }];
    const earliest = await kafka.admin().topicPartitionOffsets({ timestamp: "earliest", topicPartitions: tps });
    const latest = await kafka.admin().topicPartitionOffsets({ timestamp: "latest", topicPartitions: tps });
    assert.equal(earliest[0].offset, 0);
    assert.ok(latest[0].offset > 0);
    const byTime = await kafka.admin().topicPartitionOffsets({ timestamp: Math.floor(Date.now() / 1000), topicPartitions: tps });
    assert.equal(typeof byTime[0].offset, "number");
  });

  test("consumers lists a live instance; removeConsumerInstance closes it; a second removal is rejected", async () => {
    const group = `g5-${run}`;
    await eventually(async () => {
      await kafka.consumer().consume({ consumerGroupId: group, instanceId: "gone", topics: [T1], timeout: 200 });
      const consumers = await kafka.admin().consumers();
      return consumers.find((g) => g.name === group)?.instances.find((i) => i.name === "gone")?.topics.some((t) => t.topic === T1);
    }, "the instance to appear in /consumers");
    await kafka.admin().removeConsumerInstance(group, "gone");
    const after = await kafka.admin().consumers();
    assert.ok(!after.some((g) => g.name === group));
    // The SDK retries every failure for about 15 s before it rejects.
    await assert.rejects(kafka.admin().removeConsumerInstance(group, "gone"));
  });

  test("wrong credentials are rejected", async () => {
    const wrong = new Kafka({ url: `http://${cluster.rest_endpoint}`, username: cluster.username, password: "wrong" });
    await assert.rejects(wrong.admin().topics());
  });
});

describe("REST and TCP interoperate", () => {
  test("produced over REST, consumed with kafkajs", async () => {
    const sent = await kafka.producer().produce(T2, "rest-to-tcp", { key: "interop" });
    const consumer = kafkajs().consumer({ groupId: `tcp-${run}` });
    await consumer.connect();
    await consumer.subscribe({ topic: T2, fromBeginning: true });
    const got = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("kafkajs saw nothing")), 30000);
      consumer.run({
        eachMessage: async ({ message }) => {
          if (message.value.toString() === "rest-to-tcp") {
            clearTimeout(timer);
            resolve(message);
          }
        },
      });
    });
    await consumer.disconnect();
    assert.equal(got.key.toString(), "interop");
    assert.equal(Number(got.offset), sent.offset);
  });

  test("produced with kafkajs, fetched over REST", async () => {
    const producer = kafkajs().producer();
    await producer.connect();
    const [meta] = await producer.send({ topic: T3, messages: [{ key: "k", value: "tcp-to-rest", partition: 0, headers: { h: "v" } }] });
    await producer.disconnect();
    const found = await kafka.consumer().fetch({ topic: T3, partition: 0, offset: Number(meta.baseOffset) });
    assert.equal(found[0].value, "tcp-to-rest");
    assert.equal(found[0].key, "k");
    assert.deepEqual(found[0].headers, [{ key: "h", value: "v" }]);
  });
});
