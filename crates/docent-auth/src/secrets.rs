//! Opaque secrets: random tokens, their SHA-256 hashes (the only form stored), and the API key
//! format `dk_<prefix>_<secret>`.
//!
//! Every opaque token carries at least 256 bits from the operating system's CSPRNG, so a plain
//! SHA-256 is a sufficient at-rest hash (no slow hash needed) and a lookup by hash leaks nothing
//! through timing.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Characters of an opaque token (alphanumeric: ~5.95 bits each, 43 chars ≥ 256 bits).
const TOKEN_LEN: usize = 43;
/// Characters of an API key's public prefix.
pub const API_KEY_PREFIX_LEN: usize = 12;
/// Characters of an API key's secret part.
const API_KEY_SECRET_LEN: usize = 43;
/// Every API key starts with this, so secret scanners and humans recognise it.
pub const API_KEY_SCHEME: &str = "dk_";

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh opaque token (refresh, verification, reset, invite, setup).
pub fn new_token() -> String {
    random_alphanumeric(TOKEN_LEN)
}

/// The stored form of a token or key: lowercase hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A freshly generated API key: the whole key (shown once) and its public prefix.
pub struct GeneratedApiKey {
    /// `dk_<prefix>_<secret>`.
    pub key: String,
    /// The public prefix, stored in clear for lookup and display.
    pub prefix: String,
}

/// Generates an API key.
pub fn new_api_key() -> GeneratedApiKey {
    let prefix = random_alphanumeric(API_KEY_PREFIX_LEN);
    let secret = random_alphanumeric(API_KEY_SECRET_LEN);
    GeneratedApiKey {
        key: format!("{API_KEY_SCHEME}{prefix}_{secret}"),
        prefix,
    }
}

/// Whether a bearer credential looks like an API key (rather than a JWT).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_SCHEME)
}

/// The prefix of a well-formed API key, or `None`.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(API_KEY_SCHEME)?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(prefix, API_KEY_PREFIX_LEN) && ok(secret, API_KEY_SECRET_LEN)).then_some(prefix)
}

/// Compares two hashes without an early exit.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed_stably() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token("x").len(), 64);
        assert!(hashes_equal(&hash_token(&a), &hash_token(&a)));
        assert!(!hashes_equal(&hash_token(&a), &hash_token(&b)));
    }

    #[test]
    fn api_keys_have_the_documented_shape() {
        let k = new_api_key();
        assert!(k.key.starts_with("dk_"));
        assert!(is_api_key(&k.key));
        assert_eq!(api_key_prefix(&k.key), Some(k.prefix.as_str()));
        assert_eq!(k.key.len(), 3 + API_KEY_PREFIX_LEN + 1 + API_KEY_SECRET_LEN);
        for bad in [
            "dk_short_secret",
            "dk_",
            "eyJhbGciOi.x.y",
            &k.key[..k.key.len() - 1],
            &format!("{}!", &k.key[..k.key.len() - 1]),
            &k.key.replacen("dk_", "dx_", 1),
        ] {
            assert_eq!(api_key_prefix(bad), None, "{bad}");
        }
    }
}
