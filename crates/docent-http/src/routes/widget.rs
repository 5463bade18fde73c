//! The embeddable chat widget.
//!
//! Public (no user credentials; an `Authorization` header of a user or API key is never read):
//! `GET /widget.js` (the loader a web page includes), `GET /widget/frame` (the chat page the
//! loader frames, with `frame-ancestors` = the bot's allowed origins and `'self'`),
//! `GET /widget/assets/{file}` (the frame's script and styles), and the visitor API under
//! `/widget/v1`: `POST session` (a widget key and the page's origin → a signed visitor
//! session), `GET conversation` and `POST chat` (with the session token as bearer). CORS on
//! `/widget/v1/*` answers only the bot's allowed origins ([`cors`]).
//!
//! Management (user or API-key auth, editors and up): a bot's widget keys (create, list,
//! rotate, revoke), the origins its widget refused, and a preview session for the console.
//!
//! The browser files live in `crates/docent-http/widget/` and are embedded here as they are.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN, REFERER, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use docent_core::chat::ChatEvent;
use docent_core::widget::{SessionGrant, SessionRequest, ShownSource, WidgetSession, shown};
use docent_domain::{
    BotId, Code, ConversationId, MessageRole, WidgetKey, WidgetKeyId, WidgetRefusal,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, Client, id};

// ---------------------------------------------------------------------------------------------
// Embedded browser files.

/// Declares the embedded files, relative to `widget/`. Every file there must be listed (a test
/// compares the list with the folder).
macro_rules! files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/widget/", $path)))),*]
    };
}

/// The widget's files: name under `widget/`, bytes.
static FILES: &[(&str, &[u8])] = files!["widget.js", "frame.html", "frame.js", "frame.css"];

/// Files served under `/widget/assets/`.
const ASSETS: [&str; 2] = ["frame.js", "frame.css"];

fn file(name: &str) -> &'static [u8] {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_default()
}

/// A short hash of a file's bytes (fixed keys: the same in every process of this binary), for
/// cache-busting asset URLs.
fn version(bytes: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The frame page with every asset URL versioned (`/widget/assets/frame.js` →
/// `/widget/assets/frame.js?v=<hash>`), so assets may be cached for a year.
fn frame_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| {
        let mut html = String::from_utf8_lossy(file("frame.html")).into_owned();
        for name in ASSETS {
            let url = format!("/widget/assets/{name}");
            let versioned = format!("{url}?v={}", version(file(name)));
            html = html.replace(&format!("\"{url}\""), &format!("\"{versioned}\""));
        }
        html
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /widget.js`: the loader, cacheable for five minutes by any site.
pub(crate) async fn loader() -> Response {
    let mut resp = file("widget.js").into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type("x.js")));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    resp
}

/// `GET /widget/assets/{file}`: the frame's script and styles, immutable (their URLs carry
/// the content's hash).
pub(crate) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    if !ASSETS.contains(&name.as_str()) {
        return Err(ApiError::new(
            Code::RouteNotFound,
            "no such widget asset".to_owned(),
        ));
    }
    let mut resp = file(&name).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(resp)
}

/// The frame's policy: its own scripts, styles and API only, framed by `ancestors`.
pub fn frame_csp(ancestors: &[String]) -> String {
    let mut sources: Vec<&str> = ancestors.iter().map(String::as_str).collect();
    sources.push("'self'");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        sources.join(" ")
    )
}

/// The query of `GET /widget/frame`.
#[derive(Debug, Deserialize)]
pub(crate) struct FrameQuery {
    /// The widget key.
    #[serde(default)]
    key: Option<String>,
    /// `1`: the console's live preview (a token comes from the console, framed by docent only).
    #[serde(default)]
    preview: Option<String>,
}

/// A small page saying why there is no chat, framed by nobody.
fn frame_refusal(status: StatusCode, why: &str) -> Response {
    let mut resp = (
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chat \
             unavailable</title></head><body><p>{why}</p></body></html>"
        ),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(content_type("x.html")),
    );
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The origin of a URL (`scheme://host[:port]`), as a browser would send it.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    docent_core::bots::parse_origin("referer", &format!("{scheme}://{authority}")).ok()
}

/// The origin of the page framing this request, when the browser says it is another site's:
/// the `Referer`'s origin of a cross-origin frame navigation (`Sec-Fetch-Site`).
fn framing_origin(headers: &HeaderMap) -> Option<String> {
    let site = headers.get("sec-fetch-site")?.to_str().ok()?;
    if site == "same-origin" || site == "none" {
        return None;
    }
    origin_of(headers.get(REFERER)?.to_str().ok()?)
}

/// `GET /widget/frame?key=dwk_…`: the chat page, framed only by the key's bot's origins (and
/// docent itself, for the console's preview). An unknown or revoked key, or a page on another
/// origin (when the browser names it), gets a small error page nobody may frame, and the
/// refusal is recorded for the owner.
pub(crate) async fn frame(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FrameQuery>,
    headers: HeaderMap,
) -> Response {
    let ancestors = match (q.key, q.preview.as_deref()) {
        (Some(key), _) => match s.services.widget_key_bot(&key).await {
            Ok((_, bot)) => {
                if let Some(origin) = framing_origin(&headers)
                    && let Err(e) = s.services.widget_check_origin(&bot, &origin).await
                {
                    return match e.code {
                        Code::WidgetOriginRefused => frame_refusal(
                            StatusCode::FORBIDDEN,
                            "This chat is not enabled on this website.",
                        ),
                        _ => ApiError(e).into_response(),
                    };
                }
                bot.allowed_origins
            }
            Err(e) if e.code == Code::WidgetKeyInvalid => {
                return frame_refusal(
                    StatusCode::UNAUTHORIZED,
                    "This chat's key is unknown or was revoked.",
                );
            }
            Err(e) => return ApiError(e).into_response(),
        },
        (None, Some("1")) => Vec::new(),
        (None, _) => {
            return frame_refusal(StatusCode::BAD_REQUEST, "No widget key was given.");
        }
    };
    let mut resp = frame_html().to_owned().into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(content_type("x.html")),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Origins were validated when the bot was saved; a value that still makes no header
    // leaves the frame unframeable.
    let csp = HeaderValue::from_str(&frame_csp(&ancestors)).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'",
    ));
    h.insert(CONTENT_SECURITY_POLICY, csp);
    resp
}

// ---------------------------------------------------------------------------------------------
// CORS of the visitor API.

/// The allowed origins of the bot a widget request turned out to be for, filled in by the
/// handler once it knows the bot; [`cors`] answers the request's `Origin` only when it is
/// among them.
#[derive(Clone, Default)]
pub(crate) struct CorsSlot(Arc<Mutex<Vec<String>>>);

impl CorsSlot {
    fn allow(&self, origins: &[String]) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = origins.to_vec();
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.0
            .lock()
            .map(|o| o.iter().any(|a| a == origin))
            .unwrap_or(false)
    }
}

/// `OPTIONS /widget/v1/*`: a CORS preflight names no key, so it is answered for an origin that
/// some bot with an active widget key allows; any other origin gets no CORS headers.
pub(crate) async fn preflight(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let known = match origin {
        Some(o) => s.services.widget_origin_known(o).await.unwrap_or(false),
        None => false,
    };
    let h = resp.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Origin"));
    if known && let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, accept"),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    resp
}

/// The middleware of `/widget/v1/*` (preflights are [`preflight`]'s): adds
/// `Access-Control-Allow-Origin` to a response only for an origin the request's bot allows.
/// No credentials (cookies) are involved: the session token travels in `Authorization`.
pub(crate) async fn cors(mut req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let slot = CorsSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin.filter(|o| slot.allows(o))
        && let Ok(v) = HeaderValue::from_str(&o)
    {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after, x-request-id"),
        );
    }
    resp
}

fn slot(req_ext: &Option<axum::Extension<CorsSlot>>) -> CorsSlot {
    req_ext.as_ref().map(|e| e.0.clone()).unwrap_or_default()
}

/// Whether `origin` is docent's own: `auth.public_url`'s origin when set, else the one whose
/// host is the request's `Host`.
fn is_own_origin(s: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    if let Some(public) = s.services.config.auth.public_url.as_deref() {
        return origin_of(public).is_some_and(|o| o == origin);
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let authority = origin.split_once("://").map(|(_, a)| a);
    matches!((host, authority), (Some(h), Some(a)) if h.eq_ignore_ascii_case(a))
}

/// Docent's own origin, for a preview session: `auth.public_url`'s, else the request's
/// `Origin` when it is docent's, else `http://{Host}`.
fn own_origin(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(o) = s
        .services
        .config
        .auth
        .public_url
        .as_deref()
        .and_then(origin_of)
    {
        return o;
    }
    if let Some(o) = headers.get(ORIGIN).and_then(|v| v.to_str().ok())
        && is_own_origin(s, headers, o)
    {
        return o.to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A request's `Origin` must be the page's (direct use from the site) or docent's (the frame).
fn check_request_origin(
    s: &AppState,
    headers: &HeaderMap,
    page_origin: &str,
) -> Result<(), ApiError> {
    match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(o) if o == page_origin || is_own_origin(s, headers, o) => Ok(()),
        Some(o) => Err(ApiError::new(
            Code::WidgetOriginRefused,
            format!(
                "requests from {} may not use a session of {page_origin}",
                o.chars().take(200).collect::<String>()
            ),
        )),
    }
}

/// The session of an `Authorization: Bearer <session token>` header.
async fn session_of(
    s: &AppState,
    headers: &HeaderMap,
    cors: &CorsSlot,
) -> Result<(WidgetSession, docent_domain::Bot), ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                Code::WidgetSessionInvalid,
                "send the widget session token as `Authorization: Bearer …`",
            )
        })?;
    let (session, bot) = s.services.widget_session(token).await?;
    cors.allow(&bot.allowed_origins);
    check_request_origin(s, headers, &session.origin)?;
    Ok((session, bot))
}

// ---------------------------------------------------------------------------------------------
// Visitor API.

/// Body of `POST /widget/v1/session`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetSessionRequest {
    /// The widget key (`dwk_…`).
    pub key: String,
    /// The origin of the page embedding the widget (`https://site.example`); must be one of
    /// the bot's allowed origins.
    pub host_origin: String,
    /// The visitor secret kept from an earlier session (resumes that visitor).
    #[serde(default)]
    pub visitor: Option<String>,
}

/// What the widget shows of its bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetBot {
    /// The bot's name.
    pub name: String,
    /// First message shown.
    pub welcome_message: Option<String>,
    /// What is shown of cited sources: `none`, `names` or `snippets`.
    pub sources: &'static str,
    /// Accent colour, when the bot sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// A visitor session.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetSessionResponse {
    /// The session token: `Authorization: Bearer …` on `/widget/v1/conversation` and
    /// `/widget/v1/chat`. Short-lived: mint a new session when it is refused as expired.
    pub token: String,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
    /// The visitor secret: keep it and send it with the next session to stay the same visitor.
    pub visitor: String,
    /// The bot.
    pub bot: WidgetBot,
    /// The visitor's latest conversation with this bot (resume it), or null.
    pub conversation_id: Option<String>,
}

impl From<SessionGrant> for WidgetSessionResponse {
    fn from(g: SessionGrant) -> Self {
        Self {
            token: g.token,
            expires_at: g.expires_at,
            visitor: g.visitor,
            bot: WidgetBot {
                name: g.bot.name,
                welcome_message: g.bot.welcome_message,
                sources: g.bot.widget.sources.as_str(),
                color: g.bot.widget.color,
            },
            conversation_id: g.conversation_id.map(|c| c.to_string()),
        }
    }
}

/// Mints a visitor session for a widget key on a page of `host_origin` (an allowed origin of
/// the key's bot). A request carrying `Origin` must come from that page or from docent's own
/// widget frame.
#[utoipa::path(post, path = "/widget/v1/session", tag = "widget", security(()),
    request_body = WidgetSessionRequest,
    responses((status = 200, body = WidgetSessionResponse),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope, description = "`widget_key_invalid`: unknown or revoked key"),
        (status = 403, body = ErrorEnvelope, description = "`widget_origin_refused`: the origin is not among the bot's allowed origins"),
        (status = 429, body = ErrorEnvelope)))]
pub(crate) async fn session(
    State(s): State<AppState>,
    cors: Option<axum::Extension<CorsSlot>>,
    Client(client): Client,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WidgetSessionRequest>,
) -> ApiResult<Json<WidgetSessionResponse>> {
    s.services.widget_session_rate(&client.ip.to_string())?;
    let (key, bot) = s.services.widget_key_bot(&body.key).await?;
    slot(&cors).allow(&bot.allowed_origins);
    check_request_origin(&s, &headers, &body.host_origin)?;
    let request = SessionRequest {
        host_origin: body.host_origin,
        visitor: body.visitor,
    };
    let grant = s.services.start_widget_session(&key, bot, request).await?;
    Ok(Json(grant.into()))
}

/// A cited source as a visitor sees it (by the bot's `widget.sources`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetCitation {
    /// The `[n]` number in the answer.
    pub n: u32,
    /// The document's file name (`names`, `snippets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The passage's opening words (`snippets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl From<ShownSource> for WidgetCitation {
    fn from(s: ShownSource) -> Self {
        Self {
            n: s.n,
            name: s.name,
            snippet: s.snippet,
        }
    }
}

/// A message of a visitor's conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetMessage {
    /// Id.
    pub id: String,
    /// `user` or `assistant`.
    pub role: &'static str,
    /// Text (answers carry `[n]` markers).
    pub content: String,
    /// The sources an answer cites.
    pub citations: Vec<WidgetCitation>,
    /// Written.
    pub created_at: DateTime<Utc>,
}

/// A visitor's conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConversation {
    /// Id.
    pub conversation_id: String,
    /// Its latest messages, oldest first.
    pub messages: Vec<WidgetMessage>,
}

/// The query of `GET /widget/v1/conversation`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WidgetConversationQuery {
    /// The conversation.
    pub conversation_id: String,
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    raw.trim().parse().map_err(|_| {
        ApiError::new(
            Code::InvalidField,
            "`conversation_id` is not a valid conversation id",
        )
    })
}

/// A conversation of this session's visitor with its bot; any other id is `404
/// conversation_not_found`.
#[utoipa::path(get, path = "/widget/v1/conversation", tag = "widget",
    security(("widgetSession" = [])), params(WidgetConversationQuery),
    responses((status = 200, body = WidgetConversation),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope, description = "`widget_session_invalid`, `widget_session_expired` or `widget_key_invalid`"),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn conversation(
    State(s): State<AppState>,
    cors: Option<axum::Extension<CorsSlot>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WidgetConversationQuery>,
) -> ApiResult<Json<WidgetConversation>> {
    let (session, bot) = session_of(&s, &headers, &slot(&cors)).await?;
    let cid = conversation_id(&q.conversation_id)?;
    let messages = s.services.widget_conversation(&session, cid).await?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = match m.role {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => continue,
        };
        let citations = s
            .services
            .widget_citations(session.tenant, bot.widget.sources, &m.citations)
            .await?;
        out.push(WidgetMessage {
            id: m.id.to_string(),
            role,
            content: m.content,
            citations: citations.into_iter().map(Into::into).collect(),
            created_at: m.created_at,
        });
    }
    Ok(Json(WidgetConversation {
        conversation_id: cid.to_string(),
        messages: out,
    }))
}

/// Body of `POST /widget/v1/chat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetChatRequest {
    /// The visitor's message (at most 4,000 characters).
    pub message: String,
    /// Continue this conversation of the visitor's (default: start one).
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// The `done` event of a widget answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetReply {
    /// The conversation (resume it with `conversation_id`).
    pub conversation_id: String,
    /// The stored answer.
    pub message_id: String,
    /// The answer with `[n]` markers.
    pub answer: String,
    /// `model`, `extractive` or `no_answer` (nothing relevant found: say so kindly).
    pub answered_by: &'static str,
    /// The sources the answer cites.
    pub citations: Vec<WidgetCitation>,
}

#[derive(Serialize)]
struct WidgetStart {
    conversation_id: String,
    sources: Vec<WidgetCitation>,
}

fn event_json(event: &'static str, data: &impl Serialize) -> Event {
    Event::default()
        .event(event)
        .data(serde_json::to_string(data).unwrap_or_else(|_| "{}".into()))
}

/// A visitor's question, answered as server-sent events like `POST /api/v1/bots/{id}/chat`
/// (`start`, `delta`…, `done` | `error`), with sources shown by the bot's `widget.sources`
/// setting. Refusals before the stream are JSON envelopes: `429 rate_limited` (per visitor and
/// per key, `Retry-After`), `429 widget_quota_exceeded` (the key's daily quota; a message fit
/// to show visitors), `401` for a session to renew.
#[utoipa::path(post, path = "/widget/v1/chat", tag = "widget",
    security(("widgetSession" = [])), request_body = WidgetChatRequest,
    responses((status = 200, description = "an event stream: `start`, `delta`…, `done` (a `WidgetReply`) or `error`"),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope, description = "`widget_session_invalid`, `widget_session_expired` or `widget_key_invalid`"),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope, description = "`rate_limited` or `widget_quota_exceeded`"),
        (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn chat(
    State(s): State<AppState>,
    cors: Option<axum::Extension<CorsSlot>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WidgetChatRequest>,
) -> ApiResult<Response> {
    let (session, bot) = session_of(&s, &headers, &slot(&cors)).await?;
    let conversation = body
        .conversation_id
        .as_deref()
        .map(conversation_id)
        .transpose()?;
    let setting = bot.widget.sources;
    let events = s
        .services
        .widget_chat(&session, body.message, conversation)
        .await?;
    let shape = move |sources: &[docent_core::chat::Source]| -> Vec<WidgetCitation> {
        sources.iter().map(|x| shown(setting, x).into()).collect()
    };
    let events = events.map(move |e| {
        let event = match e {
            ChatEvent::Started {
                conversation_id,
                sources,
            } => event_json(
                "start",
                &WidgetStart {
                    conversation_id: conversation_id.to_string(),
                    sources: shape(&sources),
                },
            ),
            ChatEvent::Delta(text) => event_json("delta", &serde_json::json!({ "text": text })),
            ChatEvent::Done(reply) => event_json(
                "done",
                &WidgetReply {
                    conversation_id: reply.conversation_id.to_string(),
                    message_id: reply.message_id.to_string(),
                    answer: reply.answer.clone(),
                    answered_by: reply.answered_by.kind(),
                    citations: shape(&reply.citations),
                },
            ),
            ChatEvent::Failed(e) => event_json("error", &ApiError::from(e).envelope()),
        };
        Ok::<_, Infallible>(event)
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Management.

/// A publishable widget key.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetKeyDto {
    /// Id.
    pub id: String,
    /// The bot it chats with.
    pub bot_id: String,
    /// The key (public: it goes in web pages, and is shown every time).
    pub key: String,
    /// Label.
    pub name: String,
    /// Most visitor messages per UTC day.
    pub daily_quota: u32,
    /// Visitor messages taken today (UTC).
    pub messages_today: u32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked (or rotated away); null while active.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The snippet to paste into a page.
    pub snippet: String,
}

/// A bot's widget keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetKeyList {
    /// Newest first, revoked ones too.
    pub data: Vec<WidgetKeyDto>,
}

/// Body of `POST /api/v1/bots/{id}/widget-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWidgetKey {
    /// Label (default "Widget key").
    #[serde(default)]
    pub name: Option<String>,
    /// Most visitor messages per UTC day (default `widget.default_daily_quota`).
    #[serde(default)]
    pub daily_quota: Option<u32>,
}

/// An origin a bot's widget refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetRefusalDto {
    /// The page's origin.
    pub origin: String,
    /// `origin_not_allowed` or `no_origins` (the bot allows none yet).
    pub reason: String,
    /// How many times.
    pub count: u64,
    /// The last time.
    pub last_at: DateTime<Utc>,
}

/// Origins a bot's widget refused lately.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetRefusalList {
    /// Most recent first.
    pub data: Vec<WidgetRefusalDto>,
}

impl From<WidgetRefusal> for WidgetRefusalDto {
    fn from(r: WidgetRefusal) -> Self {
        Self {
            origin: r.origin,
            reason: r.reason,
            count: r.count,
            last_at: r.last_at,
        }
    }
}

/// Where the snippet points: `auth.public_url` when set, else the request's scheme and host.
fn public_base(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = s.services.config.auth.public_url.as_deref() {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// The `<script>` tag for `key`, with the base URL and key escaped for an HTML attribute.
pub fn snippet(base: &str, key: &str) -> String {
    fn attr(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    format!(
        "<script src=\"{}/widget.js\" data-key=\"{}\" async></script>",
        attr(base),
        attr(key)
    )
}

pub(crate) fn key_dto(base: &str, k: WidgetKey) -> WidgetKeyDto {
    WidgetKeyDto {
        id: k.id.to_string(),
        bot_id: k.bot_id.to_string(),
        snippet: snippet(base, &k.key),
        key: k.key,
        name: k.name,
        daily_quota: k.daily_quota,
        messages_today: k.messages_today,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    }
}

fn key_id(raw: &str) -> Result<WidgetKeyId, ApiError> {
    raw.trim().parse().map_err(|_| {
        ApiError::new(
            Code::InvalidId,
            format!(
                "`{}` is not a valid widget key id",
                raw.chars().take(60).collect::<String>()
            ),
        )
    })
}

/// Creates a publishable widget key for a bot.
#[utoipa::path(post, path = "/api/v1/bots/{id}/widget-keys", tag = "widget",
    params(("id" = String, Path, description = "bot id")), request_body = CreateWidgetKey,
    responses((status = 201, body = WidgetKeyDto), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateWidgetKey>,
) -> ApiResult<(StatusCode, Json<WidgetKeyDto>)> {
    let bid: BotId = id(&raw, "bot")?;
    p.require_write()?;
    let key = s
        .services
        .create_widget_key(&p, bid, body.name, body.daily_quota)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(key_dto(&public_base(&s, &headers), key)),
    ))
}

/// Lists a bot's widget keys, revoked ones too, with today's use.
#[utoipa::path(get, path = "/api/v1/bots/{id}/widget-keys", tag = "widget",
    params(("id" = String, Path, description = "bot id")),
    responses((status = 200, body = WidgetKeyList), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn list_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<WidgetKeyList>> {
    let bid: BotId = id(&raw, "bot")?;
    p.require_write()?;
    let base = public_base(&s, &headers);
    let keys = s.services.widget_keys(&p, bid).await?;
    Ok(Json(WidgetKeyList {
        data: keys.into_iter().map(|k| key_dto(&base, k)).collect(),
    }))
}

/// Replaces a widget key by a new one with the same name and quota; the old key stops working
/// at once.
#[utoipa::path(post, path = "/api/v1/bots/{id}/widget-keys/{key_id}/rotate", tag = "widget",
    params(("id" = String, Path, description = "bot id"), ("key_id" = String, Path, description = "widget key id")),
    responses((status = 201, body = WidgetKeyDto), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope, description = "`widget_key_not_found`: no such active key of the bot")))]
pub(crate) async fn rotate_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((raw, raw_key)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<WidgetKeyDto>)> {
    let bid: BotId = id(&raw, "bot")?;
    let kid = key_id(&raw_key)?;
    p.require_write()?;
    let key = s.services.rotate_widget_key(&p, bid, kid).await?;
    Ok((
        StatusCode::CREATED,
        Json(key_dto(&public_base(&s, &headers), key)),
    ))
}

/// Revokes a widget key: every page and session using it stops at once.
#[utoipa::path(delete, path = "/api/v1/bots/{id}/widget-keys/{key_id}", tag = "widget",
    params(("id" = String, Path, description = "bot id"), ("key_id" = String, Path, description = "widget key id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((raw, raw_key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let bid: BotId = id(&raw, "bot")?;
    let kid = key_id(&raw_key)?;
    p.require_write()?;
    s.services.revoke_widget_key(&p, bid, kid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The origins a bot's widget refused lately (frames and sessions): why a site gets no chat.
#[utoipa::path(get, path = "/api/v1/bots/{id}/widget-refusals", tag = "widget",
    params(("id" = String, Path, description = "bot id")),
    responses((status = 200, body = WidgetRefusalList), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn refusals(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<WidgetRefusalList>> {
    let bid: BotId = id(&raw, "bot")?;
    p.require_write()?;
    let list = s.services.widget_refusals(&p, bid).await?;
    Ok(Json(WidgetRefusalList {
        data: list.into_iter().map(Into::into).collect(),
    }))
}

/// A visitor session for the console's live preview: bound to the bot and docent's own
/// origin, counted against no key's quota.
#[utoipa::path(post, path = "/api/v1/bots/{id}/widget-preview", tag = "widget",
    params(("id" = String, Path, description = "bot id")),
    responses((status = 200, body = WidgetSessionResponse), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn preview(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<WidgetSessionResponse>> {
    let bid: BotId = id(&raw, "bot")?;
    p.require_write()?;
    let grant = s
        .services
        .preview_widget_session(&p, bid, own_origin(&s, &headers), None)
        .await?;
    Ok(Json(grant.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `widget/` is embedded, and every embedded name exists.
    #[test]
    fn the_file_list_matches_the_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("widget");
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn frame_policy_names_the_origins_and_self() {
        let csp = frame_csp(&["https://a.example".into(), "http://b.test:8080".into()]);
        assert!(csp.ends_with("frame-ancestors https://a.example http://b.test:8080 'self'"));
        assert!(frame_csp(&[]).ends_with("frame-ancestors 'self'"));
        assert!(csp.contains("script-src 'self'"));
    }

    #[test]
    fn snippets_escape_their_attributes() {
        assert_eq!(
            snippet("https://d.example", "dwk_abc"),
            "<script src=\"https://d.example/widget.js\" data-key=\"dwk_abc\" async></script>"
        );
        assert!(snippet("https://x\"><script>", "k").contains("&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn referer_origins() {
        assert_eq!(
            origin_of("https://Site.example:443/page?q=1").as_deref(),
            Some("https://site.example")
        );
        assert_eq!(origin_of("nonsense"), None);
    }

    #[test]
    fn frame_assets_are_versioned() {
        for name in ASSETS {
            if frame_html().contains(&format!("/widget/assets/{name}")) {
                assert!(frame_html().contains(&format!("/widget/assets/{name}?v=")));
            }
        }
    }
}
