// The console's only way to the server: the public /api/v1 API.
//
// Session: the access token lives in this module's memory only (never in storage); the
// refresh token is an HttpOnly, SameSite=Strict cookie scoped to /api/v1/auth that page
// scripts cannot read, sent only with the `X-Docent-Console: 1` header. A reload refreshes
// from the cookie; refreshes are serialised across tabs with the Web Locks API, since a
// refresh token works once and a second use ends the session.

const CONSOLE = { "x-docent-console": "1" };

/** A failed API call, with the server's stable code. */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

let session = null; // { access_token, expires (ms), user, tenant_id, role }
// `auth.mode = "none"`: the server has no accounts and every request acts as the owner.
let authDisabled = false;
const listeners = new Set();

/** Calls `fn(session)` whenever the session changes (null: signed out). */
export function onSession(fn) {
  listeners.add(fn);
}

function setSession(s) {
  session = authDisabled
    ? { access_token: null, expires: Infinity, user: { email: null }, tenant_id: null, role: "owner", open: true }
    : s
    ? {
        access_token: s.access_token,
        expires: Date.parse(s.expires_at),
        user: s.user,
        tenant_id: s.tenant_id,
        role: s.role,
      }
    : null;
  for (const fn of listeners) fn(session);
}

/** The current session, or null. */
export function current() {
  return session;
}

/** Whether the signed-in role may change things (members, admins, owners). */
export function canWrite() {
  return !!session && session.role !== "viewer";
}

/** Whether the role may manage keys and members. */
export function isAdmin() {
  return !!session && (session.role === "admin" || session.role === "owner");
}

async function errorOf(resp) {
  let code = "http_" + resp.status;
  let message = resp.statusText || "request failed";
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(resp.status, code, message, resp.headers.get("x-request-id"));
}

async function post(path, body, headers = {}) {
  return fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
}

/** First-run setup; signs in. */
export async function setup(token, email, password, tenantName) {
  const r = await post("/api/v1/setup", { token, email, password, tenant_name: tenantName || null }, CONSOLE);
  if (!r.ok) throw await errorOf(r);
  setSession(await r.json());
}

/** Sign-in with email and password. */
export async function signin(email, password) {
  const r = await post("/api/v1/auth/signin", { email, password }, CONSOLE);
  if (!r.ok) throw await errorOf(r);
  setSession(await r.json());
}

/** Sign-up; resolves "verify" when the address must be confirmed first, else signs in. */
export async function signup(email, password, tenantName, inviteToken) {
  const r = await post(
    "/api/v1/auth/signup",
    { email, password, tenant_name: tenantName || null, invite_token: inviteToken || null },
    CONSOLE,
  );
  if (!r.ok) throw await errorOf(r);
  if (r.status === 202) return "verify";
  setSession(await r.json());
  return "signed_in";
}

/** Calls an account route that needs no session (verify, reset). */
export async function publicPost(path, body) {
  const r = await post(path, body);
  if (!r.ok) throw await errorOf(r);
  return r.status === 204 || r.status === 202 ? null : r.json();
}

let refreshing = null;

/** Renews the session from the cookie; resolves true when signed in. */
export function refresh() {
  if (!refreshing) {
    const run = async () => {
      const r = await post("/api/v1/auth/refresh", {}, CONSOLE);
      if (r.status === 404) {
        // route_not_found: this server runs without accounts.
        authDisabled = true;
        setSession(null);
        return true;
      }
      if (!r.ok) {
        setSession(null);
        return false;
      }
      setSession(await r.json());
      return true;
    };
    const locked = navigator.locks ? navigator.locks.request("docent-refresh", run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Signs out: the server revokes the refresh token and deletes the cookie. */
export async function signout() {
  try {
    await post("/api/v1/auth/signout", {}, CONSOLE);
  } finally {
    setSession(null);
  }
}

/** Acts in another workspace. */
export async function switchTenant(tenantId) {
  const s = await call("POST", "/api/v1/auth/switch", { json: { tenant_id: tenantId }, headers: CONSOLE });
  setSession(s);
}

async function bearer() {
  if (authDisabled) return null;
  if (session && session.expires - Date.now() < 30_000) await refresh();
  if (!session) throw new ApiError(401, "unauthenticated", "Your session ended. Sign in again.");
  return `Bearer ${session.access_token}`;
}

/**
 * Calls the API and returns the parsed JSON (null for an empty answer). Options: `json` (a
 * body), `query` (an object; empty values left out), `headers`, `raw` (return the Response).
 * An expired access token is renewed once.
 */
export async function call(method, path, opts = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  for (let attempt = 0; ; attempt += 1) {
    const auth = await bearer();
    const headers = { ...(auth ? { authorization: auth } : {}), ...(opts.headers || {}) };
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    const resp = await fetch(url, {
      method,
      headers,
      body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
      credentials: "same-origin",
      signal: opts.signal,
    });
    if (resp.status === 401 && attempt === 0) {
      const err = await errorOf(resp);
      if (err.code === "token_expired" && (await refresh())) continue;
      if (err.code === "token_expired" || err.code === "token_invalid") setSession(null);
      throw err;
    }
    if (!resp.ok) throw await errorOf(resp);
    if (opts.raw) return resp;
    if (resp.status === 204) return null;
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }
}

/**
 * Sends `body` with XMLHttpRequest (fetch reports no upload progress), calling
 * `onProgress(sent, total)` as bytes go out. Resolves with the response's status, parsed JSON
 * body (null when it is not JSON) and request id; a network failure rejects.
 */
function send(method, url, headers, body, onProgress, size) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : size));
    xhr.addEventListener("load", () => {
      let json = null;
      try {
        json = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        // Not JSON (the object store answers XML).
      }
      // Another origin's headers are not the console's to read (the bucket's answer).
      const own = new URL(url, location.href).origin === location.origin;
      resolve({ status: xhr.status, json, requestId: own ? xhr.getResponseHeader("x-request-id") : null });
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error", "The upload could not reach the server.")));
    xhr.send(body);
  });
}

/** The hex SHA-256 of a file's bytes. */
async function sha256(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Whether to try direct uploads; false once the server said it keeps originals locally.
let direct = true;

/**
 * Uploads one file into a collection with a progress report (`onProgress(sent, total)`) and
 * resolves with the upload result. When the server signs direct uploads (an S3 blob store) the
 * bytes go straight to the bucket with a presigned `PUT`, then the upload is completed through
 * the API; otherwise (`feature_unavailable`, or no Web Crypto on a plain-http remote host) they
 * go as a multipart form to the API.
 */
export async function upload(collectionId, file, onProgress) {
  const base = `/api/v1/collections/${encodeURIComponent(collectionId)}/documents`;
  if (direct && file.size > 0 && globalThis.crypto && crypto.subtle) {
    let ticket = null;
    try {
      ticket = await call("POST", `${base}/uploads`, {
        json: { filename: file.name, size: file.size, sha256: await sha256(file), content_type: file.type || null },
      });
    } catch (e) {
      if (e.code !== "feature_unavailable") throw e;
      direct = false;
    }
    if (ticket) {
      const put = await send(ticket.method, ticket.url, ticket.headers, file, onProgress, file.size).catch(() => {
        throw new ApiError(0, "storage_unreachable", "The browser could not send the file to the storage service.");
      });
      if (put.status < 200 || put.status >= 300) {
        throw new ApiError(put.status, "storage_refused", `The storage service refused the file (HTTP ${put.status}).`);
      }
      return call("POST", `${base}/uploads/${encodeURIComponent(ticket.upload_id)}/complete`);
    }
  }
  const auth = await bearer();
  const form = new FormData();
  form.append("file", file, file.name);
  const r = await send("POST", base, auth ? { authorization: auth } : {}, form, onProgress, file.size);
  if (r.status >= 200 && r.status < 300) return r.json;
  const e = r.json && r.json.error;
  throw new ApiError(r.status, e ? e.code : `http_${r.status}`, e ? e.message : "upload failed", r.requestId);
}

/**
 * Asks a bot and streams the answer: server-sent events read from a fetch body (EventSource
 * cannot send an Authorization header). Calls `onEvent(name, data)` for `start`, `delta`,
 * `done` and `error`.
 */
export async function chatStream(botId, message, conversationId, onEvent, signal) {
  const resp = await call("POST", `/api/v1/bots/${encodeURIComponent(botId)}/chat`, {
    json: { message, conversation_id: conversationId || null, stream: true },
    headers: { accept: "text/event-stream" },
    raw: true,
    signal,
  });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
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
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

/** Fetches every page of a list route (at most `max` items). */
export async function all(path, query = {}, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const page = await call("GET", path, { query: { ...query, limit: 200, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
