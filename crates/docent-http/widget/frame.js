// docent's chat widget, inside its frame (`/widget/frame?key=dwk_…`, same origin as docent).
//
// The embedding page's origin is learned from the loader's first message (`docent:init`,
// only from `window.parent`; later messages must come from that same origin) and sent to the
// server when minting a visitor session. The visitor secret and the conversation id live in
// localStorage, so a reload resumes the conversation. Answers stream as server-sent events
// read from a fetch body. Model and document text becomes DOM nodes through a small markdown
// subset (paragraphs, bold, italic, inline code, code blocks, lists, http(s) links); nothing
// is ever parsed as HTML. With `preview=1` (the console's live preview) the token comes from
// the console parent (same origin) instead.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const q = new URLSearchParams(location.search);
  const KEY = q.get("key") || "";
  const PREVIEW = q.get("preview") === "1";
  const chat = $("chat");
  const log = $("log");
  const notice = $("notice");
  const form = $("composer");
  const input = $("message");
  const sendBtn = $("send");
  const title = $("title");
  const DEFAULT_WELCOME = "Hi! How can I help you?";

  let store = null;
  try {
    store = window.localStorage;
    store.getItem("docent");
  } catch {
    store = null; // storage blocked: the chat works, a reload starts afresh
  }
  // Where the browser blocks a third-party frame's storage, the loader keeps the visitor
  // secret and conversation id in the host page's storage instead (`docent:state`).
  let hostState = {};
  const sk = (k) => `docent:${k}:${PREVIEW ? "preview" : KEY}`;
  const load = (k) => (store ? store.getItem(sk(k)) : hostState[k] || null);
  const save = (k, v) => {
    if (!store) {
      hostState[k] = v || null;
      if (!PREVIEW) toHost({ type: "docent:state", visitor: hostState.visitor || null, conversation: hostState.conversation || null });
      return;
    }
    try {
      v ? store.setItem(sk(k), v) : store.removeItem(sk(k));
    } catch {
      // quota or privacy mode: nothing kept
    }
  };

  let hostOrigin = PREVIEW ? location.origin : null;
  let session = null;
  let conversation = null;
  let isOpen = PREVIEW;
  let busy = false;
  let customTitle = "";
  let customColor = "";

  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  const toHost = (msg) => {
    if (hostOrigin && window.parent !== window) window.parent.postMessage(msg, hostOrigin);
  };
  const scroll = () => {
    log.scrollTop = log.scrollHeight;
  };
  const say = (text) => {
    notice.textContent = text || "";
  };

  // ---- safe markdown --------------------------------------------------------------------
  const safeUrl = (s) => {
    try {
      const u = new URL(s);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch {
      return null;
    }
  };
  const INLINE = /(`+)([^`\n][^\n]*?)\1(?!`)|\*\*(\S[^\n]*?)\*\*|(?<!\w)__(\S[^\n]*?)__(?!\w)|\*(\S[^\n]*?)\*|(?<!\w)_(\S[^\n]*?)_(?!\w)|\[([^[\]\n]+)\]\(([^()\s]+)\)|\[(\d{1,4})\]|\n/g;

  /** Appends `text`'s inline markdown to `parent`; `cites` maps a marker to its citation. */
  function inline(parent, text, cites) {
    let at = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > at) parent.append(text.slice(at, m.index));
      at = m.index + m[0].length;
      if (m[1]) parent.append(h("code", null, m[2]));
      else if (m[3] || m[4]) inline(parent.appendChild(h("strong")), m[3] || m[4], cites);
      else if (m[5] || m[6]) inline(parent.appendChild(h("em")), m[5] || m[6], cites);
      else if (m[7]) {
        const url = safeUrl(m[8]);
        if (!url) {
          parent.append(m[0]); // not an http(s) link: shown as the text it is
          continue;
        }
        const a = h("a", null, m[7]);
        a.href = url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        parent.append(a);
      } else if (m[9]) {
        const c = cites && cites.get(Number(m[9]));
        if (!c) {
          parent.append(m[0]); // a marker no source backs: plain text
          continue;
        }
        const sup = h("sup", "cite", `[${m[9]}]`);
        const name = c.name || c.filename;
        if (name) sup.title = name;
        parent.append(sup);
      } else parent.append(h("br"));
    }
    if (at < text.length) parent.append(text.slice(at));
  }

  const FENCE = /^\s*(```|~~~)/;
  const ITEM = /^\s*(?:[-*+]|(\d{1,9})[.)])\s+/;
  const HEAD = /^\s*#{1,6}\s+/;

  /** Markdown `text` as a fragment of block elements. */
  function markdown(text, cites) {
    const frag = document.createDocumentFragment();
    const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      let m;
      if (fence) {
        const code = [];
        for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) code.push(lines[i]);
        i += 1;
        frag.appendChild(h("pre")).append(h("code", null, code.join("\n")));
      } else if (!line.trim()) {
        i += 1;
      } else if ((m = line.match(ITEM))) {
        const ordered = !!m[1];
        const list = frag.appendChild(h(ordered ? "ol" : "ul"));
        if (ordered && m[1] !== "1") list.start = Number(m[1]);
        while (i < lines.length && (m = lines[i].match(ITEM)) && !!m[1] === ordered) {
          inline(list.appendChild(h("li")), lines[i].slice(m[0].length), cites);
          i += 1;
        }
      } else if (HEAD.test(line)) {
        inline(frag.appendChild(h("p", "h")).appendChild(h("strong")), line.replace(HEAD, ""), cites);
        i += 1;
      } else {
        const para = [];
        while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !ITEM.test(lines[i]) && !HEAD.test(lines[i])) {
          para.push(lines[i]);
          i += 1;
        }
        inline(frag.appendChild(h("p")), para.join("\n"), cites);
      }
    }
    return frag;
  }

  // ---- messages -------------------------------------------------------------------------
  function bubble(role) {
    const b = log.appendChild(h("div", `msg ${role}`));
    b.append(h("span", "sr-only", role === "user" ? "You said: " : "Assistant: "));
    return b;
  }
  const markerOf = (c) => (c.marker !== undefined ? c.marker : c.n);

  /** The citations under an answer, as much of them as the bot shows the public. */
  function sourceList(citations) {
    const shown = session && session.bot ? session.bot.sources : "none";
    const items = (citations || []).filter((c) => shown !== "none" && (c.name || c.filename));
    if (!items.length) return null;
    const box = h("div", "sources");
    box.append(h("p", "sh", "Sources"));
    const ol = box.appendChild(h("ol"));
    for (const c of items) {
      const li = ol.appendChild(h("li", null, c.name || c.filename));
      if (Number.isInteger(markerOf(c))) li.value = markerOf(c);
      const snippet = c.snippet || c.quote;
      if (shown === "snippets" && snippet) li.append(h("q", null, snippet));
    }
    return box;
  }

  function renderAnswer(b, text, citations, answeredBy) {
    const cites = new Map((citations || []).map((c) => [Number(markerOf(c)), c]));
    const md = h("div", "md");
    md.append(markdown(text, cites));
    b.replaceChildren(h("span", "sr-only", "Assistant: "), md);
    if (answeredBy === "no_answer") {
      b.classList.add("unknown");
      b.append(h("p", "hint", "I couldn't find that in the documents I know. Try asking another way, or ask something else."));
    }
    const list = sourceList(citations);
    if (list) b.append(list);
  }

  function welcome() {
    const b = bubble("assistant welcome");
    b.append(h("p", null, (session.bot && session.bot.welcome_message) || DEFAULT_WELCOME));
  }

  // ---- talking to the server ------------------------------------------------------------
  const fail = (code, status, message, retryAfter) => ({ code, status: status || 0, message: message || "", retryAfter: retryAfter || 0 });
  async function errorOf(r) {
    let code = `http_${r.status}`;
    let message = "";
    try {
      const body = await r.json();
      if (body && body.error) ({ code, message } = body.error);
    } catch {
      // not JSON (a proxy's page): the status decides
    }
    return fail(code, r.status, message, Number(r.headers.get("retry-after")) || 0);
  }
  async function request(path, opts) {
    try {
      return await fetch(path, { credentials: "omit", cache: "no-store", ...opts });
    } catch {
      throw fail("network_error");
    }
  }
  const bearer = () => ({ authorization: `Bearer ${session.token}` });

  /** What went wrong, for a visitor. */
  function sentence(e) {
    switch (e.code) {
      case "widget_quota_exceeded":
        return "This assistant has reached its daily message limit. Please try again tomorrow.";
      case "rate_limited":
        return `You're sending messages too quickly. Please wait ${e.retryAfter ? `${e.retryAfter} seconds` : "a moment"} and try again.`;
      case "widget_key_invalid":
      case "widget_origin_refused":
      case "widget_session_invalid":
        return "This chat is not available here any more.";
      case "network_error":
        return "The assistant can't be reached right now. Check your connection and try again.";
      case "stream_dropped":
        return "The connection dropped before the answer was complete.";
      default:
        return e.status >= 500 || /unavailable|timeout/.test(e.code)
          ? "The assistant is unavailable right now. Please try again in a moment."
          : "Something went wrong. Please try again.";
    }
  }
  const retriable = (e) => !/quota|widget_key|widget_origin|widget_session|invalid_field|too_long/.test(e.code);

  let pendingToken = null;
  function previewToken() {
    return new Promise((resolve, reject) => {
      pendingToken = resolve;
      window.parent.postMessage({ type: "docent:preview-token" }, location.origin);
      setTimeout(() => reject(fail("network_error")), 10000);
    });
  }

  async function mint() {
    if (PREVIEW) {
      session = await previewToken();
    } else {
      const visitor = load("visitor");
      const r = await request("/widget/v1/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key: KEY, host_origin: hostOrigin, ...(visitor ? { visitor } : {}) }),
      });
      if (!r.ok) throw await errorOf(r);
      session = await r.json();
      if (session.visitor) save("visitor", session.visitor);
    }
    if (!session || !session.token) throw fail("widget_session_invalid");
    session.bot = session.bot || {};
    return session;
  }

  function setConversation(id) {
    conversation = id || null;
    if (!PREVIEW) save("conversation", conversation);
  }

  /** Reads a server-sent event body; resolves with `done`'s data. */
  async function events(r, onEvent) {
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        throw fail("stream_dropped");
      }
      if (chunk.done) throw fail("stream_dropped");
      buffer += chunk.value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (!data.length) continue;
        let value;
        try {
          value = JSON.parse(data.join("\n"));
        } catch {
          throw fail("stream_dropped");
        }
        if (name === "done") {
          reader.cancel().catch(() => {});
          return value;
        }
        if (name === "error") {
          const e = value && value.error ? value.error : {};
          throw fail(e.code || "internal_error", 0, e.message);
        }
        onEvent(name, value);
      }
    }
  }

  /** One question to the server: a new session once on 401, a new conversation once on 404. */
  async function chatOnce(text, onEvent) {
    let reminted = false;
    let restarted = false;
    for (;;) {
      const r = await request("/widget/v1/chat", {
        method: "POST",
        headers: { ...bearer(), "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify({ message: text, ...(conversation ? { conversation_id: conversation } : {}) }),
      });
      if (r.ok) return events(r, onEvent);
      const e = await errorOf(r);
      if (r.status === 401 && !reminted) {
        reminted = true;
        await mint();
      } else if (e.code === "conversation_not_found" && !restarted) {
        restarted = true;
        setConversation(null);
      } else {
        throw e;
      }
    }
  }

  function setBusy(on) {
    busy = on;
    sendBtn.disabled = on;
    chat.classList.toggle("busy", on);
  }

  async function ask(text) {
    setBusy(true);
    say("");
    bubble("user").append(h("p", null, text));
    let b = null;
    for (let attempt = 0; ; attempt += 1) {
      if (b) b.remove();
      b = bubble("assistant");
      b.setAttribute("aria-busy", "true");
      const live = b.appendChild(h("p", "live"));
      live.append(h("span", "typing", "Thinking…"));
      scroll();
      try {
        let first = true;
        const done = await chatOnce(text, (name, data) => {
          if (name === "start" && data.conversation_id) setConversation(data.conversation_id);
          else if (name === "delta" && typeof data.text === "string") {
            if (first) live.replaceChildren();
            first = false;
            live.append(data.text);
            scroll();
          }
        });
        if (done.conversation_id) setConversation(done.conversation_id);
        renderAnswer(b, done.answer, done.citations, done.answered_by);
        b.removeAttribute("aria-busy");
        if (!isOpen) toHost({ type: "docent:unread" });
        break;
      } catch (err) {
        const e = err && err.code ? err : fail("client_error");
        if (!err || !err.code) console.error(err);
        if (e.code === "stream_dropped" && attempt === 0) {
          say("The connection dropped; trying again…");
          await new Promise((r) => setTimeout(r, 600));
          continue;
        }
        b.removeAttribute("aria-busy");
        showFailure(b, e, text);
        break;
      }
    }
    say("");
    setBusy(false);
    scroll();
  }

  function showFailure(b, e, text) {
    b.classList.add("failed");
    b.replaceChildren(h("span", "sr-only", "Assistant: "), h("p", "err", sentence(e)));
    b.dataset.code = e.code;
    if (retriable(e)) {
      const again = b.appendChild(h("button", "retry", "Retry"));
      again.type = "button";
      again.addEventListener("click", () => {
        if (busy) return;
        const user = b.previousElementSibling;
        if (user && user.classList.contains("user")) user.remove();
        b.remove();
        ask(text);
      });
    } else {
      input.disabled = /widget_key|widget_origin|widget_session/.test(e.code);
    }
  }

  async function history() {
    const r = await request(`/widget/v1/conversation?conversation_id=${encodeURIComponent(conversation)}`, { headers: bearer() });
    if (r.status === 404) return setConversation(null);
    if (!r.ok) throw await errorOf(r);
    const body = await r.json();
    for (const m of body.messages || []) {
      if (m.role === "user") bubble("user").append(h("p", null, m.content));
      else if (m.role === "assistant") renderAnswer(bubble("assistant"), m.content, m.citations, m.answered_by);
    }
  }

  function theme(color) {
    if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(color || "")) return false;
    let hex = color.slice(1);
    if (hex.length === 3) hex = hex.replace(/./g, "$&$&");
    const [r, g, b] = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    const light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18;
    document.documentElement.style.setProperty("--c", color);
    document.documentElement.style.setProperty("--ct", light ? "#111" : "#fff");
    return true;
  }

  async function start() {
    try {
      await mint();
      const name = customTitle || session.bot.name || "Chat";
      title.textContent = name;
      document.title = name;
      if (!customColor) theme(session.bot.color);
      setConversation(session.conversation_id !== undefined ? session.conversation_id : load("conversation"));
      if (conversation) {
        try {
          await history();
        } catch {
          log.replaceChildren(); // the history could not be read: start afresh, keep the id
        }
      }
      if (!log.children.length) welcome();
      input.disabled = false;
      sendBtn.disabled = false;
      chat.removeAttribute("aria-busy");
      scroll();
      toHost({ type: "docent:ready" });
      if (isOpen) input.focus();
    } catch (e) {
      // No ready message: the loader shows no chat. The preview shows why.
      chat.removeAttribute("aria-busy");
      say(sentence(e));
    }
  }

  // ---- the page -------------------------------------------------------------------------
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || busy || !session) return;
    input.value = "";
    input.rows = 1;
    ask(text);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    input.rows = Math.min(5, input.value.split("\n").length);
  });
  $("close").addEventListener("click", () => toHost({ type: "docent:close" }));
  $("new").addEventListener("click", () => {
    if (busy || !session) return;
    setConversation(null);
    log.replaceChildren();
    welcome();
    input.focus();
  });
  // Keyboard: Escape closes the panel; Tab stays inside it.
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      toHost({ type: "docent:close" });
    } else if (e.key === "Tab") {
      const stops = Array.from(chat.querySelectorAll("a[href],button:not([disabled]),textarea:not([disabled]),[tabindex='0']")).filter((x) => x.offsetParent);
      if (!stops.length) return;
      const first = stops[0];
      const last = stops[stops.length - 1];
      const at = document.activeElement;
      if (e.shiftKey && (at === first || !chat.contains(at))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (at === last || !chat.contains(at))) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  window.addEventListener("message", (e) => {
    if (e.source !== window.parent || window.parent === window) return;
    const d = e.data;
    if (!d || typeof d.type !== "string") return;
    if (PREVIEW) {
      if (e.origin === location.origin && d.type === "docent:preview-token" && pendingToken) pendingToken(d.session);
      return;
    }
    if (hostOrigin === null) {
      if (d.type !== "docent:init") return;
      hostOrigin = e.origin;
      const o = d.options || {};
      const str = (v) => (typeof v === "string" && v.length <= 200 ? v : null);
      if (o.state && typeof o.state === "object") hostState = { visitor: str(o.state.visitor), conversation: str(o.state.conversation) };
      if (typeof o.title === "string" && o.title) customTitle = o.title.slice(0, 80);
      if (theme(o.color)) customColor = o.color;
      start();
      return;
    }
    if (e.origin !== hostOrigin) return;
    if (d.type === "docent:open") {
      isOpen = true;
      if (d.focus) (input.disabled ? $("close") : input).focus();
    } else if (d.type === "docent:close") {
      isOpen = false;
    }
  });
  if (PREVIEW) {
    chat.classList.add("preview");
    start();
  }
})();
