//! The security core of docent, without HTTP: password hashing (argon2id), access tokens
//! (JWT: EdDSA by default, RS256, HS256 only when configured), rotating refresh tokens with
//! reuse detection, one-time tokens for email verification / password reset / invitations /
//! first-run setup, API keys (`dk_<prefix>_<secret>`, stored hashed, scoped), external OIDC
//! identities verified against a cached JWKS, rate limits (keyed token buckets) and sign-in
//! brute-force protection, and the [`AuthService`] facade that runs every account flow over the
//! [`AuthStore`](docent_domain::auth::AuthStore) port.
//!
//! Every flow ends in, or starts from, a [`Principal`](docent_domain::Principal): the tenant a
//! request acts in, who acts, their role and — for API keys — their scope. The HTTP layer turns
//! a bearer credential into one with [`AuthService::authenticate_bearer`]; services check it.

pub mod jwt;
pub mod mail;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod secrets;
pub mod service;

pub use jwt::{AccessClaims, AccessToken, JwtKeys, JwtSettings, load_or_create_ed25519_key};
pub use mail::{FileMailer, Mail, MailKind, Mailer, MemoryMailer};
pub use oidc::{ExternalClaims, JwksCache, OidcProvider, TenantRef};
pub use password::{PasswordHasher, PasswordParams};
pub use ratelimit::{RateDecision, RateKey, RateLimiter, RouteClass, SigninGuard};
pub use service::{
    AuthParts, AuthService, AuthSettings, ClientInfo, CreateApiKey, CreateUser, CreatedApiKey,
    Invitation, RESET_ANSWER_TIME, SignedIn, Signup, SignupOutcome, TokenPair, normalize_email,
};
