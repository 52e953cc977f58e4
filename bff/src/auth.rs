//! Who is asking: the BFF verifies the `Authorization: Bearer <JWT>` of every request and
//! resolvers ask this context for the caller. A missing token is anonymous; a bad or expired
//! one makes every call that needs a user fail with `UNAUTHENTICATED`.

use crate::error::BffError;
use platform::auth::{Claims, Jwt};

#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    User(Claims),
    /// A token was sent but is invalid or expired.
    Invalid,
}

impl Caller {
    pub fn from_header(jwt: Option<&Jwt>, header: Option<&str>) -> Self {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return if header.is_some() {
                Caller::Invalid
            } else {
                Caller::Anonymous
            };
        };
        match jwt.map(|j| j.verify(token.trim())) {
            // The actor a command carries is built from the subject: only a user id may be
            // one, so no token can make a caller `service:...` or anything else.
            Some(Ok(claims))
                if domain::values::UserId::parse(&claims.sub)
                    .is_ok_and(|u| u.to_string() == claims.sub) =>
            {
                Caller::User(claims)
            }
            _ => Caller::Invalid,
        }
    }

    /// The signed-in user, or `UNAUTHENTICATED`.
    pub fn user(&self) -> Result<&Claims, BffError> {
        match self {
            Caller::User(c) => Ok(c),
            Caller::Invalid => Err(BffError::Unauthenticated("invalid or expired token".into())),
            Caller::Anonymous => Err(BffError::Unauthenticated("sign in first".into())),
        }
    }

    /// The signed-in admin, or `UNAUTHENTICATED` / `FORBIDDEN`.
    pub fn admin(&self) -> Result<&Claims, BffError> {
        let c = self.user()?;
        if c.is_admin() {
            Ok(c)
        } else {
            Err(BffError::Forbidden("this needs the admin role".into()))
        }
    }

    /// The actor string for commands; an invalid token is refused outright.
    pub fn actor(&self) -> Result<String, BffError> {
        match self {
            Caller::Anonymous => Ok("anonymous".into()),
            Caller::User(c) => Ok(c.actor()),
            Caller::Invalid => Err(BffError::Unauthenticated("invalid or expired token".into())),
        }
    }

    /// May the caller see or change something owned by `owner` (a user id)?
    pub fn check_owner(&self, owner: Option<&str>) -> Result<(), BffError> {
        match (owner, self) {
            (None, Caller::Invalid) => {
                Err(BffError::Unauthenticated("invalid or expired token".into()))
            }
            (None, _) => Ok(()),
            (Some(owner), _) => {
                let c = self.user()?;
                if c.is_admin() || c.sub == owner {
                    Ok(())
                } else {
                    Err(BffError::Forbidden(
                        "this belongs to another customer".into(),
                    ))
                }
            }
        }
    }
}
