//! The accounts resource: authentication (`register`, `login`, `refreshToken`, `logout`),
//! `me` and profile changes, password changes, password reset and email verification by
//! mailed tokens (`requestPasswordReset`, `resetPassword`, `requestEmailVerification`,
//! `verifyEmail`), and `deleteAccount`. Every resolver checks the caller first.

use super::common::MutationResult;
use crate::clients::Backends;
use crate::context::{
    admit_refresh, admit_registration, backends, caller, forget_session, grpc, login_attempt,
};
use crate::error::{gql, BffError};
use crate::throttle::settle;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use domain::values::CartId;
use serde::Deserialize;

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user_id: ID,
    pub role: String,
    /// The customer's cart after an anonymous cart was adopted or merged at log-in.
    pub cart_id: Option<ID>,
}

impl From<proto::user::Tokens> for AuthPayload {
    fn from(t: proto::user::Tokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in as i64,
            user_id: ID(t.user_id),
            role: t.role,
            cart_id: None,
        }
    }
}

#[derive(SimpleObject, InputObject, Deserialize, serde::Serialize, Clone)]
#[graphql(input_name = "AddressInput")]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    #[graphql(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(SimpleObject)]
pub struct Me {
    pub id: ID,
    pub email: String,
    pub name: String,
    pub role: String,
    pub addresses: Vec<Address>,
    pub version: i64,
    /// Whether the email was verified (`requestEmailVerification`, then `verifyEmail`).
    pub email_verified: bool,
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        gql(async move {
            let claims = caller(ctx).user()?;
            let u = backends(ctx)
                .users
                .clone()
                .get_user(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?
                .into_inner();
            Ok(Me {
                id: ID(u.user_id),
                email: u.email,
                name: u.name,
                role: u.role,
                addresses: serde_json::from_str(&u.addresses_json).unwrap_or_default(),
                version: u.version as i64,
                email_verified: u.email_verified,
            })
        }
        .await)
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates a customer account.
    async fn register(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        name: String,
    ) -> Result<MutationResult> {
        gql(async move {
            admit_registration(ctx)?;
            let r = backends(ctx)
                .users
                .clone()
                .register(grpc(
                    ctx,
                    proto::user::RegisterRequest {
                        email,
                        password,
                        name,
                    },
                ))
                .await?
                .into_inner();
            Ok(MutationResult {
                id: ID(r.user_id),
                version: r.version as i64,
            })
        }
        .await)
    }

    /// Signs in: a short-lived access token (send it as `Authorization: Bearer ...`) and a
    /// refresh token. With `anonymousCartId`, that cart becomes the customer's, or is merged
    /// into their open cart; `cartId` names the result.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        anonymous_cart_id: Option<ID>,
    ) -> Result<AuthPayload> {
        gql(async move {
            let anonymous = anonymous_cart_id.map(|c| CartId::parse(&c)).transpose()?;
            let attempt = login_attempt(ctx, &email)?;
            let t = backends(ctx)
                .users
                .clone()
                .login(grpc(ctx, proto::user::LoginRequest { email, password }))
                .await;
            settle(attempt, &t);
            let t = t?.into_inner();
            let user_id = t.user_id.clone();
            // The cart is adopted by the customer who just signed in.
            let me = backends(ctx).acting_for_user(&t.user_id, &t.role);
            let mut payload: AuthPayload = t.into();
            if let Some(cart) = anonymous {
                payload.cart_id = Some(adopt(ctx, &me, cart, user_id).await?);
            }
            Ok(payload)
        }
        .await)
    }

    /// Trades a refresh token for new tokens (the old refresh token stops working).
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        gql(async move {
            admit_refresh(ctx)?;
            let t = backends(ctx)
                .users
                .clone()
                .refresh(grpc(ctx, proto::user::RefreshRequest { refresh_token }))
                .await?
                .into_inner();
            Ok(t.into())
        }
        .await)
    }

    /// Revokes a refresh token.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        gql(async move {
            backends(ctx)
                .users
                .clone()
                .logout(grpc(ctx, proto::user::RefreshRequest { refresh_token }))
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] addresses: Vec<Address>,
    ) -> Result<MutationResult> {
        gql(async move {
            let claims = caller(ctx).user()?;
            let r = backends(ctx)
                .users
                .clone()
                .update_profile(grpc(
                    ctx,
                    proto::user::UpdateProfileRequest {
                        user_id: claims.sub.clone(),
                        name,
                        addresses_json: serde_json::to_string(&addresses).unwrap_or_default(),
                    },
                ))
                .await?
                .into_inner();
            Ok(MutationResult {
                id: ID(r.user_id),
                version: r.version as i64,
            })
        }
        .await)
    }

    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .change_password(grpc(
                    ctx,
                    proto::user::ChangePasswordRequest {
                        user_id: claims.sub.clone(),
                        current_password,
                        new_password,
                    },
                ))
                .await?;
            forget_session(ctx, &claims.sub);
            Ok(true)
        }
        .await)
    }

    /// Mails a link to reset the password to `email`, if it has an account. Always `true`,
    /// account or not (nothing tells which); throttled like `login`.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        gql(async move {
            // Counted as a log-in attempt that failed: the same buckets, the same backoff.
            if let Some(attempt) = login_attempt(ctx, &email)? {
                attempt.failed();
            }
            backends(ctx)
                .users
                .clone()
                .request_password_reset(grpc(ctx, proto::user::PasswordResetRequest { email }))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Sets a new password with the token of a reset mail; every session of the account
    /// ends. `INVALID_ARGUMENT` for an unknown, used, superseded or expired token.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> Result<bool> {
        gql(async move {
            admit_refresh(ctx)?;
            let r = backends(ctx)
                .users
                .clone()
                .reset_password(grpc(
                    ctx,
                    proto::user::ResetPasswordRequest {
                        token,
                        new_password,
                    },
                ))
                .await?
                .into_inner();
            forget_session(ctx, &r.user_id);
            Ok(true)
        }
        .await)
    }

    /// Mails the signed-in user a link to verify their email (`FAILED_PRECONDITION` when it
    /// is verified already).
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .request_email_verification(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Verifies the email with the token of a verification mail (no sign-in needed).
    /// `INVALID_ARGUMENT` for an unknown, used, superseded or expired token.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        gql(async move {
            admit_refresh(ctx)?;
            backends(ctx)
                .users
                .clone()
                .verify_email(grpc(ctx, proto::user::TokenRequest { token }))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Deletes the signed-in account; its carts go too.
    async fn delete_account(&self, ctx: &Context<'_>) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .delete_account(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?;
            forget_session(ctx, &claims.sub);
            Ok(true)
        }
        .await)
    }
}

/// Adopts an anonymous cart for the customer who just signed in: it becomes theirs, or is
/// merged into their open cart. The resulting cart's id.
async fn adopt(
    ctx: &Context<'_>,
    me: &Backends,
    cart: CartId,
    user_id: String,
) -> Result<ID, BffError> {
    let target = match me
        .cart_queries
        .clone()
        .get_open_cart(grpc(
            ctx,
            proto::cart::GetOpenCartRequest {
                customer_id: user_id.clone(),
            },
        ))
        .await
    {
        Ok(c) => c.into_inner().cart_id,
        Err(s) if s.code() == tonic::Code::NotFound => String::new(),
        Err(s) => return Err(s.into()),
    };
    let r = me
        .cart_commands
        .clone()
        .adopt_cart(grpc(
            ctx,
            proto::cart::AdoptCartRequest {
                meta: None,
                cart_id: cart.to_string(),
                customer_id: user_id,
                target_cart_id: target,
            },
        ))
        .await?
        .into_inner();
    Ok(ID(r.cart_id))
}
