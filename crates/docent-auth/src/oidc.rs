//! External identity: JWTs from an OpenID Connect provider (Cognito, Auth0, Keycloak, ...),
//! verified against the provider's JWKS and mapped to a tenant, a user and a role by
//! configurable claims.
//!
//! Verification is pinned per provider: exact issuer, one of the configured audiences, an
//! asymmetric algorithm from the provider's list (HMAC never), a `kid` that names a signing key
//! of the provider's JWKS whose own `alg` (if it states one) agrees, and `exp`/`nbf` within the
//! leeway. Keys are cached for `jwks_ttl`; a token naming an unknown `kid` triggers one refetch,
//! at most once per `jwks_min_refresh`, so key rotation works without letting forged `kid`s
//! hammer the provider. If the provider is unreachable, keys already cached keep working.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use docent_config::OidcProviderConfig;
use docent_domain::auth::ExternalIdentity;
use docent_domain::{Code, Error, Result, Role, TenantId};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

/// Where an external user's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    /// The provider is bound to one docent tenant.
    Fixed(TenantId),
    /// The value of the provider's tenant claim, mapped per provider.
    External(String),
}

/// A verified external token, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalClaims {
    /// Who.
    pub identity: ExternalIdentity,
    /// Which tenant.
    pub tenant: TenantRef,
    /// The role the token's role claim grants, if it names one.
    pub role: Option<Role>,
    /// All claims, for callers that need more.
    pub claims: Map<String, Value>,
}

/// One configured provider.
pub struct OidcProvider {
    name: String,
    issuer: String,
    audience: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    subject_claim: String,
    email_claim: String,
    name_claim: String,
    tenant: TenantSource,
    role_claim: Option<String>,
    role_map: HashMap<String, Role>,
    default_role: Role,
    create_tenants: bool,
    jwks: JwksCache,
}

#[derive(Debug, Clone)]
enum TenantSource {
    Claim(String),
    Fixed(TenantId),
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::TokenInvalid, msg)
}

fn config_error(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::internal(format!("auth.oidc `{name}`: {msg}"))
}

impl OidcProvider {
    /// A provider from its configuration; `client` fetches the JWKS.
    pub fn new(
        config: &OidcProviderConfig,
        leeway: Duration,
        client: reqwest::Client,
    ) -> Result<Self> {
        let name = config.name.clone();
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                let alg = Algorithm::from_str(a)
                    .map_err(|_| config_error(&name, format!("unknown algorithm {a}")))?;
                if alg.family() == AlgorithmFamily::Hmac {
                    return Err(config_error(&name, "HMAC algorithms are not accepted"));
                }
                Ok(alg)
            })
            .collect::<Result<Vec<_>>>()?;
        let role = |r: &str| {
            Role::parse(r).ok_or_else(|| config_error(&name, format!("unknown role {r}")))
        };
        let role_map = config
            .role_map
            .iter()
            .map(|(k, v)| Ok((k.clone(), role(v)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let tenant = match (&config.tenant_claim, &config.tenant_id) {
            (Some(claim), _) => TenantSource::Claim(claim.clone()),
            (None, Some(id)) => TenantSource::Fixed(
                id.parse()
                    .map_err(|_| config_error(&name, "tenant_id is not a tenant id"))?,
            ),
            (None, None) => return Err(config_error(&name, "set tenant_claim or tenant_id")),
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            algorithms,
            leeway,
            subject_claim: config.subject_claim.clone(),
            email_claim: config.email_claim.clone(),
            name_claim: config.name_claim.clone(),
            tenant,
            role_claim: config.role_claim.clone(),
            role_map,
            default_role: role(&config.default_role)?,
            create_tenants: config.create_tenants,
            jwks: JwksCache::new(
                config.jwks_url.clone(),
                client,
                config.jwks_ttl,
                config.jwks_min_refresh,
            ),
            name,
        })
    }

    /// The label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The role for users whose token names none.
    pub fn default_role(&self) -> Role {
        self.default_role
    }

    /// Whether unknown tenant-claim values create tenants.
    pub fn creates_tenants(&self) -> bool {
        self.create_tenants
    }

    /// The key cache (for metrics and tests).
    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// Verifies a token of this provider and maps its claims.
    pub async fn verify(&self, token: &str) -> Result<ExternalClaims> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("the token's algorithm is not accepted"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("the token names no signing key (kid)"))?;
        let key = self.jwks.key(kid).await?;
        if let Some(alg) = key.alg
            && alg != header.alg
        {
            return Err(invalid("the token's algorithm does not match its key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audience);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(crate::jwt::map_jwt_error)?;
        self.map_claims(data.claims)
    }

    fn map_claims(&self, claims: Map<String, Value>) -> Result<ExternalClaims> {
        let subject = claim_string(&claims, &self.subject_claim).ok_or_else(|| {
            invalid(format!(
                "the token lacks the `{}` claim",
                self.subject_claim
            ))
        })?;
        let email = claim_string(&claims, &self.email_claim).map(|e| e.trim().to_lowercase());
        let email_verified = match lookup(&claims, "email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let display_name = claim_string(&claims, &self.name_claim);
        let tenant = match &self.tenant {
            TenantSource::Fixed(id) => TenantRef::Fixed(*id),
            TenantSource::Claim(claim) => TenantRef::External(
                claim_string(&claims, claim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid(format!("the token lacks the `{claim}` claim")))?,
            ),
        };
        let role = self.role_claim.as_deref().and_then(|claim| {
            let values: Vec<String> = match lookup(&claims, claim)? {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            values
                .iter()
                .filter_map(|v| self.role_map.get(v).copied().or_else(|| Role::parse(v)))
                .max()
        });
        Ok(ExternalClaims {
            identity: ExternalIdentity {
                issuer: self.issuer.clone(),
                subject,
                email,
                email_verified,
                display_name,
            },
            tenant,
            role,
            claims,
        })
    }
}

/// A claim by exact name, or by a dotted path into nested objects (`realm_access.roles`).
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

fn claim_string(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match lookup(claims, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A verification key from a JWKS.
#[derive(Clone)]
pub struct JwksKey {
    /// The key.
    pub key: DecodingKey,
    /// The algorithm the JWK states, if any.
    pub alg: Option<Algorithm>,
}

struct Cached {
    keys: HashMap<String, JwksKey>,
    fetched_at: Instant,
}

/// A provider's signing keys, fetched over HTTP(S) and cached.
pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    min_refresh: Duration,
    cached: RwLock<Option<Cached>>,
    refreshing: Mutex<()>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// A cache for the JWKS at `url`.
    pub fn new(url: String, client: reqwest::Client, ttl: Duration, min_refresh: Duration) -> Self {
        Self {
            url,
            client,
            ttl,
            min_refresh,
            cached: RwLock::new(None),
            refreshing: Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key `kid`: from the cache while fresh; refetched when stale, or when unknown and
    /// the last fetch is older than the minimum refresh interval.
    pub async fn key(&self, kid: &str) -> Result<JwksKey> {
        if let Some(found) = self.lookup(kid, false).await {
            return Ok(found);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Someone else may have refreshed while we waited.
        if let Some(found) = self.lookup(kid, false).await {
            return Ok(found);
        }
        let may_fetch = match &*self.cached.read().await {
            None => true,
            Some(c) => {
                let age = c.fetched_at.elapsed();
                age >= self.ttl || age >= self.min_refresh
            }
        };
        if may_fetch {
            match self.fetch().await {
                Ok(keys) => {
                    *self.cached.write().await = Some(Cached {
                        keys,
                        fetched_at: Instant::now(),
                    });
                }
                Err(e) => {
                    // Serve a stale key rather than fail everyone during an outage.
                    if let Some(found) = self.lookup(kid, true).await {
                        tracing::warn!(url = %self.url, error = %e.chain(), "JWKS refresh failed; using cached keys");
                        return Ok(found);
                    }
                    return Err(e);
                }
            }
        }
        self.lookup(kid, true)
            .await
            .ok_or_else(|| invalid("the token was signed by an unknown key"))
    }

    async fn lookup(&self, kid: &str, allow_stale: bool) -> Option<JwksKey> {
        let cached = self.cached.read().await;
        let c = cached.as_ref()?;
        if !allow_stale && c.fetched_at.elapsed() >= self.ttl {
            return None;
        }
        c.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, JwksKey>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .get(&self.url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Error::unavailable("the identity provider's key set", e))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::unavailable("the identity provider's key set", e))?;
        let keys = body.get("keys").and_then(Value::as_array).ok_or_else(|| {
            Error::unavailable("the identity provider's key set", "no `keys` array")
        })?;
        let mut out = HashMap::new();
        for raw in keys {
            // One odd key (encryption keys, unknown types) must not spoil the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let alg = match jwk.common.key_algorithm {
                Some(a) => match Algorithm::from_str(&a.to_string()) {
                    Ok(alg) => Some(alg),
                    Err(_) => continue,
                },
                None => None,
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            if key.family() == AlgorithmFamily::Hmac {
                continue;
            }
            out.insert(kid, JwksKey { key, alg });
        }
        tracing::debug!(url = %self.url, keys = out.len(), "fetched JWKS");
        Ok(out)
    }
}
