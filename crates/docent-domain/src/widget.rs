//! The embeddable chat widget: publishable widget keys (one bot each, safe to put in a web
//! page), the anonymous visitors chatting through them, and the origins a bot's widget refused.
//!
//! Plain data, no I/O: the store keeps these ([`WidgetStore`](crate::ports::WidgetStore)), the
//! rules (origins, quotas, signed visitor sessions) are `docent-core`'s.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::BotId;
use crate::error::{Code, Error};
use crate::ids::{IdParseError, TenantId};
use crate::model::string_enum;

uuid_id!(
    /// A widget key.
    WidgetKeyId
);

/// "widget key {id} not found" (management routes: another bot's or tenant's key too).
pub fn widget_key_not_found(id: WidgetKeyId) -> Error {
    Error::new(
        Code::WidgetKeyNotFound,
        format!("widget key {id} not found"),
    )
}

string_enum!(
    /// What a bot's widget shows of the passages an answer cites.
    WidgetSources {
        /// Only the `[n]` numbers: no document names or text (private collections).
        None => "none",
        /// The cited documents' file names.
        Names => "names",
        /// File names and the cited passage's opening words.
        Snippets => "snippets",
    }
);

// `string_enum!` derives a fixed set of traits, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for WidgetSources {
    fn default() -> Self {
        Self::None
    }
}

/// A bot's widget settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WidgetSettings {
    /// What visitors see of the cited sources (default: nothing but the numbers).
    pub sources: WidgetSources,
    /// Accent colour `#rrggbb`; `None`: the widget's own.
    pub color: Option<String>,
}

/// A visitor, as the server knows them: a keyed hash of the secret their browser keeps (the
/// secret itself is never stored), per bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorHash(pub [u8; 32]);

impl fmt::Display for VisitorHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for VisitorHash {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdParseError(s.chars().take(80).collect());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// A publishable widget key: lets anonymous visitors chat with one bot, from its allowed
/// origins, within a daily message quota.
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetKey {
    /// Id.
    pub id: WidgetKeyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The one bot it chats with.
    pub bot_id: BotId,
    /// The key itself, `dwk_…` (public: it sits in web pages).
    pub key: String,
    /// A label for the owner.
    pub name: String,
    /// Most visitor messages per UTC day.
    pub daily_quota: u32,
    /// Visitor messages taken today (UTC).
    pub messages_today: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it was revoked (or rotated away); a revoked key is refused at once.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Input to store a widget key (the key text is made by the service).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWidgetKey {
    /// The key text, `dwk_…`.
    pub key: String,
    /// Label.
    pub name: String,
    /// Daily message quota.
    pub daily_quota: u32,
}

/// Why a widget refused an origin, counted per bot and origin.
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetRefusal {
    /// The refused origin (as the browser named it).
    pub origin: String,
    /// `origin_not_allowed` (not in the bot's list) or `no_origins` (the list is empty).
    pub reason: String,
    /// How many times.
    pub count: u64,
    /// The last time.
    pub last_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_hashes_round_trip() {
        let v = VisitorHash([0xab; 32]);
        assert_eq!(v.to_string().parse::<VisitorHash>().unwrap(), v);
        assert!("zz".parse::<VisitorHash>().is_err());
        assert!("g".repeat(64).parse::<VisitorHash>().is_err());
        assert_eq!(WidgetSources::default(), WidgetSources::None);
        assert_eq!(
            WidgetSources::parse("snippets"),
            Some(WidgetSources::Snippets)
        );
    }
}
