//! The notification projection: order events become customer notifications (order received,
//! confirmation, shipment, delivery, cancellation, refund), and the account's reset and
//! verification requests become mails with their link, rendered from templates and handed to
//! a [`Notifier`].
//!
//! The default [`TableNotifier`] writes them to the `notifications` table, in the batch's
//! transaction, keyed by the event id: a replayed event finds its row and sends nothing, so
//! there is exactly one notification per notifying event however often the projection is
//! replayed. That table is the outbox the SMTP sender ([`crate::mailer`]) delivers from.
//! An account mail's token (opened from the event's sealed field) is kept apart from the body
//! (`secret`, the body says `{token}`) and forgotten once sent.
//!
//! The projection also follows user events, for the recipient's address and name, and keeps
//! the order facts its templates need, so it depends on no other projection.

use crate::runtime::{decode, Projection, ProjectionError};
use domain::order::OrderEvent;
use domain::user::UserEvent;
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

/// A rendered notification for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event_id: Uuid,
    /// The order it is about (none for account mails).
    pub order_id: Option<Uuid>,
    pub customer_id: Uuid,
    pub kind: &'static str,
    pub recipient: Option<String>,
    pub subject: String,
    pub body: String,
    /// What `{token}` in the body stands for, until the mail is sent (account mails).
    pub secret: Option<String>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

/// Delivers notifications. `send` runs inside the projection batch's transaction and must be
/// idempotent per `event_id`.
pub trait Notifier: Send + Sync + 'static {
    fn send<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        n: &'a Notification,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;
}

/// Writes notifications to the `notifications` table (email channel).
pub struct TableNotifier;

impl Notifier for TableNotifier {
    async fn send(&self, conn: &mut PgConnection, n: &Notification) -> Result<(), ProjectionError> {
        let inserted = sqlx::query(
            "INSERT INTO notifications (event_id, order_id, customer_id, kind, channel, recipient,
                                        subject, body, occurred_at, secret)
             VALUES ($1, $2, $3, $4, 'email', $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(n.event_id)
        .bind(n.order_id)
        .bind(n.customer_id)
        .bind(n.kind)
        .bind(&n.recipient)
        .bind(&n.subject)
        .bind(&n.body)
        .bind(n.occurred_at)
        .bind(&n.secret)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            metrics::counter!("notifications_sent_total", "kind" => n.kind).increment(1);
        }
        Ok(())
    }
}

/// A template: `{name}`, `{order}`, `{total}`, `{amount}`, `{carrier}`, `{tracking}` and
/// `{reason}` are filled in.
struct Template {
    kind: &'static str,
    subject: &'static str,
    body: &'static str,
}

const RECEIVED: Template = Template {
    kind: "order_received",
    subject: "We received your order {order}",
    body: "Hello {name},\n\nthank you for your order {order} of {total}. We are reserving your items and will confirm the order shortly.",
};
const CONFIRMED: Template = Template {
    kind: "order_confirmation",
    subject: "Your order {order} is confirmed",
    body: "Hello {name},\n\nyour order {order} of {total} is confirmed and paid. We will let you know when it ships.",
};
const SHIPPED: Template = Template {
    kind: "shipment",
    subject: "Your order {order} has shipped",
    body: "Hello {name},\n\nyour order {order} is on its way with {carrier}, tracking number {tracking}.",
};
const DELIVERED: Template = Template {
    kind: "delivery",
    subject: "Your order {order} was delivered",
    body: "Hello {name},\n\nyour order {order} was delivered. We hope you enjoy it; you can now review what you bought.",
};
const CANCELLED: Template = Template {
    kind: "cancellation",
    subject: "Your order {order} was cancelled",
    body: "Hello {name},\n\nyour order {order} was cancelled: {reason}. Nothing was charged, or any charge was refunded.",
};
const REFUNDED: Template = Template {
    kind: "refund",
    subject: "A refund of {amount} for your order {order}",
    body: "Hello {name},\n\nwe refunded {amount} for your order {order} to your card.",
};

const PASSWORD_RESET: Template = Template {
    kind: "password_reset",
    subject: "Reset your password",
    body: "Hello {name},\n\nsomeone, hopefully you, asked to reset the password of your account. Choose a new one here (the link works once, until {expires}):\n\n{link}\n\nIf it was not you, ignore this mail: your password stays as it is.",
};
const EMAIL_VERIFICATION: Template = Template {
    kind: "email_verification",
    subject: "Confirm your email address",
    body: "Hello {name},\n\nplease confirm that this is your email address (the link works once, until {expires}):\n\n{link}",
};

/// `12.34 EUR`, from minor units.
pub fn format_money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", m / 100, m % 100)
}

impl Template {
    fn render(&self, values: &[(&str, &str)]) -> (String, String) {
        let fill = |text: &str| {
            values.iter().fold(text.to_owned(), |t, (k, v)| {
                t.replace(&format!("{{{k}}}"), v)
            })
        };
        (fill(self.subject), fill(self.body))
    }
}

/// Customer, total, currency, and the recipient's email and name when known.
type OrderFacts = (Uuid, i64, String, Option<String>, Option<String>);

/// Where account mails' links point by default: the storefront behind Envoy of `make up`.
pub const DEFAULT_WEB_URL: &str = "http://127.0.0.1:8080";

/// The notification projection with its notifier.
pub struct NotificationProjection<N: Notifier> {
    notifier: N,
    /// The storefront's origin, for the links of account mails.
    web_url: String,
}

impl<N: Notifier> NotificationProjection<N> {
    pub fn new(notifier: N) -> Self {
        Self {
            notifier,
            web_url: DEFAULT_WEB_URL.to_owned(),
        }
    }

    /// Links in account mails point to this storefront origin.
    pub fn with_web_url(mut self, web_url: &str) -> Self {
        self.web_url = web_url.trim_end_matches('/').to_owned();
        self
    }
}

/// The tables this projection writes, parents first.
pub const TABLES: &[&str] = &[
    "notification_recipients",
    "notification_orders",
    "notifications",
];

impl<N: Notifier> Projection for NotificationProjection<N> {
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn name(&self) -> &'static str {
        "notification"
    }

    fn topics(&self) -> Vec<String> {
        vec![topic_for("order"), topic_for("user")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        match env.stream_type.as_str() {
            "user" => self.apply_user(conn, env).await,
            _ => self.apply_order(conn, env).await,
        }
    }
}

impl<N: Notifier> NotificationProjection<N> {
    async fn apply_user(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let (id, event): (Uuid, UserEvent) = decode(env, "user")?;
        let (template, path, token, expires_at) = match event {
            UserEvent::PasswordResetRequested(e) => {
                (&PASSWORD_RESET, "reset-password", e.token, e.expires_at)
            }
            UserEvent::EmailVerificationRequested(e) => {
                (&EMAIL_VERIFICATION, "verify-email", e.token, e.expires_at)
            }
            other => return apply_recipient(conn, id, other).await,
        };
        // Erased (the account is deleted): there is nothing to send, and nobody to send it to.
        let Some(token) = token else { return Ok(()) };
        let recipient: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT email, name FROM notification_recipients WHERE customer_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let (email, name) = recipient.unwrap_or((None, String::new()));
        let name = if name.is_empty() {
            "there".into()
        } else {
            name
        };
        let link = format!("{}/{path}?token={{token}}", self.web_url);
        let expires = expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
        let (subject, body) = template.render(&[
            ("name", name.as_str()),
            ("link", link.as_str()),
            ("expires", expires.as_str()),
        ]);
        let n = Notification {
            event_id: env.event_id,
            order_id: None,
            customer_id: id,
            kind: template.kind,
            recipient: email,
            subject,
            body,
            secret: Some(token),
            occurred_at: env.occurred_at,
        };
        self.notifier.send(conn, &n).await
    }
}

/// The recipients' addresses and names, from the user's other events.
async fn apply_recipient(
    conn: &mut PgConnection,
    id: Uuid,
    event: UserEvent,
) -> Result<(), ProjectionError> {
    match event {
        UserEvent::UserRegistered(e) => {
            sqlx::query(
                "INSERT INTO notification_recipients (customer_id, email, name) VALUES ($1, $2, $3)
                 ON CONFLICT (customer_id) DO UPDATE SET email = $2, name = $3",
            )
            .bind(id)
            .bind(e.email.as_ref().map(|m| m.as_str()))
            .bind(e.name.as_deref().unwrap_or(""))
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::UserProfileChanged(e) => {
            sqlx::query("UPDATE notification_recipients SET name = $2 WHERE customer_id = $1")
                .bind(id)
                .bind(e.name.as_deref().unwrap_or(""))
                .execute(&mut *conn)
                .await?;
        }
        UserEvent::UserDeleted(_) => {
            // Erased: nothing more is sent to that address, and what was recorded for the
            // person keeps neither their address nor their name (nor an unsent token).
            sqlx::query(
                "UPDATE notification_recipients SET email = NULL, name = '' WHERE customer_id = $1",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE notifications SET recipient = NULL, body = '', secret = NULL,
                        skipped = COALESCE(skipped, CASE WHEN sent_at IS NULL
                                                         THEN 'the account was deleted' END)
                 WHERE customer_id = $1",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

impl<N: Notifier> NotificationProjection<N> {
    async fn apply_order(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let (order_id, event): (Uuid, OrderEvent) = decode(env, "order")?;
        if let OrderEvent::OrderPlaced(e) = &event {
            sqlx::query(
                "INSERT INTO notification_orders (order_id, customer_id, total_minor, currency)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id)
            .bind(e.customer_id.as_uuid())
            .bind(e.total.amount_minor())
            .bind(e.total.currency().as_str())
            .execute(&mut *conn)
            .await?;
        }
        let (template, extra): (&Template, Vec<(&str, String)>) = match &event {
            OrderEvent::OrderPlaced(_) => (&RECEIVED, vec![]),
            OrderEvent::OrderConfirmed(_) => (&CONFIRMED, vec![]),
            OrderEvent::OrderShipped(e) => (
                &SHIPPED,
                vec![
                    ("carrier", e.carrier.clone()),
                    ("tracking", e.tracking_number.clone()),
                ],
            ),
            OrderEvent::OrderDelivered(_) => (&DELIVERED, vec![]),
            OrderEvent::OrderCancelled(e) => (&CANCELLED, vec![("reason", e.reason.clone())]),
            OrderEvent::OrderRefunded(e) => (
                &REFUNDED,
                vec![(
                    "amount",
                    format_money(e.amount.amount_minor(), e.amount.currency().as_str()),
                )],
            ),
            // Steps inside checkout are not worth an email.
            OrderEvent::OrderStockReserved(_) | OrderEvent::OrderPaymentAuthorized(_) => {
                return Ok(())
            }
        };
        let facts: Option<OrderFacts> = sqlx::query_as(
            "SELECT o.customer_id, o.total_minor, o.currency, r.email, r.name
             FROM notification_orders o
             LEFT JOIN notification_recipients r ON r.customer_id = o.customer_id
             WHERE o.order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((customer_id, total_minor, currency, email, name)) = facts else {
            return Err(ProjectionError::Poison(format!(
                "{} of order {order_id} before its OrderPlaced",
                env.event_type
            )));
        };
        let order = order_id.to_string();
        let short = order[..8].to_uppercase();
        let total = format_money(total_minor, &currency);
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "there".into());
        let mut values: Vec<(&str, &str)> = vec![
            ("name", name.as_str()),
            ("order", short.as_str()),
            ("total", total.as_str()),
        ];
        values.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let (subject, body) = template.render(&values);
        let n = Notification {
            event_id: env.event_id,
            order_id: Some(order_id),
            customer_id,
            kind: template.kind,
            recipient: email,
            subject,
            body,
            secret: None,
            occurred_at: env.occurred_at,
        };
        self.notifier.send(conn, &n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder() {
        let (subject, body) = SHIPPED.render(&[
            ("name", "Ada"),
            ("order", "0A1B2C3D"),
            ("carrier", "DHL"),
            ("tracking", "JD014600"),
        ]);
        assert_eq!(subject, "Your order 0A1B2C3D has shipped");
        assert!(body.starts_with("Hello Ada,"));
        assert!(body.contains("with DHL, tracking number JD014600."));
        assert!(!body.contains('{'));
    }

    #[test]
    fn account_mails_carry_a_link_with_a_token_placeholder() {
        let (subject, body) = PASSWORD_RESET.render(&[
            ("name", "Ada"),
            ("link", "http://shop/reset-password?token={token}"),
            ("expires", "2026-12-01 12:00 UTC"),
        ]);
        assert_eq!(subject, "Reset your password");
        assert!(body.contains("http://shop/reset-password?token={token}\n"));
        assert!(body.contains("until 2026-12-01 12:00 UTC"));
    }

    #[test]
    fn money_is_formatted_from_minor_units() {
        assert_eq!(format_money(123456, "EUR"), "1234.56 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(-250, "EUR"), "-2.50 EUR");
    }
}
