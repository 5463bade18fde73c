//! Bots, their conversations and messages: the rules over
//! [`BotStore`](docent_domain::ports::BotStore) (reached through [`Services::store`]).
//!
//! - Fields are checked here, each refusal an `invalid_field` naming the field: a name of
//!   1..=200 characters, temperature in `0..=2`, `top_k` in `1..=50`, at most 100 widget origins,
//!   each exactly `http(s)://host[:port]` (no path, no wildcard; stored normalised).
//! - A bot's collections must be its tenant's: an unknown or foreign id is
//!   `collection_not_found` naming the field (`collections[i]`).
//! - Every call takes a [`BotScope`]: the tenant, and an API key's limits. A key limited to some
//!   bots sees only those (and creates none); a key limited to some collections sees only the
//!   bots all of whose collections it may read, and cannot give a bot any other. Everything
//!   outside the scope is "not found", exactly like another tenant's ids.
//! - A conversation belongs to the user or key that started it ([`Caller`]): only they read
//!   and continue it; admin users read every one, and continue those with no owner (started
//!   before owners were recorded); anyone else gets `conversation_not_found`.
//! - A key limited to some bots reads only those bots' collections, everywhere
//!   ([`Services::narrow_to_bots`], applied to every authenticated request).

use docent_domain::auth::Scope;
use docent_domain::*;

use crate::Services;

/// Longest bot name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description or welcome message.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest system prompt.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 20_000;
/// Longest model name.
pub const MAX_MODEL_CHARS: usize = 200;
/// Highest temperature.
pub const MAX_TEMPERATURE: f32 = 2.0;
/// Most passages per question.
pub const MAX_TOP_K: u32 = 50;
/// Highest `max_tokens`.
pub const MAX_ANSWER_TOKENS: u32 = 131_072;
/// Most collections per bot.
pub const MAX_COLLECTIONS: usize = 100;
/// Most widget origins per bot.
pub const MAX_ORIGINS: usize = 100;
/// Longest conversation title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;
/// Most citations per message.
pub const MAX_CITATIONS: usize = 100;

/// Where a bot call may look: a [`Scope`] (tenant, API key's collections) plus the API key's
/// bots. Build it from a `&Principal` (both limits), a [`TenantId`] (the whole tenant: CLI,
/// workers) or [`BotScope::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotScope<'a> {
    /// The tenant.
    pub tenant: TenantId,
    /// Only bots whose collections are all among these; `None`: any.
    pub collections: Option<&'a [CollectionId]>,
    /// Only these bots; `None`: every bot of the tenant.
    pub bots: Option<&'a [BotId]>,
    /// Who asks, for conversations; `None`: the operator (CLI, workers), who sees them all.
    pub caller: Option<Caller>,
}

/// A caller of the conversation services: conversations belong to whoever started them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user or key, owner of the conversations it starts.
    pub owner: ConversationOwner,
    /// An admin or owner user: reads every conversation of the tenant's bots, and continues
    /// those with no owner (started before owners were recorded). Never an API key.
    pub admin: bool,
    /// A read-only API key: its answers are not stored, so it starts no conversation.
    pub read_only: bool,
}

impl Caller {
    /// The caller behind a principal.
    pub fn of(p: &Principal) -> Self {
        let (owner, admin) = match p.actor {
            Actor::User { id, .. } => (ConversationOwner::User(id), p.role.can_administer()),
            Actor::ApiKey { id } => (ConversationOwner::ApiKey(id), false),
        };
        Self {
            owner,
            admin,
            read_only: p
                .key_scope
                .as_ref()
                .is_some_and(|k| k.access == KeyAccess::Read),
        }
    }

    /// Whether the caller may read (`write`: continue) this conversation.
    pub fn may_use(&self, conversation: &Conversation, write: bool) -> bool {
        match conversation.owner {
            Some(owner) if owner.same_as(&self.owner) => true,
            Some(_) => self.admin && !write,
            None => self.admin,
        }
    }
}

impl<'a> BotScope<'a> {
    /// A collection scope narrowed to some bots (the operator's: every conversation).
    pub fn new(scope: Scope<'a>, bots: Option<&'a [BotId]>) -> Self {
        Self {
            tenant: scope.tenant,
            collections: scope.collections,
            bots,
            caller: None,
        }
    }

    /// Whether the bot is inside the scope.
    pub fn allows(&self, bot: &Bot) -> bool {
        self.bots.is_none_or(|b| b.contains(&bot.id))
            && self
                .collections
                .is_none_or(|allowed| bot.collections.iter().all(|c| allowed.contains(c)))
    }

    /// The scope as a store filter, so lists come back full.
    pub fn filter(&self) -> BotFilter {
        BotFilter {
            ids: self.bots.map(<[BotId]>::to_vec),
            within_collections: self.collections.map(<[CollectionId]>::to_vec),
        }
    }
}

impl From<TenantId> for BotScope<'static> {
    fn from(tenant: TenantId) -> Self {
        Self {
            tenant,
            collections: None,
            bots: None,
            caller: None,
        }
    }
}

impl<'a> From<&'a Principal> for BotScope<'a> {
    fn from(p: &'a Principal) -> Self {
        Self {
            caller: Some(Caller::of(p)),
            ..Self::new(
                p.scope(),
                p.key_scope.as_ref().and_then(|k| k.bots.as_deref()),
            )
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidField, message)
}

/// Trims a required single-line text field and checks its length.
fn parse_line(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(format!("`{field}` must not be empty")));
    }
    if value.chars().count() > max {
        return Err(invalid(format!(
            "`{field}` must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Checks a multi-line text's length (line breaks and tabs allowed, other control characters
/// not); an empty or blank optional text becomes `None`.
fn parse_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    if value.trim().is_empty() {
        return Ok(None);
    }
    if value.chars().count() > max {
        return Err(invalid(format!(
            "`{field}` must be at most {max} characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(Some(value))
}

/// Trims and checks a bot name.
pub fn parse_name(name: &str) -> Result<String> {
    parse_line("name", name, MAX_NAME_CHARS)
}

fn check_temperature(t: f32) -> Result<()> {
    if t.is_finite() && (0.0..=MAX_TEMPERATURE).contains(&t) {
        Ok(())
    } else {
        Err(invalid(format!(
            "`temperature` must be between 0 and {MAX_TEMPERATURE}"
        )))
    }
}

fn check_max_tokens(n: Option<u32>) -> Result<()> {
    match n {
        Some(n) if n == 0 || n > MAX_ANSWER_TOKENS => Err(invalid(format!(
            "`max_tokens` must be between 1 and {MAX_ANSWER_TOKENS}"
        ))),
        _ => Ok(()),
    }
}

fn parse_model(model: Option<String>) -> Result<Option<String>> {
    model
        .map(|m| {
            let m = parse_line("model", &m, MAX_MODEL_CHARS)?;
            if m.chars().any(char::is_whitespace) {
                return Err(invalid("`model` must not contain spaces"));
            }
            Ok(m)
        })
        .transpose()
}

fn check_retrieval(r: &BotRetrieval) -> Result<()> {
    if !(1..=MAX_TOP_K).contains(&r.top_k) {
        return Err(invalid(format!(
            "`retrieval.top_k` must be between 1 and {MAX_TOP_K}"
        )));
    }
    if let Some(s) = r.min_score
        && !(s.is_finite() && s >= 0.0)
    {
        return Err(invalid(
            "`retrieval.min_score` must be a number of at least 0",
        ));
    }
    Ok(())
}

/// Parses one widget origin: `http(s)://host[:port]`, nothing else (a single trailing `/` is
/// dropped). The result is normalised as browsers send it: lowercase, no default port.
pub fn parse_origin(field: &str, origin: &str) -> Result<String> {
    let bad = || {
        invalid(format!(
            "`{field}` must be an origin such as `https://example.com` or \
             `http://localhost:3000`: a scheme (http or https), a host and an optional port; \
             no path, query or wildcard"
        ))
    };
    let origin = origin.trim();
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty()
        || rest
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | '\\' | '*') || !c.is_ascii_graphic())
    {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(bad());
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad()),
                Ok(p) if p == default_port => None,
                Ok(p) => Some(p),
            }
        }
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Checks and normalises widget origins (duplicates dropped, order kept).
pub fn parse_origins(origins: &[String]) -> Result<Vec<String>> {
    if origins.len() > MAX_ORIGINS {
        return Err(invalid(format!(
            "`allowed_origins` may hold at most {MAX_ORIGINS} origins"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(origins.len());
    for (i, o) in origins.iter().enumerate() {
        let o = parse_origin(&format!("allowed_origins[{i}]"), o)?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    Ok(out)
}

/// Checks and normalises every field of a new bot (collections are checked against the store
/// by the service).
pub fn check_draft(mut d: BotDraft) -> Result<BotDraft> {
    d.name = parse_name(&d.name)?;
    d.description = parse_text("description", d.description, MAX_DESCRIPTION_CHARS)?;
    d.system_prompt = parse_text(
        "system_prompt",
        Some(d.system_prompt),
        MAX_SYSTEM_PROMPT_CHARS,
    )?
    .unwrap_or_default();
    d.model = parse_model(d.model)?;
    check_temperature(d.temperature)?;
    check_max_tokens(d.max_tokens)?;
    check_collection_count(&d.collections)?;
    check_retrieval(&d.retrieval)?;
    d.welcome_message = parse_text("welcome_message", d.welcome_message, MAX_DESCRIPTION_CHARS)?;
    d.allowed_origins = parse_origins(&d.allowed_origins)?;
    d.widget = check_widget(d.widget)?;
    Ok(d)
}

/// Widget settings: a colour is `#rrggbb` (stored lowercase).
fn check_widget(mut w: WidgetSettings) -> Result<WidgetSettings> {
    if let Some(c) = w.color.take() {
        let c = c.trim().to_ascii_lowercase();
        let hex = c.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
            return Err(invalid("`widget.color` must be a colour such as `#0b5fff`"));
        }
        w.color = Some(c);
    }
    Ok(w)
}

/// Checks and normalises the fields a patch sets.
pub fn check_patch(mut p: BotPatch) -> Result<BotPatch> {
    if let Some(name) = &p.name {
        p.name = Some(parse_name(name)?);
    }
    if let Some(d) = p.description {
        p.description = Some(parse_text("description", d, MAX_DESCRIPTION_CHARS)?);
    }
    if let Some(s) = p.system_prompt {
        p.system_prompt = Some(
            parse_text("system_prompt", Some(s), MAX_SYSTEM_PROMPT_CHARS)?.unwrap_or_default(),
        );
    }
    if let Some(m) = p.model {
        p.model = Some(parse_model(m)?);
    }
    if let Some(t) = p.temperature {
        check_temperature(t)?;
    }
    if let Some(n) = p.max_tokens {
        check_max_tokens(n)?;
    }
    if let Some(c) = &p.collections {
        check_collection_count(c)?;
    }
    if let Some(r) = &p.retrieval {
        check_retrieval(r)?;
    }
    if let Some(w) = p.welcome_message {
        p.welcome_message = Some(parse_text("welcome_message", w, MAX_DESCRIPTION_CHARS)?);
    }
    if let Some(o) = &p.allowed_origins {
        p.allowed_origins = Some(parse_origins(o)?);
    }
    if let Some(w) = p.widget {
        p.widget = Some(check_widget(w)?);
    }
    Ok(p)
}

fn check_collection_count(c: &[CollectionId]) -> Result<()> {
    if c.len() > MAX_COLLECTIONS {
        return Err(invalid(format!(
            "`collections` may hold at most {MAX_COLLECTIONS} collections"
        )));
    }
    Ok(())
}

fn parse_title(title: Option<String>) -> Result<Option<String>> {
    match title {
        Some(t) if !t.trim().is_empty() => Ok(Some(parse_line("title", &t, MAX_TITLE_CHARS)?)),
        _ => Ok(None),
    }
}

/// Checks a message: text within limits (a user's not blank), citations only on answers, each
/// with a marker from 1, a chunk of the cited document and ordered offsets.
pub fn check_message(m: &NewMessage) -> Result<()> {
    if m.role == MessageRole::User && m.content.trim().is_empty() {
        return Err(invalid("`content` must not be empty"));
    }
    if m.content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(invalid(format!(
            "`content` must be at most {MAX_MESSAGE_CHARS} characters"
        )));
    }
    if !m.citations.is_empty() && m.role != MessageRole::Assistant {
        return Err(invalid("`citations` are only for assistant messages"));
    }
    if m.citations.len() > MAX_CITATIONS {
        return Err(invalid(format!(
            "`citations` may hold at most {MAX_CITATIONS} citations"
        )));
    }
    for (i, c) in m.citations.iter().enumerate() {
        if c.marker == 0 {
            return Err(invalid(format!(
                "`citations[{i}].marker` must be at least 1"
            )));
        }
        if c.chunk_id.document != c.document_id {
            return Err(invalid(format!(
                "`citations[{i}].chunk_id` must be a chunk of `citations[{i}].document_id`"
            )));
        }
        if c.char_start > c.char_end {
            return Err(invalid(format!(
                "`citations[{i}].char_start` must not be past `char_end`"
            )));
        }
    }
    Ok(())
}

impl Services {
    /// Narrows an API key limited to some bots to those bots' collections: its collection
    /// limit becomes the union of its bots' collections (intersected with the key's own
    /// collection limit, if any), so search, answers, documents, chunks, summaries and tasks
    /// see nothing else. Read per request, so a bot's later collection changes apply at once;
    /// a deleted bot gives nothing. Every authenticated request passes through here.
    pub async fn narrow_to_bots(&self, p: &mut Principal) -> Result<()> {
        let Some(key) = p.key_scope.as_mut() else {
            return Ok(());
        };
        let Some(bots) = &key.bots else {
            return Ok(());
        };
        let mut reachable: Vec<CollectionId> = Vec::new();
        for id in bots {
            match self.store.get_bot(p.tenant_id, *id).await {
                Ok(bot) => reachable.extend(bot.collections),
                Err(e) if e.code == BOT_NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(own) = &key.collections {
            reachable.retain(|c| own.contains(c));
        }
        reachable.sort_unstable();
        reachable.dedup();
        key.collections = Some(reachable);
        Ok(())
    }

    /// `collection_not_found` naming the field unless every collection is the tenant's and
    /// inside the scope.
    async fn check_bot_collections(
        &self,
        scope: BotScope<'_>,
        collections: &[CollectionId],
    ) -> Result<()> {
        for (i, c) in collections.iter().enumerate() {
            let missing = || {
                Error::new(
                    Code::CollectionNotFound,
                    format!("`collections[{i}]`: collection {c} not found"),
                )
            };
            if scope
                .collections
                .is_some_and(|allowed| !allowed.contains(c))
            {
                return Err(missing());
            }
            match self.store.get_collection(scope.tenant, *c).await {
                Ok(_) => {}
                Err(e) if e.code == Code::CollectionNotFound => return Err(missing()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A bot inside the scope, or `bot_not_found`.
    pub(crate) async fn scoped_bot(&self, scope: BotScope<'_>, id: BotId) -> Result<Bot> {
        if scope.bots.is_some_and(|b| !b.contains(&id)) {
            return Err(bot_not_found(id));
        }
        let bot = self.store.get_bot(scope.tenant, id).await?;
        if scope.allows(&bot) {
            Ok(bot)
        } else {
            Err(bot_not_found(id))
        }
    }

    /// A conversation whose bot is inside the scope and that the caller may read (`write`:
    /// continue), or `conversation_not_found`.
    pub(crate) async fn scoped_conversation(
        &self,
        scope: BotScope<'_>,
        id: ConversationId,
        write: bool,
    ) -> Result<Conversation> {
        let conversation = self.store.get_conversation(scope.tenant, id).await?;
        if scope
            .caller
            .is_some_and(|c| !c.may_use(&conversation, write))
        {
            return Err(conversation_not_found(id));
        }
        match self.scoped_bot(scope, conversation.bot_id).await {
            Ok(_) => Ok(conversation),
            Err(e) if e.code == BOT_NOT_FOUND => Err(conversation_not_found(id)),
            Err(e) => Err(e),
        }
    }

    /// Creates a bot (`insufficient_scope` for a key limited to some bots).
    pub async fn create_bot<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        draft: BotDraft,
    ) -> Result<Bot> {
        let scope = scope.into();
        if scope.bots.is_some() {
            return Err(Error::new(
                Code::InsufficientScope,
                "this API key is limited to some bots",
            ));
        }
        let draft = check_draft(draft)?;
        self.check_bot_collections(scope, &draft.collections)
            .await?;
        self.store.create_bot(scope.tenant, draft).await
    }

    /// A bot.
    pub async fn get_bot<'s>(&self, scope: impl Into<BotScope<'s>>, id: BotId) -> Result<Bot> {
        self.scoped_bot(scope.into(), id).await
    }

    /// The scope's bots, newest first.
    pub async fn list_bots<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        page: PageRequest,
    ) -> Result<Page<Bot>> {
        let scope = scope.into();
        self.store
            .list_bots(scope.tenant, scope.filter(), page)
            .await
    }

    /// Updates a bot.
    pub async fn update_bot<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        id: BotId,
        patch: BotPatch,
    ) -> Result<Bot> {
        let scope = scope.into();
        let patch = check_patch(patch)?;
        self.scoped_bot(scope, id).await?;
        if let Some(collections) = &patch.collections {
            self.check_bot_collections(scope, collections).await?;
        }
        self.store.update_bot(scope.tenant, id, patch).await
    }

    /// Deletes a bot with its conversations and messages.
    pub async fn delete_bot<'s>(&self, scope: impl Into<BotScope<'s>>, id: BotId) -> Result<()> {
        let scope = scope.into();
        self.scoped_bot(scope, id).await?;
        self.store.delete_bot(scope.tenant, id).await
    }

    /// Documents of the bot's collections, newest first.
    pub async fn bot_documents<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        id: BotId,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        let scope = scope.into();
        // A bot inside the scope has only collections inside it: nothing more to narrow.
        self.scoped_bot(scope, id).await?;
        self.store.list_bot_documents(scope.tenant, id, page).await
    }

    /// Starts a conversation with a bot.
    pub async fn start_conversation<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        new: NewConversation,
    ) -> Result<Conversation> {
        let scope = scope.into();
        let new = NewConversation {
            title: parse_title(new.title)?,
            owner: scope.caller.map(|c| c.owner),
        };
        self.scoped_bot(scope, bot).await?;
        self.store.create_conversation(scope.tenant, bot, new).await
    }

    /// A conversation.
    pub async fn get_conversation<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        id: ConversationId,
    ) -> Result<Conversation> {
        self.scoped_conversation(scope.into(), id, false).await
    }

    /// Deletes a conversation with its messages: the caller's own (an admin's also those
    /// nobody owns, started by the operator); another's is "not found".
    pub async fn delete_conversation<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        id: ConversationId,
    ) -> Result<()> {
        let scope = scope.into();
        self.scoped_conversation(scope, id, true).await?;
        self.store.delete_conversation(scope.tenant, id).await
    }

    /// A bot's conversations, newest first.
    pub async fn list_conversations<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        bot: BotId,
        page: PageRequest,
    ) -> Result<Page<Conversation>> {
        let scope = scope.into();
        self.scoped_bot(scope, bot).await?;
        let mut list = self
            .store
            .list_conversations(scope.tenant, bot, page)
            .await?;
        // Only the caller's own (admins: all); a page may hold fewer items than asked for.
        if let Some(caller) = scope.caller {
            list.items.retain(|c| caller.may_use(c, false));
        }
        Ok(list)
    }

    /// A conversation's messages, oldest first.
    pub async fn conversation_messages<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        conversation: ConversationId,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        let scope = scope.into();
        self.scoped_conversation(scope, conversation, false).await?;
        self.store
            .list_messages(scope.tenant, conversation, page)
            .await
    }

    /// Appends a message to a conversation.
    pub async fn append_message<'s>(
        &self,
        scope: impl Into<BotScope<'s>>,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<Message> {
        let scope = scope.into();
        check_message(&message)?;
        self.scoped_conversation(scope, conversation, true).await?;
        self.store
            .append_message(scope.tenant, conversation, message)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error<T: std::fmt::Debug>(r: Result<T>, field: &str) {
        let e = r.expect_err("must be refused");
        assert_eq!(e.code, Code::InvalidField, "{e:?}");
        assert!(
            e.message.contains(field),
            "`{field}` not named: {}",
            e.message
        );
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for (given, stored) in [
            ("https://example.com", "https://example.com"),
            ("HTTPS://Example.COM/", "https://example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://example.com:443", "https://example.com"),
            ("http://example.com:80", "http://example.com"),
            ("https://a-b.c.example:8443", "https://a-b.c.example:8443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ] {
            assert_eq!(parse_origin("o", given).unwrap(), stored, "{given}");
        }
        for bad in [
            "*",
            "https://*.example.com",
            "https://example.com/path",
            "https://example.com//",
            "https://example.com?x=1",
            "https://example.com#top",
            "https://user@example.com",
            "ftp://example.com",
            "example.com",
            "https://",
            "https://:80",
            "https://example.com:",
            "https://example.com:0",
            "https://example.com:99999",
            "https://exa mple.com",
            "https://-bad.com",
            "https://a..b",
            "http://[::1",
            "http://[zz]",
            "null",
        ] {
            field_error(
                parse_origin("allowed_origins[0]", bad),
                "allowed_origins[0]",
            );
        }
        assert_eq!(
            parse_origins(&["https://a.com".into(), "https://A.com/".into()]).unwrap(),
            vec!["https://a.com"]
        );
        field_error(
            parse_origins(&vec!["https://a.com".to_owned(); MAX_ORIGINS + 1]),
            "allowed_origins",
        );
        field_error(
            parse_origins(&["https://ok.com".into(), "https://*.com".into()]),
            "allowed_origins[1]",
        );
    }

    #[test]
    fn drafts_are_checked_field_by_field() {
        let ok = BotDraft {
            name: "  Helper  ".into(),
            description: Some("  ".into()),
            ..Default::default()
        };
        let checked = check_draft(ok.clone()).unwrap();
        assert_eq!(checked.name, "Helper");
        assert_eq!(checked.description, None, "a blank description is none");

        let with = |f: &dyn Fn(&mut BotDraft)| {
            let mut d = ok.clone();
            f(&mut d);
            check_draft(d)
        };
        field_error(with(&|d| d.name = " ".into()), "name");
        field_error(with(&|d| d.name = "x".repeat(MAX_NAME_CHARS + 1)), "name");
        assert!(with(&|d| d.name = "é".repeat(MAX_NAME_CHARS)).is_ok());
        field_error(with(&|d| d.name = "a\u{0}b".into()), "name");
        field_error(with(&|d| d.temperature = -0.1), "temperature");
        field_error(with(&|d| d.temperature = 2.01), "temperature");
        field_error(with(&|d| d.temperature = f32::NAN), "temperature");
        assert!(with(&|d| d.temperature = 0.0).is_ok());
        assert!(with(&|d| d.temperature = 2.0).is_ok());
        field_error(with(&|d| d.retrieval.top_k = 0), "retrieval.top_k");
        field_error(with(&|d| d.retrieval.top_k = 51), "retrieval.top_k");
        assert!(with(&|d| d.retrieval.top_k = 50).is_ok());
        field_error(
            with(&|d| d.retrieval.min_score = Some(f32::INFINITY)),
            "retrieval.min_score",
        );
        field_error(with(&|d| d.max_tokens = Some(0)), "max_tokens");
        field_error(with(&|d| d.model = Some(" ".into())), "model");
        field_error(with(&|d| d.model = Some("gpt 4".into())), "model");
        field_error(
            with(&|d| d.system_prompt = "x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1)),
            "system_prompt",
        );
        assert!(with(&|d| d.system_prompt = "Line one.\nLine two.\tTabbed.".into()).is_ok());
        field_error(
            with(&|d| d.collections = vec![CollectionId::new(); MAX_COLLECTIONS + 1]),
            "collections",
        );
        field_error(
            with(&|d| d.allowed_origins = vec!["*".into()]),
            "allowed_origins[0]",
        );
    }

    #[test]
    fn patches_check_only_what_they_set() {
        assert_eq!(
            check_patch(BotPatch::default()).unwrap(),
            BotPatch::default()
        );
        let p = check_patch(BotPatch {
            name: Some(" New ".into()),
            description: Some(None),
            model: Some(None),
            allowed_origins: Some(vec!["HTTP://X.org:80".into()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("New"));
        assert_eq!(p.description, Some(None));
        assert_eq!(p.allowed_origins, Some(vec!["http://x.org".into()]));
        field_error(
            check_patch(BotPatch {
                temperature: Some(3.0),
                ..Default::default()
            }),
            "temperature",
        );
        field_error(
            check_patch(BotPatch {
                name: Some(String::new()),
                ..Default::default()
            }),
            "name",
        );
    }

    #[test]
    fn messages_are_checked() {
        let d = DocumentId::new();
        let cite = Citation {
            marker: 1,
            document_id: d,
            chunk_id: ChunkId {
                document: d,
                ordinal: 0,
            },
            page: None,
            char_start: 0,
            char_end: 10,
        };
        assert!(check_message(&NewMessage::user("hi")).is_ok());
        assert!(check_message(&NewMessage::assistant("", vec![])).is_ok());
        assert!(check_message(&NewMessage::assistant("a [1]", vec![cite.clone()])).is_ok());
        field_error(check_message(&NewMessage::user("  ")), "content");
        let mut with_citations = NewMessage::user("q");
        with_citations.citations = vec![cite.clone()];
        field_error(check_message(&with_citations), "citations");
        let bad = |f: &dyn Fn(&mut Citation)| {
            let mut c = cite.clone();
            f(&mut c);
            check_message(&NewMessage::assistant("a", vec![c]))
        };
        field_error(bad(&|c| c.marker = 0), "citations[0].marker");
        field_error(
            bad(&|c| c.chunk_id.document = DocumentId::new()),
            "citations[0].chunk_id",
        );
        field_error(bad(&|c| c.char_start = 11), "citations[0].char_start");
    }

    #[test]
    fn scopes_hide_bots_outside_them() {
        let (c1, c2) = (CollectionId::new(), CollectionId::new());
        let bot = |collections: Vec<CollectionId>| Bot {
            id: BotId::new(),
            tenant_id: TenantId::DEFAULT,
            name: "b".into(),
            description: None,
            system_prompt: String::new(),
            model: None,
            temperature: 0.2,
            max_tokens: None,
            collections,
            retrieval: BotRetrieval::default(),
            welcome_message: None,
            allowed_origins: vec![],
            widget: WidgetSettings::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let (b1, b12) = (bot(vec![c1]), bot(vec![c1, c2]));
        let whole = BotScope::from(TenantId::DEFAULT);
        assert!(whole.allows(&b1) && whole.allows(&b12));
        assert_eq!(whole.filter(), BotFilter::default());

        let only_c1 = [c1];
        let by_collection = BotScope::new(
            Scope {
                tenant: TenantId::DEFAULT,
                collections: Some(&only_c1),
            },
            None,
        );
        assert!(by_collection.allows(&b1));
        assert!(
            !by_collection.allows(&b12),
            "one collection outside hides it"
        );

        let only_b12 = [b12.id];
        let by_bot = BotScope::new(TenantId::DEFAULT.into(), Some(&only_b12));
        assert!(!by_bot.allows(&b1) && by_bot.allows(&b12));
        assert_eq!(by_bot.filter().ids, Some(vec![b12.id]));
    }
}
