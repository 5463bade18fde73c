// A bot's "Embed" tab: the publishable widget keys (create, rotate, revoke), the snippet to
// paste into a site with a copy button, the sites allowed to embed the chat, what visitors
// see of the sources, the sites that were refused (why a site gets no chat), and a live
// preview: the widget's own frame in preview mode, handed a preview session by this page.

import * as api from "../api.js";
import { confirmButton, field, h, replace, status } from "../dom.js";
import { errorBox, when } from "../format.js";

const SOURCES = [
  ["none", "Nothing: citation numbers only"],
  ["names", "Document names"],
  ["snippets", "Document names and the cited passage"],
];

/** Why an origin was refused, in words (the server's reason code otherwise). */
const REASONS = {
  origin_not_allowed: "Not in the allowed sites",
  no_origins: "The bot allows no site yet",
};

/** Parses the origins textarea: one per line, trailing slashes dropped. */
function origins(text) {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((o) => o.replace(/\/+$/, ""));
}

async function copy(text, button, note) {
  try {
    await navigator.clipboard.writeText(text);
    note.textContent = "Copied.";
  } catch {
    note.textContent = "Select the snippet and copy it (Ctrl+C / ⌘C).";
  }
  button.focus();
}

let stopPreview = null;

/** Renders the Embed tab of `bot` into `container`; `refresh` re-renders the bot page. */
export async function embedTab(container, bot, signal, refresh) {
  const base = `/api/v1/bots/${encodeURIComponent(bot.id)}`;
  const [keys, refusals] = await Promise.all([
    api.call("GET", `${base}/widget-keys`).then((r) => r.data),
    api.call("GET", `${base}/widget-refusals`).then((r) => r.data),
  ]);
  if (signal.aborted) return;
  const errors = h("div");
  const fail = (e) => errors.append(errorBox(e));
  const active = keys.filter((k) => !k.revoked_at);
  const reload = () => embedTab(container, bot, signal, refresh).catch(fail);

  // Keys
  const keyName = h("input", { name: "key_name", maxlength: 100, placeholder: "Website" });
  const quota = h("input", { type: "number", name: "daily_quota", min: 1, placeholder: "server default" });
  const create = h(
    "form",
    { class: "toolbar", "aria-label": "New widget key" },
    field("Key name", keyName),
    field("Messages per day", quota, "Empty: the server's default."),
    h("button", { type: "submit", class: "primary" }, "Create widget key"),
  );
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.call("POST", `${base}/widget-keys`, {
        json: { name: keyName.value.trim() || null, ...(quota.value ? { daily_quota: Number(quota.value) } : {}) },
      });
      await reload();
    } catch (err) {
      fail(err);
    }
  });
  const rows = keys.map((k) => {
    const name = k.name || "Widget key";
    const actions = h("div", { class: "actions" });
    if (!k.revoked_at) {
      actions.append(
        confirmButton(
          "Rotate",
          { ariaLabel: `Rotate ${name}`, title: `Rotate “${name}”?`, body: "A new key replaces this one, which stops working at once: sites using it need the new snippet.", confirm: "Rotate key", small: true },
          async () => {
            await api.call("POST", `${base}/widget-keys/${encodeURIComponent(k.id)}/rotate`);
            await reload();
          },
          fail,
        ),
        confirmButton(
          "Revoke",
          { ariaLabel: `Revoke ${name}`, title: `Revoke “${name}”?`, body: "The chat disappears at once from every site using this key.", confirm: "Revoke widget key", small: true },
          async () => {
            await api.call("DELETE", `${base}/widget-keys/${encodeURIComponent(k.id)}`);
            await reload();
          },
          fail,
        ),
      );
    }
    return h(
      "tr",
      { "data-widget-key": k.id },
      h("td", {}, name),
      h("td", {}, h("code", {}, k.key)),
      h("td", { class: "num" }, `${k.messages_today} / ${k.daily_quota ?? "—"}`),
      h("td", { class: "wide" }, when(k.created_at)),
      h("td", {}, k.revoked_at ? h("span", { class: "badge s-failed" }, "Revoked") : h("span", { class: "badge s-completed" }, "Active")),
      h("td", {}, actions),
    );
  });
  const keyTable = keys.length
    ? h(
        "div",
        { class: "list" },
        h(
          "table",
          { class: "widget-keys" },
          h("thead", {}, h("tr", {}, ["Name", "Key", "Today / daily quota", "Created", "Status", "Actions"].map((t, i) => h("th", { class: i === 3 ? "wide" : null, scope: "col" }, t)))),
          h("tbody", {}, rows),
        ),
      )
    : h("p", { class: "empty" }, "No widget keys yet: create one to get the snippet.");

  // Snippet
  let snippet = null;
  if (active.length) {
    const code = h("textarea", { class: "snippet-code secret", readonly: true, rows: 2, spellcheck: "false", "aria-label": "Snippet" });
    code.value = active[0].snippet;
    const note = status();
    const button = h("button", { type: "button" }, "Copy snippet");
    button.addEventListener("click", () => copy(code.value, button, note));
    snippet = h(
      "section",
      { class: "inline-form", "aria-labelledby": "snippet-h" },
      h("h2", { id: "snippet-h" }, "Snippet"),
      h("p", { class: "hint" }, `Paste it before </body> on each page of your site (key “${active[0].name || "Widget key"}”). Options: data-color="#0b5fff", data-position="left", data-title="Help", data-open="true".`),
      code,
      h("div", { class: "actions" }, button, note),
    );
  }

  // Settings: origins, sources, colour
  const originsBox = h("textarea", { name: "widget_origins", rows: 3, placeholder: "https://www.example.com" });
  originsBox.value = bot.allowed_origins.join("\n");
  const widget = bot.widget || { sources: "none" };
  const sources = h("select", { name: "widget_sources" }, SOURCES.map(([v, l]) => h("option", { value: v, selected: v === widget.sources }, l)));
  const color = h("input", { type: "color", name: "widget_color", value: widget.color || "#2449b8" });
  const saved = status();
  const settings = h(
    "form",
    { class: "builder", "aria-label": "Widget settings" },
    field("Sites allowed to embed the chat", originsBox, "Exact origins, one per line: scheme, host and port, such as https://www.example.com. Empty: no site may embed it."),
    h("div", { class: "row" }, field("Sources shown to visitors", sources), field("Colour", color)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save widget settings"), saved),
  );
  settings.addEventListener("submit", async (e) => {
    e.preventDefault();
    saved.textContent = "";
    try {
      await api.call("PATCH", base, { json: { allowed_origins: origins(originsBox.value), widget: { sources: sources.value, color: color.value } } });
      saved.textContent = "Saved.";
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  // Refusals
  const refused = h(
    "section",
    { "aria-labelledby": "refused-h" },
    h("h2", { id: "refused-h" }, "Refused sites"),
    h("p", { class: "hint" }, "Pages that tried to show this bot's chat and were refused: a site gets no chat until its exact origin is in the list above and its key is active."),
    refusals.length
      ? h(
          "div",
          { class: "list" },
          h(
            "table",
            { class: "refusals" },
            h("thead", {}, h("tr", {}, ["Origin", "Why", "Times", "Last"].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              refusals.map((r) => h("tr", { "data-origin": r.origin }, h("td", {}, h("code", {}, r.origin)), h("td", {}, REASONS[r.reason] || r.reason), h("td", { class: "num" }, String(r.count)), h("td", {}, when(r.last_at)))),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No site was refused lately."),
  );

  // Live preview: the frame asks this page (same origin) for a preview session.
  const frame = h("iframe", { class: "widget-preview", src: "/widget/frame?preview=1", title: `Preview of the ${bot.name} chat widget` });
  const onMessage = async (e) => {
    if (e.origin !== location.origin || e.source !== frame.contentWindow || !e.data || e.data.type !== "docent:preview-token") return;
    try {
      const session = await api.call("POST", `${base}/widget-preview`);
      frame.contentWindow.postMessage({ type: "docent:preview-token", session }, location.origin);
    } catch (err) {
      fail(err);
    }
  };
  if (stopPreview) stopPreview();
  stopPreview = () => window.removeEventListener("message", onMessage);
  window.addEventListener("message", onMessage);
  signal.addEventListener("abort", stopPreview);

  replace(
    container,
    errors,
    h(
      "div",
      { class: "embed" },
      h(
        "div",
        {},
        h("section", { "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "Widget keys"), h("p", { class: "hint" }, "A widget key can only chat with this bot, from the sites below: it is safe to publish."), keyTable, create),
        snippet,
        h("section", { "aria-labelledby": "settings-h" }, h("h2", { id: "settings-h" }, "Settings"), settings),
        refused,
      ),
      h("section", { class: "preview-side", "aria-labelledby": "preview-h" }, h("h2", { id: "preview-h" }, "Live preview"), frame),
    ),
  );
}
