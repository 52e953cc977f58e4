//! The typed values GraphQL shows in place of the read models' strings: an enum for every
//! status and kind (SCREAMING_CASE on the wire, the read model's snake_case inside), and
//! `DateTime` for every time (RFC 3339 from the query services). A value that does not map
//! is an `INTERNAL` error of that one field ([`Field`]), logged, never a panic.

use crate::error::unmappable;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// A field's value, or the error the field resolves to (a value the read model sent that
/// does not map to its GraphQL type). Its GraphQL type is `T`'s.
pub type Field<T> = Result<T, async_graphql::Error>;

/// An enum with a fixed set of values, each with its spelling in the read models.
pub trait WireEnum: Sized + Copy + 'static {
    /// The GraphQL type's name (for the log of a value that does not map).
    const NAME: &'static str;
    /// Every value with its read-model spelling.
    const VALUES: &'static [(&'static str, Self)];

    /// The value the read model spells `raw`, if any.
    fn from_wire(raw: &str) -> Option<Self> {
        Self::VALUES
            .iter()
            .find(|(w, _)| *w == raw)
            .map(|(_, v)| *v)
    }

    /// The value a read model sent, or the field's `INTERNAL` error.
    fn field(raw: &str) -> Field<Self> {
        Self::from_wire(raw).ok_or_else(|| unmappable(Self::NAME, raw))
    }
}

/// Defines a GraphQL enum and its read-model spelling.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl WireEnum for $name {
            const NAME: &'static str = stringify!($name);
            const VALUES: &'static [(&'static str, Self)] = &[$(($wire, $name::$variant)),+];
        }

        impl $name {
            /// How the read models spell it.
            #[allow(dead_code)]
            pub fn wire(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }
    };
}

wire_enum! {
    /// Where an order is in its life (the domain's `OrderStatus`, once placed).
    OrderStatus {
        Placed = "placed",
        StockReserved = "stock_reserved",
        PaymentAuthorized = "payment_authorized",
        Confirmed = "confirmed",
        Shipped = "shipped",
        Delivered = "delivered",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// A payment's state.
    PaymentStatus {
        Authorized = "authorized",
        Declined = "declined",
        Captured = "captured",
        Voided = "voided",
        /// Captured, then refunded in full.
        Refunded = "refunded",
    }
}

wire_enum! {
    /// Whether a cart can still change.
    CartStatus {
        Open = "open",
        CheckedOut = "checked_out",
    }
}

wire_enum! {
    /// What a notification tells.
    NotificationKind {
        OrderReceived = "order_received",
        OrderConfirmation = "order_confirmation",
        Shipment = "shipment",
        Delivery = "delivery",
        Cancellation = "cancellation",
        Refund = "refund",
        PasswordReset = "password_reset",
        EmailVerification = "email_verification",
    }
}

wire_enum! {
    /// How a notification is sent.
    NotificationChannel {
        Email = "email",
    }
}

/// A time a read model sent (RFC 3339), or the field's `INTERNAL` error.
pub fn time(field: &str, raw: &str) -> Field<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| unmappable(field, raw))
}

/// Serde: a read model's enum value as a [`Field`].
pub fn de_enum<'de, D: Deserializer<'de>, T: WireEnum>(d: D) -> Result<Field<T>, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(T::field(&raw))
}

/// Serde: a read model's time as a [`Field`].
pub fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Field<DateTime<Utc>>, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(time("DateTime", &raw))
}

/// Serde: a read model's optional time (null or absent: none) as a [`Field`].
pub fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Field<DateTime<Utc>>>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.map(|r| time("DateTime", &r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_model_values_map_and_unknown_ones_are_internal_errors() {
        assert_eq!(
            OrderStatus::field("payment_authorized").unwrap(),
            OrderStatus::PaymentAuthorized
        );
        assert_eq!(OrderStatus::Confirmed.wire(), "confirmed");
        assert_eq!(
            CartStatus::field("checked_out").unwrap(),
            CartStatus::CheckedOut
        );
        let e = OrderStatus::field("teleported").unwrap_err();
        assert_eq!(
            e.extensions.and_then(|x| x.get("code").cloned()),
            Some(async_graphql::Value::from("INTERNAL"))
        );
        assert!(PaymentStatus::field("AUTHORIZED").is_err());
    }

    #[test]
    fn times_parse_from_rfc_3339_and_others_are_internal_errors() {
        let t = time("t", "2026-12-01T20:56:38.123456+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T19:56:38.123456+00:00");
        assert!(time("t", "yesterday").is_err());
        #[derive(Deserialize)]
        struct Doc {
            #[serde(deserialize_with = "de_time")]
            at: Field<DateTime<Utc>>,
            #[serde(default, deserialize_with = "de_opt_time")]
            sent: Option<Field<DateTime<Utc>>>,
            #[serde(deserialize_with = "de_enum")]
            status: Field<PaymentStatus>,
        }
        let d: Doc =
            serde_json::from_str(r#"{"at": "2026-12-01T00:00:00Z", "status": "lost"}"#).unwrap();
        assert!(d.at.is_ok() && d.sent.is_none() && d.status.is_err());
    }
}
