//! The SMTP sender: delivers the rendered notifications (the `notifications` table, written by
//! the notification projection) to a real SMTP server, one row at a time.
//!
//! - A row is taken with `FOR UPDATE SKIP LOCKED` in a transaction of its own, sent, and marked
//!   `sent_at` in that transaction, so several senders never send one row twice and a row is
//!   sent once per event however often the projection replays. (A crash between the server's
//!   acceptance and the commit sends it again: at least once; the `Message-ID` is the event id,
//!   so a receiver can tell.) An account mail's token is put into the body only here, and
//!   forgotten (`secret = NULL`) when the mail is sent.
//! - An SMTP failure leaves the row unsent: `attempts`, `last_error` and `next_attempt_at`
//!   (a doubling backoff up to [`MailArgs::mail_max_backoff_secs`]) record it, and after
//!   [`MailArgs::mail_max_attempts`] the row is given up (`skipped`, logged as an error,
//!   `mail_given_up_total`). A row without a usable address is skipped with its reason.
//! - Nothing fails silently: `mail_sent_total`, `mail_send_failures_total`,
//!   `mail_given_up_total`, `mail_skipped_total`, and the gauges `mail_outbox_pending`,
//!   `mail_outbox_failing` (unsent rows that have failed at least once) and
//!   `mail_outbox_oldest_seconds` on the projector's `/metrics`; every failure is logged.
//!
//! Configured by `SMTP_URL` (`smtp://host:port`, `smtp://host:port?tls=required` for STARTTLS,
//! `smtps://user:pass@host:465`), or `SMTP_HOST`/`SMTP_PORT` (plain SMTP, for a server on
//! localhost), and `MAIL_FROM`. With neither, nothing is sent and the rows wait.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, clap::Args)]
pub struct MailArgs {
    /// The SMTP server as a URL (`smtp://127.0.0.1:1025`, `smtps://user:pass@host`).
    #[arg(long, env = "SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The SMTP server's host, when no `SMTP_URL` is given (plain SMTP).
    #[arg(long, env = "SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,
    /// The sender of every mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Commerce <no-reply@commerce.local>"
    )]
    pub mail_from: String,
    /// The storefront's origin, for the links in account mails.
    #[arg(long, env = "PUBLIC_WEB_URL", default_value = crate::notifications::DEFAULT_WEB_URL)]
    pub public_web_url: String,
    /// Attempts before a mail is given up.
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = 20)]
    pub mail_max_attempts: i32,
    /// The longest wait between two attempts of one mail, in seconds.
    #[arg(long, env = "MAIL_MAX_BACKOFF_SECS", default_value_t = 300)]
    pub mail_max_backoff_secs: u64,
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A configured sender.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    max_attempts: i32,
    max_backoff: Duration,
}

/// How long an SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at when it had nothing due.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// One due row.
#[derive(sqlx::FromRow)]
struct Due {
    event_id: Uuid,
    kind: String,
    recipient: Option<String>,
    subject: String,
    body: String,
    secret: Option<String>,
    attempts: i32,
}

/// What became of one row.
enum Outcome {
    Sent,
    Failed(String),
    Skipped(String),
}

impl Mailer {
    /// The sender `args` describe, or `None` when no SMTP server is configured.
    pub fn from_args(args: &MailArgs) -> anyhow::Result<Option<Self>> {
        let transport = match (&args.smtp_url, &args.smtp_host) {
            (Some(url), _) if !url.is_empty() => Transport::from_url(url)?,
            (_, Some(host)) if !host.is_empty() => {
                Transport::builder_dangerous(host).port(args.smtp_port)
            }
            _ => return Ok(None),
        };
        Ok(Some(Self {
            transport: transport.timeout(Some(SMTP_TIMEOUT)).build(),
            from: args.mail_from.parse()?,
            max_attempts: args.mail_max_attempts.max(1),
            max_backoff: Duration::from_secs(args.mail_max_backoff_secs.max(1)),
        }))
    }

    /// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, ... up to the maximum.
    fn backoff(&self, attempts: i32) -> Duration {
        Duration::from_secs(1u64 << attempts.clamp(0, 20)).min(self.max_backoff)
    }

    fn message(&self, row: &Due, to: &str) -> Result<Message, Outcome> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| Outcome::Skipped(format!("unusable address: {e}")))?;
        let body = match &row.secret {
            Some(secret) => row.body.replace("{token}", secret),
            None => row.body.clone(),
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .message_id(Some(format!("<{}@notifications.commerce>", row.event_id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| Outcome::Skipped(format!("no message: {e}")))
    }

    /// Sends the next due row, if any: whether there was one.
    pub async fn send_next(&self, pool: &PgPool) -> Result<bool, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let due: Option<Due> = sqlx::query_as(
            "SELECT event_id, kind, recipient, subject, body, secret, attempts FROM notifications
             WHERE sent_at IS NULL AND skipped IS NULL AND next_attempt_at <= now()
             ORDER BY next_attempt_at, event_id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = due else {
            tx.rollback().await?;
            return Ok(false);
        };
        let outcome = match row.recipient.as_deref() {
            None | Some("") => Outcome::Skipped("no recipient address".into()),
            Some(to) => match self.message(&row, to) {
                Err(skip) => skip,
                Ok(message) => match self.transport.send(message).await {
                    Ok(_) => Outcome::Sent,
                    Err(e) => Outcome::Failed(e.to_string()),
                },
            },
        };
        let kind = row.kind.clone();
        match outcome {
            Outcome::Sent => {
                sqlx::query(
                    "UPDATE notifications SET sent_at = now(), secret = NULL, last_error = NULL,
                            attempts = attempts + 1 WHERE event_id = $1",
                )
                .bind(row.event_id)
                .execute(&mut *tx)
                .await?;
                metrics::counter!("mail_sent_total", "kind" => kind).increment(1);
            }
            Outcome::Skipped(reason) => {
                tracing::warn!(event_id = %row.event_id, kind, reason, "notification not mailed");
                sqlx::query(
                    "UPDATE notifications SET skipped = $2, secret = NULL WHERE event_id = $1",
                )
                .bind(row.event_id)
                .bind(&reason)
                .execute(&mut *tx)
                .await?;
                metrics::counter!("mail_skipped_total", "kind" => kind).increment(1);
            }
            Outcome::Failed(error) => {
                let attempts = row.attempts + 1;
                metrics::counter!("mail_send_failures_total", "kind" => kind.clone()).increment(1);
                if attempts >= self.max_attempts {
                    tracing::error!(event_id = %row.event_id, kind, attempts, error,
                        "mail given up");
                    metrics::counter!("mail_given_up_total", "kind" => kind).increment(1);
                    sqlx::query(
                        "UPDATE notifications SET attempts = $2, last_error = $3, secret = NULL,
                                skipped = 'given up after ' || $2 || ' attempts'
                         WHERE event_id = $1",
                    )
                    .bind(row.event_id)
                    .bind(attempts)
                    .bind(&error)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    let wait = self.backoff(row.attempts);
                    tracing::warn!(event_id = %row.event_id, kind, attempts, error,
                        retry_in_secs = wait.as_secs(), "mail not sent; retrying");
                    sqlx::query(
                        "UPDATE notifications SET attempts = $2, last_error = $3,
                                next_attempt_at = now() + make_interval(secs => $4)
                         WHERE event_id = $1",
                    )
                    .bind(row.event_id)
                    .bind(attempts)
                    .bind(&error)
                    .bind(wait.as_secs_f64())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Sends due mail until the token is cancelled.
    pub async fn run(self, pool: PgPool, shutdown: CancellationToken) {
        tracing::info!("mail delivery on");
        while !shutdown.is_cancelled() {
            let sent = self.send_next(&pool).await;
            if let Err(e) = &sent {
                metrics::counter!("mail_outbox_errors_total").increment(1);
                tracing::warn!(error = %e, "mail outbox unavailable");
            }
            if let Err(e) = report_outbox(&pool).await {
                tracing::debug!(error = %e, "mail outbox gauges not updated");
            }
            if !matches!(sent, Ok(true)) {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

/// Sets the outbox gauges.
pub async fn report_outbox(pool: &PgPool) -> Result<(), sqlx::Error> {
    let (pending, failing, oldest): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE attempts > 0),
                EXTRACT(EPOCH FROM now() - min(recorded_at))::float8
         FROM notifications WHERE sent_at IS NULL AND skipped IS NULL",
    )
    .fetch_one(pool)
    .await?;
    metrics::gauge!("mail_outbox_pending").set(pending as f64);
    metrics::gauge!("mail_outbox_failing").set(failing as f64);
    metrics::gauge!("mail_outbox_oldest_seconds").set(oldest.unwrap_or(0.0));
    Ok(())
}

/// Runs the sender `args` configure, if any, until the token is cancelled.
pub async fn run_configured(args: &MailArgs, pool: PgPool, shutdown: CancellationToken) {
    match Mailer::from_args(args) {
        Ok(Some(mailer)) => mailer.run(pool, shutdown).await,
        Ok(None) => {
            tracing::warn!("no SMTP_URL or SMTP_HOST: notifications are recorded, not mailed");
        }
        Err(e) => {
            metrics::counter!("mail_config_errors_total").increment(1);
            tracing::error!(error = %e, "mail delivery misconfigured: nothing is mailed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> MailArgs {
        MailArgs {
            smtp_url: Some(url.into()),
            smtp_host: None,
            smtp_port: 25,
            mail_from: "Shop <shop@example.com>".into(),
            public_web_url: "http://127.0.0.1:8080".into(),
            mail_max_attempts: 3,
            mail_max_backoff_secs: 60,
        }
    }

    #[tokio::test]
    async fn the_backoff_doubles_up_to_its_maximum() {
        let Ok(Some(m)) = Mailer::from_args(&args("smtp://127.0.0.1:2525")) else {
            panic!("a plain SMTP URL configures a sender");
        };
        assert_eq!(m.backoff(0), Duration::from_secs(1));
        assert_eq!(m.backoff(3), Duration::from_secs(8));
        assert_eq!(m.backoff(30), Duration::from_secs(60));
    }

    #[test]
    fn no_server_configured_sends_nothing() {
        let mut a = args("");
        a.smtp_url = None;
        assert!(matches!(Mailer::from_args(&a), Ok(None)));
        a.mail_from = "not an address".into();
        a.smtp_host = Some("127.0.0.1".into());
        assert!(Mailer::from_args(&a).is_err());
    }
}
