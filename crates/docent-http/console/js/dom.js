// Building the page from DOM nodes. Every piece of user, document or model text goes in as a
// text node (textContent); nothing here parses HTML, so no content can become markup.

/**
 * Creates an element: `h("button", { class: "primary", onclick: fn }, "Save")`.
 * Attributes: `class`, `text`, `on<event>` (a function), boolean `true`/`false` (present or
 * not), `null`/`undefined` (left out); anything else becomes an attribute string.
 * Children: nodes, strings (as text), arrays, and null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "text") {
      el.textContent = String(v);
    } else if (k === "value" && "value" in el) {
      el.value = String(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings as text, arrays; null and false are skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * `text` with the `[start, end)` ranges (in Unicode code points, as the server counts chars)
 * wrapped in <mark>; a fragment of text nodes and <mark> elements.
 */
export function highlighted(text, ranges) {
  const chars = Array.from(text || "");
  const frag = document.createDocumentFragment();
  const sorted = (ranges || [])
    .map(([s, e]) => [Math.max(0, Math.min(s, chars.length)), Math.max(0, Math.min(e, chars.length))])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [s, e] of sorted) {
    if (s < at) continue; // overlapping ranges: the first wins
    if (s > at) frag.append(chars.slice(at, s).join(""));
    frag.append(h("mark", {}, chars.slice(s, e).join("")));
    at = e;
  }
  if (at < chars.length) frag.append(chars.slice(at).join(""));
  return frag;
}

let ids = 0;
/** A unique element id, for label/field and aria pairs. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field: `field("Name", h("input", {...}), "hint")`. */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: `${id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/** A live region whose text screen readers announce. */
export function status(text = "") {
  return h("p", { class: "status", role: "status", "aria-live": "polite" }, text);
}

/**
 * Asks for confirmation in a modal <dialog>; resolves true when confirmed.
 * `confirmLabel` names the destructive action ("Delete collection").
 */
export function confirmDialog(title, body, confirmLabel) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "confirm", "aria-labelledby": uid("dlg") });
    const heading = h("h2", { id: dlg.getAttribute("aria-labelledby") }, title);
    const yes = h("button", { class: "danger", type: "button" }, confirmLabel);
    const no = h("button", { type: "button" }, "Cancel");
    let answer = false;
    yes.addEventListener("click", () => { answer = true; dlg.close(); });
    no.addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => { dlg.remove(); resolve(answer); });
    append(dlg, [heading, h("p", {}, body), h("div", { class: "actions" }, no, yes)]);
    document.body.append(dlg);
    dlg.showModal();
    no.focus();
  });
}

/**
 * A button for a destructive action: asks `title` / `body` in a confirmation dialog (its
 * button labelled `confirm`), then runs `action`; a failure is handed to `onError`.
 */
export function confirmButton(label, { ariaLabel, title, body, confirm, small }, action, onError) {
  const b = h("button", { type: "button", class: small ? "danger small" : "danger", "aria-label": ariaLabel }, label);
  b.addEventListener("click", async () => {
    if (!(await confirmDialog(title, body, confirm))) return;
    try {
      await action();
    } catch (e) {
      onError(e);
    }
  });
  return b;
}

/** A modal dialog holding `content`, closed by its button or Escape. */
export function showDialog(title, content) {
  const hid = uid("dlg");
  const dlg = h("dialog", { class: "panel", "aria-labelledby": hid });
  const close = h("button", { type: "button", class: "close", "aria-label": "Close" }, "×");
  close.addEventListener("click", () => dlg.close());
  dlg.addEventListener("close", () => dlg.remove());
  append(dlg, [h("header", {}, h("h2", { id: hid }, title), close), content]);
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}
