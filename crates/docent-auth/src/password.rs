//! Password hashing with argon2id.
//!
//! Hashing is CPU-heavy (~50 ms with the default cost), so the async helpers run it on the
//! blocking pool. Sign-in for an unknown email verifies against a dummy hash made with the same
//! parameters, so the answer takes as long as for a real account.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use docent_domain::{Code, Error, Result};

/// Common passwords (lower case), compiled in: no download at build or run time.
const COMMON: &str = include_str!("common_passwords.txt");

/// Whether a password is on the common list (ignoring case, and a trailing run of digits or
/// punctuation on a listed word), or is one character, or a short unit, repeated.
fn is_common(password: &str) -> bool {
    let lower = password.trim().to_lowercase();
    let listed = |p: &str| {
        COMMON
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .any(|l| l == p)
    };
    if listed(&lower) {
        return true;
    }
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if stem.chars().count() >= 6 && stem != lower && listed(stem) {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    (1..=3).any(|unit| {
        chars.len() >= unit * 3
            && chars.len().is_multiple_of(unit)
            && chars.chunks(unit).all(|c| c == &chars[..unit])
    })
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// The library's recommended defaults (19 MiB, 2 passes, 1 lane).
    pub const DEFAULT: PasswordParams = PasswordParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest valid parameters, for tests only.
    pub const INSECURE_FAST: PasswordParams = PasswordParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    min_length: usize,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("min_length", &self.inner.min_length)
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with these costs and the shortest accepted password.
    pub fn new(params: PasswordParams, min_length: usize) -> Result<Self> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::internal(format!("invalid argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy_hash = argon
            .hash_password(crate::secrets::new_token().as_bytes())
            .map_err(|e| Error::internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                min_length,
                dummy_hash,
            }),
        })
    }

    fn argon(&self) -> Argon2<'_> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.params.clone(),
        )
    }

    /// Checks the password rules; `invalid_field` with the reason.
    pub fn check_rules(&self, password: &str) -> Result<()> {
        let chars = password.chars().count();
        if chars < self.inner.min_length {
            return Err(Error::new(
                Code::InvalidField,
                format!(
                    "`password` must be at least {} characters long",
                    self.inner.min_length
                ),
            ));
        }
        if password.len() > 1024 {
            return Err(Error::new(
                Code::InvalidField,
                "`password` must be at most 1024 bytes long",
            ));
        }
        if password.trim().is_empty() {
            return Err(Error::new(
                Code::InvalidField,
                "`password` must not be blank",
            ));
        }
        if is_common(password) {
            return Err(Error::new(
                Code::InvalidField,
                "`password` is too common or too simple: choose another (a few unrelated words \
                 work well)",
            ));
        }
        Ok(())
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$...`), on this thread.
    pub fn hash_blocking(&self, password: &str) -> Result<String> {
        self.argon()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("argon2: {e}")))
    }

    /// Verifies a password against a stored PHC string (its own parameters are used), or
    /// against the dummy hash when there is none, so both paths cost the same. Returns whether
    /// it matched.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> bool {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (self.inner.dummy_hash.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = self
            .argon()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    }

    /// [`Self::hash_blocking`] on the blocking pool.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let this = self.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(Error::internal)?
    }

    /// [`Self::verify_blocking`] on the blocking pool.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool> {
        let this = self.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || this.verify_blocking(&password, stored.as_deref()))
            .await
            .map_err(Error::internal)
    }

    /// Whether a stored hash uses weaker parameters than the configured ones (rehash on the
    /// next successful sign-in).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || params.m_cost() < self.inner.params.m_cost()
            || params.t_cost() < self.inner.params.t_cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(PasswordParams::INSECURE_FAST, 10).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = hasher();
        let a = h.hash_blocking("correct horse battery").unwrap();
        let b = h.hash_blocking("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(h.verify_blocking("correct horse battery", Some(&a)));
        assert!(!h.verify_blocking("correct horse batterx", Some(&a)));
        assert!(!h.verify_blocking("anything", Some("not a phc string")));
    }

    #[test]
    fn unknown_users_are_checked_against_a_dummy_and_never_match() {
        let h = hasher();
        assert!(!h.verify_blocking("whatever password", None));
        assert!(!h.verify_blocking("", None));
    }

    #[test]
    fn common_and_repetitive_passwords_are_refused() {
        let h = hasher();
        for bad in [
            "password123",
            "Password123!",
            "QWERTYUIOP",
            "1234567890",
            "iloveyou2024!",
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "correct horse battery staple",
        ] {
            assert_eq!(
                h.check_rules(bad).unwrap_err().code,
                Code::InvalidField,
                "{bad}"
            );
        }
        for good in [
            "correct horse battery",
            "a brand new password",
            "tulip-orbit-42-kayak",
        ] {
            h.check_rules(good).unwrap();
        }
    }

    #[test]
    fn rules_and_rehash() {
        let h = hasher();
        assert_eq!(h.check_rules("short").unwrap_err().code, Code::InvalidField);
        assert_eq!(
            h.check_rules("          ").unwrap_err().code,
            Code::InvalidField
        );
        h.check_rules("long enough pass").unwrap();
        assert!(h.check_rules(&"x".repeat(2000)).is_err());
        let stored = h.hash_blocking("long enough pass").unwrap();
        assert!(!h.needs_rehash(&stored));
        let stronger = PasswordHasher::new(
            PasswordParams {
                memory_kib: 64,
                iterations: 2,
                parallelism: 1,
            },
            10,
        )
        .unwrap();
        assert!(stronger.needs_rehash(&stored));
        assert!(h.needs_rehash("garbage"));
    }
}
