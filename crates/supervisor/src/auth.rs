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
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Password checks that may wait for a hashing permit; beyond them a check is refused at once (503), so a
/// flood of sign-ins cannot queue a real user's behind thousands of guesses.
const MAX_HASHING_WAITERS: usize = 32;
/// What a refused check tells the caller to wait (`Retry-After`), seconds.
pub const BUSY_RETRY_SECS: u64 = 1;

#[derive(Debug)]
pub struct Credentials {
    revoked: broadcast::Sender<Revoked>,
    /// Bounds the argon2 computations running at once (each takes its memory cost, 19 MiB by default).
    hashing: Arc<Semaphore>,
    /// Checks waiting for a permit, and how many may.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// A hash of no password, verified against when there is no real hash to check, so that an unknown
    /// name costs the same time as a wrong password.
    dummy: Arc<str>,
    /// When each token's last use was last written.
    last_use: Mutex<HashMap<String, i64>>,
    pub sign_in: crate::signin::Guard,
}

impl Default for Credentials {
    fn default() -> Self {
        // Half the cores at most: argon2 must leave the rest to everything else the supervisor does.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::bounded((cores / 2).max(1), MAX_HASHING_WAITERS)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Every hashing permit is taken and enough checks already wait for one.
    #[error("too many password checks at once")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl From<HashError> for crate::error::Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => crate::error::Error::busy(
                "too many password checks at once; try again shortly",
                BUSY_RETRY_SECS,
            ),
            HashError::Failed(e) => crate::error::Error::internal("hashing a password", e),
        }
    }
}

/// Counts a check among the waiters while it waits (also when its request is dropped meanwhile).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Credentials {
    /// `permits` argon2 computations at once, `max_waiting` more waiting for one.
    pub fn bounded(permits: usize, max_waiting: usize) -> Self {
        Self {
            revoked: broadcast::channel(256).0,
            hashing: Arc::new(Semaphore::new(permits.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            dummy: hash_password("").unwrap_or_default().into(),
            last_use: Mutex::new(HashMap::new()),
            sign_in: crate::signin::Guard::default(),
        }
    }

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
        let closed = |e: tokio::sync::AcquireError| HashError::Failed(e.to_string());
        let _permit = match self.hashing.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(HashError::Failed("the hashing pool is closed".into()));
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashError::Busy);
                }
                let _waiting = Waiting(self.waiting.clone());
                self.hashing.clone().acquire_owned().await.map_err(closed)?
            }
        };
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes a new password on the blocking pool.
    pub async fn hash_password(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || hash_password(&password))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Checks a password against a stored hash, or against a dummy hash when there is none (unknown name,
    /// application, disabled client) so that the answer takes as long either way. False for the dummy;
    /// `Busy` without hashing when too many checks already wait.
    pub async fn verify_password(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, HashError> {
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
        let check = |p: &'static str, h: Option<String>| {
            let c = &c;
            async move { c.verify_password(p, h.as_deref()).await.expect("not busy") }
        };
        assert!(check("correct horse", Some(h.clone())).await);
        assert!(!check("wrong", Some(h)).await);
        assert!(!check("", None).await);
        assert!(c.dummy.starts_with("$argon2id$"));
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        let h = hash_password(&long).expect("hash");
        assert!(
            !c.verify_password(&long, Some(&h)).await.expect("not busy"),
            "over the limit never matches"
        );
    }

    #[tokio::test]
    async fn password_checks_beyond_the_waiting_bound_are_refused_at_once() {
        let c = Credentials::bounded(1, 2);
        let h = hash_password("correct horse").expect("hash");
        let checks: Vec<_> = (0..4)
            .map(|_| Box::pin(c.verify_password("correct horse", Some(&h))))
            .collect();
        // Polled in order: the first takes the permit, the next two wait, the fourth finds the queue full.
        let mut checks: Vec<_> = checks
            .into_iter()
            .map(|mut f| (futures::FutureExt::now_or_never(&mut f), f))
            .collect();
        let refused: Vec<usize> = checks
            .iter()
            .enumerate()
            .filter(|(_, (now, _))| matches!(now, Some(Err(HashError::Busy))))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            refused,
            [3],
            "only the fourth is refused, and before any hashing"
        );
        assert!(
            checks[..3].iter().all(|(now, _)| now.is_none()),
            "the others wait"
        );
        for (_, f) in checks.drain(..3) {
            assert!(f.await.expect("admitted"), "a waiting check runs in turn");
        }
        assert_eq!(c.waiting.load(Ordering::Acquire), 0);
        assert!(
            c.verify_password("correct horse", Some(&h))
                .await
                .expect("free again"),
            "the bound counts only those waiting now"
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
