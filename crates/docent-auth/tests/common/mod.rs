//! Shared fixture: an [`AuthService`] over a real SQLite store in a temp dir, cheap password
//! hashing, an in-memory outbox and a generated Ed25519 signing key.

#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use docent_auth::*;
use docent_config::{AuthConfig, SigninGuardConfig};
use docent_domain::Principal;
use docent_store::SqliteStore;
use secrecy::ExposeSecret as _;
use tempfile::TempDir;

pub struct App {
    pub auth: AuthService,
    pub store: Arc<SqliteStore>,
    pub mail: MemoryMailer,
    pub dir: TempDir,
}

pub fn settings() -> AuthSettings {
    AuthSettings {
        allow_signup: true,
        require_email_verification: false,
        public_url: "http://docent.test".into(),
        refresh_token_ttl: Duration::from_secs(3600),
        session_ttl: Duration::from_secs(86_400),
        verification_token_ttl: Duration::from_secs(3600),
        reset_token_ttl: Duration::from_secs(3600),
        invite_token_ttl: Duration::from_secs(3600),
        setup_token_ttl: Duration::from_secs(3600),
        api_key_last_used_interval: Duration::from_secs(60),
        max_documents: 0,
        max_stored_bytes: 0,
        principal_cache_ttl: Duration::from_secs(5),
        principal_cache_capacity: 1000,
    }
}

pub fn jwt_settings() -> JwtSettings {
    JwtSettings {
        issuer: "docent-test".into(),
        audience: "docent-api".into(),
        ttl: Duration::from_secs(900),
        leeway: Duration::from_secs(30),
    }
}

pub async fn app() -> App {
    app_with(|_| {}, Vec::new).await
}

pub async fn app_with(
    tweak: impl FnOnce(&mut AuthSettings),
    oidc: impl FnOnce() -> Vec<OidcProvider>,
) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"), 4, Duration::from_secs(5))
            .await
            .expect("open the database"),
    );
    let pem = load_or_create_ed25519_key(&dir.path().join("jwt.pem")).expect("signing key");
    let mut s = settings();
    tweak(&mut s);
    let mail = MemoryMailer::new();
    let auth = AuthService::new(AuthParts {
        settings: s,
        store: store.clone(),
        mailer: Arc::new(mail.clone()),
        jwt: JwtKeys::eddsa(pem.expose_secret().as_bytes(), jwt_settings()).expect("keys"),
        passwords: PasswordHasher::new(PasswordParams::INSECURE_FAST, 10).expect("hasher"),
        limiter: RateLimiter::new(&AuthConfig::default().rate_limit),
        guard: SigninGuard::new(SigninGuardConfig {
            max_failures: 3,
            lockout_base: Duration::from_secs(30),
            lockout_max: Duration::from_secs(600),
            window: Duration::from_secs(600),
            account_max_failures: 20,
            account_lockout: Duration::from_secs(30),
        }),
        oidc: oidc(),
    });
    App {
        auth,
        store,
        mail,
        dir,
    }
}

pub const PASSWORD: &str = "correct horse battery";

pub fn client() -> ClientInfo {
    ClientInfo {
        ip: "192.0.2.10".parse::<IpAddr>().unwrap(),
    }
}

impl App {
    /// Signs up a user with their own tenant and returns the signed-in result.
    pub async fn signup(&self, email: &str) -> SignedIn {
        match self
            .auth
            .signup(Signup {
                email: email.into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("signup")
        {
            SignupOutcome::SignedIn(s) => *s,
            other => panic!("expected to be signed in, got {other:?}"),
        }
    }

    /// The principal an access token stands for.
    pub async fn principal(&self, signed_in: &SignedIn) -> Principal {
        self.auth
            .authenticate_bearer(&signed_in.tokens.access_token)
            .await
            .expect("the access token authenticates")
    }

    /// The token in the last mail to `to`.
    pub fn mailed_token(&self, to: &str) -> String {
        let mail = self
            .mail
            .last_to(to)
            .unwrap_or_else(|| panic!("no mail to {to}"));
        docent_auth::mail::token_from_body(&mail.body).expect("a token link in the mail")
    }
}
