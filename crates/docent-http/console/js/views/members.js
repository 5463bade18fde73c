// Workspace members (admins and owners): the list with each role, role changes, removal, and
// invitations (the link goes by mail; the invitee opens it in the console).

import * as api from "../api.js";
import { confirmButton, field, h, replace, status } from "../dom.js";
import { errorBox, when } from "../format.js";

const ROLES = ["viewer", "member", "admin", "owner"];

export async function membersView({ main, signal }) {
  const errors = h("div");
  const list = h("div", { class: "list" }, status("Loading members…"));
  const sent = h("div", { "aria-live": "polite" });
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r, selected: r === "member" }, r)));
  const form = h(
    "form",
    { class: "inline-form", "aria-label": "Invite someone" },
    h("h2", {}, "Invite someone"),
    h("div", { class: "row" }, field("Email", email), field("Role", role, "Viewers read; members also write; admins manage keys and members.")),
    h("button", { type: "submit", class: "primary" }, "Send invitation"),
  );
  const me = api.current();

  const draw = async () => {
    const members = (await api.call("GET", "/api/v1/members")).items;
    if (signal.aborted) return;
    replace(
      list,
      h(
        "table",
        {},
        h("caption", { class: "sr-only" }, "Members"),
        h("thead", {}, h("tr", {}, ["Member", "Role", "Joined", ""].map((t) => h("th", { scope: "col" }, t || h("span", { class: "sr-only" }, "Actions"))))),
        h(
          "tbody",
          {},
          members.map((m) => {
            const who = m.email || m.display_name || m.user_id;
            const self = me && me.user && m.user_id === me.user.id;
            const select = h(
              "select",
              { "aria-label": `Role of ${who}`, disabled: self },
              ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)),
            );
            select.addEventListener("change", async () => {
              try {
                await api.call("PATCH", `/api/v1/members/${m.user_id}`, { json: { role: select.value } });
                await draw();
              } catch (e) {
                errors.append(errorBox(e));
                select.value = m.role;
              }
            });
            let remove = null;
            if (!self) {
              remove = confirmButton(
                "Remove",
                { ariaLabel: `Remove ${who}`, title: `Remove ${who}?`, body: "They lose access to this workspace; keys they made are revoked.", confirm: "Remove member", small: true },
                async () => {
                  await api.call("DELETE", `/api/v1/members/${m.user_id}`);
                  await draw();
                },
                (e) => errors.append(errorBox(e)),
              );
            }
            return h(
              "tr",
              {},
              h("td", {}, who, self ? h("span", { class: "muted" }, " (you)") : null),
              h("td", {}, select),
              h("td", {}, when(m.joined_at)),
              h("td", {}, remove),
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
      const inv = await api.call("POST", "/api/v1/invites", { json: { email: email.value.trim(), role: role.value } });
      replace(sent, h("p", { class: "notice", role: "status" }, `Invitation sent to ${inv.email} as ${inv.role}; it expires ${when(inv.expires_at)}.`));
      form.reset();
    } catch (err) {
      errors.append(errorBox(err));
    }
  });

  replace(main, h("h1", {}, "Members"), form, sent, errors, list);
  await draw();
}
