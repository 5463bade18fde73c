//! The [`Cache`] contract: what every cache — in-process, Redis, DynamoDB, and a
//! `TieredCache` of them — must do, written once against the port.
//!
//! A backend provides a factory returning a future of a [`CacheUnderTest`]. Every call must
//! build a cache that no other case sees (a fresh instance, or a fresh key prefix on a shared
//! server). Then, at module level of a test file:
//!
//! ```ignore
//! docent_testkit::cache_contract_tests!(my_cache_factory);
//! // or, for a server named by an environment variable, a factory of `Option<CacheUnderTest>`:
//! docent_testkit::cache_contract_tests!(optional my_cache_factory);
//! ```
//!
//! What is backend-specific stays in the backend's own tests: key prefixes, what is stored on
//! the server, outages, sizes past a backend's limit.

use std::time::Duration;

use bytes::Bytes;
use docent_domain::ports::Cache;

use crate::contract::UnderTest;

/// A cache handed to one contract case.
pub type CacheUnderTest = UnderTest<dyn Cache>;

/// The list of cases, in one place.
#[doc(hidden)]
#[macro_export]
macro_rules! __cache_contract_cases {
    ($mode:ident $($args:tt)*) => {
        $crate::__contract_emit! {
            $mode cache_contract [$($args)*]
            a_missing_key_is_a_miss_and_values_round_trip,
            delete_removes_and_a_missing_key_deletes_fine,
            entries_expire_after_their_ttl,
            keys_are_distinct_whatever_their_length,
            values_of_many_sizes_round_trip,
        }
    };
}

/// Expands to one `#[tokio::test]` per [`Cache`] contract case, each on a fresh cache from
/// `factory` (callable as `factory()`, returning a future of [`CacheUnderTest`]).
/// `cache_contract_tests!(optional factory)` takes a factory of `Option<CacheUnderTest>`: each
/// case passes without running when it gives `None`.
#[macro_export]
macro_rules! cache_contract_tests {
    (optional $factory:expr $(,)?) => {
        $crate::__cache_contract_cases!(optional_tests $factory);
    };
    ($factory:expr $(,)?) => {
        $crate::__cache_contract_cases!(tests $factory);
    };
}

/// Long enough never to lapse during a case.
const LONG: Duration = Duration::from_secs(60);

/// A missing key reads as `None`; what is put reads back byte for byte (binary-safe); a second
/// put replaces the value; other keys are untouched; the cache answers a ping.
pub async fn a_missing_key_is_a_miss_and_values_round_trip(t: CacheUnderTest) {
    let cache = &*t.port;
    cache.ping().await.expect("ping");
    assert!(cache.get("k").await.unwrap().is_none(), "a miss");
    let bytes = Bytes::from(vec![0u8, 255, 1, 2, 3, 0]);
    cache.put("k", bytes.clone(), LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), bytes, "binary-safe");
    cache
        .put("other", Bytes::from_static(b"o"), LONG)
        .await
        .unwrap();
    cache
        .put("k", Bytes::from_static(b"second"), LONG)
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), "second", "replaced");
    assert_eq!(cache.get("other").await.unwrap().unwrap(), "o");
}

/// A deleted entry is a miss at once; deleting a key never stored is not an error.
pub async fn delete_removes_and_a_missing_key_deletes_fine(t: CacheUnderTest) {
    let cache = &*t.port;
    cache
        .put("k", Bytes::from_static(b"v"), LONG)
        .await
        .unwrap();
    cache
        .put("kept", Bytes::from_static(b"w"), LONG)
        .await
        .unwrap();
    cache.delete("k").await.unwrap();
    assert!(cache.get("k").await.unwrap().is_none(), "deleted");
    assert_eq!(cache.get("kept").await.unwrap().unwrap(), "w");
    cache.delete("never-there").await.unwrap();
    cache.delete("k").await.unwrap();
}

/// An entry is a miss once its time to live has passed (whether or not the backend has
/// removed it yet); an entry with a longer one is still there.
pub async fn entries_expire_after_their_ttl(t: CacheUnderTest) {
    let cache = &*t.port;
    let short = Duration::from_millis(300);
    cache
        .put("short", Bytes::from_static(b"x"), short)
        .await
        .unwrap();
    assert!(
        cache.get("short").await.unwrap().is_some(),
        "fresh until its ttl"
    );
    cache
        .put("long", Bytes::from_static(b"y"), LONG)
        .await
        .unwrap();
    tokio::time::sleep(short * 2).await;
    assert!(cache.get("short").await.unwrap().is_none(), "expired");
    assert_eq!(cache.get("long").await.unwrap().unwrap(), "y");
}

/// Keys are compared whole: long keys (past DynamoDB's 2 KiB key limit, multi-byte
/// characters), keys that differ only at the end, and keys with separators never share an
/// entry.
pub async fn keys_are_distinct_whatever_their_length(t: CacheUnderTest) {
    let cache = &*t.port;
    let long_a = format!("{}a", "é".repeat(1500));
    let long_b = format!("{}b", "é".repeat(1500));
    let keys = [
        long_a.as_str(),
        long_b.as_str(),
        "qvec:model:a query",
        "qvec:model:a query ",
        "qvec/model/a query",
        "QVEC:model:a query",
    ];
    for (i, k) in keys.iter().enumerate() {
        cache
            .put(k, Bytes::from(format!("value {i}")), LONG)
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            cache.get(k).await.unwrap().unwrap(),
            format!("value {i}"),
            "key {i}"
        );
    }
    cache.delete(&long_a).await.unwrap();
    assert!(cache.get(&long_a).await.unwrap().is_none());
    assert_eq!(cache.get(&long_b).await.unwrap().unwrap(), "value 1");
}

/// Values from one byte to well over a page (a cached answer or query vector) round-trip.
pub async fn values_of_many_sizes_round_trip(t: CacheUnderTest) {
    let cache = &*t.port;
    for (i, len) in [1usize, 4095, 4097, 64 * 1024].into_iter().enumerate() {
        let value: Bytes = (0..len).map(|j| (j * 31 + i) as u8).collect();
        let key = format!("size-{len}");
        cache.put(&key, value.clone(), LONG).await.unwrap();
        assert_eq!(
            cache.get(&key).await.unwrap().unwrap(),
            value,
            "{len} bytes"
        );
    }
}
