// The console's shell: the hash router (`#/collections/…`; the fragment never reaches the
// server, so tokens in setup and mail links stay out of its logs), the header with navigation,
// workspace switcher and sign-out, and the main region each view renders into.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { errorBox } from "./format.js";
import * as auth from "./views/auth.js";
import * as bots from "./views/bots.js";
import * as collections from "./views/collections.js";
import * as doc from "./views/document.js";
import * as keys from "./views/keys.js";
import * as members from "./views/members.js";
import * as search from "./views/search.js";
import * as tasks from "./views/tasks.js";

const PUBLIC = { public: true };
const ROUTES = [
  [/^\/setup$/, auth.setupView, PUBLIC],
  [/^\/signin$/, auth.signinView, PUBLIC],
  [/^\/signup$/, auth.signupView, PUBLIC],
  [/^\/verify-email$/, auth.verifyView, PUBLIC],
  [/^\/forgot-password$/, auth.forgotView, PUBLIC],
  [/^\/reset-password$/, auth.resetView, PUBLIC],
  [/^\/accept-invite$/, auth.acceptInviteView, PUBLIC],
  [/^\/collections$/, collections.listView, {}],
  [/^\/collections\/([^/]+)$/, collections.collectionView, {}],
  [/^\/documents\/([^/]+)$/, doc.documentView, {}],
  [/^\/search$/, search.searchView, {}],
  [/^\/bots$/, bots.listView, {}],
  [/^\/bots\/new$/, bots.newView, {}],
  [/^\/bots\/([^/]+)$/, bots.botView, {}],
  [/^\/keys$/, keys.keysView, {}],
  [/^\/members$/, members.membersView, {}],
  [/^\/tasks$/, tasks.tasksView, {}],
];

const NAV = [
  ["#/collections", "Collections", /^\/(collections|documents)/],
  ["#/search", "Search", /^\/search/],
  ["#/bots", "Bots", /^\/bots/],
  ["#/keys", "API keys", /^\/keys/, () => api.isAdmin()],
  ["#/tasks", "Tasks", /^\/tasks/],
  ["#/members", "Members", /^\/members/, () => api.isAdmin() && !api.current().open],
];

const root = document.getElementById("app");
let controller = null;

/** Navigates to a console route (`go("/collections")`). */
export function go(path) {
  location.hash = `#${path}`;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/collections";
  const [path, qs] = raw.split("?", 2);
  return { path: path || "/collections", query: new URLSearchParams(qs || "") };
}

async function workspaceSwitcher() {
  const s = api.current();
  if (!s || s.open) return null;
  let list;
  try {
    list = (await api.call("GET", "/api/v1/auth/tenants")).items;
  } catch {
    return null;
  }
  if (list.length < 2) {
    const only = list[0];
    return only ? h("span", { class: "workspace" }, only.name) : null;
  }
  const select = h(
    "select",
    { id: "workspace", "aria-label": "Workspace" },
    list.map((t) => h("option", { value: t.id, selected: t.current }, `${t.name} (${t.role})`)),
  );
  select.addEventListener("change", async () => {
    try {
      await api.switchTenant(select.value);
      go("/collections");
      render();
    } catch (e) {
      root.querySelector("main").prepend(errorBox(e));
    }
  });
  return select;
}

function header(path) {
  const s = api.current();
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    h(
      "ul",
      {},
      NAV.filter(([, , , show]) => !show || show()).map(([href, label, re]) =>
        h("li", {}, h("a", { href, "aria-current": re.test(path) ? "page" : null }, label)),
      ),
    ),
  );
  const who = h("div", { class: "who" });
  if (s && !s.open) {
    const out = h("button", { type: "button", class: "link" }, "Sign out");
    out.addEventListener("click", async () => {
      await api.signout();
      go("/signin");
    });
    who.append(
      h("a", { href: "/docs/" }, "API docs"),
      h("span", { class: "email", title: `role: ${s.role}` }, s.user.email || ""),
      h("span", { class: "role" }, s.role),
      out,
    );
    workspaceSwitcher().then((w) => w && who.prepend(w));
  }
  return h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/collections" }, h("img", { src: "/console/favicon.svg", alt: "", width: 24, height: 24 }), "docent"),
    nav,
    who,
  );
}

function skipLink() {
  const skip = h("a", { class: "skip", href: "#main" }, "Skip to content");
  skip.addEventListener("click", (e) => {
    e.preventDefault();
    const m = document.getElementById("main");
    if (m) m.focus();
  });
  return skip;
}

/** Renders the current route. */
export async function render() {
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const { path, query } = parseHash();
  let found = null;
  for (const [re, view, opts] of ROUTES) {
    const m = path.match(re);
    if (m) {
      found = { view, opts, params: m.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  if (!found) {
    go("/collections");
    return;
  }
  if (!found.opts.public && !api.current()) {
    const wanted = location.hash;
    const ok = await api.refresh();
    if (!ok) {
      sessionStorage.setItem("docent-after-signin", wanted);
      go("/signin");
      return;
    }
    if (signal.aborted) return;
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  const shell = found.opts.public ? [main] : [header(path), main];
  replace(root, skipLink(), shell);
  root.removeAttribute("aria-busy");
  try {
    await found.view({ main, params: found.params, query, signal, go, render });
  } catch (e) {
    if (signal.aborted) return;
    if (e && e.code === "unauthenticated") {
      go("/signin");
      return;
    }
    main.append(errorBox(e));
  }
  if (!signal.aborted) {
    const heading = main.querySelector("h1");
    if (heading && document.activeElement === document.body) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    document.title = heading ? `${heading.textContent} · docent` : "docent";
  }
}

api.onSession((s) => {
  if (!s && !location.hash.match(/^#\/(signin|signup|setup|verify-email|forgot-password|reset-password|accept-invite)/)) {
    go("/signin");
  }
});

window.addEventListener("hashchange", render);
render();
