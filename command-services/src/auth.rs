//! Authentication primitives shared by the user service (which issues tokens) and the BFF
//! (which verifies them): HS256 JWT access tokens (issuer, audience and the account's session
//! version checked), argon2id password hashes (m = 19 MiB, t = 2, p = 1, the OWASP minimum,
//! spelled out rather than left to the crate's defaults), and refresh tokens of the form
//! `<user_id>.<token_id>.<secret>` whose secret is stored only as SHA-256.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Params, Version};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;

/// The `iss` of every access token, checked on verification.
pub const ISSUER: &str = "commerce-user-service";
/// The `aud` of every access token: the public API (the BFF).
pub const AUDIENCE: &str = "commerce-api";

/// argon2id memory cost in KiB (19 MiB), iterations and lanes: OWASP's minimum.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

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

fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).map_err(|_| AuthError::Hash)?;
    Ok(Argon2::new(
        Argon2Algorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

/// An argon2id hash (PHC string) of a password, with the parameters above.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// Checks a password against a PHC string (with the parameters the string names).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(a) = argon2() else { return false };
    PasswordHash::new(hash)
        .map(|h| a.verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash of a random password, made once with the same parameters as real ones: a log-in
/// for an unknown email is verified against it, so it takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password(&random_secret()).unwrap_or_default());

/// Spends the time of a password check and fails (for unknown or deleted accounts).
pub fn verify_against_dummy(password: &str) -> bool {
    verify_password(password, &DUMMY_HASH);
    false
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

    #[test]
    fn passwords_hash_with_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!verify_against_dummy("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
