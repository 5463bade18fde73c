// The search playground: a query over some or all collections with mode, fusion and an
// optional score breakdown; hits with their matched words highlighted; and "Ask", the
// extractive answer whose citations open the cited passage.

import * as api from "../api.js";
import { field, h, highlighted, replace, status } from "../dom.js";
import { errorBox } from "../format.js";
import { openPassage } from "./document.js";

/**
 * An answer's text with each `[n]` marker turned into a button that opens the cited passage.
 * `cites` maps a marker number to its citation.
 */
export function answerText(text, cites) {
  const p = h("p", { class: "answer-text" });
  let at = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    const cite = cites.get(Number(m[1]));
    if (!cite) continue;
    p.append(text.slice(at, m.index));
    const b = h("button", { type: "button", class: "cite", "aria-label": `Source ${m[1]}: ${cite.filename}` }, `[${m[1]}]`);
    b.addEventListener("click", () => openPassage(cite));
    p.append(b);
    at = m.index + m[0].length;
  }
  p.append(text.slice(at));
  return p;
}

/** The list of sources under an answer, each opening its passage. */
export function sourceList(cites, label = "Sources") {
  if (!cites.length) return null;
  return h(
    "div",
    { class: "sources" },
    h("h3", {}, label),
    h(
      "ol",
      {},
      cites.map((c) => {
        const b = h("button", { type: "button", class: "link source" }, `[${c.marker}] ${c.filename}${c.page ? `, page ${c.page}` : ""}`);
        b.addEventListener("click", () => openPassage(c));
        return h("li", {}, b, c.quote ? h("q", {}, c.quote) : null);
      }),
    ),
  );
}

export async function searchView({ main, signal }) {
  const collections = await api.all("/api/v1/collections");
  if (signal.aborted) return;
  const query = h("input", { type: "search", name: "q", required: true, maxlength: 2048, autocomplete: "off" });
  const mode = h("select", { name: "mode" }, ["hybrid", "keyword", "vector"].map((m) => h("option", { value: m }, m)));
  const fusion = h("select", { name: "fusion" }, [["", "server default"], ["weighted", "weighted"], ["rrf", "rrf"]].map(([v, l]) => h("option", { value: v }, l)));
  const scope = h(
    "select",
    { name: "collection" },
    h("option", { value: "" }, "All collections"),
    collections.map((c) => h("option", { value: c.id }, c.name)),
  );
  const after = h("input", { type: "date", name: "created_after" });
  const before = h("input", { type: "date", name: "created_before" });
  const metadata = h("input", { name: "metadata", placeholder: '{"team": "hr"}', autocomplete: "off", spellcheck: "false" });
  const explain = h("input", { type: "checkbox", name: "explain", id: "explain" });
  const searchBtn = h("button", { type: "submit", class: "primary" }, "Search");
  const askBtn = h("button", { type: "button" }, "Ask");
  const form = h(
    "form",
    { class: "search-form", role: "search" },
    field("Query", query),
    h("div", { class: "row" }, field("Collection", scope), field("Mode", mode), field("Fusion", fusion)),
    h(
      "details",
      { class: "filters" },
      h("summary", {}, "More filters"),
      h(
        "div",
        { class: "row" },
        field("Uploaded from", after),
        field("Uploaded before", before),
        field("Metadata (JSON)", metadata, 'Conditions such as {"year": {"gte": 2020}}.'),
      ),
    ),
    h("div", { class: "check" }, explain, h("label", { for: "explain" }, "Show score breakdown")),
    h("div", { class: "actions" }, searchBtn, askBtn),
  );
  const results = h("div", { class: "results", "aria-live": "polite" });
  replace(
    main,
    h("h1", {}, "Search"),
    h("p", { class: "intro" }, "Search finds passages; Ask answers with the sentences that best answer the question, each cited."),
    form,
    results,
  );

  const filters = () => (scope.value ? [scope.value] : []);
  /** The optional filters as request fields; a malformed metadata condition is an error. */
  const extra = () => {
    let meta = {};
    if (metadata.value.trim()) {
      try {
        meta = JSON.parse(metadata.value);
      } catch {
        throw new api.ApiError(400, "invalid_json", "The metadata filter is not valid JSON.");
      }
    }
    const day = (input) => (input.value ? new Date(`${input.value}T00:00:00`).toISOString() : null);
    return { metadata: meta, created_after: day(after), created_before: day(before) };
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(results, status("Searching…"));
    try {
      const r = await api.call("POST", "/api/v1/search", {
        json: {
          query: query.value,
          mode: mode.value,
          fusion: fusion.value || null,
          collection_ids: filters(),
          ...extra(),
          explain: explain.checked,
          top_k: 20,
        },
      });
      replace(results, hits(r));
    } catch (err) {
      replace(results, errorBox(err));
    }
  });
  askBtn.addEventListener("click", async () => {
    if (!query.reportValidity()) return;
    replace(results, status("Looking for an answer…"));
    try {
      const r = await api.call("POST", "/api/v1/ask", { json: { question: query.value, collection_ids: filters(), metadata: extra().metadata } });
      const cites = r.citations.map((c) => ({ ...c, marker: c.n }));
      replace(
        results,
        h(
          "section",
          { class: "answer", "aria-label": "Answer" },
          h("h2", {}, "Answer"),
          h("p", { class: "answered-by" }, r.found ? "Extractive answer: sentences quoted from your documents." : "No relevant passage found."),
          answerText(r.answer, new Map(cites.map((c) => [c.marker, c]))),
          sourceList(cites),
        ),
      );
    } catch (err) {
      replace(results, errorBox(err));
    }
  });
  query.focus();
}

function hits(r) {
  if (!r.hits.length) return h("p", { class: "empty" }, "Nothing matched.");
  return h(
    "div",
    {},
    h("p", { class: "muted" }, `${r.hits.length} passages · mode ${r.mode}${r.fusion ? ` · ${r.fusion} fusion` : ""}`),
    h(
      "ol",
      { class: "hits" },
      r.hits.map((hit) => {
        const open = h("button", { type: "button", class: "link" }, hit.filename);
        open.addEventListener("click", () =>
          openPassage({ ...hit, char_start: hit.char_start, char_end: hit.char_start }),
        );
        const breakdown = hit.scores
          ? h(
              "p",
              { class: "scores" },
              `score ${hit.score.toFixed(3)}`,
              hit.scores.keyword ? ` · keyword #${hit.scores.keyword.rank} (${hit.scores.keyword.score.toFixed(2)})` : " · keyword —",
              hit.scores.vector ? ` · vector #${hit.scores.vector.rank} (${hit.scores.vector.score.toFixed(3)})` : " · vector —",
            )
          : null;
        return h(
          "li",
          { class: "hit" },
          h("div", { class: "hit-head" }, open, hit.page ? h("span", { class: "muted" }, ` · page ${hit.page}`) : null),
          hit.heading_path.length ? h("p", { class: "heading-path" }, hit.heading_path.join(" › ")) : null,
          h("p", { class: "snippet" }, highlighted(hit.snippet, hit.highlights)),
          breakdown,
          h("a", { href: `#/documents/${hit.document_id}`, class: "muted" }, "Open the document"),
        );
      }),
    ),
  );
}
