//! The supervising server: every client and fax server communicates through it.
//!
//! Resources each have a module holding their rules (`dispatch` for sending, `inbound` for receiving,
//! `access` for groupings); the faces (`api` for REST and SSE, `link` for fax servers) are thin and call
//! the same functions. Architecture invariant: the supervisor never links a telephony crate and knows no
//! SQL (that is the `store` crate's).

pub mod access;
pub mod api;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod competence;
pub mod config;
pub mod dispatch;
pub mod docstore;
pub mod documents;
pub mod egress;
pub mod error;
pub mod events;
pub mod fax_servers;
pub mod groupings;
pub mod inbound;
pub mod inbound_rules;
pub mod intake;
pub mod jobs;
pub mod link;
pub mod metrics;
pub mod numbers;
pub mod phonebook;
pub mod retention;
pub mod server;
pub mod settings;
pub mod signin;
pub mod slots;
pub mod supervisor_settings;
pub mod tls;
pub mod webhooks;

use std::sync::Arc;

pub use config::Config;
pub use server::{BOOTSTRAP_FILE, LOCK_FILE, Running, Supervisor};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: store::Store,
    pub config: Arc<Config>,
    pub access: Arc<access::Access>,
    pub dispatcher: Arc<dispatch::Dispatcher>,
    /// Told whenever events are committed; SSE streams and webhook delivery listen.
    pub events: events::EventBus,
    pub docs: docstore::DocStore,
    pub metrics: Arc<metrics::Metrics>,
    /// Key for deriving webhook signing secrets; never leaves the process.
    pub server_key: Arc<[u8; 32]>,
    pub webhook_wake: Arc<tokio::sync::Notify>,
    /// Webhook deliveries under way, one lane per webhook.
    pub webhook_lanes: Arc<webhooks::Lanes>,
    pub intake: intake::Intake,
    pub sealer: settings::Sealer,
    pub phonebook: Arc<phonebook::Phonebook>,
    /// The supervisor's own settings in force.
    pub live: Arc<supervisor_settings::Live>,
    /// Wakes the retention worker after its settings change.
    pub retention_wake: Arc<tokio::sync::Notify>,
    /// Password hashing, the sign-in throttle, and revocations told to long-lived connections.
    pub credentials: Arc<auth::Credentials>,
    /// Event streams open per client.
    pub streams: api::events::OpenStreams,
    /// Cancelled when the supervisor is stopping: listeners stop accepting, event streams end, fax server
    /// links say goodbye.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
