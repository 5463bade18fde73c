// Bots: the list, the builder form for every setting, and the chat playground that streams
// answers (server-sent events over fetch), renders citations as sources that open their
// passage, keeps conversations (list, reopen, delete), and says when an answer is extractive
// or "I don't know"; widget conversations are marked. The Embed tab is in `embed.js`.

import * as api from "../api.js";
import { append, confirmButton, field, h, replace, status, uid } from "../dom.js";
import { errorBox, when } from "../format.js";
import { embedTab } from "./embed.js";
import { answerText, sourceList } from "./search.js";

export async function listView({ main, signal }) {
  const bots = await api.all("/api/v1/bots");
  if (signal.aborted) return;
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Bots"), api.canWrite() ? h("a", { class: "button primary", href: "#/bots/new" }, "New bot") : null),
    h("p", { class: "intro" }, "A bot answers questions from the collections you give it, citing its sources."),
    bots.length
      ? h(
          "ul",
          { class: "cards" },
          bots.map((b) =>
            h(
              "li",
              { class: "card" },
              h("h2", {}, h("a", { href: `#/bots/${b.id}` }, b.name)),
              b.description ? h("p", {}, b.description) : null,
              h("p", { class: "muted" }, `${b.collection_ids.length} collection(s) · ${b.model || "server default model"}`),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No bots yet."),
  );
}

/** The builder form; `bot` is null for a new bot. Resolves the request body on submit. */
function builder(bot, collections, onSave, readOnly) {
  const v = bot || { name: "", description: "", system_prompt: "", model: null, temperature: 0.2, max_tokens: null, collection_ids: [], retrieval: { top_k: 8, mode: "hybrid", min_score: null }, welcome_message: "", allowed_origins: [] };
  const name = h("input", { name: "name", required: true, maxlength: 200, value: v.name });
  const description = h("input", { name: "description", value: v.description || "" });
  const prompt = h("textarea", { name: "system_prompt", rows: 5 });
  prompt.value = v.system_prompt || "";
  const model = h("input", { name: "model", value: v.model || "", placeholder: "server default" });
  const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: v.temperature });
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: 1, value: v.max_tokens ?? "" });
  const topK = h("input", { type: "number", name: "top_k", min: 1, max: 50, value: v.retrieval.top_k });
  const mode = h("select", { name: "mode" }, ["hybrid", "keyword", "vector"].map((m) => h("option", { value: m, selected: m === v.retrieval.mode }, m)));
  const minScore = h("input", { type: "number", name: "min_score", min: 0, step: 0.01, value: v.retrieval.min_score ?? "" });
  const welcome = h("input", { name: "welcome_message", value: v.welcome_message || "" });
  const origins = h("textarea", { name: "allowed_origins", rows: 2, placeholder: "https://www.example.com" });
  origins.value = v.allowed_origins.join("\n");
  const boxes = collections.map((c) => {
    const id = uid("col");
    const box = h("input", { type: "checkbox", id, value: c.id, checked: v.collection_ids.includes(c.id) });
    return { box, el: h("div", { class: "check" }, box, h("label", { for: id }, c.name)) };
  });
  const errors = h("div");
  const form = h(
    "form",
    { class: "builder", "aria-label": "Bot settings" },
    field("Name", name),
    field("Description", description),
    field("Instructions (system prompt)", prompt, "Empty: the server's default instructions."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Collections it answers from"),
      boxes.length ? boxes.map((b) => b.el) : h("p", { class: "muted" }, "No collections yet."),
    ),
    h("div", { class: "row" }, field("Model", model, "Empty: the server's default."), field("Temperature", temperature), field("Longest answer (tokens)", maxTokens)),
    h("div", { class: "row" }, field("Passages per question", topK), field("Retrieval mode", mode), field("Minimum score", minScore, "Empty: keep all.")),
    field("Welcome message", welcome),
    field("Allowed origins", origins, "Sites the chat widget may be embedded in, one per line."),
    errors,
    readOnly ? null : h("button", { type: "submit", class: "primary" }, bot ? "Save changes" : "Create bot"),
  );
  if (readOnly) for (const el of form.elements) el.disabled = true;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    const num = (input) => (input.value === "" ? null : Number(input.value));
    const body = {
      name: name.value.trim(),
      description: description.value.trim() || null,
      system_prompt: prompt.value,
      model: model.value.trim() || null,
      temperature: num(temperature) ?? 0.2,
      max_tokens: num(maxTokens),
      collection_ids: boxes.filter((b) => b.box.checked).map((b) => b.box.value),
      retrieval: { top_k: num(topK) ?? 8, mode: mode.value, min_score: num(minScore) },
      welcome_message: welcome.value.trim() || null,
      allowed_origins: origins.value.split(/\s+/).filter(Boolean),
    };
    try {
      await onSave(body);
    } catch (err) {
      errors.append(errorBox(err));
    }
  });
  return form;
}

export async function newView({ main, go, signal }) {
  const collections = await api.all("/api/v1/collections");
  if (signal.aborted) return;
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/bots" }, "Bots"), " / "),
    h("h1", {}, "New bot"),
    builder(null, collections, async (body) => {
      const bot = await api.call("POST", "/api/v1/bots", { json: body });
      go(`/bots/${bot.id}`);
    }, false),
  );
}

export async function botView({ main, params, go, signal, render, query }) {
  const [id] = params;
  const [bot, collections] = await Promise.all([api.call("GET", `/api/v1/bots/${id}`), api.all("/api/v1/collections")]);
  if (signal.aborted) return;
  const writable = api.canWrite();
  const tab = query.get("tab") || "chat";
  const errors = h("div");
  const head = h("div", { class: "page-head" }, h("h1", {}, bot.name));
  if (writable) {
    const del = confirmButton(
      "Delete bot",
      { title: `Delete “${bot.name}”?`, body: "The bot and its conversations are deleted. Its collections stay.", confirm: "Delete bot" },
      async () => {
        await api.call("DELETE", `/api/v1/bots/${id}`);
        go("/bots");
      },
      (e) => errors.append(errorBox(e)),
    );
    head.append(h("div", { class: "actions" }, del));
  }
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Bot" },
    [["chat", "Chat"], ["settings", "Settings"], ...(writable ? [["embed", "Embed"]] : [])].map(([t, label]) =>
      h("a", { href: `#/bots/${id}?tab=${t}`, "aria-current": t === tab ? "page" : null }, label),
    ),
  );
  const body = h("div");
  replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/bots" }, "Bots"), " / "), head, errors, tabs, body);
  if (tab === "settings") {
    replace(
      body,
      builder(bot, collections, async (b) => {
        await api.call("PATCH", `/api/v1/bots/${id}`, { json: b });
        render();
      }, !writable),
    );
  } else if (tab === "embed" && writable) {
    await embedTab(body, bot, signal, render);
  } else {
    await chat(body, bot, signal);
  }
}

function answeredBy(r) {
  if (r.answered_by === "extractive") return "Extractive answer: no language model is configured, so these are the best-matching sentences, quoted.";
  if (r.answered_by === "no_answer") return "I don't know: nothing in this bot's collections answers that.";
  return `Answered by ${r.model || "the model"}.`;
}

function bubble(role) {
  return h("div", { class: `msg ${role}` }, h("span", { class: "sr-only" }, role === "user" ? "You: " : "Bot: "));
}

/** The chat playground with the conversation list beside it. */
async function chat(container, bot, signal) {
  const log = h("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const input = h("textarea", { name: "message", rows: 2, required: true, maxlength: 8000 });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const form = h("form", { class: "composer" }, field("Your question", input), send);
  const convList = h("ul", { class: "conversations" });
  const newConv = h("button", { type: "button" }, "New conversation");
  let conversation = null;

  const reset = () => {
    conversation = null;
    log.replaceChildren();
    if (bot.welcome_message) log.append(append(bubble("assistant"), [h("p", {}, bot.welcome_message)]));
  };
  newConv.addEventListener("click", () => {
    reset();
    input.focus();
  });

  const loadConversations = async () => {
    const items = (await api.call("GET", `/api/v1/bots/${bot.id}/conversations`, { query: { limit: 20 } })).items;
    replace(
      convList,
      items.length
        ? items.map((c) => {
            const title = c.title || "Untitled";
            const widget = c.source === "widget" ? h("span", { class: "badge via-widget", title: "A website visitor's conversation through the chat widget" }, "Widget") : null;
            const b = h("button", { type: "button", class: "link", "aria-current": c.id === conversation ? "true" : null }, widget, widget ? " " : null, title, h("span", { class: "muted" }, ` · ${when(c.updated_at)}`));
            b.addEventListener("click", () => reopen(c.id));
            const del = confirmButton(
              "Delete",
              {
                ariaLabel: `Delete conversation ${title}`,
                title: `Delete “${title}”?`,
                body: "The conversation and its messages are deleted. This cannot be undone.",
                confirm: "Delete conversation",
                small: true,
              },
              async () => {
                await api.call("DELETE", `/api/v1/conversations/${c.id}`);
                if (c.id === conversation) reset();
                await loadConversations();
              },
              (err) => convList.before(errorBox(err)),
            );
            return h("li", { "data-conversation": c.id, "data-source": c.source || "api" }, b, del);
          })
        : h("li", { class: "muted" }, "No conversations yet."),
    );
  };

  const reopen = async (cid) => {
    conversation = cid;
    log.replaceChildren();
    const msgs = await api.all(`/api/v1/conversations/${cid}/messages`);
    for (const m of msgs) {
      const b = bubble(m.role);
      if (m.role === "assistant") {
        const cites = m.citations.map((c) => ({ ...c, filename: `source ${c.marker}` }));
        append(b, [answerText(m.content, new Map(cites.map((c) => [c.marker, c]))), sourceList(cites)]);
      } else {
        b.append(h("p", {}, m.content));
      }
      log.append(b);
    }
    await loadConversations();
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send.disabled = true;
    log.append(append(bubble("user"), [h("p", {}, text)]));
    const reply = bubble("assistant");
    reply.classList.add("streaming");
    const live = h("p", { class: "answer-text" });
    const note = status("Thinking…");
    reply.append(note, live);
    log.append(reply);
    reply.scrollIntoView({ block: "end" });
    try {
      await api.chatStream(bot.id, text, conversation, (event, data) => {
        if (event === "start") {
          conversation = data.conversation_id;
          note.textContent = `Searching ${data.sources.length} passage(s)…`;
        } else if (event === "delta") {
          live.append(data.text);
        } else if (event === "done") {
          const cites = new Map(data.sources.map((s) => [s.marker, s]));
          replace(reply, h("span", { class: "sr-only" }, "Bot: "), h("p", { class: "answered-by" }, answeredBy(data)), answerText(data.answer, cites), sourceList(data.citations));
          reply.dataset.answeredBy = data.answered_by;
        } else if (event === "error") {
          reply.append(errorBox(data.error || data));
        }
      }, signal);
    } catch (err) {
      reply.append(errorBox(err));
    } finally {
      reply.classList.remove("streaming");
      send.disabled = false;
      input.focus();
    }
    loadConversations().catch(() => {});
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  replace(
    container,
    h(
      "div",
      { class: "chat" },
      h("aside", { class: "conv-side", "aria-label": "Conversations" }, h("h2", {}, "Conversations"), newConv, convList),
      h("section", { class: "chat-main", "aria-label": "Chat" }, log, form),
    ),
  );
  reset();
  await loadConversations();
}
