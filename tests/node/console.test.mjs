// The web console in a real browser (Debian chromium driven by playwright-core): a new user
// signs up, creates a cluster, copies the REST credentials, produces with @upstash/kafka using
// exactly those values, sees the usage, sets a budget and sees the banner. Plus: another
// account cannot reach those pages, forms without the CSRF token are refused, errors are shown
// next to their field, and log-ins are rate-limited.
//
// Screenshots of each main page are written to $CAPSTAN_SCREENSHOTS_DIR when it is set
// (docs/screenshots holds the committed ones).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Kafka } from "@upstash/kafka";
import { startCapstan, eventually } from "./harness.mjs";

const screenshots = process.env.CAPSTAN_SCREENSHOTS_DIR;
async function shoot(page, name) {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

// A cent a message, so a few dozen messages move the cost against a $1 budget; sweeps every second.
const PRICE_ARGS = ["--price-message-single-zone-micros", "10000", "--metering-interval", "1"];

describe("web console", () => {
  let capstan, browser, context, page;
  const email = `console-${Date.now()}@example.com`;
  const password = "a long enough password";
  const state = {};

  before(async () => {
    capstan = await startCapstan({ args: PRICE_ARGS });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: capstan.api });
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await capstan?.stop();
  });

  test("sign-up errors are shown next to their field", async () => {
    await page.goto(`${capstan.api}/signup`);
    await page.fill("#email", "not-an-address");
    await page.fill("#password", "whatever password");
    await page.click("button[type=submit].primary");
    await assert.match(await page.locator("#email-error").innerText(), /not a valid e-mail address/);
    assert.equal(await page.getAttribute("#email", "aria-invalid"), "true");
    await page.fill("#email", email);
    await page.fill("#password", "short");
    await page.click("button[type=submit].primary");
    await assert.match(await page.locator("#password-error").innerText(), /at least 10 characters/);
    assert.equal(await page.inputValue("#email"), email, "what was typed is kept");
  });

  test("a new user signs up and creates a cluster", async () => {
    await shoot(page, "signup");
    await page.fill("#password", password);
    await page.click("button[type=submit].primary");
    await page.waitForURL(`${capstan.api}/clusters`);
    assert.match(await page.locator("h1").innerText(), /Clusters/);
    // The price per 100K messages is shown beside each zone choice.
    assert.match(await page.locator("label.choice").first().innerText(), /\$1000\.00 per 100K messages/);
    // A bad name is explained next to the field.
    await page.fill("#name", "no/slashes");
    await page.click("text=Create cluster");
    assert.match(await page.locator("#name-error").innerText(), /cluster name/);
    await page.fill("#name", "orders");
    await page.check("input[name=zone][value=single]");
    await page.click("text=Create cluster");
    await page.waitForURL(/\/clusters\/[0-9a-f-]+$/);
    state.clusterUrl = page.url();
    assert.match(await page.locator("h1").innerText(), /orders/);
  });

  test("a topic is created with the plan's limits explained", async () => {
    await page.click("nav.tabs >> text=Topics");
    await page.fill("#topic-name", "events");
    await page.fill("#partitions", "many");
    await page.click("text=Create topic");
    assert.match(await page.locator("#partitions-error").innerText(), /whole number/);
    await page.fill("#partitions", "100000");
    await page.click("text=Create topic");
    assert.match(await page.locator("#partitions-error").innerText(), /at most/);
    await page.fill("#partitions", "1");
    await page.click("text=Create topic");
    await page.waitForSelector("td:text-is('events')");
    await shoot(page, "topics");

    // A second topic: grown (partitions only grow), then deleted.
    await page.fill("#topic-name", "scratch");
    await page.fill("#partitions", "1");
    await page.click("text=Create topic");
    const row = page.locator("tr", { has: page.locator("td:text-is('scratch')") });
    await row.locator("summary:text-is('Edit')").click();
    await row.locator("input[name=partitions]").fill("0");
    await row.locator("button:text-is('Save')").click();
    assert.match(await page.locator(".form-error").innerText(), /partitions/);
    const again = page.locator("tr", { has: page.locator("td:text-is('scratch')") });
    await again.locator("input[name=partitions]").fill("2");
    await again.locator("button:text-is('Save')").click();
    assert.equal(await page.locator("tr", { has: page.locator("td:text-is('scratch')") }).locator("td.num").first().innerText(), "2");
    const last = page.locator("tr", { has: page.locator("td:text-is('scratch')") });
    await last.locator("summary:text-is('Delete…')").click();
    await last.locator("button.danger").click();
    await page.waitForSelector("td:text-is('events')");
    assert.equal(await page.locator("td:text-is('scratch')").count(), 0);
  });

  test("the REST credentials are copied and work with @upstash/kafka as shown", async () => {
    await page.goto(state.clusterUrl);
    const copied = {};
    for (const name of ["rest-url", "username", "password"]) {
      await page.click(`button.copy[data-name=${name}]`);
      copied[name] = await page.evaluate(() => navigator.clipboard.readText());
    }
    assert.match(copied["rest-url"], /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(copied["rest-url"], await page.locator("#rest-url").innerText());
    assert.equal(copied.username, await page.locator("#username").innerText());
    // The password is hidden until revealed.
    assert.equal(await page.locator("#password").isVisible(), false);
    await page.click("text=Reveal password");
    assert.equal(copied.password, await page.locator("#password").innerText());
    // The snippet carries the same values.
    const snippet = await page.locator("#snippet-upstash").innerText();
    for (const value of Object.values(copied)) assert.ok(snippet.includes(value), `snippet has ${value}`);
    await shoot(page, "cluster");

    const kafka = new Kafka({ url: copied["rest-url"], username: copied.username, password: copied.password });
    const messages = Array.from({ length: 80 }, (_, i) => ({ topic: "events", value: `message ${i}` }));
    const results = await kafka.producer().produceMany(messages);
    assert.equal(results.length, 80);
    state.kafka = kafka;
  });

  test("usage appears on the usage page", async () => {
    await page.click("nav.tabs >> text=Usage");
    await eventually(async () => {
      await page.reload();
      return (await page.locator("#produced-total").innerText()) === "80";
    }, "80 produced messages on the usage page");
    assert.equal(await page.locator("#month-to-date").innerText(), "$0.80");
    assert.match(await page.locator("#topic-usage").innerText(), /events\s+80/);
    assert.equal(await page.locator("svg.chart").count(), 2);
    await shoot(page, "usage");
  });

  test("a budget is set and the banners follow the cost", async () => {
    await page.click("nav.tabs >> text=Budget");
    await page.fill("#budget", "one dollar");
    await page.click("text=Save budget");
    assert.match(await page.locator("#budget-error").innerText(), /whole dollars/);
    await page.fill("#budget", "1");
    await page.click("text=Save budget");
    await page.waitForURL(/\/budget$/);
    assert.equal(await page.locator("#cap").innerText(), "$1.00");
    await eventually(async () => {
      await page.reload();
      return (await page.locator(".banner").count()) > 0;
    }, "the 70% banner");
    assert.match(await page.locator(".banner").innerText(), /70% of this month's cap \(\$1\.00\)/);
    assert.equal(await page.locator("#cap-meter").getAttribute("value"), "80");
    await shoot(page, "budget");

    // Past the cap: the gateway refuses and the console says why.
    await state.kafka.producer().produceMany(Array.from({ length: 30 }, (_, i) => ({ topic: "events", value: `more ${i}` })));
    await eventually(async () => {
      await page.reload();
      return (await page.locator(".banner-danger").count()) > 0;
    }, "the cap-reached banner");
    assert.match(await page.locator(".banner-danger").innerText(), /reached its cap of \$1\.00.*10 messages a second/);
  });

  test("the cluster list shows state, zones, region and cost against the cap", async () => {
    await page.goto(`${capstan.api}/clusters`);
    const row = await page.locator("tbody tr").first().innerText();
    assert.match(row, /orders\s+active\s+Single zone\s+eu-west-1/i);
    assert.match(row, /\$1\.00 of \$1\.00/);
    await shoot(page, "clusters");
  });

  test("an API key is shown once, listed and revoked", async () => {
    await page.goto(`${capstan.api}/api-keys`);
    await page.fill("#key-name", "ci");
    await page.click("text=Create key");
    const key = await page.locator("#new-key").innerText();
    assert.ok(key.length > 20);
    const clusters = await fetch(`${capstan.api}/v2/kafka/clusters`, {
      headers: { authorization: `Basic ${Buffer.from(`${email}:${key}`).toString("base64")}` },
    });
    assert.equal(clusters.status, 200, "the key works on the provisioning API");
    await shoot(page, "api-keys");
    await page.goto(`${capstan.api}/api-keys`);
    assert.equal(await page.locator("#new-key").count(), 0, "the key is not shown again");
    await page.click("button[aria-label='Revoke key ci']");
    assert.equal(await page.locator("text=No API keys.").count(), 1);
    await page.goto(`${capstan.api}/invoices`);
    assert.match(await page.locator("main").innerText(), /No invoices yet/);
    await shoot(page, "invoices");
  });

  test("scoped credentials are created and deleted; the password is reset", async () => {
    await page.goto(state.clusterUrl);
    await page.fill("#credential-name", "bad name!");
    await page.click("text=Create credential");
    assert.match(await page.locator("#credential-name-error").innerText(), /credential name/);
    await page.fill("#credential-name", "reader");
    await page.fill("#credential-topic", "events");
    await page.selectOption("#credential-permissions", "CONSUME");
    await page.click("text=Create credential");
    const row = page.locator("#scoped-credentials tbody tr");
    assert.match(await row.innerText(), /reader\s+events\s+CONSUME/);
    await page.click("button[aria-label='Delete credential reader']");
    assert.equal(await page.locator("text=No scoped credentials.").count(), 1);

    const before = await page.locator("#password").textContent();
    await page.click("text=Reset password");
    await page.waitForURL(/#credentials$/);
    const after = await page.locator("#password").textContent();
    assert.notEqual(after, before, "a new password is shown");
  });

  test("a cluster is renamed, and deleted only after its name is typed", async () => {
    await page.goto(`${capstan.api}/clusters`);
    await page.fill("#name", "scratch");
    await page.click("text=Create cluster");
    await page.waitForURL(/\/clusters\/[0-9a-f-]+$/);
    await page.fill("#rename", "scratch-2");
    await page.click("button:text-is('Rename')");
    assert.match(await page.locator("h1").innerText(), /scratch-2/);
    await page.click("text=Delete cluster…");
    await page.fill("#confirm", "scratch");
    await page.click("button:text-is('Delete cluster')");
    assert.match(await page.locator("#confirm-error").innerText(), /Type the cluster's name, scratch-2/);
    await page.fill("#confirm", "scratch-2");
    await page.click("button:text-is('Delete cluster')");
    await page.waitForURL(`${capstan.api}/clusters`);
    assert.doesNotMatch(await page.locator("main").innerText(), /scratch-2/);
  });

  test("forms without this browser's CSRF token are refused", async () => {
    const csrf = await page.locator("input[name=csrf]").first().inputValue();
    const before = (await capstan.request("GET", "/v2/kafka/clusters")).length;
    const missing = await page.request.post(`${capstan.api}/clusters`, { form: { name: "sneaky", region: "eu-west-1", zone: "single" } });
    assert.equal(missing.status(), 403);
    const wrong = await page.request.post(`${capstan.api}/clusters`, {
      form: { name: "sneaky", region: "eu-west-1", zone: "single", csrf: csrf.replace(/.$/, (c) => (c === "0" ? "1" : "0")) },
    });
    assert.equal(wrong.status(), 403);
    // The token of another browser does not work either.
    const other = await browser.newContext();
    const otherPage = await other.newPage();
    await otherPage.goto(`${capstan.api}/login`);
    const foreign = await otherPage.locator("input[name=csrf]").first().inputValue();
    const replayed = await page.request.post(`${capstan.api}/clusters`, { form: { name: "sneaky", region: "eu-west-1", zone: "single", csrf: foreign } });
    assert.equal(replayed.status(), 403);
    await other.close();
    assert.equal((await capstan.request("GET", "/v2/kafka/clusters")).length, before, "nothing was created");
  });

  test("another account cannot reach this account's pages", async () => {
    const other = await browser.newContext();
    const intruder = await other.newPage();
    await intruder.goto(`${capstan.api}/signup`);
    await intruder.fill("#email", `intruder-${Date.now()}@example.com`);
    await intruder.fill("#password", "another long password");
    await intruder.click("button[type=submit].primary");
    await intruder.waitForURL(`${capstan.api}/clusters`);
    for (const suffix of ["", "/topics", "/usage", "/budget", "/delete"]) {
      const response = await intruder.goto(`${state.clusterUrl}${suffix}`);
      assert.equal(response.status(), 404, `${suffix || "/"} is not found for another account`);
      assert.doesNotMatch(await intruder.content(), /orders/);
    }
    await intruder.goto(`${capstan.api}/clusters`);
    const csrf = await intruder.locator("input[name=csrf]").first().inputValue();
    const deleted = await intruder.request.post(`${state.clusterUrl}/delete`, { form: { csrf, confirm: "orders" } });
    assert.equal(deleted.status(), 404);
    await other.close();
    const response = await page.goto(state.clusterUrl);
    assert.equal(response.status(), 200, "the owner still has the cluster");
  });

  test("log-ins are rate-limited per account", async () => {
    const other = await browser.newContext();
    const guesser = await other.newPage();
    await guesser.goto(`${capstan.api}/login`);
    for (let i = 0; i < 5; i++) {
      await guesser.fill("#email", email);
      await guesser.fill("#password", `wrong guess ${i}`);
      await guesser.click("button[type=submit].primary");
      assert.match(await guesser.locator("#login-error").innerText(), /wrong/);
    }
    await guesser.fill("#email", email);
    await guesser.fill("#password", password);
    const response = await Promise.all([guesser.waitForNavigation(), guesser.click("button[type=submit].primary")]);
    assert.equal(response[0].status(), 429, "even the right password waits once the account is locked");
    assert.match(await guesser.locator("#login-error").innerText(), /Too many failed log-ins/);
    await other.close();
  });

  test("pages fit a phone's width", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await context.storageState() });
    const small = await phone.newPage();
    for (const path of [new URL(state.clusterUrl).pathname, "/clusters", `${new URL(state.clusterUrl).pathname}/usage`]) {
      await small.goto(`${capstan.api}${path}`);
      const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} overflows a phone's width by ${overflow}px`);
    }
    await small.goto(state.clusterUrl);
    await shoot(small, "cluster-phone");
    await phone.close();
  });

  test("logging out ends the session", async () => {
    await page.goto(`${capstan.api}/clusters`);
    await page.click("text=Log out");
    await page.waitForURL(`${capstan.api}/login`);
    await page.goto(state.clusterUrl);
    assert.equal(new URL(page.url()).pathname, "/login");
  });

  test("a forgotten password is reset through the mailed link (capstan dev prints the mail)", async () => {
    await page.goto(`${capstan.api}/login`);
    await page.click("text=Reset it");
    await page.waitForURL(`${capstan.api}/forgot-password`);
    await page.fill("#email", email);
    await page.click("button[type=submit].primary");
    assert.match(await page.locator("#reset-sent").innerText(), /a link to choose a new password is on its way/);
    const link = await eventually(
      () => capstan.output().match(/http:\/\/\S+\/reset-password\?token=[A-Za-z0-9_-]+/)?.[0],
      "the reset link in capstan dev's output",
    );
    await page.goto(link);
    await page.fill("#password", "short");
    await page.click("button[type=submit].primary");
    assert.match(await page.locator("#password-error").innerText(), /at least 10 characters/);
    // Even while log-ins to the account are locked (the test above), the link lets its owner in.
    await page.fill("#password", "the new console password");
    await page.click("button[type=submit].primary");
    await page.waitForURL(`${capstan.api}/clusters`);
    await page.goto(link);
    await page.fill("#password", "yet another password");
    await page.click("button[type=submit].primary");
    assert.match(await page.locator("#reset-error").innerText(), /not valid/);
  });
});

describe("sign-up confirmed by mail (capstan dev --sign-up-confirmation email prints the mail)", () => {
  let capstan, browser;
  const email = `confirmed-${Date.now()}@example.com`;
  const password = "a long enough password";

  before(async () => {
    capstan = await startCapstan({ args: ["--sign-up-confirmation", "email"], account: false });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
  });

  after(async () => {
    await browser?.close();
    await capstan?.stop();
  });

  // Signs up `email` in a fresh browser; answers the page and what it said.
  async function signUp() {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${capstan.api}/signup`);
    await page.fill("#email", email);
    await page.fill("#password", password);
    await page.click("button[type=submit].primary");
    return { page, said: await page.locator("#sign-up-sent").innerText() };
  }

  test("the account exists once the mailed link is used, and a second sign-up reads the same", async () => {
    const first = await signUp();
    assert.match(first.said, /We sent a mail to/);
    const link = await eventually(
      () => capstan.output().match(/http:\/\/\S+\/confirm-sign-up\?token=[A-Za-z0-9_-]+/)?.[0],
      "the confirmation link in capstan dev's output",
    );
    // Fetching the link (as a mail scanner would) uses nothing up: it takes the button.
    assert.equal((await fetch(link)).status, 200);
    await first.page.goto(link);
    await first.page.click("#confirm");
    await first.page.waitForURL(`${capstan.api}/clusters`);

    // The address has an account now: the sign-up page says exactly what it said before,
    // and the mail (not the page) tells the owner.
    const second = await signUp();
    assert.equal(second.said, first.said);
    await eventually(
      () => capstan.output().includes("Subject: You already have a Capstan account"),
      "the note to the account's owner",
    );
    await second.page.goto(link);
    await second.page.click("#confirm");
    assert.match(await second.page.locator("#confirm-error").innerText(), /not valid/);
  });
});
