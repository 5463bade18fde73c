// The task monitor: the queue's depth (every status counted by the server), processing tasks
// with their progress, failed and dead-lettered ones with their error codes, retry and cancel;
// it refreshes itself every few seconds.

import * as api from "../api.js";
import { field, h, replace, status } from "../dom.js";
import { FINAL, badge, errorBox, human, when } from "../format.js";
import { every } from "./collections.js";

const FILTERS = [
  ["", "All tasks"],
  ["pending", "Waiting"],
  ["processing", "Processing"],
  ["processing_chunks", "Indexing"],
  ["failed", "Failed"],
  ["dead", "Dead-lettered"],
];

export async function tasksView({ main, query, signal }) {
  const filter = query.get("filter") || "";
  const select = h("select", { id: "task-filter" }, FILTERS.map(([v, l]) => h("option", { value: v, selected: v === filter }, l)));
  select.addEventListener("change", () => {
    location.hash = `#/tasks${select.value ? `?filter=${select.value}` : ""}`;
  });
  const list = h("div", { class: "list" }, status("Loading tasks…"));
  const errors = h("div");
  const counts = h("ul", { class: "counts", "aria-label": "Queue depth" });
  replace(
    main,
    h("h1", {}, "Tasks"),
    h("p", { class: "intro" }, "Every upload is processed by a task. Failed tasks can be retried; a task that ran out of attempts is dead-lettered until someone retries it."),
    h("div", { class: "toolbar" }, field("Show", select)),
    counts,
    errors,
    list,
  );
  const writable = api.canWrite();

  // Redrawn only when something changed, so the refresh never moves the keyboard focus.
  let shown = "";
  const draw = async (force) => {
    const q = filter === "dead" ? { dead_lettered: true } : { status: filter };
    const [page, depth] = await Promise.all([
      api.call("GET", "/api/v1/tasks", { query: { ...q, limit: 50 } }),
      api.call("GET", "/api/v1/tasks/counts"),
    ]);
    if (signal.aborted) return;
    const now = JSON.stringify([page, depth]);
    if (force !== true && now === shown) return;
    shown = now;
    const n = depth.by_status;
    replace(
      counts,
      [
        ["pending", "waiting", n.pending],
        ["processing", "processing", n.processing + n.processing_chunks],
        ["failed", "failed", n.failed],
        ["dead", "dead-lettered", depth.dead_lettered],
        ["completed", "done", n.completed + n.partially_completed],
        ["cancelled", "cancelled", n.cancelled],
      ].map(([key, label, count]) => h("li", { "data-count": key }, h("strong", {}, String(count)), ` ${label}`)),
    );
    if (!page.items.length) {
      replace(list, h("p", { class: "empty" }, "No tasks."));
      return;
    }
    replace(
      list,
      h(
        "table",
        {},
        h("caption", { class: "sr-only" }, "Tasks"),
        h("thead", {}, h("tr", {}, ["Task", "Status", "Progress", "Attempts", "Error", "Updated", ""].map((t) => h("th", { scope: "col" }, t || h("span", { class: "sr-only" }, "Actions"))))),
        h(
          "tbody",
          {},
          page.items.map((t) => {
            const p = t.progress;
            const progress = p.chunks_total
              ? [h("progress", { max: p.chunks_total, value: p.chunks_done, "aria-label": `Task ${t.id} progress` }), ` ${p.chunks_done} / ${p.chunks_total}`, p.rows_failed ? ` · ${p.rows_failed} rows failed` : ""]
              : "—";
            const acts = [];
            if (writable && (t.status === "failed" || t.status === "cancelled" || t.dead_lettered)) acts.push(action("Retry", `/api/v1/tasks/${t.id}/retry`, () => draw(true), errors));
            if (writable && !FINAL.has(t.status) && !t.cancel_requested) acts.push(action("Cancel", `/api/v1/tasks/${t.id}/cancel`, () => draw(true), errors));
            return h(
              "tr",
              { "data-task": t.id },
              h("td", {}, t.kind, t.document_id ? h("div", {}, h("a", { href: `#/documents/${t.document_id}` }, "document")) : null),
              h("td", {}, badge(t.status), t.dead_lettered ? h("span", { class: "badge s-failed" }, "dead-lettered") : null),
              h("td", {}, progress),
              h("td", { class: "num" }, `${t.attempts} / ${t.max_attempts}`),
              h("td", {}, t.error ? [h("code", {}, t.error.code), h("div", { class: "muted" }, human(t.error.code, t.error.message))] : "—"),
              h("td", {}, when(t.updated_at)),
              h("td", {}, acts),
            );
          }),
        ),
      ),
    );
  };

  await draw(true);
  every(3000, draw, signal);
}

function action(label, path, redraw, errors) {
  const b = h("button", { type: "button", class: "small" }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await api.call("POST", path);
      await redraw();
    } catch (e) {
      errors.append(errorBox(e));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
