//! Collections: create, read, update, delete (delete cascades to documents, chunks, originals
//! and cancels their pending work), and the `default` collection of seed-compatible uploads.
//! Each takes a [`Scope`]: a collection outside it is `collection_not_found`, and a scope limited
//! to some collections cannot create any.

use docent_domain::auth::Scope;
use docent_domain::*;
use futures::StreamExt;

use crate::Services;

/// Longest collection name.
pub const MAX_NAME_CHARS: usize = 128;

/// The collection that uploads naming none go to (`POST /upload`, `POST /api/upload`).
pub const DEFAULT_COLLECTION: &str = "default";

/// Trims and checks a collection name.
pub fn parse_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::new(Code::InvalidField, "`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::new(
            Code::InvalidField,
            format!("`name` must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::new(
            Code::InvalidField,
            "`name` must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

impl Services {
    /// Creates a collection (`insufficient_scope` for a scope limited to some collections).
    pub async fn create_collection<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        mut new: NewCollection,
    ) -> Result<Collection> {
        let scope = scope.into();
        scope.require_tenant_wide()?;
        new.name = parse_name(&new.name)?;
        check_metadata(&new.metadata)?;
        self.store.create_collection(scope.tenant, new).await
    }

    /// A collection.
    pub async fn get_collection<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: CollectionId,
    ) -> Result<Collection> {
        let scope = scope.into();
        scope.check_collection(id)?;
        self.store.get_collection(scope.tenant, id).await
    }

    /// The scope's collections, newest first (a page may hold fewer items than asked for when
    /// the scope is limited; follow `next_cursor`).
    pub async fn list_collections<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        page: PageRequest,
    ) -> Result<Page<Collection>> {
        let scope = scope.into();
        let mut list = self.store.list_collections(scope.tenant, page).await?;
        list.items.retain(|c| scope.allows(c.id));
        Ok(list)
    }

    /// The tenant's collection named [`DEFAULT_COLLECTION`], created on first use. A scope
    /// limited to some collections never creates it and may use it only when it is one of them
    /// (`collection_not_found` otherwise).
    pub async fn default_collection<'s>(&self, scope: impl Into<Scope<'s>>) -> Result<Collection> {
        let scope = scope.into();
        if scope.collections.is_none() {
            return self
                .collection_by_name_or_create(scope.tenant, DEFAULT_COLLECTION, None)
                .await;
        }
        match self
            .store
            .find_collection_by_name(scope.tenant, DEFAULT_COLLECTION)
            .await?
        {
            Some(c) if scope.allows(c.id) => Ok(c),
            _ => Err(Error::new(
                Code::CollectionNotFound,
                format!("collection `{DEFAULT_COLLECTION}` not found; name a `collection_id`"),
            )),
        }
    }

    /// Returns the collection named `name`, creating it (in `language`, when given) if needed
    /// (CLI ingest). An existing collection of another language is `invalid_field`: the
    /// language is fixed at creation.
    pub async fn collection_by_name_or_create(
        &self,
        tenant: TenantId,
        name: &str,
        language: Option<TextLanguage>,
    ) -> Result<Collection> {
        let name = parse_name(name)?;
        let found = match self.store.find_collection_by_name(tenant, &name).await? {
            Some(c) => c,
            None => match self
                .store
                .create_collection(
                    tenant,
                    NewCollection {
                        name: name.clone(),
                        language: language.unwrap_or_default(),
                        ..Default::default()
                    },
                )
                .await
            {
                Err(e) if e.code == Code::CollectionNameTaken => self
                    .store
                    .find_collection_by_name(tenant, &name)
                    .await?
                    .ok_or_else(|| Error::internal("collection vanished after a name conflict"))?,
                other => other?,
            },
        };
        match language {
            Some(l) if l != found.language => Err(Error::new(
                Code::InvalidField,
                format!(
                    "collection `{name}` exists with language `{}`; a collection's language is fixed at creation",
                    found.language
                ),
            )),
            _ => Ok(found),
        }
    }

    /// Updates a collection.
    pub async fn update_collection<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: CollectionId,
        mut patch: CollectionPatch,
    ) -> Result<Collection> {
        let scope = scope.into();
        let tenant = scope.tenant;
        scope.check_collection(id)?;
        if let Some(name) = &patch.name {
            patch.name = Some(parse_name(name)?);
        }
        if let Some(m) = &patch.metadata {
            check_metadata(m)?;
        }
        self.store.update_collection(tenant, id, patch).await
    }

    /// Deletes a collection and everything under it; returns once rows and originals are gone.
    pub async fn delete_collection<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: CollectionId,
    ) -> Result<()> {
        let scope = scope.into();
        let tenant = scope.tenant;
        self.get_collection(scope, id).await?;
        self.cancel_open_tasks(
            tenant,
            TaskFilter {
                collection_id: Some(id),
                ..Default::default()
            },
        )
        .await?;
        let keys = self.store.delete_collection(tenant, id).await?;
        self.index.delete_collection(tenant, id).await?;
        futures::stream::iter(keys)
            .for_each_concurrent(8, |key| async move {
                if let Err(e) = self.blobs.delete(&key).await {
                    tracing::warn!(key, error = %e.chain(), "could not delete an original; it is orphaned");
                }
            })
            .await;
        Ok(())
    }
}
