//! Collections: create, read, update, delete (delete cascades to documents, chunks, originals
//! and cancels their pending work).

use docent_domain::*;
use futures::StreamExt;

use crate::Services;

/// Longest collection name.
pub const MAX_NAME_CHARS: usize = 128;

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
    /// Creates a collection.
    pub async fn create_collection(
        &self,
        tenant: TenantId,
        mut new: NewCollection,
    ) -> Result<Collection> {
        new.name = parse_name(&new.name)?;
        self.store.create_collection(tenant, new).await
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
    pub async fn update_collection(
        &self,
        tenant: TenantId,
        id: CollectionId,
        mut patch: CollectionPatch,
    ) -> Result<Collection> {
        if let Some(name) = &patch.name {
            patch.name = Some(parse_name(name)?);
        }
        self.store.update_collection(tenant, id, patch).await
    }

    /// Deletes a collection and everything under it; returns once rows and originals are gone.
    pub async fn delete_collection(&self, tenant: TenantId, id: CollectionId) -> Result<()> {
        self.store.get_collection(tenant, id).await?;
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
