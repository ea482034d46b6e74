// Starts a real `capstan dev` on free ports in a temporary directory, and gives tests an
// account, a cluster and topics through the provisioning API.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";

export function capstanBinary() {
  if (process.env.CAPSTAN_BIN) return process.env.CAPSTAN_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/capstan/target");
  return join(target, "debug/capstan");
}

async function freePort() {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Spawns `capstan dev` on `dir` and the given ports; resolves once it answers /healthz.
async function spawnCapstan(dir, ports, args) {
  const child = spawn(
    capstanBinary(),
    ["dev", "--data-dir", join(dir, "data"), "--listen", `127.0.0.1:${ports.api}`, "--gateway-listen", `127.0.0.1:${ports.gateway}`,
      "--kafka-listen", `127.0.0.1:${ports.kafka}`, ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const run = { child, output: "" };
  child.stdout.on("data", (d) => (run.output += d));
  child.stderr.on("data", (d) => (run.output += d));
  const api = `http://127.0.0.1:${ports.api}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      if ((await fetch(`${api}/healthz`)).ok) break;
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`capstan dev did not start:\n${run.output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return run;
}

// `args` are extra `capstan dev` options (prices, metering interval). With `account: false` no
// account is made (for `--sign-up-confirmation email`, where a sign-up needs its mailed link),
// and request() is not there.
export async function startCapstan({ args = [], account = true } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "capstan-node-"));
  const ports = { api: await freePort(), gateway: await freePort(), kafka: await freePort() };
  let run = await spawnCapstan(dir, ports, args);
  const api = `http://127.0.0.1:${ports.api}`;
  const email = `sdk-${Date.now()}@example.com`;
  const password = "correct horse battery";
  let auth;
  if (account) {
    await call(api, "POST", "/v2/auth/signup", null, { email, password });
    const { token } = await call(api, "POST", "/v2/auth/login", null, { email, password });
    const { key } = await call(api, "POST", "/v2/api-keys", `Bearer ${token}`, { name: "node" });
    auth = `Basic ${Buffer.from(`${email}:${key}`).toString("base64")}`;
  }
  return {
    api,
    gateway: `http://127.0.0.1:${ports.gateway}`,
    kafka: `127.0.0.1:${ports.kafka}`,
    output: () => run.output,
    request: (method, path, body) => call(api, method, path, auth, body),
    // Another account on the same platform, with its own request().
    async otherAccount(otherEmail) {
      await call(api, "POST", "/v2/auth/signup", null, { email: otherEmail, password });
      const session = await call(api, "POST", "/v2/auth/login", null, { email: otherEmail, password });
      const made = await call(api, "POST", "/v2/api-keys", `Bearer ${session.token}`, { name: "node" });
      const otherAuth = `Basic ${Buffer.from(`${otherEmail}:${made.key}`).toString("base64")}`;
      return { request: (method, path, body) => call(api, method, path, otherAuth, body) };
    },
    // A shared cluster's pool prefix, which no API shows: read from the store (SQLite, through
    // Python's standard library) to play a tenant who guessed it.
    prefixOf(clusterId) {
      const script = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT prefix FROM clusters WHERE id = ?', (sys.argv[2],)).fetchone()[0])";
      return execFileSync("python3", ["-c", script, join(dir, "data", "capstan.db"), clusterId]).toString().trim();
    },
    // SIGKILL: no clean shutdown of anything (its brokers keep running, orphaned).
    async kill() {
      run.child.kill("SIGKILL");
      await new Promise((r) => (run.child.exitCode !== null || run.child.signalCode !== null ? r() : run.child.once("exit", r)));
    },
    // Starts it again on the same data and ports.
    async restart() {
      run = await spawnCapstan(dir, ports, args);
    },
    async stop() {
      run.child.kill("SIGTERM");
      await new Promise((r) => (run.child.exitCode !== null || run.child.signalCode !== null ? r() : run.child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function call(base, method, path, authorization, body) {
  const headers = { "content-type": "application/json" };
  if (authorization) headers.authorization = authorization;
  const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined || body === null ? undefined : JSON.stringify(body) });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

export async function createTopic(capstan, clusterId, name, partitions) {
  return await capstan.request("POST", "/v2/kafka/topic", {
    name, partitions, retention_time: -1, retention_size: -1, max_message_size: -1, cleanup_policy: "delete", cluster_id: clusterId,
  });
}

// Calls `fn` until it returns a truthy value (consumer instances join their group first).
export async function eventually(fn, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    // Polls: lets the clients' I/O run between checks.
    await new Promise((r) => setTimeout(r, 50));
  }
}
