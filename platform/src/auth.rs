//! Access tokens, verified by the BFF and issued by the user service: HS256 JWTs whose
//! issuer, audience and the account's session version are checked; and the hex SHA-256 and
//! random secrets both sides use for refresh tokens and idempotency digests.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `iss` of every access token, checked on verification.
pub const ISSUER: &str = "commerce-user-service";
/// The `aud` of every access token: the public API (the BFF).
pub const AUDIENCE: &str = "commerce-api";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// `customer` or `admin`.
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    /// Who issued it ([`ISSUER`]).
    #[serde(default)]
    pub iss: String,
    /// Who it is for ([`AUDIENCE`]).
    #[serde(default)]
    pub aud: String,
    /// The account's session version when the token was issued: a password change (or a
    /// deletion) raises it, and a token of an older version is refused.
    #[serde(default)]
    pub sv: u64,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// The actor string commands carry: `admin:<id>` or `user:<id>`.
    pub fn actor(&self) -> String {
        if self.is_admin() {
            format!("admin:{}", self.sub)
        } else {
            format!("user:{}", self.sub)
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// The HS256 secret shared by the user service and the BFF (at least 32 bytes).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: u64,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("the JWT secret must be at least 32 bytes")]
    WeakSecret,
}

impl Jwt {
    pub fn new(args: &JwtArgs) -> Result<Self, AuthError> {
        if args.jwt_secret.len() < 32 {
            return Err(AuthError::WeakSecret);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(args.jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(args.jwt_secret.as_bytes()),
            ttl_secs: args.access_token_ttl,
        })
    }

    pub fn issue(
        &self,
        user_id: &str,
        role: &str,
        session_version: u64,
    ) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + self.ttl_secs as i64,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sv: session_version,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// Checks signature, algorithm, expiry (no leeway), issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|_| AuthError::InvalidToken)
    }
}

/// Hex SHA-256, for refresh-token secrets.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random secret, hex.
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(ttl: u64) -> Jwt {
        Jwt::new(&JwtArgs {
            jwt_secret: "x".repeat(32),
            access_token_ttl: ttl,
        })
        .unwrap()
    }

    #[test]
    fn tokens_verify_and_tampering_fails() {
        let j = jwt(60);
        let t = j.issue("u1", "customer", 3).unwrap();
        assert_eq!(j.verify(&t).unwrap().sv, 3);
        assert_eq!(j.verify(&t).unwrap().sub, "u1");
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(j.verify(&tampered).is_err());
        let other = Jwt::new(&JwtArgs {
            jwt_secret: "y".repeat(32),
            access_token_ttl: 60,
        })
        .unwrap();
        assert!(other.verify(&t).is_err());
    }

    #[test]
    fn expired_tokens_fail() {
        let j = jwt(0);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "u".into(),
            role: "customer".into(),
            iat: now - 100,
            exp: now - 10,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sv: 0,
        };
        let t = encode(&Header::new(Algorithm::HS256), &claims, &j.encoding).unwrap();
        assert!(j.verify(&t).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked() {
        let j = jwt(60);
        let now = chrono::Utc::now().timestamp();
        for (iss, aud) in [
            ("someone-else", AUDIENCE),
            (ISSUER, "another-api"),
            ("", ""),
        ] {
            let claims = Claims {
                sub: "u".into(),
                role: "customer".into(),
                iat: now,
                exp: now + 60,
                iss: iss.into(),
                aud: aud.into(),
                sv: 0,
            };
            let t = encode(&Header::new(Algorithm::HS256), &claims, &j.encoding).unwrap();
            assert!(j.verify(&t).is_err(), "{iss} {aud}");
        }
    }
}
