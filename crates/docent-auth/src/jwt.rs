//! Access tokens: short-lived JWTs signed with Ed25519 (default), RSA (RS256) or — only when
//! configured explicitly — an HMAC secret (HS256).
//!
//! Verification is pinned: the header must name the configured algorithm, carry the type
//! `at+jwt` and a `kid` of one of our keys, and the claims must have our issuer and audience and
//! valid `exp`/`nbf` (with an explicit leeway). So `alg: none`, HMAC-signed tokens made with our
//! public key (key confusion), tokens of other issuers or audiences, ID tokens and tokens signed
//! by unknown keys are all rejected — see the tests at the bottom.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use docent_config::{AuthConfig, JwtAlgorithm};
use docent_domain::{Code, Error, Result, Role, SessionId, TenantId, UserId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The JWT `typ` of access tokens (RFC 9068), required on verification.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// The tenant the token acts in.
    pub tid: TenantId,
    /// The user's role there when the token was issued.
    pub role: String,
    /// The login session (refresh-token family).
    pub sid: SessionId,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

impl AccessClaims {
    /// The role claim, parsed.
    pub fn role(&self) -> Result<Role> {
        Role::parse(&self.role).ok_or_else(|| token_invalid("the token names an unknown role"))
    }
}

/// A signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

/// Issuer, audience, lifetime and leeway of access tokens.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Lifetime.
    pub ttl: Duration,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway: Duration,
}

/// Signing and verification keys for access tokens.
pub struct JwtKeys {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    verify: HashMap<String, DecodingKey>,
    public: JwkSet,
    settings: JwtSettings,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("verify_kids", &self.verify.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn token_invalid(msg: &str) -> Error {
    Error::new(Code::TokenInvalid, msg)
}

fn key_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

impl JwtKeys {
    /// Ed25519 keys from a PKCS#8 PEM private key.
    pub fn eddsa(private_pem: &[u8], settings: JwtSettings) -> Result<Self> {
        let not_ed = |e: &dyn std::fmt::Display| {
            key_error("auth.jwt: not an Ed25519 PKCS#8 PEM private key", e)
        };
        let parsed = pem::parse(private_pem).map_err(|e| not_ed(&e))?;
        if parsed.tag() != "PRIVATE KEY" {
            return Err(not_ed(&parsed.tag()));
        }
        let der = parsed.contents();
        // aws-lc accepts PKCS#8 v1 (openssl genpkey) and v2; derive the public key here.
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der).map_err(|e| not_ed(&e))?;
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let jwk = Jwk {
            common: CommonParameters {
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(public),
            }),
        };
        Self::asymmetric(
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(der),
            jwk,
            settings,
        )
    }

    /// RSA keys from a PKCS#1 or PKCS#8 PEM private key (2048 bits or more).
    pub fn rs256(private_pem: &[u8], settings: JwtSettings) -> Result<Self> {
        let encoding = EncodingKey::from_rsa_pem(private_pem)
            .map_err(|e| key_error("auth.jwt: not an RSA PEM private key", e))?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|e| key_error("auth.jwt: cannot derive the public key", e))?;
        Self::asymmetric(Algorithm::RS256, encoding, jwk, settings)
    }

    /// An HMAC-SHA256 secret of at least 32 bytes.
    pub fn hs256(secret: &[u8], settings: JwtSettings) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::internal(
                "auth.jwt.secret must be at least 32 bytes for HS256",
            ));
        }
        let kid = "hs256".to_owned();
        Ok(Self {
            algorithm: Algorithm::HS256,
            kid: kid.clone(),
            encoding: EncodingKey::from_secret(secret),
            verify: HashMap::from([(kid, DecodingKey::from_secret(secret))]),
            public: JwkSet { keys: Vec::new() },
            settings,
        })
    }

    fn asymmetric(
        algorithm: Algorithm,
        encoding: EncodingKey,
        mut jwk: Jwk,
        settings: JwtSettings,
    ) -> Result<Self> {
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| key_error("auth.jwt: cannot compute the key id", e))?;
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|e| key_error("auth.jwt: cannot derive the public key", e))?;
        Ok(Self {
            algorithm,
            kid: kid.clone(),
            encoding,
            verify: HashMap::from([(kid, decoding)]),
            public: JwkSet { keys: vec![jwk] },
            settings,
        })
    }

    /// Also accepts tokens signed by a retired key (PEM public key of the same algorithm).
    pub fn with_previous_public_key(mut self, public_pem: &[u8]) -> Result<Self> {
        let decoding = match self.algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(public_pem),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem),
            _ => {
                return Err(Error::internal(
                    "auth.jwt.previous_public_key_files needs EdDSA or RS256",
                ));
            }
        }
        .map_err(|e| key_error("auth.jwt: not a PEM public key", e))?;
        let mut jwk = Jwk::from_decoding_key(&decoding, Some(self.algorithm))
            .map_err(|e| key_error("auth.jwt: unusable public key", e))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| key_error("auth.jwt: cannot compute the key id", e))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|e| key_error("auth.jwt: unusable public key", e))?;
        self.verify.insert(kid, decoding);
        self.public.keys.push(jwk);
        Ok(self)
    }

    /// The keys `auth` configures: a PEM key from config or file, the HS256 secret, or — for
    /// EdDSA with no key set — the key generated once under `data_dir`.
    pub fn from_config(
        auth: &AuthConfig,
        data_path: impl Fn(&Path) -> std::path::PathBuf,
    ) -> Result<Self> {
        let settings = JwtSettings {
            issuer: auth.jwt.issuer.clone(),
            audience: auth.jwt.audience.clone(),
            ttl: auth.access_token_ttl,
            leeway: auth.clock_leeway,
        };
        let config_err = |e: docent_config::ConfigError| Error::internal(e.to_string());
        let mut keys = match auth.jwt.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = auth
                    .jwt
                    .secret()
                    .map_err(config_err)?
                    .ok_or_else(|| Error::internal("auth.jwt.secret is required for HS256"))?;
                return Self::hs256(secret.expose_secret().as_bytes(), settings);
            }
            JwtAlgorithm::RS256 => {
                let pem =
                    auth.jwt.private_key().map_err(config_err)?.ok_or_else(|| {
                        Error::internal("auth.jwt.private_key is required for RS256")
                    })?;
                Self::rs256(pem.expose_secret().as_bytes(), settings)?
            }
            JwtAlgorithm::EdDSA => {
                let pem = match auth.jwt.private_key().map_err(config_err)? {
                    Some(pem) => pem,
                    None => load_or_create_ed25519_key(&data_path(&auth.jwt.generated_key_path))?,
                };
                Self::eddsa(pem.expose_secret().as_bytes(), settings)?
            }
        };
        for file in &auth.jwt.previous_public_key_files {
            let pem = std::fs::read(data_path(file)).map_err(|e| {
                Error::internal(format!(
                    "auth.jwt.previous_public_key_files {}: {e}",
                    file.display()
                ))
            })?;
            keys = keys.with_previous_public_key(&pem)?;
        }
        Ok(keys)
    }

    /// The id of the current signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// The public keys (current and retired) as a JWK set, for `/.well-known/jwks.json`.
    /// Empty for HS256.
    pub fn jwks(&self) -> &JwkSet {
        &self.public
    }

    /// Signs an access token for `user` acting in `tenant` with `role`, valid from `now` for
    /// the configured lifetime.
    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        let expires_at =
            now + chrono::Duration::from_std(self.settings.ttl).map_err(Error::internal)?;
        let claims = AccessClaims {
            sub: user,
            tid: tenant,
            role: role.as_str().to_owned(),
            sid: session,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            iat: unix(now),
            nbf: unix(now),
            exp: unix(expires_at),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = self.sign(&claims)?;
        Ok(AccessToken { token, expires_at })
    }

    /// Signs arbitrary claims with the current key and the access-token header (tests and
    /// tools).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(Error::internal)
    }

    /// Verifies an access token: `token_invalid` for anything forged, malformed, of another
    /// algorithm, type, key, issuer or audience, or not yet valid; `token_expired` past `exp`
    /// plus the leeway.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| token_invalid("the access token is malformed"))?;
        if header.alg != self.algorithm {
            return Err(token_invalid(
                "the access token's algorithm is not accepted",
            ));
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(token_invalid("the token is not an access token"));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verify.get(kid))
            .ok_or_else(|| token_invalid("the access token was signed by an unknown key"))?;
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(map_jwt_error)?;
        data.claims.role()?;
        Ok(data.claims)
    }
}

/// Maps a verification failure to `token_expired` or `token_invalid`.
pub(crate) fn map_jwt_error(e: jsonwebtoken::errors::Error) -> Error {
    match e.kind() {
        ErrorKind::ExpiredSignature => Error::new(Code::TokenExpired, "the token has expired"),
        ErrorKind::ImmatureSignature => token_invalid("the token is not valid yet"),
        ErrorKind::InvalidIssuer => token_invalid("the token has another issuer"),
        ErrorKind::InvalidAudience => token_invalid("the token is for another audience"),
        ErrorKind::InvalidSignature => token_invalid("the token's signature is invalid"),
        ErrorKind::InvalidAlgorithm => token_invalid("the token's algorithm is not accepted"),
        ErrorKind::MissingRequiredClaim(c) => Error::new(
            Code::TokenInvalid,
            format!("the token lacks the `{c}` claim"),
        ),
        _ => token_invalid("the token is invalid"),
    }
}

/// Reads the Ed25519 signing key kept at `path`, generating it first if the file does not
/// exist (PKCS#8 PEM, mode 0600; concurrent first starts agree on one key).
pub fn load_or_create_ed25519_key(path: &Path) -> Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            warn_if_readable_by_others(path);
            return Ok(SecretString::from(pem));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("reading {}: {e}", path.display()))),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    }
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|_| Error::internal("generating an Ed25519 key failed"))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = private_file(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // A hard link fails if another process created the key meanwhile: theirs wins.
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the access-token signing key");
            Ok(SecretString::from(pem))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|e| Error::internal(format!("reading {}: {e}", path.display()))),
        Err(e) => Err(Error::internal(format!("writing {}: {e}", path.display()))),
    }
}

/// Creates a new file readable only by its owner.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the signing key file is readable by other users; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn settings() -> JwtSettings {
        JwtSettings {
            issuer: "docent-test".into(),
            audience: "docent-api".into(),
            ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(30),
        }
    }

    pub(crate) fn ed_pem() -> String {
        let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref().to_vec()))
    }

    pub(crate) fn rsa_pem() -> String {
        use aws_lc_rs::encoding::AsDer as _;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = key.as_der().unwrap();
        pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()))
    }

    fn claims(keys: &JwtKeys, iat: i64, exp: i64) -> serde_json::Value {
        json!({
            "sub": UserId::new(), "tid": TenantId::new(), "role": "member", "sid": SessionId::new(),
            "iss": keys.settings.issuer, "aud": keys.settings.audience,
            "iat": iat, "nbf": iat, "exp": exp, "jti": "x",
        })
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn code(r: Result<AccessClaims>) -> Code {
        r.unwrap_err().code
    }

    #[test]
    fn eddsa_round_trip_and_claims() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        let (user, tenant, sid) = (UserId::new(), TenantId::new(), SessionId::new());
        let t = keys
            .issue(user, tenant, Role::Admin, sid, Utc::now())
            .unwrap();
        let c = keys.verify(&t.token).unwrap();
        assert_eq!((c.sub, c.tid, c.sid), (user, tenant, sid));
        assert_eq!(c.role().unwrap(), Role::Admin);
        assert_eq!(c.exp - c.iat, 900);
        assert_eq!(c.iss, "docent-test");
        let header = jsonwebtoken::decode_header(&t.token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(keys.kid()));
        assert_eq!(keys.jwks().keys.len(), 1);
        assert_eq!(
            keys.jwks().keys[0].common.key_id.as_deref(),
            Some(keys.kid())
        );
    }

    #[test]
    fn rs256_and_hs256_round_trip() {
        let rs = JwtKeys::rs256(rsa_pem().as_bytes(), settings()).unwrap();
        let t = rs
            .issue(
                UserId::new(),
                TenantId::new(),
                Role::Viewer,
                SessionId::new(),
                Utc::now(),
            )
            .unwrap();
        rs.verify(&t.token).unwrap();
        let hs = JwtKeys::hs256(&[7u8; 32], settings()).unwrap();
        let t = hs
            .issue(
                UserId::new(),
                TenantId::new(),
                Role::Viewer,
                SessionId::new(),
                Utc::now(),
            )
            .unwrap();
        hs.verify(&t.token).unwrap();
        assert!(
            hs.jwks().keys.is_empty(),
            "a shared secret is never published"
        );
        assert!(JwtKeys::hs256(b"too short", settings()).is_err());
    }

    #[test]
    fn alg_none_is_rejected() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        let c = claims(&keys, now(), now() + 60);
        for alg in ["none", "None", "NONE"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": keys.kid()});
            let token = format!("{}.{}.", b64(&header), b64(&c));
            assert_eq!(code(keys.verify(&token)), Code::TokenInvalid, "{alg}");
            let token = format!("{}.{}", b64(&header), b64(&c));
            assert_eq!(code(keys.verify(&token)), Code::TokenInvalid, "{alg}");
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        // Classic key confusion: an attacker HMAC-signs with the RSA public key as the secret.
        let rs = JwtKeys::rs256(rsa_pem().as_bytes(), settings()).unwrap();
        let c = claims(&rs, now(), now() + 60);
        let public = serde_json::to_vec(&rs.jwks().keys[0]).unwrap();
        for secret in [public.as_slice(), rs.kid().as_bytes()] {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(ACCESS_TOKEN_TYPE.into());
            header.kid = Some(rs.kid().into());
            let forged =
                jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(secret)).unwrap();
            assert_eq!(code(rs.verify(&forged)), Code::TokenInvalid);
        }
        // And the other way round: an HS256 deployment refuses RS256 tokens.
        let hs = JwtKeys::hs256(&[9u8; 48], settings()).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some("hs256".into());
        let rsa_key = EncodingKey::from_rsa_pem(rsa_pem().as_bytes()).unwrap();
        let forged = jsonwebtoken::encode(&header, &c, &rsa_key).unwrap();
        assert_eq!(code(hs.verify(&forged)), Code::TokenInvalid);
        // An EdDSA deployment refuses an RS256 token even with a matching kid.
        let ed = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        header.kid = Some(ed.kid().into());
        let forged = jsonwebtoken::encode(&header, &c, &rsa_key).unwrap();
        assert_eq!(code(ed.verify(&forged)), Code::TokenInvalid);
    }

    #[test]
    fn wrong_issuer_or_audience_is_rejected() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        for (field, value) in [
            ("iss", json!("someone-else")),
            ("aud", json!("another-api")),
            ("aud", json!(["another-api"])),
        ] {
            let mut c = claims(&keys, now(), now() + 60);
            c[field] = value;
            assert_eq!(
                code(keys.verify(&keys.sign(&c).unwrap())),
                Code::TokenInvalid
            );
        }
        for missing in ["iss", "aud", "exp", "nbf", "sub"] {
            let mut c = claims(&keys, now(), now() + 60);
            c.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                code(keys.verify(&keys.sign(&c).unwrap())),
                Code::TokenInvalid,
                "{missing}"
            );
        }
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        // Expired 10 s ago: within the 30 s leeway.
        keys.verify(&keys.sign(&claims(&keys, now() - 100, now() - 10)).unwrap())
            .unwrap();
        // Expired 2 minutes ago: rejected as expired.
        let expired = keys.sign(&claims(&keys, now() - 300, now() - 120)).unwrap();
        assert_eq!(code(keys.verify(&expired)), Code::TokenExpired);
        // Valid only from 10 minutes from now: rejected.
        let mut c = claims(&keys, now(), now() + 1200);
        c["nbf"] = json!(now() + 600);
        assert_eq!(
            code(keys.verify(&keys.sign(&c).unwrap())),
            Code::TokenInvalid
        );
        // Valid from 10 s from now: the leeway accepts it.
        c["nbf"] = json!(now() + 10);
        keys.verify(&keys.sign(&c).unwrap()).unwrap();
        // With no leeway, just-expired tokens are refused.
        let strict = JwtKeys::eddsa(
            ed_pem().as_bytes(),
            JwtSettings {
                leeway: Duration::ZERO,
                ..settings()
            },
        )
        .unwrap();
        let t = strict
            .sign(&claims(&strict, now() - 100, now() - 2))
            .unwrap();
        assert_eq!(code(strict.verify(&t)), Code::TokenExpired);
    }

    #[test]
    fn tampered_or_foreign_signatures_are_rejected() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        let t = keys
            .issue(
                UserId::new(),
                TenantId::new(),
                Role::Viewer,
                SessionId::new(),
                Utc::now(),
            )
            .unwrap()
            .token;
        // Change the payload (viewer → owner) and keep the signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["role"] = json!("owner");
        let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(code(keys.verify(&tampered)), Code::TokenInvalid);
        // Flip a signature byte.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(code(keys.verify(&flipped)), Code::TokenInvalid);
        // Another Ed25519 key claiming our kid.
        let other = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(keys.kid().into());
        let forged =
            jsonwebtoken::encode(&header, &claims(&keys, now(), now() + 60), &other.encoding)
                .unwrap();
        assert_eq!(code(keys.verify(&forged)), Code::TokenInvalid);
        // Garbage.
        for junk in ["", "a.b.c", "not a jwt", "....", &t[..t.len() / 2]] {
            assert_eq!(code(keys.verify(junk)), Code::TokenInvalid, "{junk}");
        }
    }

    #[test]
    fn unknown_kid_missing_kid_and_wrong_type_are_rejected() {
        let keys = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        let c = claims(&keys, now(), now() + 60);
        let sign_with = |kid: Option<&str>, typ: Option<&str>| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = kid.map(Into::into);
            header.typ = typ.map(Into::into);
            jsonwebtoken::encode(&header, &c, &keys.encoding).unwrap()
        };
        assert_eq!(
            code(keys.verify(&sign_with(Some("nope"), Some("at+jwt")))),
            Code::TokenInvalid
        );
        assert_eq!(
            code(keys.verify(&sign_with(None, Some("at+jwt")))),
            Code::TokenInvalid
        );
        // An ID token or any other JWT from the same key is not an access token.
        assert_eq!(
            code(keys.verify(&sign_with(Some(keys.kid()), Some("JWT")))),
            Code::TokenInvalid
        );
        keys.verify(&sign_with(Some(keys.kid()), Some("at+jwt")))
            .unwrap();
    }

    #[test]
    fn retired_keys_still_verify_until_removed() {
        let old_pem = ed_pem();
        let old = JwtKeys::eddsa(old_pem.as_bytes(), settings()).unwrap();
        let token = old
            .issue(
                UserId::new(),
                TenantId::new(),
                Role::Member,
                SessionId::new(),
                Utc::now(),
            )
            .unwrap()
            .token;
        let new = JwtKeys::eddsa(ed_pem().as_bytes(), settings()).unwrap();
        assert_eq!(code(new.verify(&token)), Code::TokenInvalid);
        let jwk = &old.jwks().keys[0];
        let x = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
            other => panic!("{other:?}"),
        };
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki));
        let rotated = new.with_previous_public_key(public_pem.as_bytes()).unwrap();
        rotated.verify(&token).unwrap();
        assert_eq!(rotated.jwks().keys.len(), 2);
    }

    #[test]
    fn generated_key_is_persisted_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth/jwt.pem");
        let a = load_or_create_ed25519_key(&path).unwrap();
        let b = load_or_create_ed25519_key(&path).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let keys = JwtKeys::eddsa(a.expose_secret().as_bytes(), settings()).unwrap();
        let again = JwtKeys::eddsa(b.expose_secret().as_bytes(), settings()).unwrap();
        assert_eq!(keys.kid(), again.kid());
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn from_config_picks_the_configured_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |p: &Path| dir.path().join(p);
        let mut auth = AuthConfig::default();
        let keys = JwtKeys::from_config(&auth, resolve).unwrap();
        assert_eq!(keys.algorithm(), Algorithm::EdDSA);
        assert!(dir.path().join("auth/jwt-ed25519.pem").exists());

        let pem_file = dir.path().join("rsa.pem");
        std::fs::write(&pem_file, rsa_pem()).unwrap();
        auth.jwt.algorithm = JwtAlgorithm::RS256;
        auth.jwt.private_key_file = Some(pem_file);
        assert_eq!(
            JwtKeys::from_config(&auth, resolve).unwrap().algorithm(),
            Algorithm::RS256
        );

        auth.jwt.algorithm = JwtAlgorithm::HS256;
        auth.jwt.private_key_file = None;
        auth.jwt.secret = Some(SecretString::from("0123456789abcdef0123456789abcdef"));
        assert_eq!(
            JwtKeys::from_config(&auth, resolve).unwrap().algorithm(),
            Algorithm::HS256
        );
    }
}
