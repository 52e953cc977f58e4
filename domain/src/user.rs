//! The user aggregate: an account with an email (unique across users, enforced by the store's
//! reservation written in the same transaction), a name, addresses, a role, the refresh
//! tokens it has issued, and its deletion. The password hash is no part of the aggregate: the
//! user service keeps it in a private collection (`credentials`), so no event carries it; a
//! password change is recorded as a fact with no payload.
//!
//! Refresh tokens come in families: a log-in starts one, and each rotation revokes the token
//! presented and issues its successor in the same family, in one decision (so of concurrent
//! rotations of one token exactly one wins). A spent token presented again is a reuse: the
//! whole family is revoked. A password change or a deletion raises the session version, which
//! access tokens carry, so older access tokens are refused.
//!
//! Password reset and email verification go by single-use, expiring tokens: a request records
//! the SHA-256 of the token and its expiry in the clear (what the decision checks) and the
//! token itself as a personal field, sealed at rest like the email, so that the notifications
//! projector can open it and mail the link while the store, Kafka and exports hold only its
//! sealed form. A newer request replaces the older one; using the token (or a password change)
//! clears it, so it never works twice. A reset ends every session, as a password change does.
//!
//! The personal fields of the events (email, name, addresses, tokens) are `Option`: the store seals
//! them with a key per person, and once the account is deleted and its key destroyed they
//! read as `null` (erased), while every other fact stays.

use crate::values::{
    AddressExtra, AddressLine, City, Country, Email, PersonName, PostalCode, UserId,
};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// Most addresses one account keeps.
pub const MAX_ADDRESSES: usize = 10;

/// A postal address as a command gives it: every part checked by its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub line1: AddressLine,
    #[serde(default)]
    pub line2: AddressExtra,
    pub city: City,
    pub postal_code: PostalCode,
    pub country: Country,
}

impl From<&AddressInput> for Address {
    fn from(a: &AddressInput) -> Self {
        Self {
            line1: a.line1.as_str().to_owned(),
            line2: a.line2.as_str().to_owned(),
            city: a.city.as_str().to_owned(),
            postal_code: a.postal_code.as_str().to_owned(),
            country: a.country.as_str().to_owned(),
        }
    }
}

/// The password hash and refresh-token fields are made by the user service itself (an
/// argon2id PHC string, UUIDs, hex digests), never taken from clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: UserId,
        email: Email,
        name: PersonName,
        role: Role,
    },
    ChangeProfile {
        name: PersonName,
        addresses: Vec<AddressInput>,
    },
    /// The service has stored the new hash in its credentials; the event records the fact.
    ChangePassword,
    IssueRefreshToken {
        token_id: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    RevokeRefreshToken {
        token_id: String,
    },
    /// Trades the live token `token_id` (whose secret hashes to `presented_hash`) for a new
    /// one in its family. Refused unless the token is live, matches and is unexpired at `now`.
    RotateRefreshToken {
        token_id: String,
        presented_hash: String,
        new_token_id: String,
        new_token_hash: String,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Revokes every live token of a family (a spent token of it was presented again).
    RevokeRefreshFamily {
        family_id: String,
    },
    Delete,
    /// Records a password-reset token (made by the service: the raw token for the mail, its
    /// SHA-256 for the check) valid until `expires_at`.
    RequestPasswordReset {
        token: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// Resets the password with the token hashing to `presented_hash` (the service has the
    /// new hash written in the same transaction). Refused unless the token is the pending
    /// one and unexpired at `now`.
    ResetPassword {
        presented_hash: String,
        now: DateTime<Utc>,
    },
    /// Records an email-verification token (as [`UserCommand::RequestPasswordReset`]).
    RequestEmailVerification {
        token: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// Marks the email verified with the pending verification token.
    VerifyEmail {
        presented_hash: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRegistered {
    pub user_id: UserId,
    /// Personal: sealed at rest, `null` once erased.
    pub email: Option<Email>,
    /// Personal: sealed at rest, `null` once erased.
    pub name: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfileChanged {
    /// Personal: sealed at rest, `null` once erased.
    pub name: Option<String>,
    /// Personal: sealed at rest (as one value), `null` once erased.
    pub addresses: Option<Vec<Address>>,
}

/// The password was changed (v2: the hash is kept by the user service, not in the event).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordChanged {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenIssued {
    pub token_id: String,
    /// SHA-256 of the token's secret part; the secret itself is never stored.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// The family: the token id of the log-in that started it (absent for that first token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenRevoked {
    pub token_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDeleted {}

/// A password reset was asked for: the token that allows it, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequested {
    /// SHA-256 (hex) of the token: what a reset is checked against.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// Personal: sealed at rest (the notifications projector opens it to mail the link),
    /// `null` once erased.
    pub token: Option<String>,
}

/// The password was reset with a reset token (the hash is kept by the user service).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {}

/// Verification of the account's email was asked for (as with `PasswordResetRequested`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailVerificationRequested {
    /// SHA-256 (hex) of the token: what a verification is checked against.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// Personal: sealed at rest (the notifications projector opens it to mail the link),
    /// `null` once erased.
    pub token: Option<String>,
}

/// The account's email was verified with a verification token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailVerified {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum UserEvent {
    UserRegistered(UserRegistered),
    UserProfileChanged(UserProfileChanged),
    UserPasswordChanged(UserPasswordChanged),
    RefreshTokenIssued(RefreshTokenIssued),
    RefreshTokenRevoked(RefreshTokenRevoked),
    UserDeleted(UserDeleted),
    PasswordResetRequested(PasswordResetRequested),
    PasswordReset(PasswordReset),
    EmailVerificationRequested(EmailVerificationRequested),
    EmailVerified(EmailVerified),
}

impl DomainEvent for UserEvent {
    fn schema_version(&self) -> u32 {
        match self {
            // v2: without the password hash.
            UserEvent::UserRegistered(_) | UserEvent::UserPasswordChanged(_) => 2,
            _ => 1,
        }
    }

    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered(_) => "UserRegistered",
            UserEvent::UserProfileChanged(_) => "UserProfileChanged",
            UserEvent::UserPasswordChanged(_) => "UserPasswordChanged",
            UserEvent::RefreshTokenIssued(_) => "RefreshTokenIssued",
            UserEvent::RefreshTokenRevoked(_) => "RefreshTokenRevoked",
            UserEvent::UserDeleted(_) => "UserDeleted",
            UserEvent::PasswordResetRequested(_) => "PasswordResetRequested",
            UserEvent::PasswordReset(_) => "PasswordReset",
            UserEvent::EmailVerificationRequested(_) => "EmailVerificationRequested",
            UserEvent::EmailVerified(_) => "EmailVerified",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("user already exists")]
    AlreadyExists,
    #[error("{0}")]
    Invalid(String),
    #[error("the account is deleted")]
    Deleted,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    /// A reset or verification token that is unknown, used, superseded or expired.
    #[error("invalid, used or expired token")]
    InvalidToken,
    #[error("the email is already verified")]
    AlreadyVerified,
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            UserError::NotFound | UserError::Deleted => ErrorKind::NotFound,
            UserError::AlreadyExists => ErrorKind::AlreadyExists,
            UserError::Invalid(_) => ErrorKind::InvalidArgument,
            UserError::InvalidRefreshToken | UserError::AlreadyVerified => {
                ErrorKind::FailedPrecondition
            }
            UserError::InvalidToken => ErrorKind::InvalidArgument,
        }
    }
}

/// The state folded from a user's events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub id: Option<UserId>,
    pub email: Option<Email>,
    pub name: String,
    pub role: Role,
    pub addresses: Vec<Address>,
    /// Live refresh tokens: id → (hash, expiry).
    pub refresh_tokens: BTreeMap<String, (String, DateTime<Utc>)>,
    /// The family of each live refresh token.
    pub refresh_families: BTreeMap<String, String>,
    /// Revoked (spent) refresh tokens, newest [`MAX_SPENT_TOKENS`]: id → (hash, family).
    pub spent_refresh_tokens: BTreeMap<String, (String, String)>,
    /// Raised by a password change and by deletion; access tokens carry it.
    pub session_version: u64,
    pub deleted: bool,
    /// The pending password-reset token: (SHA-256, expiry).
    pub password_reset: Option<(String, DateTime<Utc>)>,
    /// The pending email-verification token: (SHA-256, expiry).
    pub email_verification: Option<(String, DateTime<Utc>)>,
    pub email_verified: bool,
}

/// Whether `pending` is a token hashing to `presented` and unexpired at `now`.
fn token_matches(
    pending: &Option<(String, DateTime<Utc>)>,
    presented: &str,
    now: &DateTime<Utc>,
) -> bool {
    pending
        .as_ref()
        .is_some_and(|(hash, expires)| hash == presented && expires > now)
}

/// How many spent refresh tokens the state remembers for reuse detection (token ids are
/// UUIDv7, so the map's order is their age and the oldest are forgotten first).
pub const MAX_SPENT_TOKENS: usize = 256;

impl User {
    fn register(
        &self,
        user_id: UserId,
        email: &Email,
        name: &PersonName,
        role: Role,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.id.is_some() {
            return Err(UserError::AlreadyExists);
        }
        Ok(vec![UserEvent::UserRegistered(UserRegistered {
            user_id,
            email: Some(email.clone()),
            name: Some(name.as_str().to_owned()),
            role,
        })])
    }

    fn change_profile(
        &self,
        name: &PersonName,
        addresses: &[AddressInput],
    ) -> Result<UserEvent, UserError> {
        if addresses.len() > MAX_ADDRESSES {
            return Err(UserError::Invalid(format!(
                "at most {MAX_ADDRESSES} addresses"
            )));
        }
        Ok(UserEvent::UserProfileChanged(UserProfileChanged {
            name: Some(name.as_str().to_owned()),
            addresses: Some(addresses.iter().map(Address::from).collect()),
        }))
    }

    /// A live refresh token, presented with its secret, is revoked and replaced by a new one
    /// of the same family.
    fn rotate(
        &self,
        token_id: &String,
        presented_hash: &String,
        new_token_id: &str,
        new_token_hash: &str,
        expires_at: DateTime<Utc>,
        now: &DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        match self.refresh_tokens.get(token_id) {
            Some((hash, expires)) if hash == presented_hash && expires > now => {
                let family = self
                    .refresh_families
                    .get(token_id)
                    .cloned()
                    .unwrap_or_else(|| token_id.clone());
                Ok(vec![
                    UserEvent::RefreshTokenRevoked(RefreshTokenRevoked {
                        token_id: token_id.clone(),
                    }),
                    UserEvent::RefreshTokenIssued(RefreshTokenIssued {
                        token_id: new_token_id.to_owned(),
                        token_hash: new_token_hash.to_owned(),
                        expires_at,
                        family_id: Some(family),
                    }),
                ])
            }
            _ => Err(UserError::InvalidRefreshToken),
        }
    }

    /// Every token of a refresh family revoked (a replayed token gives the family away).
    fn revoke_family(&self, family_id: &String) -> Vec<UserEvent> {
        self.refresh_families
            .iter()
            .filter(|(_, f)| *f == family_id)
            .map(|(t, _)| {
                UserEvent::RefreshTokenRevoked(RefreshTokenRevoked {
                    token_id: t.clone(),
                })
            })
            .collect()
    }
    /// The family a live or spent refresh token belongs to.
    pub fn refresh_family_of(&self, token_id: &str) -> Option<&str> {
        self.refresh_families
            .get(token_id)
            .or_else(|| self.spent_refresh_tokens.get(token_id).map(|(_, f)| f))
            .map(String::as_str)
    }

    /// Whether `token_id` is a spent token whose secret hashes to `hash` (a replay).
    pub fn is_spent_refresh_token(&self, token_id: &str, hash: &str) -> bool {
        self.spent_refresh_tokens
            .get(token_id)
            .is_some_and(|(h, _)| h == hash)
    }
}

impl Aggregate for User {
    const STREAM_TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserEvent as E;
        if let C::Register {
            user_id,
            email,
            name,
            role,
        } = command
        {
            return self.register(*user_id, email, name, *role);
        }
        if self.id.is_none() {
            return Err(UserError::NotFound);
        }
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(match command {
            C::Register { .. } => return Err(UserError::AlreadyExists),
            C::ChangeProfile { name, addresses } => vec![self.change_profile(name, addresses)?],
            C::ChangePassword => vec![E::UserPasswordChanged(UserPasswordChanged {})],
            C::IssueRefreshToken {
                token_id,
                token_hash,
                expires_at,
            } => vec![E::RefreshTokenIssued(RefreshTokenIssued {
                token_id: token_id.clone(),
                token_hash: token_hash.clone(),
                expires_at: *expires_at,
                family_id: None,
            })],
            C::RotateRefreshToken {
                token_id,
                presented_hash,
                new_token_id,
                new_token_hash,
                expires_at,
                now,
            } => self.rotate(
                token_id,
                presented_hash,
                new_token_id,
                new_token_hash,
                *expires_at,
                now,
            )?,
            C::RevokeRefreshFamily { family_id } => self.revoke_family(family_id),
            C::RevokeRefreshToken { token_id } => {
                if self.refresh_tokens.contains_key(token_id) {
                    vec![E::RefreshTokenRevoked(RefreshTokenRevoked {
                        token_id: token_id.clone(),
                    })]
                } else {
                    vec![]
                }
            }
            C::Delete => vec![E::UserDeleted(UserDeleted {})],
            C::RequestPasswordReset {
                token,
                token_hash,
                expires_at,
            } => vec![E::PasswordResetRequested(PasswordResetRequested {
                token_hash: token_hash.clone(),
                expires_at: *expires_at,
                token: Some(token.clone()),
            })],
            C::ResetPassword {
                presented_hash,
                now,
            } => {
                if !token_matches(&self.password_reset, presented_hash, now) {
                    return Err(UserError::InvalidToken);
                }
                vec![E::PasswordReset(PasswordReset {})]
            }
            C::RequestEmailVerification {
                token,
                token_hash,
                expires_at,
            } => {
                if self.email_verified {
                    return Err(UserError::AlreadyVerified);
                }
                vec![E::EmailVerificationRequested(EmailVerificationRequested {
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                    token: Some(token.clone()),
                })]
            }
            C::VerifyEmail {
                presented_hash,
                now,
            } => {
                if !token_matches(&self.email_verification, presented_hash, now) {
                    return Err(UserError::InvalidToken);
                }
                vec![E::EmailVerified(EmailVerified {})]
            }
        })
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::UserRegistered(e) => {
                self.id = Some(e.user_id);
                self.email = e.email.clone();
                self.name = e.name.clone().unwrap_or_default();
                self.role = e.role;
            }
            UserEvent::UserProfileChanged(e) => {
                self.name = e.name.clone().unwrap_or_default();
                self.addresses = e.addresses.clone().unwrap_or_default();
            }
            UserEvent::UserPasswordChanged(_) | UserEvent::PasswordReset(_) => {
                // A new password logs every session out, access tokens included, and no
                // pending reset token works any more.
                self.refresh_tokens.clear();
                self.refresh_families.clear();
                self.session_version += 1;
                self.password_reset = None;
            }
            UserEvent::PasswordResetRequested(e) => {
                self.password_reset = Some((e.token_hash.clone(), e.expires_at));
            }
            UserEvent::EmailVerificationRequested(e) => {
                self.email_verification = Some((e.token_hash.clone(), e.expires_at));
            }
            UserEvent::EmailVerified(_) => {
                self.email_verified = true;
                self.email_verification = None;
            }
            UserEvent::RefreshTokenIssued(e) => {
                self.refresh_tokens
                    .insert(e.token_id.clone(), (e.token_hash.clone(), e.expires_at));
                self.refresh_families.insert(
                    e.token_id.clone(),
                    e.family_id.clone().unwrap_or_else(|| e.token_id.clone()),
                );
            }
            UserEvent::RefreshTokenRevoked(e) => {
                if let Some((hash, _)) = self.refresh_tokens.remove(&e.token_id) {
                    let family = self
                        .refresh_families
                        .remove(&e.token_id)
                        .unwrap_or_else(|| e.token_id.clone());
                    self.spent_refresh_tokens
                        .insert(e.token_id.clone(), (hash, family));
                    while self.spent_refresh_tokens.len() > MAX_SPENT_TOKENS {
                        self.spent_refresh_tokens.pop_first();
                    }
                }
            }
            UserEvent::UserDeleted(_) => {
                self.deleted = true;
                self.password_reset = None;
                self.email_verification = None;
                self.refresh_tokens.clear();
                self.refresh_families.clear();
                self.session_version += 1;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn registered() -> UserEvent {
        UserEvent::UserRegistered(UserRegistered {
            user_id: UserId::from(uuid::Uuid::from_u128(1)),
            email: Some(Email::parse("ann@example.com").unwrap()),
            name: Some("Ann".into()),
            role: Role::Customer,
        })
    }

    fn in_minutes(m: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(m)
    }

    fn issued(token_id: &str, token_hash: &str, expires_at: DateTime<Utc>) -> UserEvent {
        UserEvent::RefreshTokenIssued(RefreshTokenIssued {
            token_id: token_id.into(),
            token_hash: token_hash.into(),
            expires_at,
            family_id: None,
        })
    }

    fn password_changed() -> UserEvent {
        UserEvent::UserPasswordChanged(UserPasswordChanged {})
    }

    fn deleted() -> UserEvent {
        UserEvent::UserDeleted(UserDeleted {})
    }

    #[test]
    fn registering_twice_is_refused() {
        given::<User>([registered()])
            .when(UserCommand::Register {
                user_id: UserId::generate(),
                email: Email::parse("ann@example.com").unwrap(),
                name: PersonName::parse("Ann").unwrap(),
                role: Role::Customer,
            })
            .then_err_eq(UserError::AlreadyExists);
    }

    #[test]
    fn a_profile_needs_a_name() {
        assert!(PersonName::parse("  ").is_err());
        assert!(PersonName::parse("A\u{0}nn").is_err());
        assert!(PersonName::parse(&"n".repeat(201)).is_err());
    }

    fn address() -> AddressInput {
        serde_json::from_str(
            r#"{"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}"#,
        )
        .unwrap()
    }

    #[test]
    fn addresses_are_checked_part_by_part() {
        for bad in [
            r#"{"line1": "", "city": "c", "postal_code": "1", "country": "US"}"#,
            r#"{"line1": "l\u0000", "city": "c", "postal_code": "1", "country": "US"}"#,
            r#"{"line1": "l", "line2": "a\u0085b", "city": "c", "postal_code": "1", "country": "US"}"#,
            r#"{"line1": "l", "city": "c", "postal_code": "123456789012345678901", "country": "US"}"#,
            r#"{"line1": "l", "city": "c", "postal_code": "1", "country": "US", "x": 1}"#,
        ] {
            assert!(serde_json::from_str::<AddressInput>(bad).is_err(), "{bad}");
        }
        let huge = format!(
            r#"{{"line1": "{}", "city": "c", "postal_code": "1", "country": "US"}}"#,
            "x".repeat(1_000_000)
        );
        assert!(serde_json::from_str::<AddressInput>(&huge).is_err());
        let user = given::<User>([registered()]);
        user.when(UserCommand::ChangeProfile {
            name: PersonName::parse("Ann").unwrap(),
            addresses: vec![address(); MAX_ADDRESSES + 1],
        })
        .then_err(|e| matches!(e, UserError::Invalid(_)));
        user.when(UserCommand::ChangeProfile {
            name: PersonName::parse(" Ann B ").unwrap(),
            addresses: vec![address()],
        })
        .then([UserEvent::UserProfileChanged(UserProfileChanged {
            name: Some("Ann B".into()),
            addresses: Some(vec![Address {
                line1: "1 Main St".into(),
                line2: String::new(),
                city: "Springfield".into(),
                postal_code: "12345".into(),
                country: "US".into(),
            }]),
        })]);
    }

    #[test]
    fn a_password_change_revokes_refresh_tokens() {
        let user = given::<User>([
            registered(),
            issued("t1", "h", Utc::now()),
            password_changed(),
        ]);
        assert!(user.state().refresh_tokens.is_empty());
    }

    #[test]
    fn a_deleted_account_refuses_everything() {
        let user = given::<User>([registered(), deleted()]);
        user.when(UserCommand::Delete)
            .then_err_eq(UserError::Deleted);
        user.when(UserCommand::ChangePassword)
            .then_err_eq(UserError::Deleted);
    }

    fn rotate(token: &str, hash: &str, new: &str) -> UserCommand {
        UserCommand::RotateRefreshToken {
            token_id: token.into(),
            presented_hash: hash.into(),
            new_token_id: new.into(),
            new_token_hash: format!("h-{new}"),
            expires_at: Utc::now() + chrono::Duration::days(1),
            now: Utc::now(),
        }
    }

    #[test]
    fn rotation_keeps_the_family_and_a_replay_is_recognised() {
        let user = given::<User>([
            registered(),
            issued("t1", "h-t1", Utc::now() + chrono::Duration::days(1)),
        ]);
        user.when(rotate("t1", "wrong", "t2"))
            .then_err_eq(UserError::InvalidRefreshToken);
        let rotated = user.when(rotate("t1", "h-t1", "t2")).then_ok();
        assert_eq!(rotated.state().refresh_family_of("t2"), Some("t1"));
        assert!(rotated.state().is_spent_refresh_token("t1", "h-t1"));
        assert!(!rotated.state().is_spent_refresh_token("t1", "forged"));
        // The spent token cannot rotate again; revoking its family kills its successor.
        rotated
            .when(rotate("t1", "h-t1", "t3"))
            .then_err_eq(UserError::InvalidRefreshToken);
        let revoked = rotated
            .when(UserCommand::RevokeRefreshFamily {
                family_id: "t1".into(),
            })
            .then([UserEvent::RefreshTokenRevoked(RefreshTokenRevoked {
                token_id: "t2".into(),
            })]);
        assert!(revoked.state().refresh_tokens.is_empty());
    }

    #[test]
    fn a_password_change_or_deletion_raises_the_session_version() {
        let changed = given::<User>([registered(), password_changed()]);
        assert_eq!(changed.state().session_version, 1);
        let deleted = given::<User>([registered(), password_changed(), deleted()]);
        assert_eq!(deleted.state().session_version, 2);
    }

    fn reset_requested(hash: &str, expires_at: DateTime<Utc>) -> UserEvent {
        UserEvent::PasswordResetRequested(PasswordResetRequested {
            token_hash: hash.into(),
            expires_at,
            token: Some(format!("raw-{hash}")),
        })
    }

    fn reset(hash: &str) -> UserCommand {
        UserCommand::ResetPassword {
            presented_hash: hash.into(),
            now: Utc::now(),
        }
    }

    #[test]
    fn a_reset_request_records_the_hash_and_seals_the_token_as_personal() {
        let expires_at = in_minutes(30);
        given::<User>([registered()])
            .when(UserCommand::RequestPasswordReset {
                token: "raw".into(),
                token_hash: "h".into(),
                expires_at,
            })
            .then([UserEvent::PasswordResetRequested(PasswordResetRequested {
                token_hash: "h".into(),
                expires_at,
                token: Some("raw".into()),
            })]);
    }

    #[test]
    fn a_reset_token_works_once_and_ends_every_session() {
        let user = given::<User>([
            registered(),
            issued("t1", "h-t1", in_minutes(60)),
            reset_requested("h", in_minutes(30)),
        ]);
        user.when(reset("wrong"))
            .then_err_eq(UserError::InvalidToken);
        let reset_done = user
            .when(reset("h"))
            .then([UserEvent::PasswordReset(PasswordReset {})]);
        assert!(reset_done.state().refresh_tokens.is_empty());
        assert_eq!(reset_done.state().session_version, 1);
        reset_done
            .when(reset("h"))
            .then_err_eq(UserError::InvalidToken);
    }

    #[test]
    fn an_expired_superseded_or_unknown_reset_token_is_refused() {
        given::<User>([registered(), reset_requested("h", in_minutes(-1))])
            .when(reset("h"))
            .then_err_eq(UserError::InvalidToken);
        let superseded = given::<User>([
            registered(),
            reset_requested("h1", in_minutes(30)),
            reset_requested("h2", in_minutes(30)),
        ]);
        superseded
            .when(reset("h1"))
            .then_err_eq(UserError::InvalidToken);
        superseded.when(reset("h2")).then_ok();
        given::<User>([registered()])
            .when(reset("h"))
            .then_err_eq(UserError::InvalidToken);
        given::<User>([
            registered(),
            reset_requested("h", in_minutes(30)),
            password_changed(),
        ])
        .when(reset("h"))
        .then_err_eq(UserError::InvalidToken);
        given::<User>([
            registered(),
            reset_requested("h", in_minutes(30)),
            deleted(),
        ])
        .when(reset("h"))
        .then_err_eq(UserError::Deleted);
    }

    fn request_verification(token_hash: &str, expires_at: DateTime<Utc>) -> UserCommand {
        UserCommand::RequestEmailVerification {
            token: "raw".into(),
            token_hash: token_hash.into(),
            expires_at,
        }
    }

    fn verify(hash: &str) -> UserCommand {
        UserCommand::VerifyEmail {
            presented_hash: hash.into(),
            now: Utc::now(),
        }
    }

    #[test]
    fn an_email_is_verified_once_with_its_token() {
        let user = given::<User>([registered()]);
        assert!(!user.state().email_verified);
        let requested = user
            .when(request_verification("h", in_minutes(24 * 60)))
            .then_ok();
        requested
            .when(verify("other"))
            .then_err_eq(UserError::InvalidToken);
        let verified = requested
            .when(verify("h"))
            .then([UserEvent::EmailVerified(EmailVerified {})]);
        assert!(verified.state().email_verified);
        verified
            .when(verify("h"))
            .then_err_eq(UserError::InvalidToken);
        verified
            .when(request_verification("h2", in_minutes(60)))
            .then_err_eq(UserError::AlreadyVerified);
    }

    #[test]
    fn an_expired_verification_token_is_refused() {
        given::<User>([
            registered(),
            UserEvent::EmailVerificationRequested(EmailVerificationRequested {
                token_hash: "h".into(),
                expires_at: in_minutes(-1),
                token: None,
            }),
        ])
        .when(verify("h"))
        .then_err_eq(UserError::InvalidToken);
    }

    #[test]
    fn revoking_an_unknown_token_changes_nothing() {
        given::<User>([registered()])
            .when(UserCommand::RevokeRefreshToken {
                token_id: "nope".into(),
            })
            .then([]);
    }
}
