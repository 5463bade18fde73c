// Collections and their documents: create, rename and delete collections; upload many files
// (picker or drag-and-drop) with a progress bar each; the document list with live status,
// a status filter, a file-name search and pagination.

import * as api from "../api.js";
import { confirmButton, field, h, replace, status } from "../dom.js";
import { FINAL, badge, bytes, errorBox, human, when } from "../format.js";

const LANGUAGES = ["en", "ar", "da", "de", "el", "es", "fi", "fr", "hu", "it", "nl", "no", "pt", "ro", "ru", "sv", "ta", "tr", "none"];
const POLL_MS = 1000;
const PAGE = 25;

/** Calls `fn` every `ms` until `signal` aborts (a failing call is retried next time). */
export function every(ms, fn, signal) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
    } catch {
      // Shown by the next successful call, or by the page's own error handling.
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  signal.addEventListener("abort", () => clearTimeout(timer));
}

/**
 * The live status of a document: a badge, chunk progress while indexing, and for a failure
 * the human sentence with the error code.
 */
export function statusCell(doc, task) {
  const cell = h("div", { class: "doc-status" }, badge(doc.status));
  if (doc.status === "processing_chunks" && task && task.progress.chunks_total > 0) {
    const { chunks_done: done, chunks_total: total } = task.progress;
    cell.append(
      h("progress", { max: total, value: done, "aria-label": `Indexing ${doc.filename}` }),
      h("span", { class: "count" }, `${done} / ${total} chunks`),
    );
  }
  if (doc.error && (doc.status === "failed" || doc.status === "partially_completed")) {
    cell.append(
      h("span", { class: "why" }, human(doc.error.code, doc.error.message), " ", h("code", {}, doc.error.code)),
    );
  } else if (doc.status === "partially_completed") {
    cell.append(h("span", { class: "why" }, "Some rows could not be indexed: the document page lists them with their codes."));
  }
  return cell;
}

/** Fetches a document and, while it is indexing, its task (for chunk progress). */
export async function docWithTask(id) {
  const doc = await api.call("GET", `/api/v1/documents/${id}`);
  let task = null;
  if (doc.task_id && !FINAL.has(doc.status)) {
    try {
      task = await api.call("GET", `/api/v1/tasks/${doc.task_id}`);
    } catch {
      task = null;
    }
  }
  return { doc, task };
}

export async function listView({ main, go, signal }) {
  const list = h("div", { class: "list" }, status("Loading collections…"));
  const writable = api.canWrite();
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Collections")),
    h("p", { class: "intro" }, "A collection holds documents. Upload files into one, then search it or build a bot over it."),
    writable ? createForm(go) : null,
    list,
  );
  const items = await api.all("/api/v1/collections");
  if (signal.aborted) return;
  if (!items.length) {
    replace(list, h("p", { class: "empty" }, writable ? "No collections yet. Create one above." : "No collections yet."));
    return;
  }
  replace(
    list,
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, "Collections"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Documents"), h("th", { scope: "col" }, "Language"), h("th", { scope: "col" }, "Created"))),
      h(
        "tbody",
        {},
        items.map((c) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/collections/${c.id}` }, c.name), c.description ? h("div", { class: "muted" }, c.description) : null),
            h("td", { class: "num" }, String(c.document_count)),
            h("td", {}, c.language),
            h("td", {}, when(c.created_at)),
          ),
        ),
      ),
    ),
  );
}

function createForm(go) {
  const name = h("input", { name: "name", required: true, maxlength: 128 });
  const description = h("input", { name: "description" });
  const language = h("select", { name: "language" }, LANGUAGES.map((l) => h("option", { value: l }, l)));
  const errors = h("div");
  const form = h(
    "form",
    { class: "inline-form", "aria-label": "New collection" },
    h("h2", {}, "New collection"),
    h("div", { class: "row" }, field("Name", name), field("Description", description), field("Language", language, "For keyword search; fixed once created.")),
    errors,
    h("button", { type: "submit", class: "primary" }, "Create collection"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const c = await api.call("POST", "/api/v1/collections", {
        json: { name: name.value.trim(), description: description.value.trim() || null, language: language.value },
      });
      go(`/collections/${c.id}`);
    } catch (err) {
      errors.append(errorBox(err));
    }
  });
  return form;
}

export async function collectionView({ main, params, query, go, signal, render }) {
  const [id] = params;
  const c = await api.call("GET", `/api/v1/collections/${id}`);
  if (signal.aborted) return;
  const writable = api.canWrite();
  const filter = query.get("status") || "";
  const name = query.get("q") || "";
  const cursor = query.get("cursor") || "";
  // Page size: 25, or `per` (1–200) from the address.
  const per = Math.min(200, Math.max(1, Number(query.get("per")) || PAGE));

  const title = h("h1", {}, c.name);
  const head = h("div", { class: "page-head" }, title);
  const errors = h("div");
  if (writable) {
    const rename = h("button", { type: "button" }, "Rename");
    rename.addEventListener("click", () => renameForm(head, c, errors, render));
    const del = confirmButton(
      "Delete collection",
      {
        title: `Delete “${c.name}”?`,
        body: `Its ${c.document_count} documents, their passages and originals are deleted. This cannot be undone.`,
        confirm: "Delete collection",
      },
      async () => {
        await api.call("DELETE", `/api/v1/collections/${id}`);
        go("/collections");
      },
      (err) => errors.append(errorBox(err)),
    );
    head.append(h("div", { class: "actions" }, rename, del));
  }

  const table = h("div", { class: "list" }, status("Loading documents…"));
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/collections" }, "Collections"), " / "),
    head,
    c.description ? h("p", { class: "intro" }, c.description) : null,
    errors,
    writable ? dropZone(id, uploads, signal) : null,
    uploads,
    h("h2", {}, "Documents"),
    filterBar(id, filter, name),
    table,
  );

  // Redrawn only when something changed, so polling never moves the keyboard focus.
  let shown = "";
  const draw = async (force) => {
    const page = await api.call("GET", `/api/v1/collections/${id}/documents`, { query: { status: filter, filename: name, cursor, limit: per } });
    const tasks = new Map();
    await Promise.all(
      page.items
        .filter((d) => d.task_id && d.status === "processing_chunks")
        .map(async (d) => tasks.set(d.id, await api.call("GET", `/api/v1/tasks/${d.task_id}`).catch(() => null))),
    );
    if (signal.aborted) return false;
    const now = JSON.stringify([page, [...tasks.values()].map((t) => t && t.progress)]);
    if (force === true || now !== shown) {
      shown = now;
      replace(table, documentTable(page, tasks, listHash(id, { status: filter, q: name, per: per === PAGE ? "" : per }), cursor, writable, () => draw(true)));
    }
    return page.items.some((d) => !FINAL.has(d.status));
  };
  await draw(true);
  every(POLL_MS * 2, draw, signal);
}

function renameForm(head, c, errors, render) {
  const input = h("input", { value: c.name, required: true, maxlength: 128 });
  const form = h("form", { class: "inline-form" }, field("New name", input), h("button", { type: "submit", class: "primary" }, "Save"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.call("PATCH", `/api/v1/collections/${c.id}`, { json: { name: input.value.trim() } });
      render();
    } catch (err) {
      errors.append(errorBox(err));
    }
  });
  head.after(form);
  input.focus();
}

/** The hash of a collection's document list with its filters (empty ones left out). */
function listHash(id, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, String(v));
  const qs = q.toString();
  return `#/collections/${id}${qs ? `?${qs}` : ""}`;
}

function filterBar(id, filter, name) {
  const select = h(
    "select",
    { id: "status-filter" },
    [["", "All statuses"], ["pending", "Waiting"], ["processing", "Processing"], ["processing_chunks", "Indexing"], ["completed", "Ready"], ["partially_completed", "Partly ready"], ["failed", "Failed"], ["cancelled", "Cancelled"]].map(
      ([v, label]) => h("option", { value: v, selected: v === filter }, label),
    ),
  );
  const search = h("input", { type: "search", id: "name-filter", value: name, maxlength: 255 });
  select.addEventListener("change", () => {
    location.hash = listHash(id, { status: select.value, q: search.value.trim() });
  });
  const form = h("form", { class: "toolbar", role: "search", "aria-label": "Documents" }, field("Status", select), field("File name contains", search), h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = listHash(id, { status: select.value, q: search.value.trim() });
  });
  return form;
}

function documentTable(page, tasks, base, cursor, writable, redraw) {
  const filtered = base.includes("?");
  if (!page.items.length) {
    return h("div", {}, h("p", { class: "empty" }, filtered ? "No documents match these filters." : "No documents yet."), cursor ? pager(base, cursor, null) : null);
  }
  const rows = page.items.map((d) => {
    let actions = null;
    if (writable) {
      const del = confirmButton(
        "Delete",
        {
          ariaLabel: `Delete ${d.filename}`,
          title: `Delete “${d.filename}”?`,
          body: "The document, its passages and its original are deleted.",
          confirm: "Delete document",
          small: true,
        },
        async () => {
          await api.call("DELETE", `/api/v1/documents/${d.id}`);
          await redraw();
        },
        (err) => del.after(errorBox(err)),
      );
      actions = del;
    }
    return h(
      "tr",
      { "data-document": d.id },
      h("td", {}, h("a", { href: `#/documents/${d.id}` }, d.filename)),
      h("td", {}, statusCell(d, tasks.get(d.id))),
      h("td", { class: "num wide" }, bytes(d.size_bytes)),
      h("td", { class: "num wide" }, String(d.chunk_count)),
      h("td", { class: "wide" }, when(d.created_at)),
      h("td", {}, actions),
    );
  });
  return h(
    "div",
    {},
    h(
      "table",
      { class: "documents" },
      h("caption", { class: "sr-only" }, "Documents"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "File"),
          h("th", { scope: "col" }, "Status"),
          ["Size", "Chunks", "Uploaded"].map((t) => h("th", { scope: "col", class: "wide" }, t)),
          h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
        ),
      ),
      h("tbody", {}, rows),
    ),
    pager(base, cursor, page.next_cursor),
  );
}

/** Links to the first and the next page of a list at `base` (a hash with its filters). */
function pager(base, cursor, next) {
  const join = base.includes("?") ? "&" : "?";
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    cursor ? h("a", { href: base }, "First page") : null,
    next ? h("a", { href: `${base}${join}cursor=${encodeURIComponent(next)}` }, "Next page") : null,
  );
}

/** The upload area: a file picker and a drop target; each file gets a row with progress. */
function dropZone(collectionId, uploads, signal) {
  const input = h("input", { type: "file", multiple: true, id: "file-input", class: "sr-only" });
  const label = h("label", { for: "file-input", class: "button primary" }, "Choose files");
  const zone = h(
    "div",
    { class: "dropzone" },
    h("p", {}, "Drop files here, or "),
    label,
    input,
    h("p", { class: "hint" }, "PDF, Word, Markdown, HTML, text, CSV and more. Each file is processed on its own."),
  );
  const start = (files) => {
    for (const f of files) queueUpload(collectionId, f, uploads, signal);
  };
  input.addEventListener("change", () => {
    start(Array.from(input.files));
    input.value = "";
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    start(Array.from(e.dataTransfer.files));
  });
  return zone;
}

const queue = [];
let active = 0;
const PARALLEL = 3;

function queueUpload(collectionId, file, uploads, signal) {
  const bar = h("progress", { max: file.size || 1, value: 0, "aria-label": `Uploading ${file.name}` });
  const state = h("span", { class: "state" }, "Queued");
  const row = h("li", { class: "upload", "data-filename": file.name }, h("span", { class: "name" }, file.name), h("span", { class: "size" }, bytes(file.size)), bar, state);
  uploads.append(row);
  queue.push(async () => {
    state.textContent = "Uploading";
    try {
      const res = await api.upload(collectionId, file, (sent, total) => {
        bar.max = total || 1;
        bar.value = sent;
      });
      bar.value = bar.max;
      const link = h("a", { href: `#/documents/${res.document.id}` }, res.duplicate ? "Already uploaded" : "Uploaded");
      replace(state, link);
      const live = h("span", { class: "live" });
      row.append(live);
      const watch = async () => {
        const { doc, task } = await docWithTask(res.document.id);
        replace(live, statusCell(doc, task));
        return FINAL.has(doc.status);
      };
      if (!(await watch())) {
        const ctl = new AbortController();
        signal.addEventListener("abort", () => ctl.abort());
        every(POLL_MS, async () => {
          if (await watch()) ctl.abort();
        }, ctl.signal);
      }
    } catch (err) {
      row.classList.add("failed");
      replace(state, errorBox(err));
    }
  });
  pump();
}

function pump() {
  while (active < PARALLEL && queue.length) {
    const job = queue.shift();
    active += 1;
    job().finally(() => {
      active -= 1;
      pump();
    });
  }
}
