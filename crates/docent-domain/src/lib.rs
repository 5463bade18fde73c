//! The vocabulary of docent: typed ids, documents, chunks and tasks with their statuses, the one
//! table of error codes, and the *ports* — the traits that storage and queue backends implement.
//!
//! This crate does no I/O. Every other crate depends on it; it depends on none of them.
//! Architecture invariant: every port method that touches tenant data takes a [`TenantId`].

pub mod error;
pub mod filter;
#[macro_use]
pub mod ids;
pub mod auth;
pub mod bots;
pub mod budget;
pub mod delivery;
pub mod llm;
pub mod model;
pub mod ports;
pub mod widget;

pub use auth::{
    Actor, ApiKey, ApiKeyId, BotId, KeyAccess, KeyScope, Principal, Role, SessionId, User, UserId,
};
pub use bots::*;
pub use error::{Code, Error, ErrorInfo, ErrorType, Result};
pub use filter::{MetaFilter, MetaOp, meta_matches};
pub use ids::{ChunkId, CollectionId, DocumentId, IdParseError, TaskId, TenantId};
pub use model::*;
pub use widget::*;
