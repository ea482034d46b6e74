// Produces and consumes over SASL/SCRAM-SHA-512 with kafkajs, using the credentials a Capstan
// cluster returned. Usage: node kafkajs-roundtrip.mjs BOOTSTRAP USERNAME PASSWORD TOPIC COUNT
// Prints one JSON line: {"produced":N,"consumed":[values…]}.
import { Kafka, logLevel } from "kafkajs";

const [bootstrap, username, password, topic, countText] = process.argv.slice(2);
const count = Number(countText ?? "10");
const kafka = new Kafka({
  clientId: "capstan-test",
  brokers: [bootstrap],
  sasl: { mechanism: "scram-sha-512", username, password },
  logLevel: logLevel.NOTHING,
  retry: { retries: 3 },
});

const producer = kafka.producer();
await producer.connect();
const runId = `${Date.now()}`;
const messages = Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: `${runId}-${i}` }));
await producer.send({ topic, acks: -1, messages });
await producer.disconnect();

const consumer = kafka.consumer({ groupId: `g-${runId}` });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
const seen = [];
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length}/${count} messages`)), 30000);
  consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value.toString();
      if (value.startsWith(runId)) seen.push(value);
      if (seen.length === count) {
        clearTimeout(timer);
        resolve();
      }
    },
  });
});
await consumer.disconnect();
console.log(JSON.stringify({ produced: count, consumed: seen.sort() }));
