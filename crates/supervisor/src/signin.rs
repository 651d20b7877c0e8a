//! Password sign-in (`POST /v1/sessions`): a person's name and password for an API token that expires
//! after the supervisor's `sessions.login_token_ttl_secs`.
//!
//! Guessing is throttled per name, per name and address, and per address: the first few failures are
//! free, every further one locks the key for twice as long as the one before, up to 15 minutes; a key
//! forgets its failures after an hour without one. An attempt counts as a failure from the moment it
//! starts, so concurrent guesses cannot all pass the check before the first of them fails. The lock of a
//! name alone does not hold at an address from which that name signed in within the last 30 days: a
//! stranger failing from elsewhere must not lock a person out of the places they use (the name's lock at
//! that address and the address's own lock still hold there). Proxy headers are not read: behind a
//! reverse proxy every sign-in comes from the proxy's address. An unknown name, an
//! application or a disabled client costs the same argon2 check as a wrong password. A refused name is
//! written verbatim to the audit log and the server log at most a few times per hour and only when it
//! looks like a name (people type passwords into the name field); otherwise a keyed fingerprint stands in.

use crate::AppState;
use crate::access::Caller;
use crate::audit;
use crate::auth::{self, hash_secret};
use crate::error::Error;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures free of delay, per name and per address (an address may hold several people).
const NAME_FREE: u32 = 5;
const ADDRESS_FREE: u32 = 20;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A name or address with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Times a refused name is written verbatim within `FORGET_AFTER`.
const VERBATIM_PER_NAME: u32 = 3;
/// Keys remembered per book; beyond it the oldest half is forgotten.
const MAX_KEYS: usize = 100_000;
/// How long a sign-in vouches for its address against the lock of its name.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Default)]
struct Record {
    failures: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
    verbatim: u32,
}

#[derive(Debug)]
struct Book {
    free: u32,
    records: HashMap<String, Record>,
}

impl Book {
    fn new(free: u32) -> Self {
        Self {
            free,
            records: HashMap::new(),
        }
    }

    fn fresh(&mut self, key: &str, now: Instant) -> &mut Record {
        if self.records.len() >= MAX_KEYS && !self.records.contains_key(key) {
            self.prune(now);
        }
        let r = self.records.entry(key.to_owned()).or_default();
        if r.last.is_some_and(|l| now.duration_since(l) > FORGET_AFTER) {
            *r = Record::default();
        }
        r
    }

    fn prune(&mut self, now: Instant) {
        self.records.retain(|_, r| {
            r.last
                .is_some_and(|l| now.duration_since(l) <= FORGET_AFTER)
                || r.locked_until.is_some_and(|u| u > now)
        });
        if self.records.len() >= MAX_KEYS {
            let mut lasts: Vec<Instant> = self.records.values().filter_map(|r| r.last).collect();
            lasts.sort_unstable();
            if let Some(median) = lasts.get(lasts.len() / 2).copied() {
                self.records
                    .retain(|_, r| r.last.is_some_and(|l| l > median));
            }
        }
    }

    fn locked(&self, key: &str, now: Instant) -> Option<Duration> {
        let r = self.records.get(key)?;
        if r.last.is_some_and(|l| now.duration_since(l) > FORGET_AFTER) {
            return None;
        }
        r.locked_until
            .filter(|u| *u > now)
            .map(|u| u.duration_since(now))
    }

    /// Counts a failure; the lock it starts, if any.
    fn count(&mut self, key: &str, now: Instant) -> Option<Duration> {
        let free = self.free;
        let r = self.fresh(key, now);
        r.failures = r.failures.saturating_add(1);
        r.last = Some(now);
        let beyond = r.failures.checked_sub(free + 1)?;
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << beyond.min(20))
            .min(MAX_DELAY);
        r.locked_until = Some(now + delay);
        Some(delay)
    }

    /// Takes back the failure counted for an attempt that succeeded, with the lock it started.
    fn undo(&mut self, key: &str, started_lock: bool) {
        if let Some(r) = self.records.get_mut(key) {
            r.failures = r.failures.saturating_sub(1);
            if started_lock {
                r.locked_until = None;
            }
        }
    }
}

/// (name, address) pairs that signed in recently, hashed; bounded like the books.
#[derive(Debug, Default)]
struct Known {
    since: HashMap<String, Instant>,
}

impl Known {
    fn holds(&self, key: &str, now: Instant) -> bool {
        self.since
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) <= KNOWN_FOR)
    }

    fn insert(&mut self, key: &str, now: Instant) {
        if self.since.len() >= MAX_KEYS && !self.since.contains_key(key) {
            self.since
                .retain(|_, at| now.saturating_duration_since(*at) <= KNOWN_FOR);
            if self.since.len() >= MAX_KEYS {
                let mut ats: Vec<Instant> = self.since.values().copied().collect();
                ats.sort_unstable();
                if let Some(median) = ats.get(ats.len() / 2).copied() {
                    self.since.retain(|_, at| *at > median);
                }
            }
        }
        self.since.insert(key.to_owned(), now);
    }
}

#[derive(Debug)]
struct Books {
    names: Book,
    pairs: Book,
    addresses: Book,
    known: Known,
}

/// The sign-in throttle and the bound on verbatim names.
#[derive(Debug)]
pub struct Guard {
    books: Mutex<Books>,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            books: Mutex::new(Books {
                names: Book::new(NAME_FREE),
                pairs: Book::new(NAME_FREE),
                addresses: Book::new(ADDRESS_FREE),
                known: Known::default(),
            }),
        }
    }
}

/// A sign-in in progress, counted as a failure until it succeeds.
#[derive(Debug)]
pub struct Attempt {
    name: String,
    /// The name at this address (hashed), when the peer's address is given.
    pair: Option<String>,
    address: Option<String>,
    /// The name signed in from this address recently: the name's own lock does not hold here.
    known: bool,
    name_lock: Option<Duration>,
    pair_lock: Option<Duration>,
    address_lock: Option<Duration>,
}

impl Attempt {
    /// The lock this attempt started, if it fails.
    pub fn locks_for(&self) -> Option<Duration> {
        self.name_lock.max(self.pair_lock).max(self.address_lock)
    }
}

/// Addresses are throttled by host for IPv4 and by /64 for IPv6 (one subscriber's usual allocation).
pub(crate) fn address_key(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl Guard {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a sign-in, or answers how long the name or address must still wait.
    pub fn begin(
        &self,
        name: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let address = address.map(address_key);
        // Names are kept hashed: the books must not become a list of what people typed.
        let pair = address
            .as_deref()
            .map(|a| hash_secret(&format!("{name}\0{a}")));
        let name = hash_secret(name);
        let mut b = self.books();
        let known = pair.as_deref().is_some_and(|p| b.known.holds(p, now));
        let wait = [
            (!known).then(|| b.names.locked(&name, now)).flatten(),
            pair.as_deref().and_then(|p| b.pairs.locked(p, now)),
            address.as_deref().and_then(|a| b.addresses.locked(a, now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        // At a known address the name's failures count for the name there, not for the name everywhere.
        let name_lock = if known {
            None
        } else {
            b.names.count(&name, now)
        };
        let pair_lock = pair.as_deref().and_then(|p| b.pairs.count(p, now));
        let address_lock = address.as_deref().and_then(|a| b.addresses.count(a, now));
        Ok(Attempt {
            name,
            pair,
            address,
            known,
            name_lock,
            pair_lock,
            address_lock,
        })
    }

    /// The attempt succeeded: the name starts afresh at this address, which it vouches for from now on,
    /// and the address forgets this attempt. The name starts afresh everywhere only when its lock held
    /// here: a success at a known address says nothing about the failures from elsewhere.
    pub fn succeeded(&self, attempt: &Attempt, now: Instant) {
        let mut b = self.books();
        if !attempt.known {
            b.names.records.remove(&attempt.name);
        }
        if let Some(p) = &attempt.pair {
            b.pairs.records.remove(p);
            b.known.insert(p, now);
        }
        if let Some(a) = &attempt.address {
            b.addresses.undo(a, attempt.address_lock.is_some());
        }
    }

    /// The attempt was not tried (the password check was refused as busy): it is no failure.
    pub fn withdrawn(&self, attempt: &Attempt) {
        let mut b = self.books();
        if !attempt.known {
            b.names.undo(&attempt.name, attempt.name_lock.is_some());
        }
        if let Some(p) = &attempt.pair {
            b.pairs.undo(p, attempt.pair_lock.is_some());
        }
        if let Some(a) = &attempt.address {
            b.addresses.undo(a, attempt.address_lock.is_some());
        }
    }

    /// The attempt failed: whether its name may still be written verbatim.
    pub fn failed(&self, attempt: &Attempt) -> bool {
        let mut b = self.books();
        match b.names.records.get_mut(&attempt.name) {
            Some(r) if r.verbatim < VERBATIM_PER_NAME => {
                r.verbatim += 1;
                true
            }
            _ => false,
        }
    }
}

/// How a refused name appears in the logs: itself while it looks like a name and has not been written
/// too often, else a fingerprint keyed with the server key (the same name gives the same fingerprint, and
/// the fingerprint does not give the name back).
fn shown_name(server_key: &[u8; 32], name: &str, verbatim: bool) -> String {
    if verbatim && crate::clients::valid_name("name", name).is_ok() {
        return name.to_owned();
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(server_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"faxhub sign-in name\0");
    mac.update(name.as_bytes());
    format!(
        "(name withheld {})",
        hex::encode(&mac.finalize().into_bytes()[..6])
    )
}

/// A wait in whole seconds, rounded up (what `Retry-After` says).
pub fn wait_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// 429 for a name or address that must wait, with `Retry-After`.
pub fn too_many(wait: Duration) -> Error {
    Error::TooManyRequests {
        message: format!(
            "too many failed sign-ins for this name or address; try again in {} s",
            wait_secs(wait)
        ),
        retry_after_secs: wait_secs(wait),
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum SignInError {
    /// Wrong name or password (which one is not said).
    Refused,
    /// Too many failures for this name or address: try again after this long.
    Throttled(Duration),
    /// Too many password checks at once; nothing was tried.
    Busy,
    Internal(Error),
}

impl From<store::Error> for SignInError {
    fn from(e: store::Error) -> Self {
        SignInError::Internal(e.into())
    }
}

#[derive(Debug)]
pub struct SignedIn {
    pub token: String,
    pub token_id: String,
    pub client: store::Client,
    pub expires_at: i64,
}

/// Signs a person in: a new API token with the supervisor's session lifetime.
pub async fn sign_in(
    app: &AppState,
    name: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<SignedIn, SignInError> {
    let guard = &app.credentials.sign_in;
    let attempt = guard
        .begin(name, address, Instant::now())
        .map_err(SignInError::Throttled)?;
    let client = if crate::clients::valid_name("name", name).is_ok() {
        app.store.client_by_name(name).await?
    } else {
        None
    };
    let hash = client
        .as_ref()
        .filter(|c| !c.disabled)
        .and_then(|c| c.password_hash.as_deref());
    let ok = match app.credentials.verify_password(password, hash).await {
        Ok(ok) => ok,
        Err(auth::HashError::Busy) => {
            guard.withdrawn(&attempt);
            return Err(SignInError::Busy);
        }
        Err(e) => {
            // A check that failed to run tried nothing either.
            guard.withdrawn(&attempt);
            return Err(SignInError::Internal(e.into()));
        }
    };
    let client = match client {
        Some(c) if ok => c,
        known => {
            let shown = shown_name(&app.server_key, name, guard.failed(&attempt));
            let locked = attempt.locks_for();
            tracing::info!(name = %shown, locked_for_secs = locked.map(|d| d.as_secs()), "sign-in refused");
            let after = locked.map(|d| serde_json::json!({"locked_for_secs": d.as_secs()}));
            audit::record(
                app,
                Err(&shown),
                "session.refused",
                known.as_ref().map(|c| c.id.as_str()),
                audit::NONE,
                after.as_ref(),
            )
            .await;
            return Err(SignInError::Refused);
        }
    };
    guard.succeeded(&attempt, Instant::now());
    let ttl = app.live.with(|s| s.sessions.login_token_ttl_secs);
    let expires_at = store::now_ms().saturating_add(
        i64::try_from(ttl)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    );
    let token = auth::new_secret("fxh");
    let mut tx = app.store.begin().await?;
    let issued = tx
        .create_token(store::NewToken {
            client_id: &client.id,
            token_hash: &hash_secret(&token),
            label: "session",
            expires_at: Some(expires_at),
            created_by: None,
            session: true,
        })
        .await?;
    let caller = Caller {
        id: client.id.clone(),
        name: client.name.clone(),
        token_id: issued.id.clone(),
        token_expires_at: issued.expires_at,
        token_session: true,
    };
    let after = serde_json::json!({"token_id": issued.id, "expires_at": expires_at});
    tx.commit_audited(audit::entry(
        Ok(&caller),
        "session.created",
        Some(&client.id),
        audit::NONE,
        Some(&after),
    ))
    .await?;
    tracing::info!(client = %client.name, "signed in");
    Ok(SignedIn {
        token,
        token_id: issued.id,
        client,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_lock_for_growing_times() {
        let g = Guard::default();
        let t0 = Instant::now();
        let addr: Option<IpAddr> = "192.0.2.1".parse().ok();
        for i in 0..NAME_FREE {
            let a = g.begin("ann", addr, t0).expect("free");
            assert_eq!(a.locks_for(), None, "failure {i} is free");
            g.failed(&a);
        }
        let a = g.begin("ann", addr, t0).expect("the next one is tried");
        assert_eq!(a.locks_for(), Some(FIRST_DELAY));
        assert_eq!(g.begin("ann", addr, t0).err(), Some(FIRST_DELAY));
        assert!(
            g.begin("bob", addr, t0).is_ok(),
            "another name is not locked"
        );
        let t1 = t0 + FIRST_DELAY;
        let a = g.begin("ann", addr, t1).expect("after the wait");
        assert_eq!(a.locks_for(), Some(2 * FIRST_DELAY), "each lock doubles");
        let t2 = t1 + 2 * FIRST_DELAY;
        let a = g.begin("ann", addr, t2).expect("after the wait");
        assert_eq!(a.locks_for(), Some(4 * FIRST_DELAY));
        g.succeeded(&a, t2);
        let a = g
            .begin("ann", addr, t2)
            .expect("a success starts the name afresh");
        assert_eq!(a.locks_for(), None);
        let mut b = Book::new(NAME_FREE);
        let longest = (0..50).filter_map(|_| b.count("x", t0)).last();
        assert_eq!(longest, Some(MAX_DELAY), "the longest lock is bounded");
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(
            b.count("x", later),
            None,
            "an hour without failures forgets them"
        );
    }

    #[test]
    fn an_address_is_locked_after_many_names() {
        let g = Guard::default();
        let t0 = Instant::now();
        let addr: Option<IpAddr> = "2001:db8::1".parse().ok();
        let neighbour: Option<IpAddr> = "2001:db8::2".parse().ok();
        let elsewhere: Option<IpAddr> = "2001:db8:1::1".parse().ok();
        for i in 0..=ADDRESS_FREE {
            let a = g
                .begin(&format!("name{i}"), addr, t0)
                .expect("distinct names");
            g.failed(&a);
        }
        assert_eq!(g.begin("new", addr, t0).err(), Some(FIRST_DELAY));
        assert_eq!(
            g.begin("new", neighbour, t0).err(),
            Some(FIRST_DELAY),
            "same /64"
        );
        assert!(g.begin("new", elsewhere, t0).is_ok());
    }

    #[test]
    fn a_success_takes_back_only_its_own_count() {
        let g = Guard::default();
        let t0 = Instant::now();
        let addr: Option<IpAddr> = "198.51.100.7".parse().ok();
        for i in 0..ADDRESS_FREE {
            let a = g.begin(&format!("n{i}"), addr, t0).expect("free");
            g.failed(&a);
        }
        let a = g.begin("right", addr, t0).expect("begin");
        assert_eq!(a.locks_for(), Some(FIRST_DELAY));
        g.succeeded(&a, t0);
        assert!(
            g.begin("next", addr, t0).is_ok(),
            "the lock it started is taken back"
        );
    }

    #[test]
    fn failures_from_elsewhere_do_not_lock_a_name_out_of_an_address_it_signed_in_from() {
        let g = Guard::default();
        let t0 = Instant::now();
        let (a, b, c): (Option<IpAddr>, Option<IpAddr>, Option<IpAddr>) = (
            "192.0.2.1".parse().ok(),
            "198.51.100.2".parse().ok(),
            "2001:db8::1".parse().ok(),
        );
        let ok = g.begin("ann", b, t0).expect("first sign-in");
        g.succeeded(&ok, t0);
        // A stranger fails from another address as fast as the locks allow.
        let mut t = t0 + Duration::from_secs(1);
        for _ in 0..30 {
            let attempt = match g.begin("ann", a, t) {
                Ok(x) => x,
                Err(wait) => {
                    t += wait;
                    g.begin("ann", a, t).expect("after the wait")
                }
            };
            g.failed(&attempt);
        }
        assert!(
            g.begin("ann", a, t).is_err(),
            "the stranger's address is locked"
        );
        assert!(
            g.begin("ann", c, t).is_err(),
            "the name is locked everywhere else"
        );
        let back = g
            .begin("ann", b, t)
            .expect("not at the address ann signed in from");
        g.succeeded(&back, t);
        assert!(
            g.begin("ann", c, t).is_err(),
            "a success at a known address does not lift the lock elsewhere"
        );
        // At the known address the name is still throttled as a name there.
        for _ in 0..=NAME_FREE {
            let x = g.begin("ann", b, t).expect("free failures");
            g.failed(&x);
        }
        assert!(
            g.begin("ann", b, t).is_err(),
            "guessing at a known address is throttled too"
        );
        let later = t + KNOWN_FOR + Duration::from_secs(1);
        let mut t = later;
        for _ in 0..=NAME_FREE {
            let x = g.begin("ann", a, t).expect("forgotten after an hour");
            g.failed(&x);
            t += Duration::from_millis(1);
        }
        assert!(
            g.begin("ann", b, t).is_err(),
            "an address is known for 30 days after the last success"
        );
    }

    #[test]
    fn a_withdrawn_attempt_counts_nothing() {
        let g = Guard::default();
        let t0 = Instant::now();
        let addr: Option<IpAddr> = "192.0.2.9".parse().ok();
        for _ in 0..NAME_FREE {
            let a = g.begin("dan", addr, t0).expect("free");
            g.failed(&a);
        }
        for _ in 0..10 {
            let a = g
                .begin("dan", addr, t0)
                .expect("withdrawn attempts are free");
            g.withdrawn(&a);
        }
        let a = g.begin("dan", addr, t0).expect("still free");
        assert_eq!(
            a.locks_for(),
            Some(FIRST_DELAY),
            "the next failure is the first to lock"
        );
    }

    #[test]
    fn names_are_shown_a_few_times_and_only_when_they_look_like_names() {
        let g = Guard::default();
        let key = [3u8; 32];
        let t0 = Instant::now();
        let shown: Vec<String> = (0..5)
            .map(|_| {
                let a = g.begin("carol", None, t0).expect("begin");
                shown_name(&key, "carol", g.failed(&a))
            })
            .collect();
        assert_eq!(shown[..3], ["carol", "carol", "carol"]);
        assert!(shown[3].starts_with("(name withheld ") && !shown[3].contains("carol"));
        assert_eq!(shown[3], shown[4], "a fingerprint is stable");
        let password_like = shown_name(&key, "Tr0ub4dor&3 horse", true);
        assert!(!password_like.contains("Tr0ub4dor"), "{password_like}");
        assert_ne!(shown_name(&[4u8; 32], "carol", false), shown[3], "keyed");
    }

    #[test]
    fn the_books_stay_bounded() {
        let mut b = Book::new(NAME_FREE);
        let t0 = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            b.count(&i.to_string(), t0 + Duration::from_millis(i as u64));
        }
        assert!(b.records.len() <= MAX_KEYS, "{}", b.records.len());
    }
}
