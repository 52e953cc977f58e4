//! The user aggregate: an account with an email (unique across users, enforced by the store's
//! reservation written in the same transaction), a name, addresses, a role, an argon2id
//! password hash (hashed by the service; the domain never sees a password), the refresh tokens
//! it has issued, and its deletion.

use crate::values::{Email, UserId};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: UserId,
        email: Email,
        name: String,
        password_hash: String,
        role: Role,
    },
    ChangeProfile {
        name: String,
        addresses: Vec<Address>,
    },
    ChangePassword {
        password_hash: String,
    },
    IssueRefreshToken {
        token_id: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    RevokeRefreshToken {
        token_id: String,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub email: Email,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfileChanged {
    pub name: String,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordChanged {
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenIssued {
    pub token_id: String,
    /// SHA-256 of the token's secret part; the secret itself is never stored.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
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
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            UserError::NotFound | UserError::Deleted => ErrorKind::NotFound,
            UserError::AlreadyExists => ErrorKind::AlreadyExists,
            UserError::Invalid(_) => ErrorKind::InvalidArgument,
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
    pub password_hash: String,
    pub addresses: Vec<Address>,
    /// Live refresh tokens: id → (hash, expiry).
    pub refresh_tokens: BTreeMap<String, (String, DateTime<Utc>)>,
    pub deleted: bool,
}

fn check_name(name: &str) -> Result<String, UserError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(UserError::Invalid("a name has 1 to 200 characters".into()));
    }
    Ok(n.to_owned())
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
            password_hash,
            role,
        } = command
        {
            if self.id.is_some() {
                return Err(UserError::AlreadyExists);
            }
            return Ok(vec![E::UserRegistered(UserRegistered {
                user_id: *user_id,
                email: email.clone(),
                name: check_name(name)?,
                role: *role,
                password_hash: password_hash.clone(),
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
                if addresses.len() > 10 {
                    return Err(UserError::Invalid("at most 10 addresses".into()));
                }
                vec![E::UserProfileChanged(UserProfileChanged {
                    name: check_name(name)?,
                    addresses: addresses.clone(),
                })]
            }
            C::ChangePassword { password_hash } => {
                vec![E::UserPasswordChanged(UserPasswordChanged {
                    password_hash: password_hash.clone(),
                })]
            }
            C::IssueRefreshToken {
                token_id,
                token_hash,
                expires_at,
            } => vec![E::RefreshTokenIssued(RefreshTokenIssued {
                token_id: token_id.clone(),
                token_hash: token_hash.clone(),
                expires_at: *expires_at,
            })],
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
                self.email = Some(e.email.clone());
                self.name = e.name.clone();
                self.role = e.role;
                self.password_hash = e.password_hash.clone();
            }
            UserEvent::UserProfileChanged(e) => {
                self.name = e.name.clone();
                self.addresses = e.addresses.clone();
            }
            UserEvent::UserPasswordChanged(e) => {
                self.password_hash = e.password_hash.clone();
                // A new password logs every session out.
                self.refresh_tokens.clear();
            }
            UserEvent::RefreshTokenIssued(e) => {
                self.refresh_tokens
                    .insert(e.token_id.clone(), (e.token_hash.clone(), e.expires_at));
            }
            UserEvent::RefreshTokenRevoked(e) => {
                self.refresh_tokens.remove(&e.token_id);
            }
            UserEvent::UserDeleted(_) => {
                self.deleted = true;
                self.refresh_tokens.clear();
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
            email: Email::parse("ann@example.com").unwrap(),
            name: "Ann".into(),
            role: Role::Customer,
            password_hash: "$argon2id$...".into(),
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
            name: "Ann".into(),
            password_hash: "h".into(),
            role: Role::Customer,
        });
        assert_eq!(then, Err(UserError::AlreadyExists));
    }

    #[test]
    fn a_profile_needs_a_name() {
        let then = given([registered()]).decide(&UserCommand::ChangeProfile {
            name: "  ".into(),
            addresses: vec![],
        });
        assert!(matches!(then, Err(UserError::Invalid(_))));
    }

    #[test]
    fn a_password_change_revokes_refresh_tokens() {
        let state = given([
            registered(),
            UserEvent::RefreshTokenIssued(RefreshTokenIssued {
                token_id: "t1".into(),
                token_hash: "h".into(),
                expires_at: Utc::now(),
            }),
            UserEvent::UserPasswordChanged(UserPasswordChanged {
                password_hash: "h2".into(),
            }),
        ]);
        assert!(state.refresh_tokens.is_empty());
    }

    #[test]
    fn a_deleted_account_refuses_everything() {
        let state = given([registered(), UserEvent::UserDeleted(UserDeleted {})]);
        assert_eq!(state.decide(&UserCommand::Delete), Err(UserError::Deleted));
        assert_eq!(
            state.decide(&UserCommand::ChangePassword {
                password_hash: "x".into()
            }),
            Err(UserError::Deleted)
        );
    }

    #[test]
    fn revoking_an_unknown_token_changes_nothing() {
        let then = given([registered()]).decide(&UserCommand::RevokeRefreshToken {
            token_id: "nope".into(),
        });
        assert_eq!(then, Ok(vec![]));
    }
}
