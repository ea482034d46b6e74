// Credential scopes over TCP with kafkajs 2.2.4 through the Kafka gateway: each kind of
// credential against produce, group consume, create/alter/delete topic, list topics and list
// groups, on the cluster's topics and on another tenant's (guessed) pool name. Every cell is
// allowed or refused with Kafka's error code as docs/kafka-gateway.md says; refusals change
// nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { createTopic, startCapstan } from "./harness.mjs";

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";

function kafkaOf(endpoint, credential) {
  return new Kafka({
    clientId: "capstan-scope-test",
    brokers: [endpoint],
    sasl: { mechanism: "scram-sha-512", username: credential.username, password: credential.password },
    logLevel: logLevel.NOTHING,
    // Enough for a restart of the local pool's broker (a topic configuration change restarts
    // it for about a second; a request in flight then has its connection closed and is
    // retried, docs/kafka-gateway.md). Refusals are not retriable, so they stay fast.
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
  });
}

// The Kafka error type somewhere in what kafkajs threw (it wraps protocol errors in
// aggregate and retry errors).
function kafkaType(error) {
  const seen = new Set();
  const queue = [error];
  while (queue.length) {
    const e = queue.shift();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.type === "string" && e.type !== "UNKNOWN") return e.type;
    if (e.name === "KafkaJSGroupCoordinatorNotFound") return e.name;
    queue.push(e.originalError, e.cause, ...(Array.isArray(e.errors) ? e.errors : []));
  }
  return `untyped: ${error?.message ?? error}`;
}

async function outcome(promise) {
  try {
    await promise;
    return "OK";
  } catch (error) {
    return kafkaType(error);
  }
}

async function produce(kafka, topic) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    return await outcome(producer.send({ topic, acks: -1, messages: [{ value: "cell" }] }));
  } finally {
    await producer.disconnect();
  }
}

// Joins `groupId` on `topic`: "OK" at the first message, else the error type.
async function consume(kafka, groupId, topic) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, retry: { retries: 0 } });
  await consumer.connect();
  try {
    const subscribed = await outcome(consumer.subscribe({ topic, fromBeginning: true }));
    if (subscribed !== "OK") return subscribed;
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing from ${topic} in ${groupId}`)), 30000);
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        clearTimeout(timer);
        resolve(kafkaType(payload.error));
      });
      consumer
        .run({
          eachMessage: async () => {
            clearTimeout(timer);
            resolve("OK");
          },
        })
        .catch((error) => {
          clearTimeout(timer);
          resolve(kafkaType(error));
        });
    });
  } finally {
    await consumer.disconnect();
  }
}

async function withAdmin(kafka, action) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await action(admin);
  } finally {
    await admin.disconnect();
  }
}

describe("kafkajs: credential scopes over TCP", () => {
  let capstan;
  before(async () => {
    capstan = await startCapstan();
  });
  after(async () => {
    await capstan?.stop();
  });

  test("every credential kind gets exactly what its scope allows", async () => {
    const other = await capstan.otherAccount("scopes-other@example.com");
    const theirs = await other.request("POST", "/v2/kafka/cluster", { name: "theirs", region: "eu-west-1" });
    await createTopic(other, theirs.cluster_id, "secret", 1);
    const theirName = `${await capstan.prefixOf(theirs.cluster_id)}secret`;
    await produce(kafkaOf(capstan.kafka, theirs), "secret");

    const cluster = await capstan.request("POST", "/v2/kafka/cluster", { name: "scoped", region: "eu-west-1" });
    await createTopic(capstan, cluster.cluster_id, "payments", 1);
    await createTopic(capstan, cluster.cluster_id, "orders", 1);
    const credential = (name, topic, permissions) =>
      capstan.request("POST", "/v2/kafka/credential", { credential_name: name, cluster_id: cluster.cluster_id, topic, permissions });
    const kinds = [
      ["default", cluster],
      ["PRODUCE pay*", await credential("producer", "pay*", "PRODUCE")],
      ["CONSUME pay*", await credential("consumer", "pay*", "CONSUME")],
      ["ALL orders", await credential("orders", "orders", "ALL")],
    ].map(([kind, c]) => [kind, kafkaOf(capstan.kafka, c)]);
    const [, defaultKafka] = kinds[0];
    for (const topic of ["payments", "orders"]) assert.equal(await produce(defaultKafka, topic), "OK");
    const topics = ["payments", "orders", theirName];

    const T = "TOPIC_AUTHORIZATION_FAILED";
    // kafkajs drops the broker's GROUP_AUTHORIZATION_FAILED to FindCoordinator (its broker
    // pool swallows the error, against Apache Kafka too) and reports the coordinator as not
    // found; librdkafka shows the code itself (tests/kafka_scopes.rs).
    const G = "KafkaJSGroupCoordinatorNotFound";
    const mayProduce = [
      ["OK", "OK", T],
      ["OK", T, T],
      [T, T, T],
      [T, "OK", T],
    ];
    const mayConsume = [
      ["OK", "OK", T],
      [G, T, T], // kafkajs looks the topic up before it joins
      ["OK", T, T],
      [T, "OK", T],
    ];
    for (const [row, [kind, kafka]] of kinds.entries()) {
      for (const [column, topic] of topics.entries()) {
        assert.equal(await produce(kafka, topic), mayProduce[row][column], `${kind} produce to ${topic}`);
        assert.equal(await consume(kafka, `g-${row}-${column}`, topic), mayConsume[row][column], `${kind} consume ${topic}`);
      }
    }

    // Administration: the default credential only, never under another cluster's pool name.
    for (const [row, [kind, kafka]] of kinds.entries()) {
      await withAdmin(kafka, async (admin) => {
        for (const [column, topic] of topics.entries()) {
          const created = await outcome(admin.createTopics({ topics: [{ topic: `${topic}-new` }] }));
          const createExpected = row > 0 ? T : column === 2 ? "INVALID_TOPIC_EXCEPTION" : "OK";
          assert.equal(created, createExpected, `${kind} create ${topic}-new`);
          const altered = await outcome(
            admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: "retention.ms", value: `${3600000 + row}` }] }] }),
          );
          assert.equal(altered, row > 0 || column === 2 ? T : "OK", `${kind} alter ${topic}`);
          if (row > 0) assert.equal(await outcome(admin.deleteTopics({ topics: [topic] })), T, `${kind} delete ${topic}`);
        }
      });
    }
    await withAdmin(defaultKafka, async (admin) => {
      assert.equal(await outcome(admin.deleteTopics({ topics: [theirName] })), T);
      assert.equal(await outcome(admin.deleteTopics({ topics: ["payments-new"] })), "OK");
    });

    // Listings follow the scope; groups need CONSUME.
    const listed = [];
    for (const [, kafka] of kinds) listed.push(await withAdmin(kafka, (admin) => admin.listTopics()));
    assert.deepEqual(listed.map((names) => names.sort()), [["orders", "orders-new", "payments"], ["payments"], ["payments"], ["orders"]]);
    const groups = [];
    for (const [, kafka] of kinds) groups.push(await withAdmin(kafka, async (admin) => (await admin.listGroups()).groups.map((g) => g.groupId).sort()));
    assert.ok(groups[0].includes("g-0-0") && groups[0].includes("g-2-0"), JSON.stringify(groups[0]));
    assert.deepEqual(groups[2], groups[0]);
    assert.deepEqual(groups[1], [], "a PRODUCE credential sees no groups");

    // Refused cells changed nothing.
    const registered = await capstan.request("GET", `/v2/kafka/topics/${cluster.cluster_id}`);
    assert.deepEqual(registered.map((t) => t.topic_name).sort(), ["orders", "orders-new", "payments"]);
    for (const t of registered.filter((t) => t.topic_name !== "orders-new")) assert.equal(t.retention_time, 3600000, t.topic_name);
    const offsets = await withAdmin(defaultKafka, async (admin) =>
      Promise.all(["payments", "orders"].map(async (topic) => (await admin.fetchTopicOffsets(topic))[0].high)),
    );
    assert.deepEqual(offsets, ["3", "3"]);
    const theirOffsets = await withAdmin(kafkaOf(capstan.kafka, theirs), (admin) => admin.fetchTopicOffsets("secret"));
    assert.equal(theirOffsets[0].high, "1", "the other tenant's topic is untouched");
  });
});
