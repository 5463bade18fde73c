//! Delivering account mails (verification, password reset, invitation, notices).
//!
//! [`FileMailer`] (the default) writes each mail as a file under the data directory — the
//! delivery channel of a single-machine install — and logs only that a mail was written, never
//! its link. [`SmtpMailer`] (cargo feature `smtp`) sends through an SMTP server with lettre.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use docent_config::{MailConfig, MailKind as MailBackend};
use docent_domain::{Error, Result};

/// What a mail is about (for file names and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// "Confirm your email address".
    VerifyEmail,
    /// "Reset your password".
    ResetPassword,
    /// "You are invited to a workspace".
    Invite,
    /// Information only (e.g. someone tried to sign up with your address).
    Notice,
}

impl MailKind {
    /// Short name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ResetPassword => "reset_password",
            MailKind::Invite => "invite",
            MailKind::Notice => "notice",
        }
    }
}

/// A plain-text mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Kind.
    pub kind: MailKind,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body (plain text). Holds secrets (links with tokens): never log it.
    pub body: String,
}

/// Sends mails.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers one mail (or fails with a retryable `service_unavailable`).
    async fn send(&self, mail: Mail) -> Result<()>;
}

/// Writes each mail to `<dir>/<time>-<kind>-<id>.eml`, readable only by the owner.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    /// A mailer writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory mails go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: Mail) -> Result<()> {
        let dir = self.dir.clone();
        let name = format!(
            "{}-{}-{}.eml",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            mail.kind.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let path = dir.join(name);
        let text = format!(
            "To: {}\nSubject: {}\nDate: {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n",
            mail.to,
            mail.subject,
            Utc::now().to_rfc2822(),
            mail.body
        );
        let written = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            std::fs::create_dir_all(&dir)?;
            let mut f = crate::jwt::private_file(&written)?;
            f.write_all(text.as_bytes())
        })
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::unavailable("the mail directory", e))?;
        tracing::info!(kind = mail.kind.as_str(), path = %path.display(), "mail written");
        Ok(())
    }
}

/// Keeps mails in memory (tests and tools).
#[derive(Debug, Default, Clone)]
pub struct MemoryMailer {
    sent: Arc<std::sync::Mutex<Vec<Mail>>>,
}

impl MemoryMailer {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every mail sent so far.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().expect("mail outbox lock").clone()
    }

    /// The last mail sent to `to`.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.sent().into_iter().rev().find(|m| m.to == to)
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: Mail) -> Result<()> {
        self.sent.lock().expect("mail outbox lock").push(mail);
        Ok(())
    }
}

/// Finds the value of the `token` query parameter in a mail body's link.
pub fn token_from_body(body: &str) -> Option<String> {
    let start = body.find("token=")? + "token=".len();
    Some(
        body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect(),
    )
}

/// The mailer `auth.mail` configures.
pub fn from_config(
    config: &MailConfig,
    data_path: impl Fn(&Path) -> PathBuf,
) -> Result<Arc<dyn Mailer>> {
    match config.kind {
        MailBackend::File => Ok(Arc::new(FileMailer::new(data_path(&config.path)))),
        #[cfg(feature = "smtp")]
        MailBackend::Smtp => Ok(Arc::new(smtp::SmtpMailer::from_config(config)?)),
        #[cfg(not(feature = "smtp"))]
        MailBackend::Smtp => Err(Error::internal(
            "auth.mail.kind = \"smtp\" needs docent built with the `smtp` feature",
        )),
    }
}

#[cfg(feature = "smtp")]
pub use smtp::SmtpMailer;

#[cfg(feature = "smtp")]
mod smtp {
    use super::*;
    use docent_config::SmtpTls;
    use lettre::message::Mailbox;
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use secrecy::ExposeSecret as _;

    /// Sends mails through an SMTP server.
    pub struct SmtpMailer {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    }

    impl std::fmt::Debug for SmtpMailer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SmtpMailer")
                .field("from", &self.from)
                .finish_non_exhaustive()
        }
    }

    impl SmtpMailer {
        /// A mailer for `auth.mail` of kind `smtp`.
        pub fn from_config(config: &MailConfig) -> Result<Self> {
            let MailConfig {
                host,
                port,
                tls,
                from,
                username,
                ..
            } = config;
            let password = config
                .password()
                .map_err(|e| Error::internal(e.to_string()))?;
            let builder = match tls {
                SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| Error::internal(format!("auth.mail: {e}")))?,
                SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                    .map_err(|e| Error::internal(format!("auth.mail: {e}")))?,
                SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            };
            let mut builder = builder.port(*port);
            if let Some(user) = username {
                let pass = password
                    .map(|p| p.expose_secret().to_owned())
                    .unwrap_or_default();
                builder = builder.credentials(Credentials::new(user.clone(), pass));
            }
            let from = from
                .parse()
                .map_err(|e| Error::internal(format!("auth.mail.from: {e}")))?;
            Ok(Self {
                transport: builder.build(),
                from,
            })
        }
    }

    #[async_trait]
    impl Mailer for SmtpMailer {
        async fn send(&self, mail: Mail) -> Result<()> {
            let to: Mailbox = mail.to.parse().map_err(|e| {
                Error::new(
                    docent_domain::Code::InvalidField,
                    format!("`email` is not a deliverable address: {e}"),
                )
            })?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject)
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body)
                .map_err(Error::internal)?;
            self.transport
                .send(message)
                .await
                .map_err(|e| Error::unavailable("the mail server", e))?;
            tracing::info!(kind = mail.kind.as_str(), "mail sent");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_mailer_writes_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path().join("mail"));
        mailer
            .send(Mail {
                kind: MailKind::VerifyEmail,
                to: "a@example.com".into(),
                subject: "Confirm".into(),
                body: "Open http://x/verify?token=abc123 now".into(),
            })
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(mailer.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert!(files[0].to_string_lossy().contains("verify_email"));
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.starts_with("To: a@example.com\nSubject: Confirm\n"),
            "{text}"
        );
        assert_eq!(token_from_body(&text).as_deref(), Some("abc123"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A minimal SMTP server for one session: answers every command and returns what DATA
    /// carried.
    #[cfg(feature = "smtp")]
    async fn fake_smtp() -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let (mut data, mut in_data) = (String::new(), false);
            while let Some(line) = lines.next_line().await.unwrap() {
                if in_data {
                    if line == "." {
                        write.write_all(b"250 queued\r\n").await.unwrap();
                        return data;
                    }
                    data.push_str(&line);
                    data.push('\n');
                    continue;
                }
                let reply: &[u8] =
                    match line.split(' ').next().unwrap_or("").to_uppercase().as_str() {
                        "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                write.write_all(reply).await.unwrap();
            }
            data
        });
        (port, handle)
    }

    #[cfg(feature = "smtp")]
    #[tokio::test]
    async fn smtp_mailer_delivers_to_the_server() {
        let (port, server) = fake_smtp().await;
        let config = MailConfig {
            kind: MailBackend::Smtp,
            host: "127.0.0.1".into(),
            port,
            tls: docent_config::SmtpTls::None,
            from: "docent <noreply@example.com>".into(),
            ..docent_config::AuthConfig::default().mail
        };
        let mailer = from_config(&config, |p| p.to_path_buf()).unwrap();
        mailer
            .send(Mail {
                kind: MailKind::ResetPassword,
                to: "ann@example.com".into(),
                subject: "Reset your docent password".into(),
                body: "Open http://x/reset-password?token=abc".into(),
            })
            .await
            .unwrap();
        let data = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        assert!(
            data.contains("Subject: Reset your docent password"),
            "{data}"
        );
        assert!(data.contains("To: ann@example.com"), "{data}");
        assert!(data.contains("token=abc"), "{data}");
    }

    #[tokio::test]
    async fn smtp_without_the_feature_is_a_clear_error() {
        let config = MailConfig {
            kind: MailBackend::Smtp,
            host: "localhost".into(),
            port: 25,
            tls: docent_config::SmtpTls::None,
            ..docent_config::AuthConfig::default().mail
        };
        let made = from_config(&config, |p| p.to_path_buf());
        if cfg!(feature = "smtp") {
            assert!(made.is_ok());
        } else {
            assert!(made.err().unwrap().chain().contains("smtp"));
        }
    }
}
