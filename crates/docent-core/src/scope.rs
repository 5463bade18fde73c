//! Scopes in searches. Every service that takes a collection or a document takes an
//! `impl Into<Scope>` ([`docent_domain::auth::Scope`]) and checks it itself; searches narrow
//! their collection filter here, so an API key limited to some collections never reads another
//! one's chunks — through `search`, `ask` or anything built on them.

use std::borrow::Cow;

use docent_domain::Result;
use docent_domain::auth::Scope;

use crate::search::SearchParams;

/// `p` narrowed to `scope`. A search that names no collection searches the scope's
/// collections; one that names a collection outside the scope is `collection_not_found`, as for
/// an id of another tenant (so the collections searched are always inside the scope). `None`
/// when the scope holds no collection at all: there is nothing to search.
pub(crate) fn search_within<'p>(
    scope: Scope<'_>,
    p: &'p SearchParams,
) -> Result<Option<Cow<'p, SearchParams>>> {
    let Some(allowed) = scope.collections else {
        return Ok(Some(Cow::Borrowed(p)));
    };
    if p.collections.is_empty() {
        // An empty collection filter means "all of the tenant's": never pass one on for a
        // limited scope.
        if allowed.is_empty() {
            return Ok(None);
        }
        let mut narrowed = p.clone();
        narrowed.collections = allowed.to_vec();
        return Ok(Some(Cow::Owned(narrowed)));
    }
    for c in &p.collections {
        scope.check_collection(*c)?;
    }
    Ok(Some(Cow::Borrowed(p)))
}

#[cfg(test)]
mod tests {
    use docent_domain::{Code, CollectionId, TenantId};

    use super::*;

    #[test]
    fn searches_are_narrowed_to_the_scope() {
        let (a, b) = (CollectionId::new(), CollectionId::new());
        let tenant = TenantId::new();
        let p = SearchParams::new("q");

        // The whole tenant: untouched.
        let whole = search_within(tenant.into(), &p).unwrap().unwrap();
        assert!(matches!(whole, Cow::Borrowed(_)) && whole.collections.is_empty());

        // A limited scope: no filter becomes the scope's collections.
        let only_a = [a];
        let limited = Scope {
            tenant,
            collections: Some(&only_a),
        };
        let narrowed = search_within(limited, &p).unwrap().unwrap();
        assert_eq!(narrowed.collections, vec![a]);

        // Naming a collection inside is fine; outside (alone or with an inside one) is not found.
        let mut named = p.clone();
        named.collections = vec![a];
        assert_eq!(
            search_within(limited, &named).unwrap().unwrap().collections,
            vec![a]
        );
        for outside in [vec![b], vec![a, b]] {
            named.collections = outside;
            assert_eq!(
                search_within(limited, &named).unwrap_err().code,
                Code::CollectionNotFound
            );
        }

        // A scope of no collection searches nothing (not everything).
        let empty = Scope {
            tenant,
            collections: Some(&[]),
        };
        assert!(search_within(empty, &p).unwrap().is_none());
    }
}
