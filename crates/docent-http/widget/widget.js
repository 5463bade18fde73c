// docent's chat widget loader: `<script src="https://DOCENT/widget.js" data-key="dwk_…" async>`.
//
// It adds one element to the host page, `<docent-widget>`, whose closed shadow root holds a
// launcher button and a panel with an <iframe> of docent's `/widget/frame`; the chat itself
// lives in that frame. Styles go through a constructed stylesheet (no <style>, no style
// attributes: a strict host CSP stays happy) and `:host { all: initial }`, so the host page's
// CSS and the widget's do not meet. Messages to and from the frame are checked both ways:
// only docent's origin (from this script's own address) and only the frame's window.
// The launcher appears once the frame says it is ready; a frame the server refuses (this
// site is not in the bot's allowed origins, or the key is revoked) never is, and after a
// while the element removes itself: no chat, nothing left behind. Where the browser blocks the
// frame's own (third-party) storage, the frame asks this script to keep the visitor secret and
// conversation id in the host page's localStorage (`docent-widget:<key>`), so a reload resumes.
// Options: data-key, data-color (#rgb/#rrggbb), data-position (right|left), data-title,
// data-open ("true": open on load). Performance marks: docent-widget:load, docent-widget:ready.
(() => {
  const script = document.currentScript;
  if (!script || !script.src || !window.customElements || customElements.get("docent-widget")) return;
  const perf = window.performance;
  const mark = (n) => perf && perf.mark && perf.mark("docent-widget:" + n);
  mark("load");
  const ORIGIN = new URL(script.src).origin;
  const d = script.dataset;
  const key = d.key || "";
  const title = (d.title || "Chat").slice(0, 80);
  const color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(d.color || "") ? d.color : "";
  const left = d.position === "left";
  const CSS = `:host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483000!important;bottom:0!important;${left ? "left" : "right"}:0!important;width:0!important;height:0!important;overflow:visible!important;visibility:visible!important;opacity:1!important;transform:none!important}
.w{--c:#2449b8;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24}
button{all:initial;box-sizing:border-box;position:fixed;bottom:20px;${left ? "left" : "right"}:20px;width:56px;height:56px;border-radius:50%;background:var(--c);color:#fff;cursor:pointer;display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.3)}
button[hidden],.p[hidden]{display:none}
button:focus-visible{outline:3px solid #1f6feb;outline-offset:3px}
svg{width:28px;height:28px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.dot{position:absolute;top:2px;right:2px;width:14px;height:14px;border-radius:50%;background:#d1242f;border:2px solid #fff;box-sizing:border-box}
.dot[hidden]{display:none}
.p{position:fixed;bottom:88px;${left ? "left" : "right"}:20px;width:380px;height:min(600px,calc(100vh - 108px));border-radius:12px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.3);background:#fff}
.p.closed{visibility:hidden;pointer-events:none}
iframe{all:initial;display:block;width:100%;height:100%;border:0}
@media (max-width:640px){.p{inset:0;width:100vw;height:100vh;height:100dvh;border-radius:0}}`;

  const el = (tag, attrs) => {
    const e = document.createElement(tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  const host = document.createElement("docent-widget");
  const root = host.attachShadow({ mode: "closed" });
  if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style")).textContent = CSS;
  }
  const wrap = el("div", { class: "w" });
  if (color) wrap.style.setProperty("--c", color);
  const launcher = el("button", { type: "button", "aria-expanded": "false", "aria-controls": "p", "aria-label": "Open chat: " + title, hidden: "" });
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  const CHAT = "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z";
  path.setAttribute("d", CHAT);
  svg.append(path);
  const dot = el("span", { class: "dot", hidden: "" });
  launcher.append(svg, dot);
  const panel = el("div", { id: "p", class: "p closed", role: "dialog", "aria-label": title });
  const src = new URL("/widget/frame", ORIGIN);
  src.searchParams.set("key", key);
  const frame = el("iframe", { src: src.href, title, allow: "clipboard-write" });
  panel.append(frame);
  wrap.append(panel, launcher);
  root.append(wrap);

  let open = false;
  let ready = false;
  const send = (msg) => frame.contentWindow && frame.contentWindow.postMessage(msg, ORIGIN);
  // `user`: opened or closed by the visitor, so focus follows (not for data-open on load).
  const setOpen = (on, user) => {
    open = on;
    panel.classList.toggle("closed", !on);
    launcher.setAttribute("aria-expanded", String(on));
    launcher.setAttribute("aria-label", (on ? "Close chat: " : "Open chat: ") + title);
    path.setAttribute("d", on ? "M6 6l12 12M18 6L6 18" : CHAT);
    if (on) dot.hidden = true;
    if (on && user) frame.focus();
    else if (!on && user) launcher.focus();
    send({ type: on ? "docent:open" : "docent:close", focus: user });
  };
  launcher.addEventListener("click", () => setOpen(!open, true));
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && open) setOpen(false, true);
  });
  // Kept here only for a frame whose own storage the browser blocks (third-party storage).
  const SK = "docent-widget:" + key;
  let state = null;
  try {
    state = JSON.parse(localStorage.getItem(SK));
  } catch {
    state = null;
  }
  frame.addEventListener("load", () => {
    send({ type: "docent:init", key, options: { title: d.title || "", color, position: left ? "left" : "right", state } });
  });
  window.addEventListener("message", (e) => {
    if (e.origin !== ORIGIN || e.source !== frame.contentWindow || !e.data || typeof e.data.type !== "string") return;
    const t = e.data.type;
    if (t === "docent:ready" && !ready) {
      ready = true;
      launcher.hidden = false;
      mark("ready");
      if (perf && perf.measure) perf.measure("docent-widget", "docent-widget:load", "docent-widget:ready");
      if (d.open === "true") setOpen(true, false);
    } else if (t === "docent:close" && open) {
      setOpen(false, true);
    } else if (t === "docent:unread" && !open) {
      dot.hidden = false;
    } else if (t === "docent:state") {
      const str = (v) => (typeof v === "string" && v.length <= 200 ? v : null);
      state = { visitor: str(e.data.visitor), conversation: str(e.data.conversation) };
      try {
        localStorage.setItem(SK, JSON.stringify(state));
      } catch {
        // storage blocked here too: a reload starts afresh
      }
    }
  });
  // No ready answer: the server refused this page (see the bot's Embed tab) or is down.
  setTimeout(() => {
    if (!ready) host.remove();
  }, 30000);
  (document.body || document.documentElement).append(host);
})();
