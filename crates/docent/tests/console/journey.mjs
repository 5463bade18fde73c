// The web console's journeys in a real browser (Debian chromium driven by playwright-core),
// run by tests/console.rs against a live `docent serve`. Every step asserts what a person would
// see; any page error, CSP violation, request to another host, dialog opened by a document, or
// axe-core violation of impact serious or critical fails the run (exit code 1).
//
// Environment: DOCENT_BASE (http://127.0.0.1:PORT), DOCENT_SETUP_LINK, DOCENT_DATA_DIR (to read
// the mailed links), DOCENT_FIXTURES (a PDF and a DOCX to upload), DOCENT_TEST_CHROMIUM,
// DOCENT_TEST_NODE_MODULES, DOCENT_SCREENSHOTS. With DOCENT_JOURNEY=direct it runs only the
// direct-to-S3 upload journey, against a server whose blob store is the bucket at DOCENT_S3_ORIGIN.

import { createRequire } from "node:module";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("DOCENT_BASE");
const SETUP_LINK = env("DOCENT_SETUP_LINK");
const DATA_DIR = env("DOCENT_DATA_DIR");
const SHOTS = env("DOCENT_SCREENSHOTS");
const DIRECT = process.env.DOCENT_JOURNEY === "direct";
// Requests to the bucket are expected in the direct journey; to any other host, never.
const ALLOWED = new Set([new URL(BASE).origin, ...(DIRECT ? [new URL(env("DOCENT_S3_ORIGIN")).origin] : [])]);
const require = createRequire(join(env("DOCENT_TEST_NODE_MODULES"), "noop.js"));
const { chromium } = require("playwright-core");
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const OWNER = { email: "owner@example.com", password: "correct horse battery" };
const VIEWER = { email: "viewer@example.com", password: "another long password" };
const SECOND = { email: "second@example.com", password: "a third long password", renewed: "renewed long password" };
const XSS_NAME = "<img src=x onerror=window.__xss=1>.md";
const XSS_TEXT = `# <script>window.__xss=1</script>\n\nSafety <img src=x onerror="window.__xss=1"> notes about the vacation policy and <b onmouseover="window.__xss=1">bold</b> claims.\n`;
const HANDBOOK = `# Employee handbook\n\n## Vacation policy\n\nEvery employee gets thirty days of paid vacation per year. Vacation requests go to your manager two weeks ahead.\n\n## Expenses\n\nTravel expenses are reimbursed within ten working days when receipts are attached.\n`;
const CSV = "id,name,city,notes\n1,Ada,Paris,vacation planner for the office\n2,Bob,Berlin,POISON row the embedder refuses\n3,Cy,Rome,expense reports and receipts\n";

const failures = [];
const figures = {};
mkdirSync(SHOTS, { recursive: true });

function step(name) {
  console.log(`-- ${name}`);
}

/** Watches a page for script errors, CSP violations, dialogs and requests to other hosts. */
function guard(page, label) {
  page.on("pageerror", (e) => failures.push(`${label}: page error: ${e.message}`));
  page.on("console", (m) => {
    const t = m.text();
    if (m.type() === "error" && /Content Security Policy|Refused to/.test(t)) failures.push(`${label}: CSP: ${t}`);
  });
  page.on("dialog", async (d) => {
    failures.push(`${label}: a ${d.type()} dialog opened: ${d.message()}`);
    await d.dismiss();
  });
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!["data:", "blob:"].includes(u.protocol) && !ALLOWED.has(u.origin)) failures.push(`${label}: request to another host: ${r.url()}`);
  });
}

async function axe(page, screen) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, target: v.nodes[0] && v.nodes[0].target.join(" ") }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  figures.axe = figures.axe || {};
  figures.axe[screen] = { serious_or_critical: bad.length, other: result.length - bad.length };
  for (const v of bad) failures.push(`axe ${screen}: ${v.impact} ${v.id} (${v.nodes} nodes, e.g. ${v.target}): ${v.help}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

async function noXss(page, where) {
  const state = await page.evaluate(() => ({ xss: window.__xss, imgs: document.querySelectorAll('img[src="x"], script:not([src]), b[onmouseover]').length }));
  assert.equal(state.xss, undefined, `${where}: a document's script ran`);
  assert.equal(state.imgs, 0, `${where}: document text became markup`);
}

/** The console link of the newest mail of `kind` (invite, verify_email, reset_password) to `to`. */
function mailedLink(kind, to, route) {
  const dir = join(DATA_DIR, "mail");
  const mails = readdirSync(dir)
    .filter((f) => f.includes(`-${kind}-`))
    .sort()
    .map((f) => readFileSync(join(dir, f), "utf8"))
    .filter((m) => m.startsWith(`To: ${to}\n`));
  const mail = mails[mails.length - 1] || "";
  const link = mail.match(new RegExp(`https?://\\S+#/${route}\\?token=\\S+`));
  assert.ok(link, `a ${kind} mail to ${to} with a console link: ${mail}`);
  return link[0];
}

/** An access token of the owner, signed in through the API (as a script would). */
let ownerAccess = null;
async function ownerToken() {
  if (!ownerAccess) {
    const r = await fetch(`${BASE}/api/v1/auth/signin`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(OWNER),
    });
    assert.equal(r.status, 200);
    ownerAccess = (await r.json()).access_token;
  }
  return ownerAccess;
}

const browser = await chromium.launch({
  executablePath: env("DOCENT_TEST_CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

let page = null;

/** Opens the setup link in a new desktop context, creates the owner and lands on Collections. */
async function firstRun() {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await ctx.newPage();
  guard(page, "owner");
  page.setDefaultTimeout(20_000);

  step("first load: the setup link opens the console with the token filled in");
  let transferred = 0;
  const sizes = [];
  page.on("response", async (r) => {
    if (!r.url().startsWith(BASE) || r.url().includes("/api/")) return;
    try {
      const s = await r.request().sizes();
      transferred += s.responseBodySize + s.responseHeadersSize;
      sizes.push(r.headers()["content-encoding"] || "identity");
    } catch {
      // A response without sizes (aborted): not counted.
    }
  });
  const t0 = Date.now();
  await page.goto(SETUP_LINK);
  const token = new URL(SETUP_LINK).hash.split("token=")[1];
  await page.getByLabel("Setup token").waitFor();
  const interactive = Date.now() - t0;
  await page.waitForLoadState("networkidle");
  figures.first_load_bytes = transferred;
  figures.first_load_encodings = [...new Set(sizes)];
  figures.time_to_interactive_ms = interactive;
  figures.dom_content_loaded_ms = await page.evaluate(() => Math.round(performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd));
  assert.equal(await page.getByLabel("Setup token").inputValue(), token);
  assert.ok(!page.url().includes("token="), "the token left the address bar");
  await axe(page, "setup");
  await shot(page, "setup");

  step("setup creates the owner and signs in");
  await page.getByLabel("Your email").fill(OWNER.email);
  await page.getByLabel("Password").fill(OWNER.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Collections", level: 1 }).waitFor();
  const cookies = await ctx.cookies();
  const refresh = cookies.find((c) => c.name === "docent_refresh");
  assert.ok(refresh, "the refresh token is a cookie");
  assert.equal(refresh.httpOnly, true);
  assert.equal(refresh.sameSite, "Strict");
  assert.equal(refresh.path, "/api/v1/auth");
  assert.equal(await page.evaluate(() => document.cookie), "", "no cookie is readable by scripts");
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)).then((s) => /eyJ/.test(s)), false, "no token in storage");

  step("a reload keeps the session (refresh from the cookie)");
  await page.reload();
  await page.getByRole("heading", { name: "Collections", level: 1 }).waitFor();
  await axe(page, "collections");

  return ctx;
}

/** Creates a collection from the Collections page; resolves with its page's address. */
async function createCollection(name) {
  step("create a collection");
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create collection" }).click();
  await page.getByRole("heading", { name, level: 1 }).waitFor();
  return page.url();
}

/** The upload row of a file on a collection page. */
function uploadRow(name) {
  return page.locator(`li.upload[data-filename="${name.replace(/"/g, '\\"')}"]`);
}

/**
 * Direct uploads: with an S3 blob store the console sends each file straight to the bucket
 * with a presigned PUT (progress per file), completes it through the API, and never posts the
 * bytes to the server.
 */
async function directJourney() {
  await firstRun();
  await createCollection("Direct");
  step("upload straight to the bucket");
  const bucket = new URL(env("DOCENT_S3_ORIGIN")).origin;
  const puts = [];
  const posted = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin === bucket && r.method() === "PUT") puts.push(u.pathname);
    if (u.origin === new URL(BASE).origin && r.method() === "POST" && /\/documents$/.test(u.pathname)) posted.push(u.pathname);
  });
  await page.setInputFiles("#file-input", [
    { name: "handbook.md", mimeType: "text/markdown", buffer: Buffer.from(HANDBOOK) },
    { name: "plain.pdf", mimeType: "application/pdf", buffer: readFileSync(join(env("DOCENT_FIXTURES"), "plain.pdf")) },
  ]);
  for (const name of ["handbook.md", "plain.pdf"]) {
    await uploadRow(name).locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
    const bar = uploadRow(name).locator("progress").first();
    assert.equal(await bar.getAttribute("value"), await bar.getAttribute("max"), `${name}: the bar is full`);
  }
  assert.equal(puts.length, 2, `one PUT to the bucket per file: ${puts}`);
  assert.equal(posted.length, 0, `no bytes posted to the server: ${posted}`);
  await page.locator("table.documents").getByText("plain.pdf", { exact: true }).waitFor();
  await shot(page, "direct-upload");
}

/** Every journey of the issue, in order, with its checks. */
async function fullJourney() {
  const ctx = await firstRun();
  const collectionUrl = await createCollection("Handbook");

  step("upload a PDF, a DOCX, markdown, a CSV with a bad row and an XSS document; watch them finish");
  const FIXTURES = env("DOCENT_FIXTURES");
  await page.setInputFiles("#file-input", [
    { name: "handbook.md", mimeType: "text/markdown", buffer: Buffer.from(HANDBOOK) },
    { name: "people.csv", mimeType: "text/csv", buffer: Buffer.from(CSV) },
    { name: XSS_NAME, mimeType: "text/markdown", buffer: Buffer.from(XSS_TEXT) },
    { name: "plain.pdf", mimeType: "application/pdf", buffer: readFileSync(join(FIXTURES, "plain.pdf")) },
    {
      name: "report.docx",
      mimeType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      buffer: readFileSync(join(FIXTURES, "headings_list_table_footnote.docx")),
    },
  ]);
  const row = uploadRow;
  await row("handbook.md").locator("progress").waitFor();
  await row("handbook.md").locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
  await row("people.csv").locator('[data-status="partially_completed"]').waitFor({ timeout: 60_000 });
  await row(XSS_NAME).locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
  await row("plain.pdf").locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
  await row("report.docx").locator('[data-status="completed"]').waitFor({ timeout: 60_000 });
  const csvWhy = await row("people.csv").locator(".why").textContent();
  assert.ok(/rows/.test(csvWhy), `the partial failure is explained: ${csvWhy}`);
  await page.locator('table.documents [data-status="partially_completed"]').waitFor();
  await page.locator("table.documents").getByText(XSS_NAME, { exact: true }).waitFor();
  await noXss(page, "collection page");
  await axe(page, "collection");
  await shot(page, "collection");

  step("status filter");
  await page.getByLabel("Status").selectOption("partially_completed");
  await page.waitForURL(/status=partially_completed/);
  await page.locator("table.documents tbody tr").first().waitFor();
  assert.equal(await page.locator("table.documents tbody tr").count(), 1);
  await page.getByLabel("Status").selectOption("");
  await page.waitForURL((u) => !u.hash.includes("status="));

  step("file-name search and pagination");
  await page.getByLabel("File name contains").fill("PEOPLE");
  await page.getByRole("button", { name: "Find" }).click();
  await page.waitForURL(/q=PEOPLE/);
  await page.locator("table.documents tbody tr").first().waitFor();
  await page.waitForFunction(() => document.querySelectorAll("table.documents tbody tr").length === 1);
  assert.equal(await page.locator("table.documents tbody tr td a").first().textContent(), "people.csv");
  await page.getByLabel("File name contains").fill("no such file");
  await page.getByRole("button", { name: "Find" }).click();
  await page.getByText("No documents match these filters.").waitFor();
  await page.goto(`${collectionUrl}?per=2`);
  const names = async () => page.locator("table.documents tbody tr td:first-child a").allTextContents();
  await page.waitForFunction(() => document.querySelectorAll("table.documents tbody tr").length === 2);
  const seen = await names();
  for (let pages = 1; ; pages += 1) {
    const next = page.getByRole("link", { name: "Next page" });
    if (!(await next.count())) break;
    assert.ok(pages < 5, "at most three pages of two");
    const before = JSON.stringify(await names());
    await next.click();
    await page.waitForFunction((b) => {
      const now = Array.from(document.querySelectorAll("table.documents tbody tr td:first-child a"), (a) => a.textContent);
      return now.length > 0 && JSON.stringify(now) !== b;
    }, before);
    seen.push(...(await names()));
  }
  assert.equal(new Set(seen).size, 5, `every document once over the pages: ${seen}`);
  await page.getByRole("link", { name: "First page" }).click();
  await page.waitForFunction(() => document.querySelectorAll("table.documents tbody tr").length === 2);
  await page.goto(collectionUrl);
  await page.waitForFunction(() => document.querySelectorAll("table.documents tbody tr").length === 5);

  step("the CSV's document page: failed rows, passages");
  await page.locator("table.documents").getByRole("link", { name: "people.csv" }).click();
  await page.getByRole("heading", { name: "people.csv", level: 1 }).waitFor();
  await page.getByRole("heading", { name: /Rows that failed \(1\)/ }).waitFor();
  await page.locator("ol.chunks li").first().waitFor();
  assert.ok((await page.locator("ol.chunks li").count()) >= 2, "the good rows are passages");
  await page.getByRole("button", { name: "Retry failed rows" }).waitFor();
  await axe(page, "document");
  await shot(page, "document");

  step("the XSS document's page renders its name and text as text");
  await page.goto(collectionUrl);
  await page.locator("table.documents").getByRole("link", { name: XSS_NAME }).click();
  await page.getByRole("heading", { name: XSS_NAME, level: 1 }).waitFor();
  await page.locator("ol.chunks li").first().waitFor();
  await noXss(page, "document page");

  step("search with highlighted snippets");
  await page.getByRole("link", { name: "Search" }).click();
  await page.getByRole("heading", { name: "Search", level: 1 }).waitFor();
  await page.getByLabel("Query").fill("vacation policy");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator(".hit mark").first().waitFor();
  const marked = (await page.locator(".hit mark").first().textContent()).toLowerCase();
  assert.ok(["vacation", "policy"].includes(marked), `a matched word is marked: ${marked}`);
  await noXss(page, "search results");
  await page.getByText("More filters").click();
  await page.getByLabel("Uploaded before").fill("2000-01-01");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.getByText("Nothing matched.").waitFor();
  await page.getByLabel("Uploaded before").fill("");
  await page.getByLabel("Metadata (JSON)").fill("{not json");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator(".results .error").getByText("invalid_json").waitFor();
  await page.getByLabel("Metadata (JSON)").fill("");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator(".hit mark").first().waitFor();
  await axe(page, "search");
  await shot(page, "search");

  step("ask, and open a citation with the cited span highlighted");
  await page.getByRole("button", { name: "Ask" }).click();
  await page.locator(".answer .answer-text").waitFor();
  await page.locator(".answer button.cite").first().click();
  const dialog = page.locator("dialog.panel");
  await dialog.locator("blockquote mark").waitFor();
  const span = await dialog.locator("blockquote mark").textContent();
  assert.ok(span.trim().length > 10, `the cited sentence is highlighted: ${span}`);
  await axe(page, "citation");
  await shot(page, "citation");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });

  step("create a bot");
  await page.getByRole("link", { name: "Bots" }).click();
  await page.getByRole("link", { name: "New bot" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Helper");
  await page.getByLabel("Handbook").check();
  await page.getByLabel("Welcome message").fill("Ask me about the handbook.");
  await page.getByLabel("Allowed origins").fill("https://www.example.com");
  await axe(page, "bot builder");
  await page.getByRole("button", { name: "Create bot" }).click();
  await page.getByRole("heading", { name: "Helper", level: 1 }).waitFor();
  await page.getByText("Ask me about the handbook.").waitFor();

  step("chat: a streamed, cited answer");
  const streamed = page.waitForResponse((r) => r.url().includes("/chat") && r.request().method() === "POST");
  await page.getByLabel("Your question").fill("How many days of paid vacation does every employee get per year?");
  await page.getByRole("button", { name: "Send" }).click();
  const resp = await streamed;
  assert.ok(resp.headers()["content-type"].startsWith("text/event-stream"), "the answer streams");
  const events = await resp.text();
  assert.ok(/event: ?start/.test(events) && /event: ?delta/.test(events) && /event: ?done/.test(events), events.slice(0, 300));
  const answer = page.locator(".msg.assistant[data-answered-by]");
  await answer.waitFor();
  assert.equal(await answer.getAttribute("data-answered-by"), "extractive", events);
  await answer.getByText(/Extractive answer/).waitFor();
  await answer.locator("button.cite").first().click();
  await dialog.locator("blockquote mark").waitFor();
  await page.keyboard.press("Escape");
  await page.locator(".conversations li button").first().waitFor();
  await axe(page, "chat");
  await shot(page, "chat");

  step("reopen the conversation");
  await page.getByRole("button", { name: "New conversation" }).click();
  assert.equal(await page.locator(".msg.user").count(), 0);
  await page.locator(".conversations li button").first().click();
  await page.locator(".msg.user").first().waitFor();
  assert.equal(await page.getByRole("link", { name: "Embed" }).count(), 1, "the owner has an Embed tab");

  step("delete the conversation");
  const convId = await page.locator(".conversations li[data-conversation]").first().getAttribute("data-conversation");
  await page.locator(".conversations li[data-conversation] button.danger").first().click();
  await page.getByRole("button", { name: "Delete conversation", exact: true }).click();
  await page.locator(".conversations").getByText("No conversations yet.").waitFor();
  assert.equal(await page.locator(".msg.user").count(), 0, "the open conversation is closed");
  const gone = await fetch(`${BASE}/api/v1/conversations/${convId}`, { headers: { authorization: `Bearer ${await ownerToken()}` } });
  assert.equal(gone.status, 404, "the conversation is deleted on the server");

  step("create and revoke an API key");
  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByRole("heading", { name: "API keys", level: 1 }).waitFor();
  await page.getByLabel("Name", { exact: true }).fill("ci");
  await page.getByLabel("Handbook").check();
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = await page.locator("input.secret").inputValue();
  await page.locator("tr[data-key]").filter({ hasText: "1 collection(s)" }).waitFor();
  assert.ok(secret.startsWith("dk_"), "the secret is shown once");
  const keyCheck = await fetch(`${BASE}/api/v1/collections`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(keyCheck.status, 200, "the new key works");
  await axe(page, "keys");
  await shot(page, "keys");
  await page.getByRole("button", { name: "Revoke ci" }).click();
  await page.getByRole("button", { name: "Revoke key" }).click();
  await page.locator("table").getByText("Revoked").waitFor();
  const revoked = await fetch(`${BASE}/api/v1/collections`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(revoked.status, 401, "the revoked key is refused");

  step("a file docent cannot read fails with a sentence and its code");
  await page.goto(collectionUrl);
  await page.getByRole("heading", { name: "Handbook", level: 1 }).waitFor();
  await page.setInputFiles("#file-input", [
    { name: "broken.bin", mimeType: "application/octet-stream", buffer: Buffer.from([0, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0, 0, 7, 8]) },
  ]);
  await row("broken.bin").locator('[data-status="failed"]').waitFor({ timeout: 60_000 });
  const why = await row("broken.bin").locator(".why").textContent();
  assert.ok(/cannot read/.test(why) && /unsupported_format/.test(why), `the failure is explained: ${why}`);

  step("tasks: retry the failed task");
  await page.getByRole("link", { name: "Tasks" }).click();
  await page.locator("tr[data-task]").first().waitFor();
  await axe(page, "tasks");
  await page.getByLabel("Show").selectOption("failed");
  await page.waitForURL(/filter=failed/);
  const failedTask = page.locator("tr[data-task]").filter({ hasText: "unsupported_format" }).first();
  await failedTask.waitFor();
  const taskId = await failedTask.getAttribute("data-task");
  const bearer = await ownerToken();
  const task = async () => (await fetch(`${BASE}/api/v1/tasks/${taskId}`, { headers: { authorization: `Bearer ${bearer}` } })).json();
  const before = await task();
  await failedTask.getByRole("button", { name: "Retry" }).click();
  // The retried task runs again, and fails again (the file is still unreadable).
  for (let i = 0; ; i += 1) {
    const now = await task();
    if (now.updated_at !== before.updated_at && now.status === "failed") break;
    assert.ok(i < 300, `the retried task did not run again: ${JSON.stringify(now)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await page.locator(".error").count(), 0, "retry showed no error");

  step("the task monitor counts the queue and refreshes itself");
  const counts = await (await fetch(`${BASE}/api/v1/tasks/counts`, { headers: { authorization: `Bearer ${bearer}` } })).json();
  const done = counts.by_status.completed + counts.by_status.partially_completed;
  assert.ok(done >= 5 && counts.by_status.failed >= 1, JSON.stringify(counts));
  const shows = (key, n) =>
    page
      .locator(`li[data-count="${key}"] strong`, { hasText: new RegExp(`^${n}$`) })
      .waitFor()
      .catch(async (e) => {
        const shown = await page.locator(".counts").textContent();
        throw new Error(`the monitor shows ${shown}; the API counts ${JSON.stringify(counts)} (${key} = ${n}): ${e.message}`);
      });
  await shows("completed", done);
  await shows("failed", counts.by_status.failed);
  await shows("dead", counts.dead_lettered);
  await shot(page, "tasks");
  // One more upload while the monitor is open: its count moves without a reload.
  const upload = new FormData();
  upload.append("file", new Blob(["# Late\n\nA late note about vacation.\n"]), "late.md");
  const added = await fetch(`${collectionUrl.replace(/.*#\/collections\//, `${BASE}/api/v1/collections/`)}/documents`, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}` },
    body: upload,
  });
  assert.equal(added.status, 202, await added.text());
  await page.locator('li[data-count="completed"] strong', { hasText: new RegExp(`^${done + 1}$`) }).waitFor({ timeout: 30_000 });

  step("rename the collection");
  await page.goto(collectionUrl);
  await page.getByRole("heading", { name: "Handbook", level: 1 }).waitFor();
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("New name").fill("Handbook 2026");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { name: "Handbook 2026", level: 1 }).waitFor();

  step("invite a viewer from the members page; the mailed link opens the console");
  await page.getByRole("link", { name: "Members" }).click();
  await page.getByRole("heading", { name: "Members", level: 1 }).waitFor();
  await page.getByLabel("Email").fill(VIEWER.email);
  await page.getByLabel("Role", { exact: true }).selectOption("viewer");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await page.getByText(`Invitation sent to ${VIEWER.email} as viewer`).waitFor();
  await axe(page, "members");
  const link = [mailedLink("invite", VIEWER.email, "accept-invite")];

  // The phone pass runs in the dark theme, so axe checks its contrast too.
  const vctx = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const vpage = await vctx.newPage();
  guard(vpage, "viewer");
  vpage.setDefaultTimeout(20_000);
  await vpage.goto(link[0]);
  await vpage.getByRole("link", { name: "Create an account" }).click();
  await vpage.getByLabel("Email").fill(VIEWER.email);
  await vpage.getByLabel("Password").fill(VIEWER.password);
  await vpage.getByRole("button", { name: "Create account" }).click();
  await vpage.getByRole("heading", { name: "Collections", level: 1 }).waitFor();

  step("a viewer sees no write controls (phone width)");
  assert.equal(await vpage.locator(".who .role").textContent(), "viewer");
  assert.equal(await vpage.getByRole("button", { name: "Create collection" }).count(), 0);
  await vpage.getByRole("link", { name: "Handbook" }).click();
  await vpage.getByRole("heading", { name: "Handbook", level: 1 }).waitFor();
  await vpage.locator("table.documents tbody tr").first().waitFor();
  for (const name of ["Choose files", "Delete collection", "Rename"]) {
    assert.equal(await vpage.getByText(name, { exact: true }).count(), 0, `viewer sees ${name}`);
  }
  assert.equal(await vpage.locator("table.documents button").count(), 0, "no delete buttons");
  await noXss(vpage, "viewer collection page");
  const overflow = await vpage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling at 390 px (${overflow} px)`);
  await axe(vpage, "collection (phone)");
  await shot(vpage, "phone-collection");
  await vpage.getByRole("link", { name: "Bots" }).click();
  await vpage.getByRole("link", { name: "Helper" }).click();
  await vpage.getByRole("heading", { name: "Helper", level: 1 }).waitFor();
  assert.equal(await vpage.getByRole("button", { name: "Delete bot" }).count(), 0);
  assert.equal(await vpage.getByRole("link", { name: "API keys" }).count(), 0);
  assert.equal(await vpage.getByRole("link", { name: "Members" }).count(), 0);
  assert.equal(await vpage.getByRole("link", { name: "Embed" }).count(), 0, "a viewer has no Embed tab");
  await vpage.getByRole("link", { name: "Settings" }).click();
  await vpage.getByLabel("Name", { exact: true }).waitFor();
  assert.equal(await vpage.getByLabel("Name", { exact: true }).isDisabled(), true, "settings are read-only");
  assert.equal(await vpage.getByRole("button", { name: "Save changes" }).count(), 0);
  const vover = await vpage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(vover <= 1, `no horizontal scrolling at 390 px on the bot page (${vover} px)`);
  await shot(vpage, "phone-bot");
  await vpage.getByRole("link", { name: "Search" }).click();
  await vpage.getByLabel("Query").fill("vacation");
  await vpage.getByRole("button", { name: "Search", exact: true }).click();
  await vpage.locator(".hit mark").first().waitFor();
  await axe(vpage, "search (phone)");

  step("keyboard: sign-in form by keyboard alone");
  await vctx.clearCookies();
  const kpage = await vctx.newPage();
  guard(kpage, "keyboard");
  await kpage.goto(`${BASE}/#/signin`);
  await kpage.getByRole("heading", { name: "Sign in to docent" }).waitFor();
  // The page focuses its heading; the next Tab stop is the email field.
  const focused = () => kpage.evaluate(() => document.activeElement && (document.activeElement.getAttribute("type") || document.activeElement.tagName));
  await kpage.keyboard.press("Tab");
  assert.equal(await focused(), "email");
  await kpage.keyboard.type(VIEWER.email);
  await kpage.keyboard.press("Tab");
  assert.equal(await focused(), "password");
  await kpage.keyboard.type(VIEWER.password);
  await kpage.keyboard.press("Enter");
  await kpage.getByRole("heading", { name: "Collections", level: 1 }).waitFor();
  await axe(kpage, "collections (phone)");

  await accountJourney();

  step("sign-out revokes the session");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to docent" }).waitFor();
  assert.equal((await ctx.cookies()).some((c) => c.name === "docent_refresh" && c.value), false, "the cookie is gone");
  await axe(page, "sign-in");
  await page.goto(`${BASE}/#/collections`);
  await page.getByRole("heading", { name: "Sign in to docent" }).waitFor();
}

/**
 * Sign-up, email verification, password reset, and the workspace switcher once the new
 * account joins the owner's workspace (the owner's page invites it).
 */
async function accountJourney() {
  const owner = page;
  const sctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const spage = await sctx.newPage();
  guard(spage, "second");
  spage.setDefaultTimeout(20_000);

  step("sign up with a workspace of one's own");
  await spage.goto(`${BASE}/#/signin`);
  await spage.getByRole("link", { name: "Create an account" }).click();
  await spage.getByRole("heading", { name: "Create an account" }).waitFor();
  await axe(spage, "sign-up");
  await spage.getByLabel("Email").fill(SECOND.email);
  await spage.getByLabel("Password").fill(SECOND.password);
  await spage.getByLabel("Workspace name").fill("Second space");
  await spage.getByRole("button", { name: "Create account" }).click();
  await spage.getByRole("heading", { name: "Collections", level: 1 }).waitFor();
  await spage.getByText("No collections yet.").waitFor();

  step("the mailed link confirms the address");
  await spage.goto(mailedLink("verify_email", SECOND.email, "verify-email"));
  await spage.getByText("Your email address is confirmed.").waitFor();
  assert.ok(!spage.url().includes("token="), "the token left the address bar");
  await axe(spage, "verify email");

  step("password reset: request, mailed link, new password, sign in");
  await spage.goto(`${BASE}/#/collections`);
  await spage.getByRole("button", { name: "Sign out" }).click();
  await spage.getByRole("heading", { name: "Sign in to docent" }).waitFor();
  await spage.getByRole("link", { name: "Forgot your password?" }).click();
  await spage.getByLabel("Email").fill(SECOND.email);
  await spage.getByRole("button", { name: "Send reset link" }).click();
  await spage.getByText("a reset link is on its way").waitFor();
  await axe(spage, "forgot password");
  await spage.goto(mailedLink("reset_password", SECOND.email, "reset-password"));
  await spage.getByLabel("New password").fill(SECOND.renewed);
  await axe(spage, "reset password");
  await spage.getByRole("button", { name: "Set password" }).click();
  await spage.getByText("Your password is changed.").waitFor();
  await spage.getByRole("link", { name: "Sign in" }).click();
  await spage.getByLabel("Email").fill(SECOND.email);
  await spage.getByLabel("Password").fill(SECOND.password);
  await spage.getByRole("button", { name: "Sign in" }).click();
  await spage.locator(".error").getByText(/invalid_credentials|credentials/).first().waitFor();
  await spage.getByLabel("Password").fill(SECOND.renewed);
  await spage.getByRole("button", { name: "Sign in" }).click();
  await spage.getByRole("heading", { name: "Collections", level: 1 }).waitFor();

  step("joining the owner's workspace; the switcher moves between the two");
  await owner.getByRole("link", { name: "Members" }).click();
  await owner.getByRole("heading", { name: "Members", level: 1 }).waitFor();
  await owner.getByLabel("Email").fill(SECOND.email);
  await owner.getByLabel("Role", { exact: true }).selectOption("member");
  await owner.getByRole("button", { name: "Send invitation" }).click();
  await owner.getByText(`Invitation sent to ${SECOND.email} as member`).waitFor();
  await spage.goto(mailedLink("invite", SECOND.email, "accept-invite"));
  await spage.getByRole("button", { name: "Join the workspace" }).click();
  await spage.getByRole("link", { name: /Handbook/ }).waitFor();
  const switcher = spage.getByLabel("Workspace");
  await switcher.waitFor();
  assert.equal(await switcher.locator("option").count(), 2);
  assert.equal(await spage.locator(".who .role").textContent(), "member");
  const mine = await switcher.locator("option", { hasText: "Second space" }).getAttribute("value");
  await switcher.selectOption(mine);
  await spage.getByText("No collections yet.").waitFor();
  await spage.locator(".who .role").getByText("owner").waitFor();
  await axe(spage, "workspace switcher");
  await sctx.close();
}

try {
  if (DIRECT) await directJourney();
  else await fullJourney();
} catch (e) {
  failures.push(`journey stopped: ${e.stack || e}`);
  if (page) {
    await page.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
    console.log(`page at failure: ${page.url()}\n${await page.evaluate(() => document.body.innerText).catch(() => "?")}`);
  }
} finally {
  await browser.close();
}

console.log(`FIGURES ${JSON.stringify(figures)}`);
if (failures.length) {
  for (const f of failures) console.error(`FAIL ${f}`);
  process.exit(1);
}
console.log("console journeys: all passed");
