// The embeddable chat widget in a real browser (Debian chromium driven by playwright-core),
// run by tests/widget.rs against a live `docent serve` whose chat model is the fake
// OpenAI-compatible server. This script serves the host pages itself, from origins other than
// docent's: http://127.0.0.2:PORT (allowed) and http://127.0.0.3:PORT (not allowed), with a
// strict Content-Security-Policy of their own and aggressive CSS. Any page error, CSP
// violation (other than the refused frame's), dialog, a global set by a payload, or an axe-core
// violation of impact serious or critical fails the run (exit code 1).
//
// Environment: DOCENT_BASE, DOCENT_HOSTILE_TRIGGER (a question with it gets the fake model's
// hostile answer, DOCENT_HOSTILE_ANSWER), DOCENT_WIDGET_DIR (the widget's sources, for their sizes),
// DOCENT_SCREENSHOTS, DOCENT_TEST_CHROMIUM, DOCENT_TEST_NODE_MODULES.

import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import http from "node:http";
import { gzipSync } from "node:zlib";
import assert from "node:assert/strict";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("DOCENT_BASE");
const DOCENT = new URL(BASE).origin;
const TRIGGER = env("DOCENT_HOSTILE_TRIGGER");
const SHOTS = env("DOCENT_SCREENSHOTS");
const require = createRequire(join(env("DOCENT_TEST_NODE_MODULES"), "noop.js"));
const { chromium } = require("playwright-core");
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(SHOTS, { recursive: true });

const HANDBOOK = `# Employee handbook\n\n## Vacation policy\n\nEvery employee gets thirty days of paid vacation per year. Vacation requests go to your manager two weeks ahead.\n\n## Expenses\n\nTravel expenses are reimbursed within ten working days when receipts are attached.\n`;
const HOSTILE_NAME = `<img src=x onerror=window.__pwned=1>.md`;
const HOSTILE_DOC = `# <script>window.__pwned=1</script> Zanzibar notes\n\nZanzibar office rules <img src=x onerror="window.__pwned=1"> say [launch](javascript:window.__pwned=1) and <a href="javascript:window.__pwned=1">this</a> [7] before lunch\n`;
const QUESTION = "How many days of paid vacation does every employee get per year?";
const WELCOME = "Ask me about the handbook.";
const POLITE = "This assistant has reached its daily message limit. Please try again tomorrow.";

// Styles a careless host page might have: they must not reach into the widget.
const HOST_CSS = `
* { font-family: "Comic Sans MS", cursive !important; color: rgb(255, 0, 0) !important; box-sizing: content-box !important; letter-spacing: 3px !important; }
html { font-size: 30px; }
button { background: rgb(0, 255, 0) !important; width: 300px !important; height: 10px !important; border: 9px dashed blue !important; position: static !important; }
iframe { border: 12px solid orange !important; width: 50px !important; height: 50px !important; }
div { padding: 40px !important; margin: 20px !important; }
body > * { opacity: 0.9; }
.box { display: block; width: 200px; }
`;

const failures = [];
const figures = {};
const step = (name) => console.log(`-- ${name}`);

// ---- the host sites --------------------------------------------------------------------
const pages = new Map(); // path -> snippet HTML
const csp = `default-src 'self'; script-src 'self' ${DOCENT}; style-src 'self'; frame-src ${DOCENT}; img-src 'self'; connect-src 'self'`;
function hostPage(snippet) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Acme</title><link rel="stylesheet" href="/host.css"></head>
<body><h1>Acme Corp</h1><p id="para">Our products are great.</p><button id="host-button" type="button">Host button</button><div class="box" id="box">A box</div>
${snippet}
</body></html>`;
}
async function hostSite(hostname) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, "http://host");
    if (u.pathname === "/host.css") {
      res.writeHead(200, { "content-type": "text/css" });
      return res.end(HOST_CSS);
    }
    const snippet = u.pathname === "/plain.html" ? "" : pages.get(u.pathname);
    if (snippet === undefined) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": csp });
    res.end(hostPage(snippet));
  });
  await new Promise((r) => server.listen(0, hostname, r));
  return { server, origin: `http://${hostname}:${server.address().port}` };
}

// ---- the API ---------------------------------------------------------------------------
async function api(method, path, body) {
  const r = await fetch(`${BASE}${path}`, {
    method,
    headers: body instanceof FormData ? {} : { "content-type": "application/json" },
    body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
async function upload(collection, name, text) {
  const form = new FormData();
  form.append("file", new Blob([text], { type: "text/markdown" }), name);
  await api("POST", `/api/v1/collections/${collection}/documents`, form);
}

// ---- the browser -----------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: env("DOCENT_TEST_CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

/**
 * Watches a page (and its frames) for script errors, CSP violations and dialogs; a refused
 * frame's own CSP report is expected while `opts.refusedFrameOk` is true.
 */
function guard(page, label, opts = {}) {
  page.on("pageerror", (e) => failures.push(`${label}: page error: ${e.message}`));
  page.on("console", (m) => {
    const t = m.text();
    if (m.type() !== "error" || !/Content Security Policy|Refused to/.test(t)) return;
    if (opts.refusedFrameOk && /frame-ancestors|Refused to (frame|display)/.test(t)) return;
    failures.push(`${label}: CSP: ${t}`);
  });
  page.on("dialog", async (d) => {
    failures.push(`${label}: a ${d.type()} dialog opened: ${d.message()}`);
    await d.dismiss();
  });
}

async function axe(target, screen) {
  await target.evaluate(AXE);
  const result = await target.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, target: v.nodes[0] && v.nodes[0].target.join(" ") }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  figures.axe = figures.axe || {};
  figures.axe[screen] = { serious_or_critical: bad.length, other: result.length - bad.length };
  for (const v of bad) failures.push(`axe ${screen}: ${v.impact} ${v.id} (${v.nodes} nodes, e.g. ${v.target}): ${v.help}`);
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

/** Waits for the loader's ready mark; resolves with the load-to-ready time in ms. */
async function ready(page, timeout = 20_000) {
  await page.waitForFunction(() => performance.getEntriesByName("docent-widget").length > 0, null, { timeout });
  return page.evaluate(() => Math.round(performance.getEntriesByName("docent-widget")[0].duration));
}

/** The widget's parts: its frame, the <iframe> element and the closed shadow root's pieces. */
async function widget(page) {
  let frame = null;
  for (let i = 0; i < 100 && !frame; i += 1) {
    frame = page.frames().find((f) => f.url().startsWith(`${DOCENT}/widget/frame`) || (f !== page.mainFrame() && f.parentFrame() === page.mainFrame()));
    if (!frame) await page.waitForTimeout(100);
  }
  assert.ok(frame, "the widget's frame exists");
  const iframe = await frame.frameElement();
  // The test reaches into the closed shadow root through the frame element it holds.
  const root = await iframe.evaluateHandle((e) => e.getRootNode());
  const launcher = (await root.evaluateHandle((r) => r.querySelector("button"))).asElement();
  const panel = (await root.evaluateHandle((r) => r.querySelector("[role=dialog]"))).asElement();
  return { frame, iframe, root, launcher, panel };
}

const expanded = (w) => w.launcher.getAttribute("aria-expanded");

async function openPanel(page, w) {
  const box = await w.launcher.boundingBox();
  assert.ok(box && box.width > 40, `the launcher is visible: ${JSON.stringify(box)}`);
  // A real click at the launcher's place on the page.
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction((b) => b.getAttribute("aria-expanded") === "true", w.launcher);
  await w.frame.waitForFunction(() => document.activeElement && document.activeElement.id === "message");
}

/** Asks in the frame and waits for the answer; resolves with the `done` event's data. */
async function ask(page, w, text) {
  const before = await w.frame.locator(".msg.assistant:not([aria-busy])").count();
  await w.frame.getByLabel("Your message").fill(text);
  await w.frame.getByRole("button", { name: "Send" }).click();
  await w.frame.waitForFunction((n) => document.querySelectorAll(".msg.assistant:not([aria-busy])").length > n && !document.querySelector(".msg[aria-busy]"), before, { timeout: 30_000 });
}

/** Nothing a payload would do happened, in the frame and in the host page. */
async function unharmed(page, w, where) {
  const host = await page.evaluate(() => ({ pwned: window.__pwned, widgets: document.querySelectorAll("docent-widget").length, scroll: document.documentElement.scrollWidth - window.innerWidth }));
  assert.equal(host.pwned, undefined, `${where}: a payload ran in the host page`);
  assert.equal(host.widgets, 1, `${where}: one widget element`);
  assert.ok(host.scroll <= 1, `${where}: the host page scrolls sideways (${host.scroll} px)`);
  const inFrame = await w.frame.evaluate(() => {
    const log = document.getElementById("log");
    return {
      pwned: window.__pwned,
      parentPwned: (() => {
        try {
          return window.parent.__pwned;
        } catch {
          return undefined; // another origin: not readable, and not settable either
        }
      })(),
      markup: log.querySelectorAll("img, script, iframe, object, embed, svg, style, link, form, input").length,
      handlers: Array.from(log.querySelectorAll("*")).filter((e) => Array.from(e.attributes).some((a) => /^on/i.test(a.name) || a.name === "style")).length,
      badLinks: Array.from(log.querySelectorAll("a")).filter((a) => !/^https?:$/.test(new URL(a.href).protocol) || a.rel !== "noopener noreferrer" || a.target !== "_blank").map((a) => a.outerHTML),
      overflow: log.scrollWidth - log.clientWidth,
      page: document.documentElement.scrollWidth - window.innerWidth,
      scripts: Array.from(document.scripts).map((s) => new URL(s.src || "inline:", location.href).pathname),
    };
  });
  assert.equal(inFrame.pwned, undefined, `${where}: a payload ran in the frame`);
  assert.equal(inFrame.parentPwned, undefined, `${where}: a payload reached the parent`);
  assert.equal(inFrame.markup, 0, `${where}: model or document text became markup`);
  assert.equal(inFrame.handlers, 0, `${where}: an element got an event handler or style attribute`);
  assert.deepEqual(inFrame.badLinks, [], `${where}: a link that is not http(s) or opens without noopener`);
  assert.ok(inFrame.overflow <= 1 && inFrame.page <= 1, `${where}: the chat scrolls sideways (${inFrame.overflow}/${inFrame.page} px)`);
  assert.deepEqual(inFrame.scripts, ["/widget/assets/frame.js"], `${where}: only the frame's own script`);
}

async function run() {
  const allowed = await hostSite("127.0.0.2");
  const refused = await hostSite("127.0.0.3");

  step("set up: a collection with the handbook and a hostile document, a bot allowed on one site");
  const col = await api("POST", "/api/v1/collections", { name: "Handbook" });
  await upload(col.id, "handbook.md", HANDBOOK);
  await upload(col.id, HOSTILE_NAME, HOSTILE_DOC);
  for (let i = 0; ; i += 1) {
    const docs = (await api("GET", `/api/v1/collections/${col.id}/documents`)).items;
    if (docs.length === 2 && docs.every((d) => d.status === "completed")) break;
    assert.ok(i < 300, `documents not indexed: ${JSON.stringify(docs.map((d) => d.status))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const bot = await api("POST", "/api/v1/bots", {
    name: "Helper",
    collection_ids: [col.id],
    welcome_message: WELCOME,
    allowed_origins: [allowed.origin],
    widget: { sources: "names" },
  });

  step("the console's Embed tab: create a key, copy its snippet, the live preview answers");
  const octx = await browser.newContext({ viewport: { width: 1440, height: 900 }, permissions: ["clipboard-read", "clipboard-write"] });
  const owner = await octx.newPage();
  guard(owner, "console");
  owner.setDefaultTimeout(20_000);
  await owner.goto(`${BASE}/#/bots/${bot.id}?tab=embed`);
  await owner.getByRole("heading", { name: "Widget keys" }).waitFor();
  await owner.getByLabel("Key name").fill("Site");
  await owner.getByRole("button", { name: "Create widget key" }).click();
  const snippetBox = owner.getByRole("textbox", { name: "Snippet" });
  await snippetBox.waitFor();
  const snippet = await snippetBox.inputValue();
  assert.match(snippet, new RegExp(`^<script src="${BASE}/widget\\.js" data-key="dwk_[^"]+" async></script>$`), snippet);
  await owner.getByRole("button", { name: "Copy snippet" }).click();
  await owner.getByText("Copied.").waitFor();
  assert.equal(await owner.evaluate(() => navigator.clipboard.readText()), snippet, "the copy button copies the snippet");
  const key = snippet.match(/data-key="([^"]+)"/)[1];
  const preview = owner.frameLocator("iframe.widget-preview");
  await preview.getByText(WELCOME).waitFor();
  await preview.getByLabel("Your message").fill(QUESTION);
  await preview.getByRole("button", { name: "Send" }).click();
  await preview.locator(".msg.assistant .cite").first().waitFor({ timeout: 30_000 });
  await axe(owner, "embed tab");
  await shot(owner, "embed-tab");

  step("the owner's snippet on another origin: the widget loads");
  pages.set("/", snippet);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const hostGuard = { refusedFrameOk: false };
  guard(page, "host", hostGuard);
  page.setDefaultTimeout(20_000);
  // The host page as it is without the widget, to compare.
  await page.goto(`${allowed.origin}/plain.html`);
  const styleOf = () =>
    page.evaluate(() => {
      const pick = (id) => {
        const s = getComputedStyle(document.getElementById(id));
        return [s.fontFamily, s.color, s.width, s.height, s.padding, s.margin, s.backgroundColor, s.letterSpacing].join("|");
      };
      return { para: pick("para"), button: pick("host-button"), box: pick("box"), sheets: document.styleSheets.length, globals: Object.keys(window).sort().join(",") };
    });
  const plain = await styleOf();
  await page.goto(`${allowed.origin}/`);
  figures.load_to_ready_ms = await ready(page);
  const w = await widget(page);
  assert.equal(await expanded(w), "false");
  const withWidget = await styleOf();
  assert.deepEqual(withWidget, plain, "the widget changed the host page's styles, sheets or globals");
  const bodyKids = await page.evaluate(() => Array.from(document.body.children, (e) => e.tagName.toLowerCase()));
  assert.deepEqual(bodyKids, ["h1", "p", "button", "div", "script", "docent-widget"], "the widget adds one element");
  // The host page's CSS does not reach the widget.
  const look = await w.launcher.evaluate((b) => {
    const s = getComputedStyle(b);
    const f = getComputedStyle(b.getRootNode().querySelector("iframe"));
    return { width: s.width, height: s.height, bg: s.backgroundColor, border: s.borderTopWidth, font: s.fontFamily, frameBorder: f.borderTopWidth, frameWidth: f.width, position: s.position };
  });
  assert.deepEqual(
    { ...look, font: look.font.includes("Comic") },
    { width: "56px", height: "56px", bg: "rgb(36, 73, 184)", border: "0px", font: false, frameBorder: "0px", frameWidth: "380px", position: "fixed" },
    "host CSS changed the widget",
  );
  assert.equal(await page.evaluate(() => document.querySelector("docent-widget").shadowRoot), null, "the shadow root is closed");
  await shot(page, "host-closed");

  step("a question streams a cited answer");
  await openPanel(page, w);
  await w.frame.getByText(WELCOME).waitFor();
  const streamed = page.waitForResponse((r) => r.url() === `${DOCENT}/widget/v1/chat` && r.request().method() === "POST");
  // Count the pieces of text the answer grows by while it streams.
  await w.frame.evaluate(() => {
    window.__pieces = 0;
    new MutationObserver((records) => {
      for (const r of records) if (r.target.classList && r.target.classList.contains("live")) window.__pieces += Array.from(r.addedNodes).filter((n) => n.nodeType === 3).length;
    }).observe(document.getElementById("log"), { childList: true, subtree: true });
  });
  await ask(page, w, QUESTION);
  const resp = await streamed;
  assert.ok(resp.headers()["content-type"].startsWith("text/event-stream"), "the answer streams");
  figures.streamed_pieces = await w.frame.evaluate(() => window.__pieces);
  assert.ok(figures.streamed_pieces > 3, `the answer arrived in pieces: ${figures.streamed_pieces}`);
  const answer = w.frame.locator(".msg.assistant").last();
  await answer.getByText(/thirty days of paid vacation/).waitFor();
  assert.ok((await answer.locator("sup.cite").count()) >= 1, "the answer cites");
  await answer.locator(".sources li", { hasText: "handbook.md" }).first().waitFor();
  await unharmed(page, w, "first answer");
  await axe(w.frame, "widget frame");
  await shot(page, "host-answer");

  step("keyboard: Tab stays in the panel, Escape closes it and returns to the launcher");
  for (let i = 0; i < 8; i += 1) {
    await page.keyboard.press("Tab");
    const inside = await w.frame.evaluate(() => document.hasFocus() && document.activeElement !== document.body);
    assert.ok(inside, `Tab ${i + 1} left the panel`);
  }
  await page.keyboard.press("Escape");
  await page.waitForFunction((b) => b.getAttribute("aria-expanded") === "false", w.launcher);
  assert.equal(await w.root.evaluate((r) => r.activeElement && r.activeElement.tagName), "BUTTON", "focus is back on the launcher");
  await page.keyboard.press("Enter");
  await page.waitForFunction((b) => b.getAttribute("aria-expanded") === "true", w.launcher);
  await w.frame.getByRole("button", { name: "Close chat" }).click();
  await page.waitForFunction((b) => b.getAttribute("aria-expanded") === "false", w.launcher);

  step("a reload keeps the conversation");
  await page.reload();
  await ready(page);
  const w2 = await widget(page);
  await openPanel(page, w2);
  await w2.frame.locator(".msg.user", { hasText: QUESTION }).waitFor();
  await w2.frame.locator(".msg.assistant sup.cite").first().waitFor();

  step("a dropped stream is retried");
  let cut = 0;
  await page.route(`${DOCENT}/widget/v1/chat`, async (route) => {
    if (cut > 0) return route.continue();
    cut += 1;
    await route.fulfill({ status: 200, contentType: "text/event-stream", body: 'event: delta\ndata: {"text":"Every employee gets thir"}\n\n' });
  });
  await ask(page, w2, "And how are travel expenses reimbursed?");
  await page.unroute(`${DOCENT}/widget/v1/chat`);
  assert.equal(cut, 1, "the first stream was cut");
  await w2.frame.locator(".msg.assistant").last().getByText(/ten working days/).waitFor();
  assert.equal(await w2.frame.locator(".msg.user", { hasText: "travel expenses" }).count(), 1, "the question is shown once");

  step("docent unreachable: a clear message, and Retry asks again");
  await page.route(`${DOCENT}/widget/v1/chat`, (route) => route.abort("connectionrefused"));
  await ask(page, w2, "Where do vacation requests go?");
  await page.unroute(`${DOCENT}/widget/v1/chat`);
  const down = w2.frame.locator(".msg.failed").last();
  await down.getByText("The assistant can't be reached right now. Check your connection and try again.").waitFor();
  await down.getByRole("button", { name: "Retry" }).click();
  await w2.frame.waitForFunction(() => {
    const last = Array.from(document.querySelectorAll(".msg.assistant")).pop();
    return last && !last.classList.contains("failed") && !last.hasAttribute("aria-busy") && last.querySelector("sup.cite");
  });
  assert.equal(await w2.frame.locator(".msg.failed").count(), 0, "the failed attempt gave way to the answer");
  assert.equal(await w2.frame.locator(".msg.user", { hasText: "Where do vacation requests go?" }).count(), 1, "the question is shown once");

  step("hostile content: a document and a model answer full of tricks run nothing");
  await ask(page, w2, `${TRIGGER}: what do the zanzibar notes say?`);
  const hostile = w2.frame.locator(".msg.assistant").last();
  await hostile.getByText("Hostile probe.").waitFor();
  const rendered = await hostile.evaluate((b) => ({
    text: b.textContent,
    cites: b.querySelectorAll("sup.cite").length,
    links: Array.from(b.querySelectorAll("a"), (a) => a.href),
    strong: b.querySelectorAll("strong").length,
    code: b.querySelectorAll("pre code").length,
    items: b.querySelectorAll("li").length,
  }));
  assert.deepEqual(rendered.links, ["https://example.com/docs"], "only the http(s) link is a link");
  assert.ok(rendered.cites >= 1 && rendered.strong >= 1 && rendered.code === 1, `markdown is rendered: ${JSON.stringify(rendered)}`);
  await unharmed(page, w2, "hostile answer");

  step("the frame itself is the last defence: a raw hostile stream, as no docent would send it");
  // The server already strips raw HTML and unknown markers from answers; this stream skips it.
  const raw = env("DOCENT_HOSTILE_ANSWER");
  const rawCites = [
    { marker: 1, name: HOSTILE_NAME, snippet: '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">' },
    { marker: 2, name: "[x](javascript:window.__pwned=1)", snippet: "**not markdown**" },
  ];
  await page.route(`${DOCENT}/widget/v1/chat`, (route) =>
    route.fulfill({
      status: 200,
      contentType: "text/event-stream",
      body: [
        ["start", { sources: rawCites }],
        ...raw.match(/[\s\S]{1,40}/g).map((text) => ["delta", { text }]),
        ["done", { answer: raw, answered_by: "model", citations: rawCites, sources: rawCites }],
      ]
        .map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`)
        .join(""),
    }),
  );
  await ask(page, w2, "raw hostile stream");
  await page.unroute(`${DOCENT}/widget/v1/chat`);
  const rawShown = await w2.frame.locator(".msg.assistant").last().evaluate((b) => ({
    text: b.textContent,
    links: Array.from(b.querySelectorAll("a"), (a) => a.href),
    cites: Array.from(b.querySelectorAll("sup.cite"), (c) => c.textContent),
    sources: Array.from(b.querySelectorAll(".sources li"), (li) => li.firstChild.textContent),
  }));
  assert.deepEqual(rawShown.links, ["https://example.com/docs"], "only the http(s) link is a link");
  assert.ok(rawShown.text.includes("[99]") && rawShown.text.includes("<img src=x onerror="), "forged markers and raw HTML stay text");
  assert.ok(rawShown.cites.every((c) => c === "[1]" || c === "[2]"), `only markers of real citations are marked: ${rawShown.cites}`);
  assert.deepEqual(rawShown.sources, [HOSTILE_NAME, "[x](javascript:window.__pwned=1)"], "source names are text");
  await unharmed(page, w2, "raw hostile stream");
  await ask(page, w2, "What do the Zanzibar office rules say?");
  await w2.frame.locator(".msg.assistant").last().getByText(/Zanzibar/).first().waitFor();
  await w2.frame.locator(".sources li", { hasText: HOSTILE_NAME }).first().waitFor();
  await unharmed(page, w2, "hostile document");
  await shot(page, "host-hostile");

  step("on a phone the panel is full-screen");
  const pctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const phone = await pctx.newPage();
  guard(phone, "phone");
  await phone.goto(`${allowed.origin}/`);
  await ready(phone);
  const pw = await widget(phone);
  await openPanel(phone, pw);
  const full = await pw.iframe.boundingBox();
  assert.deepEqual([full.x, full.y, full.width, full.height].map(Math.round), [0, 0, 390, 844], "the panel fills the phone's screen");
  await axe(pw.frame, "widget frame (phone)");
  await shot(phone, "phone-open");
  await pctx.close();

  step("a page on a disallowed origin gets no chat, and the Embed tab says why");
  pages.set("/", snippet);
  const rctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const rpage = await rctx.newPage();
  guard(rpage, "refused host", { refusedFrameOk: true });
  await rpage.goto(`${refused.origin}/`);
  await rpage.waitForTimeout(4000);
  assert.equal(await rpage.evaluate(() => performance.getEntriesByName("docent-widget:ready").length), 0, "the refused page became ready");
  const rframe = rpage.frames().find((f) => f !== rpage.mainFrame());
  if (rframe) {
    const shown = await rframe.evaluate(() => (document.getElementById("chat") ? "chat" : "none")).catch(() => "blocked");
    assert.notEqual(shown, "chat", "the refused page shows the chat");
  }
  const rlauncher = await rpage.evaluate(() => {
    const el = document.querySelector("docent-widget");
    if (!el) return "gone";
    const at = document.elementFromPoint(window.innerWidth - 48, window.innerHeight - 48);
    return at === el ? "visible" : "hidden";
  });
  assert.notEqual(rlauncher, "visible", "the refused page shows a launcher");
  await owner.goto(`${BASE}/#/bots/${bot.id}?tab=chat`);
  await owner.goto(`${BASE}/#/bots/${bot.id}?tab=embed`);
  await owner.locator(`table.refusals tr[data-origin="${refused.origin}"]`).waitFor();
  await shot(owner, "embed-refused");
  await rctx.close();

  step("quota exhaustion answers politely");
  const small = await api("POST", `/api/v1/bots/${bot.id}/widget-keys`, { name: "Small", daily_quota: 1 });
  pages.set("/small.html", small.snippet);
  const qctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const qpage = await qctx.newPage();
  guard(qpage, "quota host");
  await qpage.goto(`${allowed.origin}/small.html`);
  await ready(qpage);
  const qw = await widget(qpage);
  await openPanel(qpage, qw);
  await ask(qpage, qw, QUESTION);
  await qw.frame.locator(".msg.assistant sup.cite").first().waitFor();
  await ask(qpage, qw, "And the expenses?");
  await qw.frame.locator(".msg.failed").getByText(POLITE).waitFor();
  assert.equal(await qw.frame.locator(".msg.failed button.retry").count(), 0, "no retry for an exhausted quota");
  await shot(qpage, "quota");
  await qctx.close();

  step("the owner revokes the key in the console: the chat stops at once");
  await owner.getByRole("button", { name: "Revoke Site" }).click();
  await owner.getByRole("button", { name: "Revoke widget key" }).click();
  await owner.locator(`tr[data-widget-key]`, { hasText: key }).getByText("Revoked").waitFor();
  await w2.frame.getByLabel("Your message").fill("One more question about vacation?");
  await w2.frame.getByRole("button", { name: "Send" }).click();
  await w2.frame.locator(".msg.failed").getByText("This chat is not available here any more.").waitFor();
  hostGuard.refusedFrameOk = true;
  await page.reload();
  await page.waitForTimeout(3000);
  assert.equal(await page.evaluate(() => performance.getEntriesByName("docent-widget:ready").length), 0, "a revoked key's widget became ready");
  await ctx.close();

  step("the owner sees the widget's conversations, marked");
  await owner.goto(`${BASE}/#/bots/${bot.id}?tab=chat`);
  await owner.locator('.conversations li[data-source="widget"]').first().waitFor();
  await owner.locator('.conversations li[data-source="widget"]').first().getByText("Widget").waitFor();
  await axe(owner, "bot chat with widget conversations");
  await octx.close();

  step("sizes");
  const sizes = {};
  for (const [name, path] of [["widget.js", "/widget.js"], ["frame.js", "/widget/assets/frame.js"], ["frame.css", "/widget/assets/frame.css"]]) {
    const body = Buffer.from(await (await fetch(`${BASE}${path}`)).arrayBuffer());
    const source = readFileSync(join(env("DOCENT_WIDGET_DIR"), name));
    assert.ok(body.equals(source), `${path} serves the widget's ${name}`);
    sizes[name] = { bytes: body.length, gzip: gzipSync(body, { level: 9 }).length };
  }
  figures.sizes = sizes;
  figures.gzip_total = Object.values(sizes).reduce((n, s) => n + s.gzip, 0);
  assert.ok(figures.gzip_total <= 15 * 1024, `widget.js + frame.js + frame.css: ${figures.gzip_total} bytes gzip`);
  allowed.server.close();
  refused.server.close();
}

try {
  await run();
} catch (e) {
  failures.push(`journey stopped: ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(`FIGURES ${JSON.stringify(figures)}`);
if (failures.length) {
  for (const f of failures) console.error(`FAIL ${f}`);
  process.exit(1);
}
console.log("widget journeys: all passed");
process.exit(0);
