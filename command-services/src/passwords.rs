//! Passwords: argon2id hashes (m = 19 MiB, t = 2, p = 1, the OWASP minimum, spelled out
//! rather than left to the crate's defaults), and a dummy check that makes a log-in for an
//! unknown account take as long as a wrong password. Refresh tokens (`<user_id>.<token_id>.
//! <secret>`) keep only their secret's SHA-256 ([`platform::auth::sha256_hex`]).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Params, Version};
use platform::auth::random_secret;
use std::sync::LazyLock;

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;

/// argon2id memory cost in KiB (19 MiB), iterations and lanes: OWASP's minimum.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

/// Hashing a password failed (bad parameters or an internal error of the hasher).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).map_err(|_| HashError)?;
    Ok(Argon2::new(
        Argon2Algorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

/// An argon2id hash (PHC string) of a password, with the parameters above.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!verify_against_dummy("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
