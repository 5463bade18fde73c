//! Typed identifiers. Each wraps a UUID (v7, so ids sort by creation time) and can only be built
//! from a valid UUID string, so a `CollectionId` never holds garbage.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id")]
pub struct IdParseError(pub String);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Wraps an existing UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| IdParseError(s.chars().take(64).collect()))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A tenant (workspace). Every row in docent belongs to exactly one.
    TenantId
);
uuid_id!(
    /// A collection (knowledge base).
    CollectionId
);
uuid_id!(
    /// An uploaded document.
    DocumentId
);
uuid_id!(
    /// A unit of background work.
    TaskId
);

impl TenantId {
    /// The single tenant requests act in until authentication assigns real ones.
    pub const DEFAULT: TenantId =
        TenantId(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001));
}

/// A chunk's id is deterministic: its document plus its ordinal, so re-running a document's
/// ingest task rewrites the same rows instead of adding new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    /// The document the chunk was cut from.
    pub document: DocumentId,
    /// Position of the chunk within the document, from 0.
    pub ordinal: u32,
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.document, self.ordinal)
    }
}

impl FromStr for ChunkId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdParseError(s.chars().take(64).collect());
        let (doc, ord) = s.rsplit_once(':').ok_or_else(bad)?;
        Ok(Self {
            document: doc.parse().map_err(|_| bad())?,
            ordinal: ord.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = CollectionId::new();
        assert_eq!(id.to_string().parse::<CollectionId>().unwrap(), id);
        assert!("not-a-uuid".parse::<CollectionId>().is_err());
        assert!("".parse::<DocumentId>().is_err());
        let chunk = ChunkId {
            document: DocumentId::new(),
            ordinal: 7,
        };
        assert_eq!(chunk.to_string().parse::<ChunkId>().unwrap(), chunk);
        assert!("abc:1".parse::<ChunkId>().is_err());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b);
        assert!(
            a.to_string() < b.to_string(),
            "text order must match creation order"
        );
    }
}
