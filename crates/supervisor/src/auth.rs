//! Credentials: API tokens and fax server credentials are random 256-bit secrets stored as SHA-256 hashes
//! (their entropy makes a slow hash unnecessary and keeps per-request checks cheap); people's passwords are
//! stored as argon2id hashes. No secret is ever logged or stored in the clear.
//!
//! `Credentials` is what the running supervisor keeps about them: password hashing off the async runtime
//! and bounded in memory, the announcement of revocations to long-lived connections (event streams, fax
//! server links), and the throttled recording of when a token was last used.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, broadcast};

/// A new secret with a readable prefix: `fxh_…` for API tokens, `fxs_…` for fax server credentials,
/// `fxe_…` for enrollment tokens.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The longest password accepted; longer ones are refused at creation and can never match at sign-in.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A credential withdrawn while the supervisor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Token(String),
    /// Every token of the client (disabled or deleted).
    Client(String),
    FaxServer(String),
}

impl Revoked {
    /// Whether this revocation ends a connection opened with this token by this client.
    pub fn hits(&self, client_id: &str, token_id: &str) -> bool {
        match self {
            Revoked::Token(t) => t == token_id,
            Revoked::Client(c) => c == client_id,
            Revoked::FaxServer(_) => false,
        }
    }
}

/// How often a token's last use is written: a busy client must not turn every read into a write.
const LAST_USE_RESOLUTION_MS: i64 = 60_000;

#[derive(Debug)]
pub struct Credentials {
    revoked: broadcast::Sender<Revoked>,
    /// Bounds the argon2 computations running at once (each takes its memory cost, 19 MiB by default).
    hashing: Arc<Semaphore>,
    /// A hash of no password, verified against when there is no real hash to check, so that an unknown
    /// name costs the same time as a wrong password.
    dummy: Arc<str>,
    /// When each token's last use was last written.
    last_use: Mutex<HashMap<String, i64>>,
    pub sign_in: crate::signin::Guard,
}

impl Default for Credentials {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            revoked: broadcast::channel(256).0,
            hashing: Arc::new(Semaphore::new(cores.max(2))),
            dummy: hash_password("").unwrap_or_default().into(),
            last_use: Mutex::new(HashMap::new()),
            sign_in: crate::signin::Guard::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Credentials {
    /// Tells every long-lived connection that a credential was withdrawn.
    pub fn announce(&self, r: Revoked) {
        // No receiver is no error: nothing is connected with it.
        let _ = self.revoked.send(r);
    }

    /// Revocations announced from now on. Subscribe before checking the credential, so that one revoked
    /// in between is still seen.
    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.revoked.subscribe()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashError(e.to_string()))
    }

    /// Hashes a new password on the blocking pool.
    pub async fn hash_password(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || hash_password(&password))
            .await?
            .map_err(|e| HashError(e.to_string()))
    }

    /// Checks a password against a stored hash, or against a dummy hash when there is none (unknown name,
    /// application, disabled client) so that the answer takes as long either way. False for the dummy.
    pub async fn verify_password(&self, password: &str, hash: Option<&str>) -> bool {
        // Beyond the longest password accepted nothing can match; the first part is still hashed.
        let password: String = password.chars().take(MAX_PASSWORD_CHARS + 1).collect();
        let hash = hash.map(str::to_owned);
        let dummy = self.dummy.clone();
        self.blocking(move || {
            let too_long = password.chars().count() > MAX_PASSWORD_CHARS;
            match hash {
                Some(h) => verify_password(&password, &h) && !too_long,
                None => {
                    let _ = verify_password(&password, &dummy);
                    false
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Whether this use of a token should be written as its last use (at most once a minute per token).
    pub fn note_use(&self, token_id: &str, now: i64) -> bool {
        let mut seen = self.last_use.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(token_id) {
            Some(at) if now - at < LAST_USE_RESOLUTION_MS => false,
            _ => {
                if seen.len() >= 100_000 {
                    seen.retain(|_, at| now - *at < LAST_USE_RESOLUTION_MS);
                }
                seen.insert(token_id.to_owned(), now);
                true
            }
        }
    }
}

/// The token in an `Authorization: Bearer …` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_passwords() {
        let a = new_secret("fxh");
        assert!(a.starts_with("fxh_") && a.len() > 40);
        assert_ne!(a, new_secret("fxh"));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[tokio::test]
    async fn unknown_hashes_cost_an_argon2_check_and_never_match() {
        let c = Credentials::default();
        let h = c.hash_password("correct horse").await.expect("hash");
        assert!(c.verify_password("correct horse", Some(&h)).await);
        assert!(!c.verify_password("wrong", Some(&h)).await);
        assert!(!c.verify_password("", None).await);
        assert!(c.dummy.starts_with("$argon2id$"));
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        let h = hash_password(&long).expect("hash");
        assert!(
            !c.verify_password(&long, Some(&h)).await,
            "over the limit never matches"
        );
    }

    #[test]
    fn last_use_is_written_once_a_minute() {
        let c = Credentials::default();
        assert!(c.note_use("t1", 0));
        assert!(!c.note_use("t1", 59_999));
        assert!(c.note_use("t2", 59_999));
        assert!(c.note_use("t1", 60_000));
    }
}
