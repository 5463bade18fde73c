// Words and numbers for people: sizes, times, statuses, and failures as a sentence with the
// server's stable error code beside it.

import { h } from "./dom.js";

/** "1.2 MB". */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** A date and time in the reader's locale. */
export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Human words for document and task statuses. */
export const STATUS = {
  pending: "Waiting",
  processing: "Processing",
  processing_chunks: "Indexing",
  completed: "Ready",
  partially_completed: "Partly ready",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** Statuses after which a document no longer changes by itself. */
export const FINAL = new Set(["completed", "partially_completed", "failed", "cancelled"]);

/** A status badge (`data-status` carries the raw value for styling and tests). */
export function badge(status) {
  return h("span", { class: `badge s-${status}`, "data-status": status }, STATUS[status] || status);
}

/** What a code means, for the person reading it. */
const HUMAN = {
  unauthenticated: "You are not signed in, or your session ended.",
  invalid_credentials: "That email and password do not match an account.",
  token_invalid: "This link or token is not valid any more. Ask for a new one.",
  token_expired: "This link has expired. Ask for a new one.",
  setup_completed: "Setup is already done: sign in instead.",
  insufficient_role: "Your role in this workspace does not allow that.",
  insufficient_scope: "This credential does not allow that.",
  email_not_verified: "Confirm your email address first: open the link we mailed you.",
  email_taken: "An account with that email address exists already.",
  signup_disabled: "This server does not accept new sign-ups; ask an admin for an invitation.",
  collection_name_taken: "A collection with that name exists already.",
  payload_too_large: "The file is larger than this server accepts.",
  unsupported_format: "docent cannot read this kind of file.",
  unsupported_media_type: "docent cannot read this kind of file.",
  extraction_failed: "The file could not be read; it may be damaged.",
  extraction_timeout: "Reading the file took too long.",
  document_encrypted: "The file is password-protected.",
  no_text: "The file contains no text to index.",
  no_text_layer: "The PDF is scanned images without a text layer.",
  record_too_large: "A record in the file is too large to index.",
  document_too_large: "The document is larger than this server indexes.",
  chunk_quota_exceeded: "The workspace has reached its quota of indexed passages.",
  quota_exceeded: "The workspace has reached its storage quota.",
  worker_lost: "The worker processing it stopped; it will be retried.",
  task_timeout: "Processing took longer than allowed.",
  embedder_not_configured: "This server has no embedding model, so vector search is off.",
  rate_limited: "Too many requests: wait a moment and try again.",
  too_many_attempts: "Too many attempts: wait a moment and try again.",
  model_unavailable: "The language model is unavailable right now.",
  query_too_long: "The query is too long.",
  network_error: "The server could not be reached.",
  storage_unreachable: "The file could not be sent to the storage service; its CORS rules must allow this console.",
  storage_refused: "The storage service refused the file.",
  upload_mismatch: "The stored file differs from the one chosen; upload it again.",
  upload_incomplete: "The file did not reach the storage service; upload it again.",
  last_owner: "A workspace needs at least one owner.",
  task_state_conflict: "The task is not in a state that allows this.",
  document_state_conflict: "The document is busy; try again when it has finished.",
  internal_error: "Something went wrong on the server.",
};

/** The human sentence for a code (or the server's message when there is none). */
export function human(code, message) {
  return HUMAN[code] || message || "Something went wrong.";
}

/** An alert box for an error: the human sentence, the server's detail, and the code. */
export function errorBox(err) {
  const code = err && err.code ? err.code : "client_error";
  const message = err && err.message ? err.message : String(err);
  const sentence = human(code, message);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, sentence),
    sentence !== message ? h("p", { class: "detail" }, message) : null,
    h("p", { class: "code" }, "Error code: ", h("code", {}, code)),
  );
}
