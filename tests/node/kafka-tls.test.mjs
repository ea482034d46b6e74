// kafkajs 2.2.4 with `ssl: { ca }` and SCRAM-SHA-512 against the Kafka gateway's TLS listener
// (`capstan dev --kafka-tls-cert/--kafka-tls-key`), as Upstash's users connected with
// `ssl: true`: a test CA made with openssl signs the gateway's certificate for 127.0.0.1.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { eventually, startCapstan } from "./harness.mjs";

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";

// A CA and a certificate it signs for 127.0.0.1, in `dir`.
function certificates(dir) {
  const file = (name) => join(dir, name);
  const openssl = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=capstan test CA",
    "-keyout", file("ca.key"), "-out", file("ca.pem"));
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
    "-keyout", file("gateway.key"), "-out", file("gateway.csr"));
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", file("gateway.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
    "-CAcreateserial", "-days", "2", "-extfile", file("san.ext"), "-out", file("gateway.pem"));
  return { ca: file("ca.pem"), certificate: file("gateway.pem"), key: file("gateway.key") };
}

function kafkaOf(cluster, ssl) {
  return new Kafka({
    clientId: "capstan-tls-test",
    brokers: [cluster.tcp_endpoint],
    ssl,
    sasl: { mechanism: "scram-sha-512", username: cluster.username, password: cluster.password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    connectionTimeout: 5000,
  });
}

describe("kafkajs over TLS to the Kafka gateway", () => {
  let capstan;
  let dir;
  let files;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "capstan-tls-"));
    files = certificates(dir);
    capstan = await startCapstan({ args: ["--kafka-tls-cert", files.certificate, "--kafka-tls-key", files.key] });
  });
  after(async () => {
    await capstan?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("ssl: { ca } with SCRAM-SHA-512: admin, produce and a group consume; no CA or no TLS gets nowhere", async () => {
    const cluster = await capstan.request("POST", "/v2/kafka/cluster", { name: "over-tls", region: "eu-west-1" });
    const kafka = kafkaOf(cluster, { ca: [readFileSync(files.ca, "utf8")] });

    const admin = kafka.admin();
    await admin.connect();
    assert.equal(await admin.createTopics({ topics: [{ topic: "secure", numPartitions: 1 }] }), true);
    assert.deepEqual(await admin.listTopics(), ["secure"]);
    await admin.disconnect();

    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: "secure", acks: -1, messages: [{ value: "one" }, { value: "two" }] });
    await producer.disconnect();

    const seen = [];
    const consumer = kafka.consumer({ groupId: "readers", sessionTimeout: 10000, heartbeatInterval: 1000 });
    await consumer.connect();
    await consumer.subscribe({ topic: "secure", fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); } });
    await eventually(() => seen.length === 2, "both messages over TLS", 60000);
    await consumer.disconnect();
    assert.deepEqual(seen, ["one", "two"]);

    // The certificate is verified: without the CA, the handshake fails.
    const untrusting = kafkaOf(cluster, true).admin();
    await assert.rejects(untrusting.connect(), (error) => /certificate|issuer/i.test(error.message));
    // A client that does not speak TLS gets nowhere either.
    const cleartext = kafkaOf(cluster, undefined).admin();
    await assert.rejects(cleartext.connect());
  });
});
