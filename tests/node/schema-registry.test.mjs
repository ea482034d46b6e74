// @kafkajs/confluent-schema-registry (npm) against Capstan's schema registry, with kafkajs
// producing and consuming the encoded messages through the Kafka gateway of `capstan dev`: an
// Avro schema registered, an incompatible evolution refused with 409, a compatible one
// accepted and decoded, and a second tenant that sees none of it; and the same for Protobuf.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { createTopic, eventually, startCapstan } from "./harness.mjs";

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";

const userV1 = { type: "record", name: "User", namespace: "shop", fields: [{ name: "id", type: "long" }, { name: "name", type: "string" }] };
const userV2 = { ...userV1, fields: [...userV1.fields, { name: "email", type: "string", default: "" }] };
const userBad = { ...userV1, fields: [...userV1.fields, { name: "age", type: "int" }] };

function registryOf(capstan, credential) {
  return new SchemaRegistry({
    host: `${capstan.gateway}/schema-registry`,
    auth: { username: credential.username, password: credential.password },
    retry: { retries: 0 },
  });
}

function kafkaOf(cluster) {
  return new Kafka({
    clientId: "capstan-registry-test",
    brokers: [cluster.tcp_endpoint],
    sasl: { mechanism: "scram-sha-512", username: cluster.username, password: cluster.password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
  });
}

describe("@kafkajs/confluent-schema-registry with kafkajs through Capstan", () => {
  let capstan;
  before(async () => {
    capstan = await startCapstan();
  });
  after(async () => {
    await capstan?.stop();
  });

  test("Avro over TCP: register, encode, produce, consume, decode; 409 for an incompatible change", async () => {
    const cluster = await capstan.request("POST", "/v2/kafka/cluster", { name: "registry", region: "eu-west-1" });
    await createTopic(capstan, cluster.cluster_id, "users", 1);
    const registry = registryOf(capstan, cluster);

    const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(userV1) }, { subject: "users-value" });
    assert.equal(await registry.getLatestSchemaId("users-value"), id);

    const kafka = kafkaOf(cluster);
    const producer = kafka.producer();
    await producer.connect();
    const first = await registry.encode(id, { id: 1, name: "Ada" });
    assert.equal(first[0], 0, "Confluent's wire format: magic byte 0, then the schema id");
    assert.equal(first.readInt32BE(1), id);
    await producer.send({ topic: "users", acks: -1, messages: [{ value: first }] });

    // An incompatible evolution is refused by the registry with 409, as Confluent's would.
    await assert.rejects(
      registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(userBad) }, { subject: "users-value" }),
      (error) => error.status === 409,
    );
    // A compatible one gets a new id, and its messages decode beside the old ones.
    const { id: id2 } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(userV2) }, { subject: "users-value" });
    assert.notEqual(id2, id);
    await producer.send({ topic: "users", acks: -1, messages: [{ value: await registry.encode(id2, { id: 2, name: "Grace", email: "grace@example.com" }) }] });
    await producer.disconnect();

    // A consumer that knows no schema: it decodes with what the registry answers by id.
    const reader = registryOf(capstan, cluster);
    const consumer = kafka.consumer({ groupId: "registry-readers" });
    await consumer.connect();
    await consumer.subscribe({ topic: "users", fromBeginning: true });
    const decoded = [];
    await consumer.run({ eachMessage: async ({ message }) => decoded.push({ ...(await reader.decode(message.value)) }) });
    await eventually(() => decoded.length >= 2, "two decoded messages");
    await consumer.disconnect();
    assert.deepEqual(decoded, [{ id: 1, name: "Ada" }, { id: 2, name: "Grace", email: "grace@example.com" }]);

    // Another tenant's cluster has a registry of its own that knows none of this.
    const other = await capstan.otherAccount(`registry-other-${Date.now()}@example.com`);
    const theirs = await other.request("POST", "/v2/kafka/cluster", { name: "theirs", region: "eu-west-1" });
    const stranger = registryOf(capstan, theirs);
    await assert.rejects(stranger.getLatestSchemaId("users-value"), (error) => error.status === 404);
    await assert.rejects(stranger.decode(first), (error) => error.status === 404);
  });

  test("Protobuf over TCP: register, encode, produce, consume, decode; 409 for a changed wire type", async () => {
    const cluster = await capstan.request("POST", "/v2/kafka/cluster", { name: "registry-proto", region: "eu-west-1" });
    await createTopic(capstan, cluster.cluster_id, "orders", 1);
    const registry = registryOf(capstan, cluster);
    const v1 = `syntax = "proto3";\npackage shop;\n\nmessage Order {\n  int64 id = 1;\n  string item = 2;\n}\n`;
    const { id } = await registry.register({ type: SchemaType.PROTOBUF, schema: v1 }, { subject: "orders-value" });
    await assert.rejects(
      registry.register({ type: SchemaType.PROTOBUF, schema: v1.replace("int64 id", "string id") }, { subject: "orders-value" }),
      (error) => error.status === 409,
    );
    const v2 = v1.replace("string item = 2;", "string item = 2;\n  int32 quantity = 3;");
    const { id: id2 } = await registry.register({ type: SchemaType.PROTOBUF, schema: v2 }, { subject: "orders-value" });
    assert.notEqual(id2, id);

    const kafka = kafkaOf(cluster);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: "orders", acks: -1, messages: [
      { value: await registry.encode(id, { id: 1, item: "tea" }) },
      { value: await registry.encode(id2, { id: 2, item: "cake", quantity: 3 }) },
    ] });
    await producer.disconnect();

    const reader = registryOf(capstan, cluster);
    const consumer = kafka.consumer({ groupId: "proto-readers" });
    await consumer.connect();
    await consumer.subscribe({ topic: "orders", fromBeginning: true });
    const decoded = [];
    await consumer.run({ eachMessage: async ({ message }) => decoded.push((await reader.decode(message.value)).toJSON()) });
    await eventually(() => decoded.length >= 2, "two decoded messages");
    await consumer.disconnect();
    // protobufjs renders int64 as a string in JSON.
    assert.deepEqual(decoded, [{ id: "1", item: "tea" }, { id: "2", item: "cake", quantity: 3 }]);
  });
});
