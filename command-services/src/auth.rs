//! Authentication primitives shared by the user service (which issues tokens) and the BFF
//! (which verifies them): HS256 JWT access tokens, argon2id password hashes, and refresh
//! tokens of the form `<user_id>.<token_id>.<secret>` whose secret is stored only as SHA-256.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// `customer` or `admin`.
    pub role: String,
    pub iat: i64,
    pub exp: i64,
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
    #[error("password hashing failed")]
    Hash,
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

    pub fn issue(&self, user_id: &str, role: &str) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// Checks signature, algorithm and expiry (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|_| AuthError::InvalidToken)
    }
}

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
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
        let t = j.issue("u1", "customer").unwrap();
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
        };
        let t = encode(&Header::new(Algorithm::HS256), &claims, &j.encoding).unwrap();
        assert!(j.verify(&t).is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
