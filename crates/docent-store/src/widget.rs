//! [`WidgetStore`] on either engine (SQLite migration `0010`, PostgreSQL `0005`): widget keys,
//! their daily usage (`widget_usage`, one row per key and UTC day, counted by an atomic upsert
//! so every process shares the quota), refused origins, the signing secret and visitors'
//! conversations. Every statement over a tenant's rows names the tenant; the key lookup and the
//! preflight's origin check are the two that cannot (a public request names only a key or an
//! origin).

use async_trait::async_trait;
use chrono::NaiveDate;
use docent_domain::ports::WidgetStore;
use docent_domain::*;

use crate::engine::{Engine, On, Row, Sql, db_err, now};
use crate::store::SqlStore;

/// Refused origins kept per bot (the most recent).
const MAX_REFUSALS: i64 = 100;

/// A key's columns with its use on the day bound first.
const KEY_SELECT: &str = "SELECT k.id, k.tenant_id, k.bot_id, k.key, k.name, k.daily_quota, \
     k.created_at, k.revoked_at, COALESCE(u.messages, 0) AS messages_today \
     FROM widget_keys k LEFT JOIN widget_usage u ON u.key_id = k.id AND u.day = ?";

fn key_from(row: &Row) -> Result<WidgetKey> {
    Ok(WidgetKey {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        bot_id: row.id("bot_id")?,
        key: row.get("key")?,
        name: row.get("name")?,
        daily_quota: row.get::<i64>("daily_quota")?.clamp(0, i64::from(u32::MAX)) as u32,
        messages_today: row
            .get::<i64>("messages_today")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A key of the tenant's bot, on `on`.
async fn get_key(
    on: impl Into<On<'_>>,
    tenant: TenantId,
    bot: BotId,
    id: WidgetKeyId,
    day: NaiveDate,
) -> Result<WidgetKey> {
    let row = Sql::new(format!(
        "{KEY_SELECT} WHERE k.tenant_id = ? AND k.bot_id = ? AND k.id = ?"
    ))
    .bind(day_text(day))
    .bind(tenant.to_string())
    .bind(bot.to_string())
    .bind(id.to_string())
    .fetch_optional(on)
    .await
    .map_err(db_err)?;
    row.as_ref()
        .map(key_from)
        .transpose()?
        .ok_or_else(|| widget_key_not_found(id))
}

/// Inserts a key for the tenant's bot (from the bot's row, so a foreign bot inserts nothing).
async fn insert_key(
    on: impl Into<On<'_>>,
    tenant: TenantId,
    bot: BotId,
    new: NewWidgetKey,
) -> Result<WidgetKey> {
    let id = WidgetKeyId::new();
    let now = now();
    let res = Sql::new(
        "INSERT INTO widget_keys (id, tenant_id, bot_id, key, name, daily_quota, created_at) \
         SELECT ?, tenant_id, id, ?, ?, ?, ? FROM bots WHERE tenant_id = ? AND id = ?",
    )
    .bind(id.to_string())
    .bind(&new.key)
    .bind(&new.name)
    .bind(i64::from(new.daily_quota))
    .bind(now)
    .bind(tenant.to_string())
    .bind(bot.to_string())
    .execute(on)
    .await
    .map_err(db_err)?;
    if res == 0 {
        return Err(bot_not_found(bot));
    }
    Ok(WidgetKey {
        id,
        tenant_id: tenant,
        bot_id: bot,
        key: new.key,
        name: new.name,
        daily_quota: new.daily_quota,
        messages_today: 0,
        created_at: now,
        revoked_at: None,
    })
}

#[async_trait]
impl<E: Engine> WidgetStore for SqlStore<E> {
    async fn create_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        new: NewWidgetKey,
    ) -> Result<WidgetKey> {
        insert_key(self.db(), tenant, bot, new).await
    }

    async fn list_widget_keys(
        &self,
        tenant: TenantId,
        bot: BotId,
        day: NaiveDate,
    ) -> Result<Vec<WidgetKey>> {
        let rows = Sql::new(format!(
            "{KEY_SELECT} WHERE k.tenant_id = ? AND k.bot_id = ? ORDER BY k.id DESC"
        ))
        .bind(day_text(day))
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .fetch_all(self.db())
        .await
        .map_err(db_err)?;
        rows.iter().map(key_from).collect()
    }

    async fn get_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
        day: NaiveDate,
    ) -> Result<WidgetKey> {
        get_key(self.db(), tenant, bot, id, day).await
    }

    async fn revoke_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
    ) -> Result<WidgetKey> {
        let mut tx = self.db().write_tx().await?;
        Sql::new(
            "UPDATE widget_keys SET revoked_at = ? \
             WHERE tenant_id = ? AND bot_id = ? AND id = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .bind(id.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        let key = get_key(&mut tx, tenant, bot, id, chrono::Utc::now().date_naive()).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn rotate_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
        key: String,
    ) -> Result<WidgetKey> {
        let mut tx = self.db().write_tx().await?;
        let old = get_key(&mut tx, tenant, bot, id, chrono::Utc::now().date_naive()).await?;
        let res = Sql::new(
            "UPDATE widget_keys SET revoked_at = ? \
             WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        if res == 0 {
            return Err(widget_key_not_found(id));
        }
        let new = NewWidgetKey {
            key,
            name: old.name,
            daily_quota: old.daily_quota,
        };
        let key = insert_key(&mut tx, tenant, bot, new).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn find_widget_key(&self, key: &str, day: NaiveDate) -> Result<Option<WidgetKey>> {
        let row = Sql::new(format!("{KEY_SELECT} WHERE k.key = ?"))
            .bind(day_text(day))
            .bind(key)
            .fetch_optional(self.db())
            .await
            .map_err(db_err)?;
        row.as_ref().map(key_from).transpose()
    }

    async fn origin_has_widget(&self, origin: &str) -> Result<bool> {
        // The origins are a JSON array of strings; `"origin"` (quotes included) matches one
        // element exactly, as no origin holds a quote.
        let mut q = Sql::new(
            "SELECT 1 FROM bots b WHERE EXISTS (SELECT 1 FROM widget_keys k \
             WHERE k.tenant_id = b.tenant_id AND k.bot_id = b.id AND k.revoked_at IS NULL)",
        );
        q.push_contains(
            "CAST(b.allowed_origins AS TEXT)",
            Some(format!("\"{origin}\"")),
        );
        q.push(" LIMIT 1");
        Ok(q.fetch_optional(self.db()).await.map_err(db_err)?.is_some())
    }

    async fn take_widget_message(
        &self,
        tenant: TenantId,
        key: WidgetKeyId,
        day: NaiveDate,
        quota: u32,
    ) -> Result<Option<u32>> {
        if quota == 0 {
            return Ok(None);
        }
        // One statement: concurrent requests (in any process) each take one message, and none
        // past the quota.
        let taken: Option<i64> = Sql::new(
            "INSERT INTO widget_usage (key_id, tenant_id, day, messages) \
             SELECT id, tenant_id, ?, 1 FROM widget_keys WHERE tenant_id = ? AND id = ? \
             ON CONFLICT (key_id, day) DO UPDATE SET messages = widget_usage.messages + 1 \
             WHERE widget_usage.messages < ? \
             RETURNING messages",
        )
        .bind(day_text(day))
        .bind(tenant.to_string())
        .bind(key.to_string())
        .bind(i64::from(quota))
        .scalar_optional(self.db())
        .await?;
        Ok(taken.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32))
    }

    async fn record_widget_refusal(
        &self,
        tenant: TenantId,
        bot: BotId,
        origin: &str,
        reason: &str,
    ) -> Result<()> {
        let now = now();
        let mut tx = self.db().write_tx().await?;
        Sql::new(
            "INSERT INTO widget_refusals (tenant_id, bot_id, origin, reason, count, last_at) \
             SELECT tenant_id, id, ?, ?, 1, ? FROM bots WHERE tenant_id = ? AND id = ? \
             ON CONFLICT (bot_id, origin, reason) DO UPDATE \
             SET count = widget_refusals.count + 1, last_at = excluded.last_at",
        )
        .bind(origin)
        .bind(reason)
        .bind(now)
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        // Bounded: many refused origins (a crawler, a forged header) keep only the latest.
        Sql::new(
            "DELETE FROM widget_refusals WHERE tenant_id = ? AND bot_id = ? AND last_at < \
             (SELECT last_at FROM widget_refusals WHERE tenant_id = ? AND bot_id = ? \
              ORDER BY last_at DESC LIMIT 1 OFFSET ?)",
        )
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .bind(MAX_REFUSALS - 1)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        tx.commit().await
    }

    async fn list_widget_refusals(
        &self,
        tenant: TenantId,
        bot: BotId,
    ) -> Result<Vec<WidgetRefusal>> {
        let rows = Sql::new(
            "SELECT origin, reason, count, last_at FROM widget_refusals \
             WHERE tenant_id = ? AND bot_id = ? ORDER BY last_at DESC, origin LIMIT ?",
        )
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .bind(MAX_REFUSALS)
        .fetch_all(self.db())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(WidgetRefusal {
                    origin: r.get("origin")?,
                    reason: r.get("reason")?,
                    count: r.get::<i64>("count")?.max(0) as u64,
                    last_at: r.time("last_at")?,
                })
            })
            .collect()
    }

    async fn widget_secret(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        Sql::new(
            "INSERT INTO widget_secret (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(hex::encode(candidate))
        .execute(self.db())
        .await
        .map_err(db_err)?;
        let stored: String = Sql::new("SELECT secret FROM widget_secret WHERE id = 1")
            .scalar(self.db())
            .await?;
        hex::decode(stored).map_err(|_| Error::internal("corrupt widget secret"))
    }

    async fn latest_visitor_conversation(
        &self,
        tenant: TenantId,
        bot: BotId,
        visitor: VisitorHash,
    ) -> Result<Option<ConversationId>> {
        let id: Option<String> = Sql::new(
            "SELECT id FROM conversations \
             WHERE tenant_id = ? AND bot_id = ? AND owner_visitor = ? \
             ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant.to_string())
        .bind(bot.to_string())
        .bind(visitor.to_string())
        .scalar_optional(self.db())
        .await?;
        id.map(|s| {
            s.parse()
                .map_err(|_| Error::internal("corrupt conversation id"))
        })
        .transpose()
    }
}
