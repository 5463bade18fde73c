// API keys (admins and owners): create one — its secret is shown once, with a copy button —
// list them with their last use, and revoke.

import * as api from "../api.js";
import { confirmButton, field, h, replace, status, uid } from "../dom.js";
import { errorBox, when } from "../format.js";

export async function keysView({ main, signal }) {
  const errors = h("div");
  const list = h("div", { class: "list" }, status("Loading keys…"));
  const created = h("div", { "aria-live": "polite" });
  const [collections, bots] = await Promise.all([api.all("/api/v1/collections"), api.all("/api/v1/bots")]);
  if (signal.aborted) return;

  const name = h("input", { name: "name", required: true, maxlength: 200 });
  const access = h("select", { name: "access" }, h("option", { value: "read_write" }, "read and write"), h("option", { value: "read" }, "read only"));
  /** Checkboxes limiting the key to some items; none checked: no limit. */
  const limits = (legend, items) => {
    const boxes = items.map((it) => {
      const id = uid("lim");
      return { box: h("input", { type: "checkbox", id, value: it.id }), label: h("label", { for: id }, it.name) };
    });
    const el = h(
      "fieldset",
      {},
      h("legend", {}, legend),
      boxes.length ? boxes.map((b) => h("div", { class: "check" }, b.box, b.label)) : h("p", { class: "muted" }, "None yet."),
    );
    const chosen = () => {
      const ids = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
      return ids.length ? ids : null;
    };
    return { el, chosen };
  };
  const scopeCollections = limits("Only these collections (none checked: all)", collections);
  const scopeBots = limits("Only these bots (none checked: all)", bots);
  const expires = h("input", { type: "date", name: "expires" });
  const form = h(
    "form",
    { class: "inline-form", "aria-label": "New API key" },
    h("h2", {}, "New key"),
    h("div", { class: "row" }, field("Name", name), field("Access", access), field("Expires", expires, "Optional.")),
    h("div", { class: "row" }, scopeCollections.el, scopeBots.el),
    h("button", { type: "submit", class: "primary" }, "Create key"),
  );

  const draw = async () => {
    const keys = await api.all("/api/v1/keys");
    if (!keys.length) {
      replace(list, h("p", { class: "empty" }, "No keys yet."));
      return;
    }
    replace(
      list,
      h(
        "table",
        {},
        h("caption", { class: "sr-only" }, "API keys"),
        h("thead", {}, h("tr", {}, ["Name", "Key", "Access", "Created", "Last used", "Expires", "State"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          keys.map((k) => {
            let state;
            if (k.revoked_at) state = h("span", { class: "badge s-cancelled" }, "Revoked");
            else {
              state = confirmButton(
                "Revoke",
                { ariaLabel: `Revoke ${k.name}`, title: `Revoke “${k.name}”?`, body: "Programs using this key stop working at once.", confirm: "Revoke key", small: true },
                async () => {
                  await api.call("DELETE", `/api/v1/keys/${k.id}`);
                  await draw();
                },
                (e) => errors.append(errorBox(e)),
              );
            }
            return h(
              "tr",
              { "data-key": k.id },
              h("td", {}, k.name),
              h("td", {}, h("code", {}, `dk_${k.prefix}_…`)),
              h("td", {}, k.access === "read" ? "read only" : "read and write", k.collection_ids ? ` · ${k.collection_ids.length} collection(s)` : "", k.bot_ids ? ` · ${k.bot_ids.length} bot(s)` : ""),
              h("td", {}, when(k.created_at), k.created_by_email ? h("div", { class: "muted" }, k.created_by_email) : null),
              h("td", {}, k.last_used_at ? when(k.last_used_at) : "never"),
              h("td", {}, k.expires_at ? when(k.expires_at) : "never"),
              h("td", {}, state),
            );
          }),
        ),
      ),
    );
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const r = await api.call("POST", "/api/v1/keys", {
        json: {
          name: name.value.trim(),
          access: access.value,
          collection_ids: scopeCollections.chosen(),
          bot_ids: scopeBots.chosen(),
          expires_at: expires.value ? new Date(`${expires.value}T23:59:59`).toISOString() : null,
        },
      });
      const secret = h("input", { readonly: true, value: r.secret, class: "secret", id: "new-secret", "aria-label": "The new key's secret" });
      const copy = h("button", { type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        secret.select();
        try {
          await navigator.clipboard.writeText(r.secret);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy it";
        }
      });
      replace(
        created,
        h(
          "div",
          { class: "notice", role: "status" },
          h("p", {}, h("strong", {}, `Key “${r.key.name}” created.`), " Copy its secret now: it is not shown again."),
          h("div", { class: "row" }, secret, copy),
        ),
      );
      form.reset();
      await draw();
      secret.focus();
      secret.select();
    } catch (err) {
      errors.append(errorBox(err));
    }
  });

  replace(
    main,
    h("h1", {}, "API keys"),
    h("p", { class: "intro" }, "Programs use a key as ", h("code", {}, "Authorization: Bearer <secret>"), ". A key acts in this workspace only."),
    form,
    created,
    errors,
    list,
  );
  await draw();
}
