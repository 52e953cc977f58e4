//! Service-to-service trust: the internal credential every gRPC call to a command or query
//! service carries, minted by the caller (the BFF on behalf of the person it serves, the
//! checkout saga as itself) and verified by the service, which takes the actor from it and
//! never from a request field.
//!
//! The credential is a short-lived HS256 JWT in the `authorization` metadata
//! (`Bearer <token>`), signed with `INTERNAL_SECRET` (distinct from the user-facing
//! `JWT_SECRET`) and carrying its own issuer and audience, so a customer's access token is
//! never accepted as one even if both secrets were the same. The subject is the actor:
//! `user:<id>`, `admin:<id>`, `service:<name>` or `anonymous`.
//!
//! Clients use [`Credential`] (a tonic interceptor minting a fresh token per call); servers
//! put [`RequireCredential`] in front of every service but health and reflection (done once
//! in `support::serve_grpc_routes`), and handlers read the verified [`Actor`] with
//! [`actor_of`]. The threat model is in docs/architecture.md ("Service-to-service trust").

use domain::values::UserId;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::{Request, Status};

/// The `iss` of every internal credential.
pub const ISSUER: &str = "commerce-internal";
/// The `aud` of every internal credential.
pub const AUDIENCE: &str = "commerce-services";
/// Lifetime of a minted credential, in seconds (a fresh one is minted per call).
pub const CREDENTIAL_TTL_SECS: i64 = 60;
/// Clock skew tolerated between the minting and the verifying host, in seconds.
const LEEWAY_SECS: u64 = 5;
/// Longest credential looked at (a real one is about 300 bytes).
const MAX_TOKEN_BYTES: usize = 2048;

/// The service identity of the checkout saga.
pub const CHECKOUT_SAGA: &str = "checkout-saga";
/// The service identity of the cart service (reading prices from the catalogue).
pub const CART_SERVICE: &str = "cart-service";
/// The service identity of operator tools and benchmarks.
pub const OPERATOR: &str = "operator";

/// Who is calling, as the credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Someone not signed in, through the BFF.
    Anonymous,
    Customer(UserId),
    Admin(UserId),
    /// An internal caller (`checkout-saga`, `cart-service`, `operator`).
    Service(String),
}

impl Actor {
    /// Parses the actor string of a credential's subject.
    pub fn parse(s: &str) -> Option<Self> {
        let id = |rest: &str| UserId::parse(rest).ok().filter(|u| u.to_string() == rest);
        if s == "anonymous" {
            Some(Actor::Anonymous)
        } else if let Some(rest) = s.strip_prefix("user:") {
            id(rest).map(Actor::Customer)
        } else if let Some(rest) = s.strip_prefix("admin:") {
            id(rest).map(Actor::Admin)
        } else if let Some(rest) = s.strip_prefix("service:") {
            let ok = !rest.is_empty()
                && rest.len() <= 64
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            ok.then(|| Actor::Service(rest.to_owned()))
        } else {
            None
        }
    }

    /// The actor string events record: `user:<id>`, `admin:<id>`, `service:<name>`,
    /// `anonymous`.
    pub fn as_string(&self) -> String {
        self.to_string()
    }

    /// The signed-in person's id (customer or admin).
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::Customer(u) | Actor::Admin(u) => Some(*u),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Actor::Admin(_))
    }

    /// Is this the internal service `name`?
    pub fn is_service(&self, name: &str) -> bool {
        matches!(self, Actor::Service(s) if s == name)
    }

    pub fn is_any_service(&self) -> bool {
        matches!(self, Actor::Service(_))
    }

    /// May this actor see or act on what belongs to `owner` (a user id)? The owner, an
    /// admin, or an internal service.
    pub fn may_act_for(&self, owner: &str) -> bool {
        match self {
            Actor::Customer(u) => u.to_string() == owner.trim(),
            Actor::Admin(_) | Actor::Service(_) => true,
            Actor::Anonymous => false,
        }
    }

    /// `PERMISSION_DENIED` unless [`Actor::may_act_for`] the owner.
    pub fn require_owner(&self, owner: &str) -> Result<(), Status> {
        if self.may_act_for(owner) {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "this belongs to another customer",
            ))
        }
    }

    /// `PERMISSION_DENIED` unless an admin (or an internal service).
    pub fn require_admin(&self) -> Result<(), Status> {
        if self.is_admin() || self.is_any_service() {
            Ok(())
        } else {
            Err(Status::permission_denied("this needs the admin role"))
        }
    }

    /// `PERMISSION_DENIED` unless the internal service `name`.
    pub fn require_service(&self, name: &str) -> Result<(), Status> {
        if self.is_service(name) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "only the {name} may do this"
            )))
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::Customer(u) => write!(f, "user:{u}"),
            Actor::Admin(u) => write!(f, "admin:{u}"),
            Actor::Service(s) => write!(f, "service:{s}"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct InternalClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    exp: i64,
}

/// Why a credential was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("no internal credential")]
    Missing,
    #[error("invalid or expired internal credential")]
    Invalid,
    #[error("INTERNAL_SECRET must be at least 32 bytes")]
    WeakSecret,
    #[error("INTERNAL_SECRET must differ from JWT_SECRET")]
    SameAsJwtSecret,
}

/// The internal secret's settings, shared by every binary that calls or serves gRPC.
#[derive(Debug, Clone, clap::Args)]
pub struct InternalAuthArgs {
    /// The HS256 secret of internal credentials (at least 32 bytes; not the JWT secret).
    #[arg(long, env = "INTERNAL_SECRET", hide_env_values = true)]
    pub internal_secret: Option<String>,
}

impl InternalAuthArgs {
    /// The keys, or an error naming the missing variable.
    pub fn auth(&self) -> anyhow::Result<InternalAuth> {
        let secret = self.internal_secret.as_deref().ok_or_else(|| {
            anyhow::anyhow!("INTERNAL_SECRET is not set (the secret of service-to-service calls)")
        })?;
        if std::env::var("JWT_SECRET").is_ok_and(|j| j == secret) {
            return Err(CredentialError::SameAsJwtSecret.into());
        }
        Ok(InternalAuth::new(secret)?)
    }
}

/// Mints and verifies internal credentials. Cheap to clone.
#[derive(Clone)]
pub struct InternalAuth {
    keys: Arc<(EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for InternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalAuth(..)")
    }
}

impl InternalAuth {
    pub fn new(secret: &str) -> Result<Self, CredentialError> {
        if secret.len() < 32 {
            return Err(CredentialError::WeakSecret);
        }
        Ok(Self {
            keys: Arc::new((
                EncodingKey::from_secret(secret.as_bytes()),
                DecodingKey::from_secret(secret.as_bytes()),
            )),
        })
    }

    /// A credential for `actor`, valid for [`CREDENTIAL_TTL_SECS`].
    pub fn mint(&self, actor: &Actor) -> Result<String, CredentialError> {
        let now = chrono::Utc::now().timestamp();
        let claims = InternalClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: actor.to_string(),
            iat: now,
            exp: now + CREDENTIAL_TTL_SECS,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.keys.0)
            .map_err(|_| CredentialError::Invalid)
    }

    /// Checks signature, algorithm, issuer, audience and expiry, and parses the actor.
    pub fn verify(&self, token: &str) -> Result<Actor, CredentialError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(CredentialError::Invalid);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<InternalClaims>(token, &self.keys.1, &v)
            .map_err(|_| CredentialError::Invalid)?
            .claims;
        if claims.exp - claims.iat > CREDENTIAL_TTL_SECS {
            return Err(CredentialError::Invalid);
        }
        Actor::parse(&claims.sub).ok_or(CredentialError::Invalid)
    }

    /// The verified actor of an `authorization` header value (`Bearer <token>`).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Actor, CredentialError> {
        let header = header.ok_or(CredentialError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(CredentialError::Invalid)?;
        self.verify(token.trim())
    }

    /// A client interceptor acting as `actor`.
    pub fn credential(&self, actor: Actor) -> Credential {
        Credential {
            auth: self.clone(),
            actor,
        }
    }
}

/// Client side: a tonic interceptor adding a freshly minted credential for one actor to
/// every call (`XClient::with_interceptor(channel, credential)`), and the caller's trace
/// context (`traceparent`, see [`crate::trace_context`]).
#[derive(Clone, Debug)]
pub struct Credential {
    auth: InternalAuth,
    actor: Actor,
}

impl Credential {
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The same keys acting as someone else.
    pub fn acting_as(&self, actor: Actor) -> Credential {
        self.auth.credential(actor)
    }
}

impl tonic::service::Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self
            .auth
            .mint(&self.actor)
            .map_err(|_| Status::internal("could not mint the internal credential"))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("could not mint the internal credential"))?;
        request.metadata_mut().insert("authorization", value);
        // The caller's span goes along, so the callee's span joins its trace.
        crate::trace_context::inject_metadata(request.metadata_mut());
        Ok(request)
    }
}

/// A channel whose calls carry a credential.
pub type AuthedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credential>;

/// The verified actor of a request, as [`RequireCredential`] put it there; `UNAUTHENTICATED`
/// when there is none (a service served without the layer refuses everything).
pub fn actor_of<T>(request: &Request<T>) -> Result<Actor, Status> {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(CredentialError::Missing.to_string()))
}

/// Paths served without a credential: the health protocol and reflection (v1 and v1alpha).
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Server side: a tower layer that verifies the credential of every call (but health and
/// reflection), answers `UNAUTHENTICATED` without one, and hands the [`Actor`] to the
/// handler in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequireCredential {
    auth: InternalAuth,
}

impl RequireCredential {
    pub fn new(auth: InternalAuth) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for RequireCredential {
    type Service = RequireCredentialService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireCredentialService {
            auth: self.auth.clone(),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequireCredentialService<S> {
    auth: InternalAuth,
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequireCredentialService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !is_public(request.uri().path()) {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match self.auth.verify_header(header) {
                Ok(actor) => {
                    request.extensions_mut().insert(actor);
                }
                Err(e) => {
                    metrics::counter!("internal_credential_refused_total").increment(1);
                    tracing::debug!(error = %e, path = request.uri().path(), "call refused");
                    let response = Status::unauthenticated(e.to_string()).into_http();
                    return Box::pin(async move { Ok(response) });
                }
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> InternalAuth {
        InternalAuth::new(&"s".repeat(32)).unwrap()
    }

    fn user() -> UserId {
        UserId::generate()
    }

    #[test]
    fn credentials_round_trip_every_actor() {
        let a = auth();
        let u = user();
        for actor in [
            Actor::Anonymous,
            Actor::Customer(u),
            Actor::Admin(u),
            Actor::Service(CHECKOUT_SAGA.into()),
        ] {
            let t = a.mint(&actor).unwrap();
            assert_eq!(a.verify(&t).unwrap(), actor);
            assert_eq!(
                a.verify_header(Some(&format!("Bearer {t}"))).unwrap(),
                actor
            );
        }
    }

    #[test]
    fn forged_tampered_and_foreign_credentials_fail() {
        let a = auth();
        let t = a.mint(&Actor::Customer(user())).unwrap();
        let other = InternalAuth::new(&"t".repeat(32)).unwrap();
        assert_eq!(other.verify(&t), Err(CredentialError::Invalid));
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(a.verify(&tampered), Err(CredentialError::Invalid));
        assert_eq!(a.verify("garbage"), Err(CredentialError::Invalid));
        assert_eq!(a.verify_header(None), Err(CredentialError::Missing));
        assert_eq!(a.verify_header(Some(&t)), Err(CredentialError::Invalid));
    }

    #[test]
    fn a_customer_access_token_is_not_a_credential_even_with_the_same_key() {
        // A user-facing access token signed with the very same secret: no iss/aud.
        let secret = "s".repeat(32);
        let jwt = crate::auth::Jwt::new(&crate::auth::JwtArgs {
            jwt_secret: secret,
            access_token_ttl: 60,
        })
        .unwrap();
        let access = jwt.issue(&user().to_string(), "admin", 0).unwrap();
        assert_eq!(auth().verify(&access), Err(CredentialError::Invalid));
    }

    #[test]
    fn expired_and_long_lived_credentials_fail() {
        let a = auth();
        let now = chrono::Utc::now().timestamp();
        let sign = |iat: i64, exp: i64, sub: &str| {
            let c = InternalClaims {
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                sub: sub.into(),
                iat,
                exp,
            };
            encode(&Header::new(Algorithm::HS256), &c, &a.keys.0).unwrap()
        };
        assert!(a.verify(&sign(now - 120, now - 60, "anonymous")).is_err());
        assert!(a.verify(&sign(now, now + 3600, "anonymous")).is_err());
        assert!(a.verify(&sign(now, now + 30, "root")).is_err());
        assert!(a.verify(&sign(now, now + 30, "user:not-a-uuid")).is_err());
        assert!(a.verify(&sign(now, now + 30, "anonymous")).is_ok());
    }

    #[test]
    fn ownership() {
        let u = user();
        let other = user().to_string();
        assert!(Actor::Customer(u).may_act_for(&u.to_string()));
        assert!(!Actor::Customer(u).may_act_for(&other));
        assert!(Actor::Admin(u).may_act_for(&other));
        assert!(!Actor::Anonymous.may_act_for(&other));
        assert!(Actor::Service(CHECKOUT_SAGA.into())
            .require_service(CHECKOUT_SAGA)
            .is_ok());
        assert!(Actor::Admin(u).require_service(CHECKOUT_SAGA).is_err());
        assert!(Actor::Customer(u).require_admin().is_err());
        assert!(InternalAuth::new("short").is_err());
    }
}
