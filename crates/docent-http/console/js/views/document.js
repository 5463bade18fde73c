// A document: metadata, live status, its extracted chunks (heading path, page), the failed-rows
// ledger with "retry failed rows", download of the original, reprocess, delete — and the
// passage viewer that citations open, with the cited span highlighted in its chunk.

import * as api from "../api.js";
import { confirmButton, h, highlighted, replace, showDialog, status } from "../dom.js";
import { FINAL, bytes, errorBox, when } from "../format.js";
import { docWithTask, every, statusCell } from "./collections.js";

const CHUNKS_PER_PAGE = 20;

/** Finds one chunk of a document by ordinal. */
export async function chunkByOrdinal(documentId, ordinal) {
  // Chunk pages are in ordinal order; ask for the page starting at it, then walk on if the
  // cursor did not land there.
  let cursor = ordinal > 0 ? String(ordinal - 1) : null;
  for (let guard = 0; guard < 50; guard += 1) {
    const page = await api.call("GET", `/api/v1/documents/${documentId}/chunks`, { query: { limit: 200, cursor } });
    const hit = page.items.find((c) => c.ordinal === ordinal);
    if (hit) return hit;
    if (!page.next_cursor || (page.items.length && page.items[0].ordinal > ordinal)) {
      if (cursor === null) break;
      cursor = null; // start over from the beginning once
      continue;
    }
    cursor = page.next_cursor;
  }
  return null;
}

/**
 * Opens the cited passage: the chunk's text with `[char_start, char_end)` (offsets in the
 * document's extracted text) highlighted, its heading path and page.
 */
export async function openPassage(cite) {
  const body = h("div", { class: "passage" }, status("Loading the passage…"));
  const title = `${cite.filename || "Source"}${cite.page ? ` · page ${cite.page}` : ""}`;
  showDialog(title, body);
  try {
    const ordinal = Number(String(cite.chunk_id).split(":").pop());
    const chunk = await chunkByOrdinal(cite.document_id, ordinal);
    if (!chunk) throw new api.ApiError(404, "document_not_found", "The passage is no longer in the document.");
    const start = Math.max(0, cite.char_start - chunk.char_start);
    const end = Math.max(start, cite.char_end - chunk.char_start);
    const text = h("blockquote", { class: "chunk-text" }, highlighted(chunk.text, [[start, end]]));
    replace(
      body,
      chunk.heading_path.length ? h("p", { class: "heading-path" }, chunk.heading_path.join(" › ")) : null,
      text,
      h("p", { class: "muted" }, `Passage ${chunk.ordinal + 1}${chunk.page ? `, page ${chunk.page}` : ""}. `, h("a", { href: `#/documents/${cite.document_id}` }, "Open the document")),
    );
    const mark = text.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "center" });
  } catch (e) {
    replace(body, errorBox(e));
  }
}

async function download(doc, errors) {
  try {
    const resp = await api.call("GET", `/api/v1/documents/${doc.id}/content`, { query: { redirect: "false" }, raw: true });
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: doc.filename, class: "sr-only" }, "download");
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    errors.append(errorBox(e));
  }
}

export async function documentView({ main, params, signal, go }) {
  const [id] = params;
  let { doc, task } = await docWithTask(id);
  if (signal.aborted) return;
  const writable = api.canWrite();
  const errors = h("div");
  const statusBox = h("div", {}, statusCell(doc, task));
  const meta = h("dl", { class: "meta" });
  const drawMeta = () =>
    replace(
      meta,
      [
        ["Status", statusBox],
        ["Detected type", doc.detected_type || "—"],
        ["Declared type", doc.declared_mime],
        ["Size", bytes(doc.size_bytes)],
        ["Pages", doc.page_count == null ? "—" : String(doc.page_count)],
        ["Chunks", String(doc.chunk_count)],
        ["Uploaded", when(doc.created_at)],
        ["SHA-256", h("code", { class: "hash" }, doc.sha256)],
      ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    );
  drawMeta();

  const actions = h("div", { class: "actions" });
  const dl = h("button", { type: "button" }, "Download original");
  dl.addEventListener("click", () => download(doc, errors));
  actions.append(dl);
  if (writable) {
    const re = h("button", { type: "button" }, "Reprocess");
    re.addEventListener("click", async () => {
      try {
        await api.call("POST", `/api/v1/documents/${id}/reprocess`);
        watch();
      } catch (e) {
        errors.append(errorBox(e));
      }
    });
    const del = confirmButton(
      "Delete",
      { title: `Delete “${doc.filename}”?`, body: "The document, its passages and its original are deleted.", confirm: "Delete document" },
      async () => {
        await api.call("DELETE", `/api/v1/documents/${id}`);
        go(`/collections/${doc.collection_id}`);
      },
      (e) => errors.append(errorBox(e)),
    );
    actions.append(re, del);
  }

  const failed = h("section", { "aria-labelledby": "failed-h" });
  const chunks = h("section", { "aria-labelledby": "chunks-h" });
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/collections" }, "Collections"), " / ", h("a", { href: `#/collections/${doc.collection_id}` }, "Collection"), " / "),
    h("div", { class: "page-head" }, h("h1", {}, doc.filename), actions),
    errors,
    meta,
    failed,
    chunks,
  );

  const drawFailed = async () => {
    if (doc.status !== "partially_completed") {
      failed.replaceChildren();
      return;
    }
    const rows = (await api.call("GET", `/api/v1/documents/${id}/failed-rows`)).items;
    const retry = writable && rows.length ? h("button", { type: "button" }, "Retry failed rows") : null;
    if (retry) {
      retry.addEventListener("click", async () => {
        try {
          await api.call("POST", `/api/v1/documents/${id}/retry-failed-rows`);
          watch();
        } catch (e) {
          errors.append(errorBox(e));
        }
      });
    }
    replace(
      failed,
      h("h2", { id: "failed-h" }, `Rows that failed (${rows.length})`),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Row"), h("th", { scope: "col" }, "Code"), h("th", { scope: "col" }, "What went wrong"))),
        h("tbody", {}, rows.map((r) => h("tr", {}, h("td", { class: "num" }, String(r.row)), h("td", {}, h("code", {}, r.code)), h("td", {}, r.message)))),
      ),
      retry,
    );
  };

  const list = h("ol", { class: "chunks" });
  const more = h("button", { type: "button" }, "Show more passages");
  const none = h("p", { class: "empty", hidden: true }, "No passages yet.");
  let cursor = null;
  const loadChunks = async (reset) => {
    if (reset) {
      cursor = null;
      list.replaceChildren();
    }
    const page = await api.call("GET", `/api/v1/documents/${id}/chunks`, { query: { limit: CHUNKS_PER_PAGE, cursor } });
    for (const c of page.items) {
      list.append(
        h(
          "li",
          { value: c.ordinal + 1, id: `chunk-${c.ordinal}` },
          h("div", { class: "chunk-meta" }, c.heading_path.length ? c.heading_path.join(" › ") : "(no heading)", c.page ? ` · page ${c.page}` : ""),
          h("p", { class: "chunk-text" }, c.text),
        ),
      );
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    none.hidden = list.children.length > 0;
  };
  more.addEventListener("click", () => loadChunks(false).catch((e) => chunks.append(errorBox(e))));
  replace(chunks, h("h2", { id: "chunks-h" }, "Extracted passages"), none, list, more);

  const refreshAll = async () => {
    await drawFailed();
    await loadChunks(true);
  };
  await refreshAll();

  let watching = false;
  function watch() {
    if (watching) return;
    watching = true;
    const ctl = new AbortController();
    signal.addEventListener("abort", () => ctl.abort());
    every(1000, async () => {
      ({ doc, task } = await docWithTask(id));
      replace(statusBox, statusCell(doc, task));
      drawMeta();
      if (FINAL.has(doc.status)) {
        ctl.abort();
        watching = false;
        await refreshAll();
      }
    }, ctl.signal);
  }
  if (!FINAL.has(doc.status)) watch();
}
