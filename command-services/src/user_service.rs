//! The `Users` gRPC service: registration with a unique email (a reservation document
//! written in the same transaction as `UserRegistered`), log-in, refresh-token rotation,
//! log-out, profile, password and account deletion, all through the generic handler. Profile,
//! password, deletion and `GetUser` act only for the user of the call's internal credential
//! (or an admin): never for a user id taken on trust from the request.
//! A log-in for an unknown email is checked against a dummy hash (same time, same words as a
//! wrong password); a refresh rotates its token in one decision and a replayed spent token
//! revokes its whole family (see `domain::user`). The password hash is kept in the private
//! `credentials` collection ([`crate::credentials`]), never in an event; deleting the account
//! destroys the person's key ([`event_store::pii`]).
//!
//! Password reset and email verification hand out tokens `<user id>.<64 hex>` (32 random
//! bytes): the aggregate records their SHA-256 and expiry, and the raw token as a sealed
//! personal field for the notifications projector to mail (see `domain::user`). A reset
//! request answers the same, at once, whether or not the email has an account: its work runs
//! after the answer, and a failure there is logged and counted
//! (`password_reset_request_failures_total`), never told to the caller.

use crate::credentials;
use crate::error::CommandError;
use crate::generic_service::stream_id;
use crate::handler::{CommandContext, CommandHandler};
use crate::passwords::{hash_password, verify_against_dummy, verify_password, MIN_PASSWORD};
use domain::user::{AddressInput, Role, User, UserCommand};
use domain::values::{Email, PersonName, UserId};
use event_schemas::EventMeta;
use event_store::event_store::SideWrite;
use event_store::pii::Keyring;
use mongodb::bson::doc;
use platform::auth::{random_secret, sha256_hex, Jwt};
use platform::internal_auth::actor_of;
use proto::user::users_server::{Users, UsersServer};
use proto::user::{
    Accepted, ChangePasswordRequest, LoginRequest, PasswordResetRequest, RefreshRequest,
    RegisterRequest, ResetPasswordRequest, TokenRequest, Tokens, UpdateProfileRequest, UserRef,
    UserResult, UserView,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The collection holding one document per registered email: `{_id: email, user_id}`.
pub const EMAIL_RESERVATIONS: &str = "email_reservations";
/// How long a refresh token lives.
const REFRESH_TTL_DAYS: i64 = 30;
/// How long a password-reset token works.
pub const RESET_TTL_MINUTES: i64 = 30;
/// How long an email-verification token works.
pub const VERIFICATION_TTL_HOURS: i64 = 24;

pub struct UserService {
    handler: Arc<CommandHandler<User>>,
    jwt: Jwt,
}

fn ctx(actor: String) -> CommandContext {
    CommandContext {
        idempotency_key: None,
        meta: EventMeta {
            correlation_id: uuid::Uuid::now_v7().to_string(),
            causation_id: None,
            actor,
        },
        creates_stream: false,
    }
}

fn unauthenticated() -> Status {
    Status::unauthenticated("wrong email or password")
}

fn check_password(p: &str) -> Result<(), CommandError> {
    if p.chars().count() < MIN_PASSWORD || p.len() > 1024 {
        return Err(CommandError::InvalidArgument(format!(
            "a password has at least {MIN_PASSWORD} characters"
        )));
    }
    Ok(())
}

async fn hash(password: String) -> Result<String, CommandError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?
        .map_err(|e| CommandError::Internal(e.to_string()))
}

async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// As long as [`verify`], and false: for an email with no (live) account.
async fn verify_dummy(password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_against_dummy(&password))
        .await
        .unwrap_or(false)
}

fn invalid_refresh() -> Status {
    Status::unauthenticated("invalid or expired refresh token")
}

fn invalid_token() -> Status {
    Status::invalid_argument("invalid, used or expired token")
}

/// A fresh single-use token for `user_id`: (the token, its SHA-256).
fn new_account_token(user_id: &str) -> (String, String) {
    let token = format!("{user_id}.{}", random_secret());
    let hash = sha256_hex(&token);
    (token, hash)
}

/// The user (stream id) a reset or verification token names, and the token's SHA-256.
fn parse_account_token(token: &str) -> Option<(String, String)> {
    let (user_id, secret) = token.split_once('.')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((stream_id(user_id).ok()?, sha256_hex(token)))
}

/// Records a reset token for the account of `email`, if there is a live one.
async fn request_reset(
    handler: &CommandHandler<User>,
    email: &Email,
    actor: String,
) -> Result<(), CommandError> {
    let found = handler
        .store()
        .database()
        .collection::<mongodb::bson::Document>(EMAIL_RESERVATIONS)
        .find_one(doc! { "_id": email.as_str() })
        .await
        .map_err(|e| CommandError::Unavailable(e.to_string()))?;
    let Some(user_id) = found.and_then(|d| d.get_str("user_id").ok().map(str::to_owned)) else {
        return Ok(());
    };
    let (token, token_hash) = new_account_token(&user_id);
    match handler
        .handle(
            &user_id,
            &UserCommand::RequestPasswordReset {
                token,
                token_hash,
                expires_at: chrono::Utc::now() + chrono::Duration::minutes(RESET_TTL_MINUTES),
            },
            &ctx(actor),
        )
        .await
    {
        // Deleted meanwhile (or never registered to the end): nothing to send.
        Ok(_) | Err(CommandError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl UserService {
    pub fn new(handler: Arc<CommandHandler<User>>, jwt: Jwt) -> Self {
        Self { handler, jwt }
    }

    pub fn into_server(self) -> UsersServer<Self> {
        UsersServer::new(self)
    }

    /// Registers an account; `AlreadyExists` when the email is taken.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        role: Role,
    ) -> Result<UserResult, CommandError> {
        let email = Email::parse(email)?;
        let name = PersonName::parse(name)?;
        check_password(password)?;
        let user_id = UserId::generate();
        let password_hash = hash(password.to_owned()).await?;
        let command = UserCommand::Register {
            user_id,
            email: email.clone(),
            name,
            role,
        };
        let credential = credentials::set(&user_id.to_string(), &password_hash);
        let reservation = SideWrite::Insert {
            collection: EMAIL_RESERVATIONS,
            doc: doc! { "_id": email.as_str(), "user_id": user_id.to_string() },
        };
        match self
            .handler
            .handle_with(
                &user_id.to_string(),
                &command,
                &ctx(format!("user:{user_id}")),
                &[reservation, credential],
            )
            .await
        {
            Ok(o) => Ok(UserResult {
                user_id: o.stream_id,
                version: o.version,
            }),
            Err(CommandError::AlreadyExists(_)) => Err(CommandError::AlreadyExists(
                "an account with this email already exists".into(),
            )),
            Err(e) => Err(e),
        }
    }

    async fn user_id_of(&self, email: &Email) -> Result<Option<String>, CommandError> {
        let found = self
            .handler
            .store()
            .database()
            .collection::<mongodb::bson::Document>(EMAIL_RESERVATIONS)
            .find_one(doc! { "_id": email.as_str() })
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?;
        Ok(found.and_then(|d| d.get_str("user_id").ok().map(str::to_owned)))
    }

    /// Issues an access token and a refresh token starting a new family (a log-in).
    async fn tokens(&self, user_id: &str, state: &User) -> Result<Tokens, Status> {
        let token_id = uuid::Uuid::now_v7().to_string();
        let secret = random_secret();
        self.handler
            .handle(
                user_id,
                &UserCommand::IssueRefreshToken {
                    token_id: token_id.clone(),
                    token_hash: sha256_hex(&secret),
                    expires_at: chrono::Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS),
                },
                &ctx(format!("user:{user_id}")),
            )
            .await?;
        self.tokens_for(user_id, state, &token_id, &secret)
    }

    /// The wire form of an access token and the refresh token `token_id`/`secret`.
    fn tokens_for(
        &self,
        user_id: &str,
        state: &User,
        token_id: &str,
        secret: &str,
    ) -> Result<Tokens, Status> {
        let access = self
            .jwt
            .issue(user_id, state.role.as_str(), state.session_version)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Tokens {
            access_token: access,
            refresh_token: format!("{user_id}.{token_id}.{secret}"),
            expires_in: self.jwt.ttl_secs,
            user_id: user_id.to_owned(),
            role: state.role.as_str().to_owned(),
        })
    }

    /// Rotates a refresh token: the presented one dies and its successor (same family) is
    /// returned. A spent token presented again, or a rotation lost to a concurrent one,
    /// revokes the family (reuse detection): every session descended from that log-in ends.
    async fn rotate(&self, token: &str) -> Result<Tokens, Status> {
        let (user_id, token_id, secret) = Self::parse_refresh(token).ok_or_else(invalid_refresh)?;
        let presented_hash = sha256_hex(secret);
        let (state, _) = self.handler.load(&user_id).await?;
        if state.deleted || state.id.is_none() {
            return Err(invalid_refresh());
        }
        if state.is_spent_refresh_token(token_id, &presented_hash) {
            return Err(self.revoke_family(&user_id, &state, token_id).await);
        }
        let new_token_id = uuid::Uuid::now_v7().to_string();
        let new_secret = random_secret();
        let rotated = self
            .handler
            .handle(
                &user_id,
                &UserCommand::RotateRefreshToken {
                    token_id: token_id.to_owned(),
                    presented_hash: presented_hash.clone(),
                    new_token_id: new_token_id.clone(),
                    new_token_hash: sha256_hex(&new_secret),
                    expires_at: chrono::Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS),
                    now: chrono::Utc::now(),
                },
                &ctx(format!("user:{user_id}")),
            )
            .await;
        match rotated {
            Ok(_) => self.tokens_for(&user_id, &state, &new_token_id, &new_secret),
            Err(CommandError::FailedPrecondition(_)) => {
                // Spent meanwhile (a concurrent rotation won): a reuse as well.
                let (state, _) = self.handler.load(&user_id).await?;
                if state.is_spent_refresh_token(token_id, &presented_hash) {
                    Err(self.revoke_family(&user_id, &state, token_id).await)
                } else {
                    Err(invalid_refresh())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes the family of `token_id`; the error to answer with.
    async fn revoke_family(&self, user_id: &str, state: &User, token_id: &str) -> Status {
        let Some(family_id) = state.refresh_family_of(token_id).map(str::to_owned) else {
            return invalid_refresh();
        };
        tracing::warn!(
            user_id,
            family_id,
            "refresh token reused: revoking its family"
        );
        metrics::counter!("refresh_token_reuse_total").increment(1);
        if let Err(e) = self
            .handler
            .handle(
                user_id,
                &UserCommand::RevokeRefreshFamily { family_id },
                &ctx(format!("user:{user_id}")),
            )
            .await
        {
            return e.into();
        }
        Status::unauthenticated("refresh token reused: every session of it is revoked")
    }

    /// `<user_id>.<token_id>.<secret>`, the user id as a stream id.
    fn parse_refresh(token: &str) -> Option<(String, &str, &str)> {
        let mut parts = token.splitn(3, '.');
        let (Some(user_id), Some(token_id), Some(secret)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let user_id = stream_id(user_id).ok()?;
        Some((user_id, token_id, secret))
    }

    /// The user and token id of a valid, live refresh token.
    async fn check_refresh(&self, token: &str) -> Result<(String, String, User), Status> {
        let invalid = invalid_refresh;
        let mut parts = token.splitn(3, '.');
        let (Some(user_id), Some(token_id), Some(secret)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let user_id = stream_id(user_id).map_err(|_| invalid())?;
        let (state, _) = self.handler.load(&user_id).await?;
        match state.refresh_tokens.get(token_id) {
            Some((hash, expires))
                if !state.deleted
                    && *hash == sha256_hex(secret)
                    && *expires > chrono::Utc::now() =>
            {
                Ok((user_id, token_id.to_owned(), state))
            }
            _ => Err(invalid()),
        }
    }

    /// Creates the first admin from configuration when no account has that email yet.
    pub async fn bootstrap_admin(&self, email: &str, password: &str) -> Result<(), CommandError> {
        let parsed = Email::parse(email)?;
        if self.user_id_of(&parsed).await?.is_some() {
            return Ok(());
        }
        match self
            .register(email, password, "Administrator", Role::Admin)
            .await
        {
            Ok(_) | Err(CommandError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[tonic::async_trait]
impl Users for UserService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let r = request.into_inner();
        Ok(Response::new(
            UserService::register(self, &r.email, &r.password, &r.name, Role::Customer).await?,
        ))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<Tokens>, Status> {
        let r = request.into_inner();
        // An unknown (or malformed, or deleted) email costs a password check too, and
        // gets the same words as a wrong password.
        let Some(user_id) = (match Email::parse(&r.email) {
            Ok(email) => self.user_id_of(&email).await?,
            Err(_) => None,
        }) else {
            verify_dummy(r.password).await;
            return Err(unauthenticated());
        };
        let (state, _) = self.handler.load(&user_id).await?;
        let stored = credentials::password_hash(self.handler.store(), &user_id).await?;
        let ok = match stored.filter(|_| !state.deleted && state.id.is_some()) {
            Some(stored) => verify(r.password, stored).await,
            None => verify_dummy(r.password).await,
        };
        if !ok {
            return Err(unauthenticated());
        }
        Ok(Response::new(self.tokens(&user_id, &state).await?))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<Tokens>, Status> {
        Ok(Response::new(
            self.rotate(&request.get_ref().refresh_token).await?,
        ))
    }

    async fn logout(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let (user_id, token_id, _) = self.check_refresh(&request.get_ref().refresh_token).await?;
        let o = self
            .handler
            .handle(
                &user_id,
                &UserCommand::RevokeRefreshToken { token_id },
                &ctx(format!("user:{user_id}")),
            )
            .await?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn get_user(&self, request: Request<UserRef>) -> Result<Response<UserView>, Status> {
        let id = stream_id(&request.get_ref().user_id)?;
        actor_of(&request)?.require_owner(&id)?;
        let (state, version) = self.handler.load(&id).await?;
        if state.id.is_none() || state.deleted {
            return Err(Status::not_found("user not found"));
        }
        Ok(Response::new(UserView {
            user_id: id,
            email: state.email.map(String::from).unwrap_or_default(),
            name: state.name.clone(),
            role: state.role.as_str().to_owned(),
            addresses_json: serde_json::to_string(&state.addresses).unwrap_or_default(),
            version,
            session_version: state.session_version,
            email_verified: state.email_verified,
        }))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let actor = actor_of(&request)?;
        let r = request.into_inner();
        let id = stream_id(&r.user_id)?;
        actor.require_owner(&id)?;
        let name = PersonName::parse(&r.name).map_err(CommandError::from)?;
        let addresses: Vec<AddressInput> = if r.addresses_json.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&r.addresses_json)
                .map_err(|e| Status::invalid_argument(format!("invalid addresses: {e}")))?
        };
        let o = self
            .handler
            .handle(
                &id,
                &UserCommand::ChangeProfile { name, addresses },
                &ctx(actor.to_string()),
            )
            .await?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let actor = actor_of(&request)?;
        let r = request.into_inner();
        let id = stream_id(&r.user_id)?;
        actor.require_owner(&id)?;
        check_password(&r.new_password)?;
        let (state, _) = self.handler.load(&id).await?;
        let stored = credentials::password_hash(self.handler.store(), &id).await?;
        let current_ok = match stored.filter(|_| state.id.is_some()) {
            Some(stored) => verify(r.current_password, stored).await,
            None => false,
        };
        if !current_ok {
            return Err(Status::unauthenticated("the current password is wrong"));
        }
        let credential = credentials::set(&id, &hash(r.new_password).await?);
        let o = self
            .handler
            .handle_with(
                &id,
                &UserCommand::ChangePassword,
                &ctx(actor.to_string()),
                &[credential],
            )
            .await?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn delete_account(
        &self,
        request: Request<UserRef>,
    ) -> Result<Response<UserResult>, Status> {
        let id = stream_id(&request.get_ref().user_id)?;
        let actor = actor_of(&request)?;
        actor.require_owner(&id)?;
        let (state, _) = self.handler.load(&id).await?;
        let email = state
            .email
            .clone()
            .ok_or_else(|| Status::not_found("user not found"))?;
        // The email is released in the same transaction, so it can be registered again.
        let release = SideWrite::Delete {
            collection: EMAIL_RESERVATIONS,
            id: email.as_str().to_owned(),
        };
        // So are the password hash and the person's key (crypto-shredding: every sealed field
        // about them reads as erased from now on).
        let o = self
            .handler
            .handle_with(
                &id,
                &UserCommand::Delete,
                &ctx(actor.to_string()),
                &[release, credentials::remove(&id), Keyring::forget(&id)],
            )
            .await?;
        self.handler.store().keyring().forgotten(&id);
        // What was written before sealing existed is blanked in the store; a failure here is
        // logged, the deletion itself stands (the key is gone).
        if let Err(e) = credentials::scrub_legacy(self.handler.store(), &id).await {
            tracing::warn!(user_id = %id, error = %e, "legacy personal fields not scrubbed");
        }
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn request_password_reset(
        &self,
        request: Request<PasswordResetRequest>,
    ) -> Result<Response<Accepted>, Status> {
        let actor = actor_of(&request)?.to_string();
        // A malformed email has no account either: the same answer.
        let Ok(email) = Email::parse(&request.get_ref().email) else {
            return Ok(Response::new(Accepted {}));
        };
        // The answer does not wait for the lookup, so it takes as long for every email.
        let handler = self.handler.clone();
        tokio::spawn(async move {
            if let Err(e) = request_reset(&handler, &email, actor).await {
                metrics::counter!("password_reset_request_failures_total").increment(1);
                tracing::error!(error = %e, "a password-reset request failed");
            }
        });
        Ok(Response::new(Accepted {}))
    }

    async fn reset_password(
        &self,
        request: Request<ResetPasswordRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let actor = actor_of(&request)?;
        let r = request.into_inner();
        let (id, presented_hash) = parse_account_token(&r.token).ok_or_else(invalid_token)?;
        let (state, _) = self.handler.load(&id).await?;
        let now = chrono::Utc::now();
        // Checked before the (costly) hash; the decision checks again.
        let pending = state
            .password_reset
            .as_ref()
            .is_some_and(|(h, exp)| *h == presented_hash && *exp > now);
        if !pending || state.deleted {
            return Err(invalid_token());
        }
        check_password(&r.new_password)?;
        let credential = credentials::set(&id, &hash(r.new_password).await?);
        let o = self
            .handler
            .handle_with(
                &id,
                &UserCommand::ResetPassword {
                    presented_hash,
                    now,
                },
                &ctx(actor.to_string()),
                &[credential],
            )
            .await
            .map_err(|e| match e {
                CommandError::InvalidArgument(_) | CommandError::NotFound(_) => invalid_token(),
                e => e.into(),
            })?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn request_email_verification(
        &self,
        request: Request<UserRef>,
    ) -> Result<Response<UserResult>, Status> {
        let id = stream_id(&request.get_ref().user_id)?;
        let actor = actor_of(&request)?;
        actor.require_owner(&id)?;
        let (token, token_hash) = new_account_token(&id);
        let o = self
            .handler
            .handle(
                &id,
                &UserCommand::RequestEmailVerification {
                    token,
                    token_hash,
                    expires_at: chrono::Utc::now()
                        + chrono::Duration::hours(VERIFICATION_TTL_HOURS),
                },
                &ctx(actor.to_string()),
            )
            .await?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn verify_email(
        &self,
        request: Request<TokenRequest>,
    ) -> Result<Response<UserResult>, Status> {
        let actor = actor_of(&request)?;
        let (id, presented_hash) =
            parse_account_token(&request.get_ref().token).ok_or_else(invalid_token)?;
        let o = self
            .handler
            .handle(
                &id,
                &UserCommand::VerifyEmail {
                    presented_hash,
                    now: chrono::Utc::now(),
                },
                &ctx(actor.to_string()),
            )
            .await
            .map_err(|e| match e {
                CommandError::InvalidArgument(_) | CommandError::NotFound(_) => invalid_token(),
                e => e.into(),
            })?;
        Ok(Response::new(UserResult {
            user_id: o.stream_id,
            version: o.version,
        }))
    }
}
