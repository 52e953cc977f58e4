//! Value types built only through constructors that check them ("parse, don't validate"):
//! ids, quantities, money, email addresses and every kind of free text a command carries.
//! Serde goes through the same checks.
//!
//! Free text: each kind is a newtype with a maximum length in characters (Unicode scalar
//! values, counted after trimming surrounding whitespace) and no control characters (C0,
//! DEL, C1: NUL and the rest, which PostgreSQL or a terminal would choke on). Ordinary
//! Unicode passes: letters of any script, emoji, right-to-left and other format marks. Only
//! the multi-line kinds (descriptions, review text) keep line feeds and tabs; a CR LF or a
//! lone CR becomes a line feed there. The limits keep every event far below the broker's
//! record size (the largest command, a product with every field at its maximum, encodes to
//! well under the handler's 256 KiB bound).
//!
//! These types are for commands, which come from outside. Events keep plain `String`s: a
//! stored event is a fact and must load whatever it holds, so tightening a limit never makes
//! old events undecodable.

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

/// Does a text kind keep line breaks?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: every control character is refused, tabs and line feeds included.
    One,
    /// Several lines: line feeds and tabs are kept; CR LF and lone CRs become line feeds.
    Many,
}

/// Checks and normalises one free-text value: surrounding whitespace trimmed, no control
/// characters (but `\n` and `\t` in [`Lines::Many`]), `min..=max` characters.
pub fn check_text(
    what: &str,
    raw: &str,
    min: usize,
    max: usize,
    lines: Lines,
) -> Result<String, ValueError> {
    let long = || ValueError(format!("{what} has at most {max} characters"));
    // A UTF-8 character is at most 4 bytes: anything longer is refused before it is scanned.
    if raw.len() > max.saturating_mul(4).saturating_add(1024) {
        return Err(long());
    }
    let normalised = match lines {
        Lines::Many if raw.contains('\r') => raw.replace("\r\n", "\n").replace('\r', "\n"),
        _ => raw.to_owned(),
    };
    let s = normalised.trim();
    let allowed = |c: char| lines == Lines::Many && (c == '\n' || c == '\t');
    if let Some(c) = s.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(ValueError(format!(
            "{what} cannot hold the control character U+{:04X}",
            u32::from(c)
        )));
    }
    let n = s.chars().count();
    if n > max {
        return Err(long());
    }
    if n < min {
        return Err(ValueError(if min == 1 {
            format!("{what} cannot be empty")
        } else {
            format!("{what} has at least {min} characters")
        }));
    }
    Ok(s.to_owned())
}

macro_rules! text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr, $max:expr, $lines:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Fewest characters.
            pub const MIN: usize = $min;
            /// Most characters.
            pub const MAX: usize = $max;

            pub fn parse(s: &str) -> Result<Self, ValueError> {
                check_text($what, s, $min, $max, $lines).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(s: String) -> Result<Self, ValueError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": $min,
                    "maxLength": $max,
                })
            }
        }
    };
}

/// Text kinds that may be empty default to the empty text.
macro_rules! empty_default {
    ($($name:ident),*) => {$(
        impl Default for $name {
            fn default() -> Self {
                Self(String::new())
            }
        }
    )*};
}

text!(
    /// A person's name (an account's): 1 to 200 characters, one line.
    PersonName, "a name", 1, 200, Lines::One
);
text!(
    /// A product's name: 1 to 200 characters, one line.
    ProductName, "a product name", 1, 200, Lines::One
);
text!(
    /// A brand or seller name: 1 to 100 characters, one line.
    BrandName, "a brand", 1, 100, Lines::One
);
text!(
    /// A product description: up to 10 000 characters, several lines.
    Description, "a description", 0, 10_000, Lines::Many
);
text!(
    /// A catalogue category: 1 to 100 characters, one line.
    Category, "a category", 1, 100, Lines::One
);
text!(
    /// The name of a product attribute: 1 to 100 characters, one line.
    AttributeKey, "an attribute name", 1, 100, Lines::One
);
text!(
    /// The value of a product attribute: up to 500 characters, one line.
    AttributeValue, "an attribute value", 0, 500, Lines::One
);
text!(
    /// The first line of a postal address: 1 to 200 characters.
    AddressLine, "an address line", 1, 200, Lines::One
);
text!(
    /// The optional second line of a postal address: up to 200 characters.
    AddressExtra, "the second address line", 0, 200, Lines::One
);
text!(
    /// A city: 1 to 100 characters.
    City, "a city", 1, 100, Lines::One
);
text!(
    /// A postal code: 1 to 20 characters.
    PostalCode, "a postal code", 1, 20, Lines::One
);
text!(
    /// A country (name or code): 1 to 100 characters.
    Country, "a country", 1, 100, Lines::One
);
text!(
    /// Why an order is cancelled: up to 500 characters, one line.
    CancelReason, "a cancel reason", 0, 500, Lines::One
);
text!(
    /// A shipping carrier: 1 to 100 characters.
    Carrier, "a carrier", 1, 100, Lines::One
);
text!(
    /// A shipment's tracking number: 1 to 100 characters.
    TrackingNumber, "a tracking number", 1, 100, Lines::One
);
text!(
    /// Why stock was adjusted: up to 500 characters, one line.
    StockReason, "a stock adjustment reason", 0, 500, Lines::One
);
text!(
    /// A review's title: up to 200 characters, one line.
    ReviewTitle, "a review title", 0, 200, Lines::One
);
text!(
    /// A review's text: up to 5 000 characters, several lines.
    ReviewBody, "a review text", 0, 5_000, Lines::Many
);
text!(
    /// A payment gateway's card token: 1 to 256 characters.
    PaymentToken, "a payment token", 1, 256, Lines::One
);
text!(
    /// A card brand as the gateway names it: 1 to 32 characters.
    CardBrand, "a card brand", 1, 32, Lines::One
);

empty_default!(
    Description,
    AttributeValue,
    AddressExtra,
    CancelReason,
    StockReason,
    ReviewTitle,
    ReviewBody
);

/// The last four digits of a card, as the gateway gives them: exactly four ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardLast4(String);

impl CardLast4 {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValueError(
                "the card's last digits are four digits".to_owned(),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CardLast4 {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Self::parse(&s)
    }
}

impl From<CardLast4> for String {
    fn from(v: CardLast4) -> String {
        v.0
    }
}

/// Longest idempotency key a command may carry (the BFF allows clients 128 characters; the
/// services' own keys are shorter than this).
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY`] bytes, no control characters.
pub fn check_idempotency_key(key: &str) -> Result<(), ValueError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
        return Err(ValueError(format!(
            "an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY} bytes and no control characters"
        )));
    }
    Ok(())
}

/// The total of priced quantities, all in the currency of the first: refused when the
/// currencies differ, when a line or the sum overflows, or when there is no line.
pub fn total_of(lines: impl IntoIterator<Item = (Money, Quantity)>) -> Result<Money, ValueError> {
    let mut total: Option<Money> = None;
    for (price, quantity) in lines {
        let line = price.times(quantity)?;
        total = Some(match total {
            None => line,
            Some(t) => t.checked_add(line)?,
        });
    }
    total.ok_or_else(|| ValueError("an order needs at least one line".into()))
}

/// An email address, trimmed and lower-cased; a local part, one `@` and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim().to_lowercase();
        let bad = || ValueError(format!("not a valid email address: {s:?}"));
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
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

    #[test]
    fn email_refuses_control_characters() {
        assert!(Email::parse("a\u{0}b@x.io").is_err());
        assert!(Email::parse("ab@x.io\u{7f}").is_err());
        assert!(Email::parse("ab@x\u{85}.io").is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Cup  ").unwrap().as_str(), "Cup");
        assert!(ProductName::parse("   ").is_err());
        assert!(ProductName::parse(&"x".repeat(201)).is_err());
        assert!(
            ProductName::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert!(ProductName::parse(&"x".repeat(1_000_000)).is_err());
        assert_eq!(CancelReason::parse("").unwrap().as_str(), "");
        assert!(PostalCode::parse(&"1".repeat(21)).is_err());
    }

    #[test]
    fn control_characters_are_refused_but_unicode_passes() {
        for bad in [
            "a\u{0}b",
            "a\u{1b}[31m",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{9b}",
        ] {
            assert!(ProductName::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "Café ☕",
            "שלום\u{200f}",
            "👩\u{200d}💻 dev",
            "'; DROP TABLE products; --",
            "<script>alert(1)</script>",
            r#"{"a": [1, "\u0000"]}"#,
        ] {
            assert_eq!(ProductName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn multi_line_text_keeps_line_feeds_and_tabs() {
        let body = ReviewBody::parse("Good.\r\n\tReally.\rYes").unwrap();
        assert_eq!(body.as_str(), "Good.\n\tReally.\nYes");
        assert!(ReviewBody::parse("nul\u{0}").is_err());
        assert!(ReviewTitle::parse("two\nlines").is_err());
    }

    #[test]
    fn serde_goes_through_the_checks() {
        assert!(serde_json::from_str::<Carrier>(r#""DHL""#).is_ok());
        assert!(serde_json::from_str::<Carrier>(r#""D\u0000HL""#).is_err());
        assert!(serde_json::from_str::<Carrier>(r#""""#).is_err());
        assert!(serde_json::from_str::<CardLast4>(r#""42a2""#).is_err());
    }

    #[test]
    fn totals_refuse_mixed_currencies_and_overflow() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        let q = |n| Quantity::new(n).unwrap();
        let m = |n, c| Money::new(n, c).unwrap();
        assert_eq!(
            total_of([(m(100, eur), q(2)), (m(5, eur), q(1))]),
            Ok(m(205, eur))
        );
        assert!(total_of([(m(100, eur), q(1)), (m(5, usd), q(1))]).is_err());
        assert!(total_of([(m(i64::MAX, eur), q(2))]).is_err());
        assert!(total_of([(m(i64::MAX, eur), q(1)), (m(1, eur), q(1))]).is_err());
        assert!(total_of([]).is_err());
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(check_idempotency_key("k-1").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("a\u{0}").is_err());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY + 1)).is_err());
    }

    proptest::proptest! {
        /// Whatever string arrives, a text value either is refused or holds a trimmed,
        /// control-free text within its limit.
        #[test]
        fn any_string_is_refused_or_clean(s in hostile_string()) {
            match ReviewTitle::parse(&s) {
                Ok(v) => {
                    proptest::prop_assert!(v.as_str().chars().count() <= ReviewTitle::MAX);
                    proptest::prop_assert!(!v.as_str().chars().any(char::is_control));
                    proptest::prop_assert_eq!(v.as_str(), v.as_str().trim());
                }
                Err(e) => proptest::prop_assert!(!e.0.is_empty()),
            }
            if let Ok(v) = ReviewBody::parse(&s) {
                proptest::prop_assert!(
                    !v.as_str().chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                );
            }
        }
    }

    fn hostile_string() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("\u{0}".to_owned()),
            Just("\u{7}\u{1b}\u{7f}\u{85}\u{9f}".to_owned()),
            Just("\u{200f}\u{202e}\u{feff}".to_owned()),
            Just("👩\u{200d}💻".to_owned()),
            Just("'; DROP TABLE x; --".to_owned()),
            Just("<b>&amp;</b>".to_owned()),
            Just(r#"{"a":"\"}"#.to_owned()),
            Just("\r\n\t ".to_owned()),
            "\\PC{0,40}",
            any::<String>(),
        ];
        prop_oneof![
            proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat()),
            (1usize..400).prop_map(|n| "x".repeat(n)),
        ]
    }
}
