//! Value types built only through constructors that check them ("parse, don't validate"):
//! ids, quantities, money and email addresses. Serde goes through the same checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Why a value could not be parsed. The text is safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            /// Parses the canonical text form of a UUID.
            pub fn parse(s: &str) -> Result<Self, ValueError> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| ValueError(format!(concat!("malformed ", $what, " id: {:?}"), s)))
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// Identifies a cart stream.
    CartId,
    "cart"
);
uuid_id!(
    /// Identifies a product in the catalogue.
    ProductId,
    "product"
);
uuid_id!(
    /// Identifies a user account.
    UserId,
    "user"
);
uuid_id!(
    /// Identifies an order stream.
    OrderId,
    "order"
);
uuid_id!(
    /// Identifies a payment stream.
    PaymentId,
    "payment"
);

/// A line quantity: at least 1, at most [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Units of one product in a line.",
            "type": "integer",
            "minimum": 1,
            "maximum": Quantity::MAX,
        })
    }
}

impl Quantity {
    /// The most of one product a single cart line may hold.
    pub const MAX: u32 = 999;

    pub fn new(n: i64) -> Result<Self, ValueError> {
        if n < 1 {
            return Err(ValueError(format!("quantity must be at least 1, got {n}")));
        }
        if n > i64::from(Self::MAX) {
            return Err(ValueError(format!(
                "quantity must be at most {}, got {n}",
                Self::MAX
            )));
        }
        Ok(Self(n as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The sum of two quantities, if it stays within the maximum.
    pub fn checked_add(self, other: Quantity) -> Result<Quantity, ValueError> {
        Self::new(i64::from(self.0) + i64::from(other.0))
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValueError;
    fn try_from(n: u32) -> Result<Self, ValueError> {
        Self::new(i64::from(n))
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(ValueError(format!(
                "currency must be an ISO 4217 code like EUR, got {s:?}"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters get in through `parse`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

/// An amount of money in integer minor units (cents) of one currency. Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    #[serde(deserialize_with = "non_negative")]
    amount_minor: i64,
    currency: Currency,
}

fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if v < 0 {
        return Err(serde::de::Error::custom("amount must not be negative"));
    }
    Ok(v)
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, ValueError> {
        if amount_minor < 0 {
            return Err(ValueError(format!(
                "amount must not be negative, got {amount_minor}"
            )));
        }
        Ok(Self {
            amount_minor,
            currency,
        })
    }
    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Self {
        Self {
            amount_minor: 0,
            currency,
        }
    }

    /// The sum, if both are in the same currency and it does not overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, ValueError> {
        if self.currency != other.currency {
            return Err(ValueError(format!(
                "cannot add {} to {}",
                other.currency.as_str(),
                self.currency.as_str()
            )));
        }
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|amount_minor| Money {
                amount_minor,
                currency: self.currency,
            })
            .ok_or_else(|| ValueError("amount overflows".into()))
    }

    /// The difference, if both are in the same currency and it is not negative.
    pub fn checked_sub(self, other: Money) -> Result<Money, ValueError> {
        if self.currency != other.currency || other.amount_minor > self.amount_minor {
            return Err(ValueError(format!(
                "cannot take {} {} from {} {}",
                other.amount_minor,
                other.currency.as_str(),
                self.amount_minor,
                self.currency.as_str()
            )));
        }
        Ok(Money {
            amount_minor: self.amount_minor - other.amount_minor,
            currency: self.currency,
        })
    }

    /// This amount times a quantity.
    pub fn times(self, quantity: Quantity) -> Result<Money, ValueError> {
        self.amount_minor
            .checked_mul(i64::from(quantity.get()))
            .map(|amount_minor| Money {
                amount_minor,
                currency: self.currency,
            })
            .ok_or_else(|| ValueError("amount overflows".into()))
    }
}

/// An email address, trimmed and lower-cased; a local part, one `@` and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim().to_lowercase();
        let bad = || ValueError(format!("not a valid email address: {s:?}"));
        if s.len() > 254 || s.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|p| !p.is_empty());
        if local.is_empty() || !domain_ok {
            return Err(bad());
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_bounds() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-3).is_err());
        assert!(Quantity::new(i64::from(Quantity::MAX) + 1).is_err());
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert!(serde_json::from_str::<Quantity>("0").is_err());
    }

    #[test]
    fn ids_parse_or_explain() {
        assert!(CartId::parse("not-a-uuid").is_err());
        let id = CartId::generate();
        assert_eq!(CartId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn money_and_currency() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Currency::parse("eur").is_err());
        assert!(Money::new(-1, eur).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":-5,"currency":"EUR"}"#).is_err());
        assert_eq!(Money::new(1999, eur).unwrap().amount_minor(), 1999);
    }

    #[test]
    fn email_is_normalised() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "ann@", "@x.io", "ann@x", "a b@x.io", "ann@x..io"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
