//! The embeddable chat widget's rules: publishable widget keys (one bot each), anonymous visitor
//! sessions, and chat through them.
//!
//! - A **widget key** (`dwk_…`) is public: it sits in web pages. It lets a visitor do exactly
//!   one thing — chat with its bot — from the bot's `allowed_origins` only (an empty list
//!   refuses every origin), within per-key and per-visitor rate limits and a daily quota per
//!   key counted in the database, so every replica shares it.
//! - A **session** is minted for a key and the page's origin: a short-lived token signed with
//!   HMAC-SHA256 under a secret the database keeps (made on first use, shared by every
//!   process), binding the key, bot, tenant, origin and visitor. A revoked key or an origin
//!   taken off the bot's list stops every session at once: each request re-reads both.
//! - A **visitor** is a random secret the visitor's browser keeps; the server stores only a
//!   keyed hash of it per bot ([`VisitorHash`]), and a widget conversation belongs to that hash
//!   ([`ConversationOwner::Visitor`]): another visitor, whatever ids they guess, gets
//!   `conversation_not_found`.
//! - What visitors see of cited sources is the bot's [`WidgetSources`] setting ([`shown`]).
//!
//! Refused origins are recorded per bot, so the owner can see why a site gets no chat.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, TimeZone, Utc};
use docent_config::{RateQuota, WidgetConfig};
use docent_domain::*;
use futures::stream::BoxStream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::Services;
use crate::bots::{BotScope, Caller, parse_origin};
use crate::chat::{ChatEvent, ChatInput, Source};

/// The prefix of widget keys.
pub const KEY_PREFIX: &str = "dwk_";
/// The prefix of widget session tokens.
const TOKEN_PREFIX: &str = "dws.";
/// Longest widget key name.
pub const MAX_KEY_NAME_CHARS: usize = 200;
/// Largest daily quota a key may have.
pub const MAX_DAILY_QUOTA: u32 = 10_000_000;
/// Longest visitor message.
pub const MAX_VISITOR_MESSAGE_CHARS: usize = 4_000;
/// Characters of a cited passage shown with `sources = "snippets"`.
pub const SNIPPET_CHARS: usize = 240;
/// Messages of a conversation a visitor reads back (the latest).
pub const MAX_HISTORY: usize = 400;
/// The message visitors see when the key's daily quota is used up.
pub const QUOTA_MESSAGE: &str =
    "This assistant has reached its daily message limit. Please try again tomorrow.";

/// The widget's per-process state: the signing secret once read, and the rate limiters.
pub struct WidgetRuntime {
    secret: OnceCell<Arc<hmac::Key>>,
    keys: DefaultKeyedRateLimiter<String>,
    visitors: DefaultKeyedRateLimiter<String>,
    sessions: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl std::fmt::Debug for WidgetRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WidgetRuntime").finish_non_exhaustive()
    }
}

fn quota(q: RateQuota) -> Quota {
    let per_minute = q.per_minute.max(1);
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(std::num::NonZeroU32::MIN))
        .allow_burst(std::num::NonZeroU32::new(q.burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN))
}

impl WidgetRuntime {
    /// Limiters from `[widget]`.
    pub fn new(config: &WidgetConfig) -> Self {
        Self {
            secret: OnceCell::new(),
            keys: DefaultKeyedRateLimiter::keyed(quota(config.key_rate)),
            visitors: DefaultKeyedRateLimiter::keyed(quota(config.visitor_rate)),
            sessions: DefaultKeyedRateLimiter::keyed(quota(config.session_rate)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token from `limiter`'s bucket for `key`: `rate_limited` with `Retry-After`
    /// when it is empty. Full buckets are forgotten now and then (bounded memory).
    fn take(&self, limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<()> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            for l in [&self.keys, &self.visitors, &self.sessions] {
                l.retain_recent();
            }
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Error::new(
                Code::RateLimited,
                "too many messages; please wait a moment and try again",
            )
            .with_retry_after(Duration::from_secs(secs.max(1)))
        })
    }
}

/// What the page asks for when the widget loads (besides its key).
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The origin of the page embedding the widget.
    pub host_origin: String,
    /// The visitor secret the browser kept from an earlier session, if any.
    pub visitor: Option<String>,
}

/// A minted session.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    /// The signed token (`Authorization: Bearer …` on the widget's chat routes).
    pub token: String,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
    /// The visitor secret for the browser to keep (the same as asked when it was valid).
    pub visitor: String,
    /// The bot.
    pub bot: Bot,
    /// The visitor's latest conversation with the bot, to resume.
    pub conversation_id: Option<ConversationId>,
}

/// A verified session token.
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetSession {
    /// The key (`None`: the owner's preview).
    pub key: Option<WidgetKeyId>,
    /// The bot.
    pub bot: BotId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The page origin it was minted for.
    pub origin: String,
    /// The visitor.
    pub visitor: VisitorHash,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
}

/// The signed claims (short names: the token travels in every request).
#[derive(Serialize, Deserialize)]
struct Claims {
    /// Key id, absent for a preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    b: String,
    t: String,
    o: String,
    v: String,
    /// Expiry, unix seconds.
    e: i64,
}

/// A cited source as a visitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSource {
    /// The `[n]` number.
    pub n: u32,
    /// The document's file name (`names`, `snippets`).
    pub name: Option<String>,
    /// The passage's opening words (`snippets`).
    pub snippet: Option<String>,
}

fn snippet(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= SNIPPET_CHARS {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    s.push('…');
    s
}

/// A source shaped by the bot's setting.
pub fn shown(setting: WidgetSources, s: &Source) -> ShownSource {
    ShownSource {
        n: s.marker,
        name: (setting != WidgetSources::None).then(|| s.filename.clone()),
        snippet: (setting == WidgetSources::Snippets).then(|| snippet(&s.quote)),
    }
}

fn random_token() -> Result<String> {
    let mut buf = [0u8; 32];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::internal("no randomness"))?;
    Ok(B64.encode(buf))
}

/// Whether `s` looks like a visitor secret this server made (43 base64url characters).
fn is_visitor_secret(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn session_invalid() -> Error {
    Error::new(
        Code::WidgetSessionInvalid,
        "the widget session is not valid; start a new session",
    )
}

fn key_invalid() -> Error {
    Error::new(
        Code::WidgetKeyInvalid,
        "this widget key is unknown or was revoked",
    )
}

/// The reason recorded for a refused origin.
fn refusal_reason(bot: &Bot) -> &'static str {
    if bot.allowed_origins.is_empty() {
        "no_origins"
    } else {
        "origin_not_allowed"
    }
}

fn origin_refused(origin: &str, bot: &Bot) -> Error {
    let shown: String = origin.chars().take(200).collect();
    let why = if bot.allowed_origins.is_empty() {
        "the bot allows no origin yet"
    } else {
        "it is not among the bot's allowed origins"
    };
    Error::new(
        Code::WidgetOriginRefused,
        format!(
            "the widget may not be used on {shown}: {why}; add the origin to the bot's allowed \
             origins"
        ),
    )
}

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive()
}

/// Time until the next UTC day, when quotas start again.
fn until_tomorrow() -> Duration {
    let now = Utc::now();
    let tomorrow = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    tomorrow
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
        .max(Duration::from_secs(1))
}

fn count(outcome: &'static str) {
    metrics::counter!("docent_widget_messages_total", "outcome" => outcome).increment(1);
}

impl Services {
    async fn widget_key_hmac(&self) -> Result<Arc<hmac::Key>> {
        self.widget
            .secret
            .get_or_try_init(|| async {
                let mut candidate = [0u8; 32];
                aws_lc_rs::rand::fill(&mut candidate)
                    .map_err(|_| Error::internal("no randomness"))?;
                let secret = self.store.widget_secret(&candidate).await?;
                Ok(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &secret)))
            })
            .await
            .cloned()
    }

    async fn visitor_hash(&self, bot: BotId, secret: &str) -> Result<VisitorHash> {
        let key = self.widget_key_hmac().await?;
        let tag = hmac::sign(&key, format!("visitor\0{bot}\0{secret}").as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(VisitorHash(out))
    }

    async fn sign_session(&self, claims: &Claims) -> Result<String> {
        let body = serde_json::to_vec(claims).map_err(Error::internal)?;
        let signed = format!("{TOKEN_PREFIX}{}", B64.encode(body));
        let key = self.widget_key_hmac().await?;
        let tag = hmac::sign(&key, signed.as_bytes());
        Ok(format!("{signed}.{}", B64.encode(tag.as_ref())))
    }

    /// Checks a session token's signature and expiry (not yet its key or origin: see
    /// [`Self::widget_session`]).
    async fn verify_session(&self, token: &str) -> Result<WidgetSession> {
        let (signed, tag) = token.rsplit_once('.').ok_or_else(session_invalid)?;
        let body = signed
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(session_invalid)?;
        let tag = B64.decode(tag).map_err(|_| session_invalid())?;
        let key = self.widget_key_hmac().await?;
        hmac::verify(&key, signed.as_bytes(), &tag).map_err(|_| session_invalid())?;
        let body = B64.decode(body).map_err(|_| session_invalid())?;
        let c: Claims = serde_json::from_slice(&body).map_err(|_| session_invalid())?;
        let expires_at = Utc
            .timestamp_opt(c.e, 0)
            .single()
            .ok_or_else(session_invalid)?;
        if expires_at <= Utc::now() {
            return Err(Error::new(
                Code::WidgetSessionExpired,
                "the widget session has expired; start a new session",
            ));
        }
        Ok(WidgetSession {
            key: c
                .k
                .map(|k| k.parse().map_err(|_| session_invalid()))
                .transpose()?,
            bot: c.b.parse().map_err(|_| session_invalid())?,
            tenant: c.t.parse().map_err(|_| session_invalid())?,
            origin: c.o,
            visitor: c.v.parse().map_err(|_| session_invalid())?,
            expires_at,
        })
    }

    async fn grant(
        &self,
        bot: Bot,
        key: Option<WidgetKeyId>,
        origin: String,
        visitor: Option<String>,
    ) -> Result<SessionGrant> {
        let visitor = match visitor.filter(|v| is_visitor_secret(v)) {
            Some(v) => v,
            None => random_token()?,
        };
        let hash = self.visitor_hash(bot.id, &visitor).await?;
        let ttl =
            chrono::Duration::from_std(self.config.widget.session_ttl).map_err(Error::internal)?;
        let expires_at = Utc::now() + ttl;
        let token = self
            .sign_session(&Claims {
                k: key.map(|k| k.to_string()),
                b: bot.id.to_string(),
                t: bot.tenant_id.to_string(),
                o: origin,
                v: hash.to_string(),
                e: expires_at.timestamp(),
            })
            .await?;
        let conversation_id = self
            .store
            .latest_visitor_conversation(bot.tenant_id, bot.id, hash)
            .await?;
        metrics::counter!("docent_widget_sessions_total").increment(1);
        Ok(SessionGrant {
            token,
            expires_at: Utc
                .timestamp_opt(expires_at.timestamp(), 0)
                .single()
                .unwrap_or(expires_at),
            visitor,
            bot,
            conversation_id,
        })
    }

    /// Takes one session mint from `client`'s bucket (`rate_limited` when empty).
    pub fn widget_session_rate(&self, client: &str) -> Result<()> {
        self.widget
            .take(&self.widget.sessions, format!("s:{client}"))
    }

    /// The active key with this text and its bot: `widget_key_invalid` for an unknown or
    /// revoked one.
    pub async fn widget_key_bot(&self, key: &str) -> Result<(WidgetKey, Bot)> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 100 {
            return Err(key_invalid());
        }
        let key = self
            .store
            .find_widget_key(key, today())
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(key_invalid)?;
        let bot = self.store.get_bot(key.tenant_id, key.bot_id).await?;
        Ok((key, bot))
    }

    /// Whether `origin` may be answered at all (a CORS preflight, which names no key): some
    /// bot with an active key allows it.
    pub async fn widget_origin_known(&self, origin: &str) -> Result<bool> {
        match parse_origin("origin", origin) {
            Ok(o) if o == origin => self.store.origin_has_widget(&o).await,
            _ => Ok(false),
        }
    }

    /// Refuses `origin` unless the bot allows it, recording the refusal.
    pub async fn widget_check_origin(&self, bot: &Bot, origin: &str) -> Result<()> {
        if bot.allowed_origins.iter().any(|o| o == origin) {
            return Ok(());
        }
        // Only well-formed origins are recorded (the list is for the owner to read).
        if let Ok(o) = parse_origin("origin", origin) {
            self.store
                .record_widget_refusal(bot.tenant_id, bot.id, &o, refusal_reason(bot))
                .await?;
        }
        count("refused");
        Err(origin_refused(origin, bot))
    }

    /// Mints a visitor session for an active key (see [`Self::widget_key_bot`]) and its bot on
    /// a page of `req.host_origin`, which the bot must allow (a refusal is recorded).
    pub async fn start_widget_session(
        &self,
        key: &WidgetKey,
        bot: Bot,
        req: SessionRequest,
    ) -> Result<SessionGrant> {
        self.widget_check_origin(&bot, &req.host_origin).await?;
        self.grant(bot, Some(key.id), req.host_origin, req.visitor)
            .await
    }

    /// A session for the owner's live preview in the console: bound to the bot and to docent's
    /// own origin, counted against no key (rate limits still apply).
    pub async fn preview_widget_session<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        own_origin: String,
        visitor: Option<String>,
    ) -> Result<SessionGrant> {
        let bot = self.scoped_bot(scope.into(), bot).await?;
        self.grant(bot, None, own_origin, visitor).await
    }

    /// A verified session whose key is still active and whose origin the bot still allows,
    /// with its bot.
    pub async fn widget_session(&self, token: &str) -> Result<(WidgetSession, Bot)> {
        let session = self.verify_session(token).await?;
        let bot = match self.store.get_bot(session.tenant, session.bot).await {
            Ok(bot) => bot,
            Err(e) if e.code == Code::BotNotFound => return Err(key_invalid()),
            Err(e) => return Err(e),
        };
        if let Some(id) = session.key {
            self.active_key(&session, id).await?;
            self.widget_check_origin(&bot, &session.origin).await?;
        }
        Ok((session, bot))
    }

    /// The session's key, unless revoked (or gone with its bot): `widget_key_invalid`.
    async fn active_key(&self, session: &WidgetSession, id: WidgetKeyId) -> Result<WidgetKey> {
        match self
            .store
            .get_widget_key(session.tenant, session.bot, id, today())
            .await
        {
            Ok(k) if k.revoked_at.is_none() => Ok(k),
            Ok(_) => Err(key_invalid()),
            Err(e) if e.code == Code::WidgetKeyNotFound => Err(key_invalid()),
            Err(e) => Err(e),
        }
    }

    fn visitor_scope<'a>(session: &WidgetSession, bots: &'a [BotId]) -> BotScope<'a> {
        BotScope {
            tenant: session.tenant,
            collections: None,
            bots: Some(bots),
            caller: Some(Caller {
                owner: ConversationOwner::Visitor {
                    visitor: session.visitor,
                    key: session.key,
                },
                admin: false,
                read_only: false,
            }),
        }
    }

    /// The visitor's conversation and its latest messages (another's is
    /// `conversation_not_found`, whatever the id).
    pub async fn widget_conversation(
        &self,
        session: &WidgetSession,
        id: ConversationId,
    ) -> Result<Vec<Message>> {
        let bots = [session.bot];
        let scope = Self::visitor_scope(session, &bots);
        let mut messages = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .conversation_messages(
                    scope,
                    id,
                    PageRequest {
                        limit: PageRequest::MAX_LIMIT,
                        cursor,
                    },
                )
                .await?;
            messages.extend(page.items);
            if messages.len() > MAX_HISTORY {
                messages.drain(..messages.len() - MAX_HISTORY);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(messages),
            }
        }
    }

    /// A stored answer's citations as a visitor sees them under the bot's setting.
    pub async fn widget_citations(
        &self,
        tenant: TenantId,
        setting: WidgetSources,
        citations: &[Citation],
    ) -> Result<Vec<ShownSource>> {
        if setting == WidgetSources::None {
            return Ok(citations
                .iter()
                .map(|c| ShownSource {
                    n: c.marker,
                    name: None,
                    snippet: None,
                })
                .collect());
        }
        let ids: Vec<DocumentId> = citations.iter().map(|c| c.document_id).collect();
        let docs = self.store.get_documents(tenant, &ids).await?;
        let chunks = if setting == WidgetSources::Snippets {
            let ids: Vec<ChunkId> = citations.iter().map(|c| c.chunk_id).collect();
            self.store.get_chunks(tenant, &ids).await?
        } else {
            Vec::new()
        };
        Ok(citations
            .iter()
            .map(|c| ShownSource {
                n: c.marker,
                name: docs
                    .iter()
                    .find(|d| d.id == c.document_id)
                    .map(|d| d.filename.clone()),
                snippet: chunks.iter().find(|ch| ch.id == c.chunk_id).map(|ch| {
                    let from = c.char_start.saturating_sub(ch.char_start) as usize;
                    let len = c.char_end.saturating_sub(c.char_start) as usize;
                    snippet(&ch.text.chars().skip(from).take(len).collect::<String>())
                }),
            })
            .collect())
    }

    /// A visitor's message: rate limits (visitor, then key), the key's daily quota, then the
    /// bot's streamed answer in the visitor's conversation.
    pub async fn widget_chat(
        &self,
        session: &WidgetSession,
        message: String,
        conversation: Option<ConversationId>,
    ) -> Result<BoxStream<'static, ChatEvent>> {
        if message.chars().count() > MAX_VISITOR_MESSAGE_CHARS {
            return Err(Error::new(
                Code::InvalidField,
                format!("`message` may hold at most {MAX_VISITOR_MESSAGE_CHARS} characters"),
            ));
        }
        let limited = |e| {
            count("rate_limited");
            e
        };
        self.widget
            .take(
                &self.widget.visitors,
                format!("v:{}:{}", session.bot, session.visitor),
            )
            .map_err(limited)?;
        if let Some(key) = session.key {
            self.widget
                .take(&self.widget.keys, format!("k:{key}"))
                .map_err(limited)?;
            let quota = self.active_key(session, key).await?.daily_quota;
            let taken = self
                .store
                .take_widget_message(session.tenant, key, today(), quota)
                .await?;
            if taken.is_none() {
                count("quota_exceeded");
                metrics::counter!("docent_widget_quota_exhausted_total", "key" => key.to_string())
                    .increment(1);
                return Err(Error::new(Code::WidgetQuotaExceeded, QUOTA_MESSAGE)
                    .with_retry_after(until_tomorrow()));
            }
        }
        let bots = [session.bot];
        let input = ChatInput {
            message,
            conversation,
            history: Vec::new(),
            store: true,
        };
        let events = self
            .chat_stream(Self::visitor_scope(session, &bots), session.bot, input)
            .await?;
        count("ok");
        Ok(events)
    }

    /// A bot's widget keys, revoked ones too, newest first.
    pub async fn widget_keys<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
    ) -> Result<Vec<WidgetKey>> {
        let scope = scope.into();
        self.scoped_bot(scope, bot).await?;
        self.store
            .list_widget_keys(scope.tenant, bot, today())
            .await
    }

    /// Creates a widget key for a bot (`name` defaults to "Widget key", the quota to
    /// `widget.default_daily_quota`).
    pub async fn create_widget_key<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        name: Option<String>,
        daily_quota: Option<u32>,
    ) -> Result<WidgetKey> {
        let scope = scope.into();
        let name = match name.as_deref().map(str::trim) {
            None | Some("") => "Widget key".to_owned(),
            Some(n) if n.chars().count() > MAX_KEY_NAME_CHARS => {
                return Err(Error::new(
                    Code::InvalidField,
                    format!("`name` may hold at most {MAX_KEY_NAME_CHARS} characters"),
                ));
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(Error::new(
                    Code::InvalidField,
                    "`name` must be one line of text",
                ));
            }
            Some(n) => n.to_owned(),
        };
        let daily_quota = daily_quota.unwrap_or(self.config.widget.default_daily_quota);
        if !(1..=MAX_DAILY_QUOTA).contains(&daily_quota) {
            return Err(Error::new(
                Code::InvalidField,
                format!("`daily_quota` must be between 1 and {MAX_DAILY_QUOTA}"),
            ));
        }
        self.scoped_bot(scope, bot).await?;
        let key = format!("{KEY_PREFIX}{}", random_token()?);
        self.store
            .create_widget_key(
                scope.tenant,
                bot,
                NewWidgetKey {
                    key,
                    name,
                    daily_quota,
                },
            )
            .await
    }

    /// Replaces a key by a new one with its name and quota; the old one is revoked at once.
    pub async fn rotate_widget_key<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        id: WidgetKeyId,
    ) -> Result<WidgetKey> {
        let scope = scope.into();
        self.scoped_bot(scope, bot).await?;
        let key = format!("{KEY_PREFIX}{}", random_token()?);
        self.store
            .rotate_widget_key(scope.tenant, bot, id, key)
            .await
    }

    /// Revokes a key at once (revoking a revoked key changes nothing).
    pub async fn revoke_widget_key<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        id: WidgetKeyId,
    ) -> Result<WidgetKey> {
        let scope = scope.into();
        self.scoped_bot(scope, bot).await?;
        self.store.revoke_widget_key(scope.tenant, bot, id).await
    }

    /// The origins a bot's widget refused lately, most recent first.
    pub async fn widget_refusals<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
    ) -> Result<Vec<WidgetRefusal>> {
        let scope = scope.into();
        self.scoped_bot(scope, bot).await?;
        self.store.list_widget_refusals(scope.tenant, bot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        let document = DocumentId::new();
        Source {
            marker: 2,
            document_id: document,
            filename: "handbook.pdf".into(),
            chunk_id: ChunkId {
                document,
                ordinal: 0,
            },
            page: Some(3),
            char_start: 0,
            char_end: 10,
            quote: "x".repeat(500),
            score: 1.0,
        }
    }

    #[test]
    fn sources_are_shaped_by_the_setting() {
        let s = source();
        let none = shown(WidgetSources::None, &s);
        assert_eq!((none.n, none.name, none.snippet), (2, None, None));
        let names = shown(WidgetSources::Names, &s);
        assert_eq!(names.name.as_deref(), Some("handbook.pdf"));
        assert_eq!(names.snippet, None);
        let snippets = shown(WidgetSources::Snippets, &s);
        assert_eq!(snippets.name.as_deref(), Some("handbook.pdf"));
        assert_eq!(
            snippets.snippet.unwrap().chars().count(),
            SNIPPET_CHARS + 1,
            "cut, with an ellipsis"
        );
    }

    #[test]
    fn visitor_secrets_are_recognised() {
        assert!(is_visitor_secret(&random_token().unwrap()));
        assert!(!is_visitor_secret("short"));
        assert!(!is_visitor_secret(&"a".repeat(42).replace('a', "!")));
    }

    #[test]
    fn limiters_refuse_past_the_burst() {
        let rt = WidgetRuntime::new(&WidgetConfig {
            visitor_rate: RateQuota {
                per_minute: 1,
                burst: 2,
            },
            ..WidgetConfig::default()
        });
        assert!(rt.take(&rt.visitors, "v".into()).is_ok());
        assert!(rt.take(&rt.visitors, "v".into()).is_ok());
        let e = rt.take(&rt.visitors, "v".into()).unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert!(e.retry_after.is_some());
        assert!(rt.take(&rt.visitors, "w".into()).is_ok(), "per key");
    }
}
