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
//! The personal fields of the events (email, name, addresses) are `Option`: the store seals
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum UserEvent {
    UserRegistered(UserRegistered),
    UserProfileChanged(UserProfileChanged),
    UserPasswordChanged(UserPasswordChanged),
    RefreshTokenIssued(RefreshTokenIssued),
    RefreshTokenRevoked(RefreshTokenRevoked),
    UserDeleted(UserDeleted),
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
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            UserError::NotFound | UserError::Deleted => ErrorKind::NotFound,
            UserError::AlreadyExists => ErrorKind::AlreadyExists,
            UserError::Invalid(_) => ErrorKind::InvalidArgument,
            UserError::InvalidRefreshToken => ErrorKind::FailedPrecondition,
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
}

/// How many spent refresh tokens the state remembers for reuse detection (token ids are
/// UUIDv7, so the map's order is their age and the oldest are forgotten first).
pub const MAX_SPENT_TOKENS: usize = 256;

impl User {
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
            if self.id.is_some() {
                return Err(UserError::AlreadyExists);
            }
            return Ok(vec![E::UserRegistered(UserRegistered {
                user_id: *user_id,
                email: Some(email.clone()),
                name: Some(name.as_str().to_owned()),
                role: *role,
            })]);
        }
        if self.id.is_none() {
            return Err(UserError::NotFound);
        }
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(match command {
            C::Register { .. } => return Err(UserError::AlreadyExists),
            C::ChangeProfile { name, addresses } => {
                if addresses.len() > MAX_ADDRESSES {
                    return Err(UserError::Invalid(format!(
                        "at most {MAX_ADDRESSES} addresses"
                    )));
                }
                vec![E::UserProfileChanged(UserProfileChanged {
                    name: Some(name.as_str().to_owned()),
                    addresses: Some(addresses.iter().map(Address::from).collect()),
                })]
            }
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
            } => match self.refresh_tokens.get(token_id) {
                Some((hash, expires)) if hash == presented_hash && expires > now => {
                    let family = self
                        .refresh_families
                        .get(token_id)
                        .cloned()
                        .unwrap_or_else(|| token_id.clone());
                    vec![
                        E::RefreshTokenRevoked(RefreshTokenRevoked {
                            token_id: token_id.clone(),
                        }),
                        E::RefreshTokenIssued(RefreshTokenIssued {
                            token_id: new_token_id.clone(),
                            token_hash: new_token_hash.clone(),
                            expires_at: *expires_at,
                            family_id: Some(family),
                        }),
                    ]
                }
                _ => return Err(UserError::InvalidRefreshToken),
            },
            C::RevokeRefreshFamily { family_id } => self
                .refresh_families
                .iter()
                .filter(|(_, f)| *f == family_id)
                .map(|(t, _)| {
                    E::RefreshTokenRevoked(RefreshTokenRevoked {
                        token_id: t.clone(),
                    })
                })
                .collect(),
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
            UserEvent::UserPasswordChanged(_) => {
                // A new password logs every session out, access tokens included.
                self.refresh_tokens.clear();
                self.refresh_families.clear();
                self.session_version += 1;
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

    fn registered() -> UserEvent {
        UserEvent::UserRegistered(UserRegistered {
            user_id: UserId::from(uuid::Uuid::from_u128(1)),
            email: Some(Email::parse("ann@example.com").unwrap()),
            name: Some("Ann".into()),
            role: Role::Customer,
        })
    }

    fn given(events: impl IntoIterator<Item = UserEvent>) -> User {
        User::fold(&events.into_iter().collect::<Vec<_>>())
    }

    #[test]
    fn registering_twice_is_refused() {
        let then = given([registered()]).decide(&UserCommand::Register {
            user_id: UserId::generate(),
            email: Email::parse("ann@example.com").unwrap(),
            name: PersonName::parse("Ann").unwrap(),
            role: Role::Customer,
        });
        assert_eq!(then, Err(UserError::AlreadyExists));
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
        let then = given([registered()]).decide(&UserCommand::ChangeProfile {
            name: PersonName::parse("Ann").unwrap(),
            addresses: vec![address(); MAX_ADDRESSES + 1],
        });
        assert!(matches!(then, Err(UserError::Invalid(_))));
        let then = given([registered()])
            .decide(&UserCommand::ChangeProfile {
                name: PersonName::parse(" Ann B ").unwrap(),
                addresses: vec![address()],
            })
            .unwrap();
        assert_eq!(
            then,
            vec![UserEvent::UserProfileChanged(UserProfileChanged {
                name: Some("Ann B".into()),
                addresses: Some(vec![Address {
                    line1: "1 Main St".into(),
                    line2: String::new(),
                    city: "Springfield".into(),
                    postal_code: "12345".into(),
                    country: "US".into(),
                }]),
            })]
        );
    }

    #[test]
    fn a_password_change_revokes_refresh_tokens() {
        let state = given([
            registered(),
            UserEvent::RefreshTokenIssued(RefreshTokenIssued {
                token_id: "t1".into(),
                token_hash: "h".into(),
                expires_at: Utc::now(),
                family_id: None,
            }),
            UserEvent::UserPasswordChanged(UserPasswordChanged {}),
        ]);
        assert!(state.refresh_tokens.is_empty());
    }

    #[test]
    fn a_deleted_account_refuses_everything() {
        let state = given([registered(), UserEvent::UserDeleted(UserDeleted {})]);
        assert_eq!(state.decide(&UserCommand::Delete), Err(UserError::Deleted));
        assert_eq!(
            state.decide(&UserCommand::ChangePassword),
            Err(UserError::Deleted)
        );
    }

    fn rotate(
        state: &User,
        token: &str,
        hash: &str,
        new: &str,
    ) -> Result<Vec<UserEvent>, UserError> {
        state.decide(&UserCommand::RotateRefreshToken {
            token_id: token.into(),
            presented_hash: hash.into(),
            new_token_id: new.into(),
            new_token_hash: format!("h-{new}"),
            expires_at: Utc::now() + chrono::Duration::days(1),
            now: Utc::now(),
        })
    }

    #[test]
    fn rotation_keeps_the_family_and_a_replay_is_recognised() {
        let issued = UserEvent::RefreshTokenIssued(RefreshTokenIssued {
            token_id: "t1".into(),
            token_hash: "h-t1".into(),
            expires_at: Utc::now() + chrono::Duration::days(1),
            family_id: None,
        });
        let state = given([registered(), issued.clone()]);
        assert_eq!(
            rotate(&state, "t1", "wrong", "t2"),
            Err(UserError::InvalidRefreshToken)
        );
        let events = rotate(&state, "t1", "h-t1", "t2").unwrap();
        let state = events.iter().fold(state, |s, e| s.evolve(e));
        assert_eq!(state.refresh_family_of("t2"), Some("t1"));
        assert!(state.is_spent_refresh_token("t1", "h-t1"));
        assert!(!state.is_spent_refresh_token("t1", "forged"));
        // The spent token cannot rotate again; revoking its family kills its successor.
        assert_eq!(
            rotate(&state, "t1", "h-t1", "t3"),
            Err(UserError::InvalidRefreshToken)
        );
        let revoke = state
            .decide(&UserCommand::RevokeRefreshFamily {
                family_id: "t1".into(),
            })
            .unwrap();
        assert_eq!(
            revoke,
            vec![UserEvent::RefreshTokenRevoked(RefreshTokenRevoked {
                token_id: "t2".into()
            })]
        );
        let state = revoke.iter().fold(state, |s, e| s.evolve(e));
        assert!(state.refresh_tokens.is_empty());
    }

    #[test]
    fn a_password_change_or_deletion_raises_the_session_version() {
        let state = given([
            registered(),
            UserEvent::UserPasswordChanged(UserPasswordChanged {}),
        ]);
        assert_eq!(state.session_version, 1);
        let state = state.evolve(&UserEvent::UserDeleted(UserDeleted {}));
        assert_eq!(state.session_version, 2);
    }

    #[test]
    fn revoking_an_unknown_token_changes_nothing() {
        let then = given([registered()]).decide(&UserCommand::RevokeRefreshToken {
            token_id: "nope".into(),
        });
        assert_eq!(then, Ok(vec![]));
    }
}
