//! [`BotStore`] on either engine: bots (their collections in the `bot_collections` join
//! table), conversations and messages. Every statement names the tenant; a bot's collections are
//! inserted only from the tenant's own collections, so a foreign collection id is
//! `collection_not_found` here too, whatever the caller checked.

use std::collections::HashMap;

use async_trait::async_trait;
use docent_domain::ports::BotStore;
use docent_domain::*;
use serde_json::{Value, json};

use crate::common::{cursor, delete_owned, paginate};
use crate::engine::{Engine, On, Row, Sql, db_err, now};
use crate::store::{DOCUMENT_SELECT, SqlStore, document_from};

const BOT_COLS: &str = "id, tenant_id, name, description, system_prompt, model, temperature, \
     max_tokens, top_k, retrieval_mode, min_score, welcome_message, allowed_origins, \
     widget_sources, widget_color, created_at, updated_at";

/// The columns of a conversation row.
const CONVERSATION_COLS: &str = "id, tenant_id, bot_id, owner_user_id, owner_key_id, \
     owner_visitor, widget_key_id, title, created_at, updated_at";

fn bot_from(row: &Row, collections: Vec<CollectionId>) -> Result<Bot> {
    let mode: String = row.get("retrieval_mode")?;
    let origins = row.json("allowed_origins")?;
    let sources: String = row.get("widget_sources")?;
    Ok(Bot {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        name: row.get("name")?,
        description: row.get("description")?,
        system_prompt: row.get("system_prompt")?,
        model: row.get("model")?,
        temperature: row.get::<f64>("temperature")? as f32,
        max_tokens: row.get::<Option<i64>>("max_tokens")?.map(|n| n as u32),
        collections,
        retrieval: BotRetrieval {
            top_k: row.get::<i64>("top_k")? as u32,
            mode: RetrievalMode::parse(&mode)
                .ok_or_else(|| Error::internal(format!("corrupt retrieval mode {mode}")))?,
            min_score: row.get::<Option<f64>>("min_score")?.map(|s| s as f32),
        },
        welcome_message: row.get("welcome_message")?,
        allowed_origins: serde_json::from_value(origins)
            .map_err(|_| Error::internal("corrupt allowed_origins"))?,
        widget: WidgetSettings {
            sources: WidgetSources::parse(&sources)
                .ok_or_else(|| Error::internal(format!("corrupt widget sources {sources}")))?,
            color: row.get("widget_color")?,
        },
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn conversation_from(row: &Row) -> Result<Conversation> {
    Ok(Conversation {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        bot_id: row.id("bot_id")?,
        owner: match (
            row.opt_id("owner_user_id")?,
            row.opt_id("owner_key_id")?,
            row.get::<Option<String>>("owner_visitor")?,
        ) {
            (Some(user), _, _) => Some(ConversationOwner::User(user)),
            (None, Some(key), _) => Some(ConversationOwner::ApiKey(key)),
            (None, None, Some(visitor)) => Some(ConversationOwner::Visitor {
                visitor: visitor
                    .parse()
                    .map_err(|_| Error::internal("corrupt conversation visitor"))?,
                key: row.opt_id("widget_key_id")?,
            }),
            (None, None, None) => None,
        },
        title: row.get("title")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn citations_json(citations: &[Citation]) -> Value {
    Value::Array(
        citations
            .iter()
            .map(|c| {
                json!({
                    "marker": c.marker,
                    "document_id": c.document_id.to_string(),
                    "chunk_id": c.chunk_id.to_string(),
                    "page": c.page,
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                })
            })
            .collect(),
    )
}

fn parse_citations(v: Value) -> Result<Vec<Citation>> {
    let corrupt = || Error::internal("corrupt message citations");
    let Value::Array(items) = v else {
        return Err(corrupt());
    };
    items
        .iter()
        .map(|c| {
            let str_field = |k: &str| c.get(k).and_then(Value::as_str).ok_or_else(corrupt);
            let u64_field = |k: &str| c.get(k).and_then(Value::as_u64).ok_or_else(corrupt);
            Ok(Citation {
                marker: u64_field("marker")? as u32,
                document_id: str_field("document_id")?.parse().map_err(|_| corrupt())?,
                chunk_id: str_field("chunk_id")?.parse().map_err(|_| corrupt())?,
                page: c.get("page").and_then(Value::as_u64).map(|p| p as u32),
                char_start: u64_field("char_start")?,
                char_end: u64_field("char_end")?,
            })
        })
        .collect()
}

fn message_from(row: &Row) -> Result<Message> {
    let role: String = row.get("role")?;
    let prompt: Option<i64> = row.get("prompt_tokens")?;
    let completion: Option<i64> = row.get("completion_tokens")?;
    Ok(Message {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        conversation_id: row.id("conversation_id")?,
        role: MessageRole::parse(&role)
            .ok_or_else(|| Error::internal(format!("corrupt message role {role}")))?,
        content: row.get("content")?,
        citations: parse_citations(row.json("citations")?)?,
        usage: match (prompt, completion) {
            (None, None) => None,
            (p, c) => Some(MessageUsage {
                prompt_tokens: p.unwrap_or_default() as u32,
                completion_tokens: c.unwrap_or_default() as u32,
            }),
        },
        created_at: row.time("created_at")?,
    })
}

fn origins_json(origins: &[String]) -> Value {
    Value::Array(origins.iter().cloned().map(Value::String).collect())
}

/// Replaces a bot's collections with `collections` (duplicates dropped, order kept), taking
/// each from the tenant's own collections only.
async fn set_collections(
    on: impl Into<On<'_>>,
    tenant: TenantId,
    bot: BotId,
    collections: &[CollectionId],
) -> Result<()> {
    let mut on = on.into();
    Sql::new("DELETE FROM bot_collections WHERE tenant_id = ? AND bot_id = ?")
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .execute(on.reborrow())
        .await
        .map_err(db_err)?;
    let mut seen = std::collections::HashSet::new();
    for (i, c) in collections.iter().enumerate() {
        if !seen.insert(*c) {
            continue;
        }
        let res = Sql::new(
            "INSERT INTO bot_collections (bot_id, collection_id, tenant_id, position) \
             SELECT ?, id, tenant_id, ? FROM collections WHERE tenant_id = ? AND id = ?",
        )
        .bind(bot.to_string())
        .bind(i as i64)
        .bind(tenant.to_string())
        .bind(c.to_string())
        .execute(on.reborrow())
        .await
        .map_err(db_err)?;
        if res == 0 {
            return Err(Error::new(
                Code::CollectionNotFound,
                format!("`collections[{i}]`: collection {c} not found"),
            ));
        }
    }
    Ok(())
}

impl<E: Engine> SqlStore<E> {
    /// The collections of each of `bots`, in their order.
    async fn bot_collections(
        &self,
        tenant: TenantId,
        bots: &[BotId],
    ) -> Result<HashMap<BotId, Vec<CollectionId>>> {
        let mut out: HashMap<BotId, Vec<CollectionId>> = HashMap::with_capacity(bots.len());
        for batch in bots.chunks(200) {
            let mut q =
                Sql::new("SELECT bot_id, collection_id FROM bot_collections WHERE tenant_id = ");
            q.push_bind(tenant.to_string());
            q.push(" AND bot_id IN (");
            q.push_list(batch.iter().map(|id| id.to_string()));
            q.push(") ORDER BY bot_id, position");
            for row in q.fetch_all(self.db()).await.map_err(db_err)? {
                out.entry(row.id("bot_id")?)
                    .or_default()
                    .push(row.id("collection_id")?);
            }
        }
        Ok(out)
    }

    /// `bot_not_found` unless the tenant has the bot.
    async fn require_bot(&self, tenant: TenantId, id: BotId) -> Result<()> {
        let found = Sql::new("SELECT 1 FROM bots WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(self.db())
            .await
            .map_err(db_err)?;
        found.map(|_| ()).ok_or_else(|| bot_not_found(id))
    }
}

#[async_trait]
impl<E: Engine> BotStore for SqlStore<E> {
    async fn create_bot(&self, tenant: TenantId, draft: BotDraft) -> Result<Bot> {
        let id = BotId::new();
        let now = now();
        let mut tx = self.db().write_tx().await?;
        Sql::new(
            "INSERT INTO bots (id, tenant_id, name, description, system_prompt, model, \
             temperature, max_tokens, top_k, retrieval_mode, min_score, welcome_message, \
             allowed_origins, widget_sources, widget_color, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(&draft.name)
        .bind(&draft.description)
        .bind(&draft.system_prompt)
        .bind(&draft.model)
        .bind(f64::from(draft.temperature))
        .bind(draft.max_tokens.map(i64::from))
        .bind(i64::from(draft.retrieval.top_k))
        .bind(draft.retrieval.mode.as_str())
        .bind(draft.retrieval.min_score.map(f64::from))
        .bind(&draft.welcome_message)
        .bind(origins_json(&draft.allowed_origins))
        .bind(draft.widget.sources.as_str())
        .bind(&draft.widget.color)
        .bind(now)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        set_collections(&mut tx, tenant, id, &draft.collections).await?;
        tx.commit().await?;
        self.get_bot(tenant, id).await
    }

    async fn get_bot(&self, tenant: TenantId, id: BotId) -> Result<Bot> {
        let sql = format!("SELECT {BOT_COLS} FROM bots WHERE tenant_id = ? AND id = ?");
        let row = Sql::new(sql)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(self.db())
            .await
            .map_err(db_err)?
            .ok_or_else(|| bot_not_found(id))?;
        let collections = self
            .bot_collections(tenant, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        bot_from(&row, collections)
    }

    async fn list_bots(
        &self,
        tenant: TenantId,
        filter: BotFilter,
        page: PageRequest,
    ) -> Result<Page<Bot>> {
        let limit = page.effective_limit();
        let mut q = Sql::new(format!("SELECT {BOT_COLS} FROM bots b WHERE tenant_id = "));
        q.push_bind(tenant.to_string());
        if let Some(ids) = &filter.ids {
            if ids.is_empty() {
                q.push(" AND FALSE");
            } else {
                q.push(" AND b.id IN (");
                q.push_list(ids.iter().map(|id| id.to_string()));
                q.push(")");
            }
        }
        if let Some(within) = &filter.within_collections {
            q.push(
                " AND NOT EXISTS (SELECT 1 FROM bot_collections bc \
                 WHERE bc.tenant_id = b.tenant_id AND bc.bot_id = b.id",
            );
            if !within.is_empty() {
                q.push(" AND bc.collection_id NOT IN (");
                q.push_list(within.iter().map(|c| c.to_string()));
                q.push(")");
            }
            q.push(")");
        }
        if let Some(c) = cursor::<BotId>(&page)? {
            q.push(" AND b.id < ").push_bind(c);
        }
        q.push(" ORDER BY b.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(self.db()).await.map_err(db_err)?;
        let ids = rows
            .iter()
            .map(|r| r.id("id"))
            .collect::<Result<Vec<BotId>>>()?;
        let mut collections = self.bot_collections(tenant, &ids).await?;
        let items = rows
            .iter()
            .zip(&ids)
            .map(|(row, id)| bot_from(row, collections.remove(id).unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |b| b.id.to_string()))
    }

    async fn update_bot(&self, tenant: TenantId, id: BotId, patch: BotPatch) -> Result<Bot> {
        let mut tx = self.db().write_tx().await?;
        let mut q = Sql::new("UPDATE bots SET updated_at = ");
        q.push_bind(now());
        if let Some(v) = patch.name {
            q.push(", name = ").push_bind(v);
        }
        if let Some(v) = patch.description {
            q.push(", description = ").push_bind(v);
        }
        if let Some(v) = patch.system_prompt {
            q.push(", system_prompt = ").push_bind(v);
        }
        if let Some(v) = patch.model {
            q.push(", model = ").push_bind(v);
        }
        if let Some(v) = patch.temperature {
            q.push(", temperature = ").push_bind(f64::from(v));
        }
        if let Some(v) = patch.max_tokens {
            q.push(", max_tokens = ").push_bind(v.map(i64::from));
        }
        if let Some(r) = patch.retrieval {
            q.push(", top_k = ").push_bind(i64::from(r.top_k));
            q.push(", retrieval_mode = ").push_bind(r.mode.as_str());
            q.push(", min_score = ")
                .push_bind(r.min_score.map(f64::from));
        }
        if let Some(v) = patch.welcome_message {
            q.push(", welcome_message = ").push_bind(v);
        }
        if let Some(v) = &patch.allowed_origins {
            q.push(", allowed_origins = ").push_bind(origins_json(v));
        }
        if let Some(w) = patch.widget {
            q.push(", widget_sources = ").push_bind(w.sources.as_str());
            q.push(", widget_color = ").push_bind(w.color);
        }
        q.push(" WHERE tenant_id = ").push_bind(tenant.to_string());
        q.push(" AND id = ").push_bind(id.to_string());
        let res = q.execute(&mut tx).await.map_err(db_err)?;
        if res == 0 {
            return Err(bot_not_found(id));
        }
        if let Some(collections) = &patch.collections {
            set_collections(&mut tx, tenant, id, collections).await?;
        }
        tx.commit().await?;
        self.get_bot(tenant, id).await
    }

    async fn delete_bot(&self, tenant: TenantId, id: BotId) -> Result<()> {
        // Collections links, conversations and messages go with the bot (ON DELETE CASCADE),
        // in this one statement.
        if !delete_owned(self.db(), "bots", tenant, id).await? {
            return Err(bot_not_found(id));
        }
        Ok(())
    }

    async fn list_bot_documents(
        &self,
        tenant: TenantId,
        id: BotId,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        self.require_bot(tenant, id).await?;
        let limit = page.effective_limit();
        let mut q = Sql::new(format!("{DOCUMENT_SELECT} WHERE d.tenant_id = "));
        q.push_bind(tenant.to_string());
        q.push(
            " AND d.collection_id IN (SELECT collection_id FROM bot_collections WHERE tenant_id = ",
        )
        .push_bind(tenant.to_string())
        .push(" AND bot_id = ")
        .push_bind(id.to_string())
        .push(")");
        if let Some(c) = cursor::<DocumentId>(&page)? {
            q.push(" AND d.id < ").push_bind(c);
        }
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(self.db()).await.map_err(db_err)?;
        let items = rows.iter().map(document_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |d| d.id.to_string()))
    }

    async fn create_conversation(
        &self,
        tenant: TenantId,
        bot: BotId,
        new: NewConversation,
    ) -> Result<Conversation> {
        let id = ConversationId::new();
        let now = now();
        let (mut owner_user, mut owner_key, mut visitor, mut widget_key) = (None, None, None, None);
        match new.owner {
            Some(ConversationOwner::User(u)) => owner_user = Some(u.to_string()),
            Some(ConversationOwner::ApiKey(k)) => owner_key = Some(k.to_string()),
            Some(ConversationOwner::Visitor { visitor: v, key }) => {
                visitor = Some(v.to_string());
                widget_key = key.map(|k| k.to_string());
            }
            None => {}
        }
        // Inserted from the tenant's bot row, so a foreign bot id inserts nothing.
        let res = Sql::new(
            "INSERT INTO conversations (id, tenant_id, bot_id, owner_user_id, owner_key_id, \
             owner_visitor, widget_key_id, title, created_at, updated_at) \
             SELECT ?, tenant_id, id, ?, ?, ?, ?, ?, ?, ? FROM bots \
             WHERE tenant_id = ? AND id = ?",
        )
        .bind(id.to_string())
        .bind(owner_user)
        .bind(owner_key)
        .bind(visitor)
        .bind(widget_key)
        .bind(&new.title)
        .bind(now)
        .bind(now)
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .execute(self.db())
        .await
        .map_err(db_err)?;
        if res == 0 {
            return Err(bot_not_found(bot));
        }
        Ok(Conversation {
            id,
            tenant_id: tenant,
            bot_id: bot,
            owner: new.owner,
            title: new.title,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_conversation(&self, tenant: TenantId, id: ConversationId) -> Result<Conversation> {
        let row = Sql::new(format!(
            "SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(self.db())
        .await
        .map_err(db_err)?
        .ok_or_else(|| conversation_not_found(id))?;
        conversation_from(&row)
    }

    async fn delete_conversation(&self, tenant: TenantId, id: ConversationId) -> Result<()> {
        // Its messages go with it (ON DELETE CASCADE), in this one statement.
        if !delete_owned(self.db(), "conversations", tenant, id).await? {
            return Err(conversation_not_found(id));
        }
        Ok(())
    }

    async fn list_conversations(
        &self,
        tenant: TenantId,
        bot: BotId,
        page: PageRequest,
    ) -> Result<Page<Conversation>> {
        self.require_bot(tenant, bot).await?;
        let limit = page.effective_limit();
        let mut q = Sql::new(format!(
            "SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = "
        ));
        q.push_bind(tenant.to_string());
        q.push(" AND bot_id = ").push_bind(bot.to_string());
        if let Some(c) = cursor::<ConversationId>(&page)? {
            q.push(" AND id < ").push_bind(c);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(self.db()).await.map_err(db_err)?;
        let items = rows
            .iter()
            .map(conversation_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |c| c.id.to_string()))
    }

    async fn append_message(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        new: NewMessage,
    ) -> Result<Message> {
        let id = MessageId::new();
        let now = now();
        let mut tx = self.db().write_tx().await?;
        let res =
            Sql::new("UPDATE conversations SET updated_at = ? WHERE tenant_id = ? AND id = ?")
                .bind(now)
                .bind(tenant.to_string())
                .bind(conversation.to_string())
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
        if res == 0 {
            return Err(conversation_not_found(conversation));
        }
        Sql::new(
            "INSERT INTO messages (id, tenant_id, conversation_id, role, content, citations, \
             prompt_tokens, completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(conversation.to_string())
        .bind(new.role.as_str())
        .bind(&new.content)
        .bind(citations_json(&new.citations))
        .bind(new.usage.map(|u| i64::from(u.prompt_tokens)))
        .bind(new.usage.map(|u| i64::from(u.completion_tokens)))
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        tx.commit().await?;
        Ok(Message {
            id,
            tenant_id: tenant,
            conversation_id: conversation,
            role: new.role,
            content: new.content,
            citations: new.citations,
            usage: new.usage,
            created_at: now,
        })
    }

    async fn list_messages(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        self.get_conversation(tenant, conversation).await?;
        let limit = page.effective_limit();
        let mut q = Sql::new(
            "SELECT id, tenant_id, conversation_id, role, content, citations, prompt_tokens, \
             completion_tokens, created_at FROM messages WHERE tenant_id = ",
        );
        q.push_bind(tenant.to_string());
        q.push(" AND conversation_id = ")
            .push_bind(conversation.to_string());
        if let Some(c) = cursor::<MessageId>(&page)? {
            q.push(" AND id > ").push_bind(c);
        }
        q.push(" ORDER BY id ASC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(self.db()).await.map_err(db_err)?;
        let items = rows.iter().map(message_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |m| m.id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_round_trip_through_json() {
        let document = DocumentId::new();
        let citations = vec![
            Citation {
                marker: 1,
                document_id: document,
                chunk_id: ChunkId {
                    document,
                    ordinal: 3,
                },
                page: Some(2),
                char_start: 10,
                char_end: 99,
            },
            Citation {
                marker: 2,
                document_id: document,
                chunk_id: ChunkId {
                    document,
                    ordinal: 0,
                },
                page: None,
                char_start: 0,
                char_end: 5,
            },
        ];
        assert_eq!(
            parse_citations(citations_json(&citations)).unwrap(),
            citations
        );
        assert!(parse_citations(json!({})).is_err());
    }
}
