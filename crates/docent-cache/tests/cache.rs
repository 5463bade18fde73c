//! The in-process caches against the shared [`Cache`](docent_domain::ports::Cache) contract:
//! every case of `docent_testkit::cache_contract` on a fresh `MemoryCache`, and on a
//! `TieredCache` of two of them.

use std::sync::Arc;

use docent_cache::{MemoryCache, Tier, TieredCache};
use docent_testkit::CacheUnderTest;

async fn memory() -> CacheUnderTest {
    CacheUnderTest::new(Arc::new(MemoryCache::new(1000)), ())
}

async fn tiered() -> CacheUnderTest {
    let cache = TieredCache::new(vec![
        Tier::new("near", Arc::new(MemoryCache::new(1000))),
        Tier::new("far", Arc::new(MemoryCache::new(1000))),
    ]);
    CacheUnderTest::new(Arc::new(cache), ())
}

mod memory {
    docent_testkit::cache_contract_tests!(super::memory);
}

mod tiered {
    docent_testkit::cache_contract_tests!(super::tiered);
}
