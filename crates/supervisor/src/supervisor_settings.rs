//! The supervisor's own settings (claim 11): retention, the default retry policy, upload limits and the
//! webhook policy. Versioned in the same registry as the fax servers' settings (target `supervisor`),
//! changed only with the competence `change_supervisor_settings`, and applied at once: the running parts
//! read them through `Live`.

use crate::config::Config;
use crate::egress::{AllowList, Network};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::sync::RwLock;
use std::time::Duration;
use utoipa::ToSchema;

/// The registry target of the supervisor's settings.
pub const TARGET: &str = "supervisor";

/// How long things are kept, in days; 0 keeps them forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub finished_jobs_days: u32,
    pub inbound_faxes_days: u32,
    /// Uploaded documents no kept job or fax refers to.
    pub documents_days: u32,
    /// Events for SSE resumption and webhook delivery logs.
    pub events_days: u32,
    pub audit_days: u32,
}

/// Retries of recipient faults (busy, no answer), as HylaFAX operators know them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultRetry {
    /// Waits before the 2nd, 3rd, ... try; the last repeats.
    pub schedule_secs: Vec<u64>,
    pub max_tries: u32,
    pub kill_secs: u64,
    /// Moves to another fax server after fax-server faults before the job fails.
    pub max_failovers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Uploads {
    /// At most the server's configured ceiling (`max_upload_bytes` in the configuration file).
    pub max_upload_bytes: u64,
    /// Pages in one job, all documents together.
    pub max_pages_per_job: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPolicy {
    /// Deliveries tried at most this many times (with growing back-off).
    pub max_attempts: u32,
    /// Refuse plain `http://` webhook URLs except to loopback.
    pub require_https: bool,
    pub max_per_client: u32,
    /// Networks webhooks may reach besides public addresses (CIDR, e.g. `10.20.0.0/16`, or one address);
    /// loopback, private, link-local and other internal addresses are refused unless listed here.
    /// To let webhooks reach this machine:
    /// `faxhub settings set supervisor 'webhooks.allowed_networks=["127.0.0.0/8","::1"]'`.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

impl WebhookPolicy {
    /// The allow-list in force; entries were checked when the settings were registered.
    pub fn allow_list(&self) -> AllowList {
        AllowList::new(
            self.allowed_networks
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        )
    }
}

/// Sign-in sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPolicy {
    /// How long a token from a password sign-in (`POST /v1/sessions`) stays valid: 60 seconds to 90 days.
    pub login_token_ttl_secs: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            login_token_ttl_secs: 12 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    pub retention: Retention,
    pub retry: DefaultRetry,
    pub uploads: Uploads,
    pub webhooks: WebhookPolicy,
    /// Absent from versions registered before it existed: the default applies.
    #[serde(default)]
    pub sessions: SessionPolicy,
}

impl SupervisorSettings {
    /// The settings before any version is registered: the configuration file's values.
    pub fn from_config(c: &Config) -> Self {
        Self {
            retention: Retention {
                finished_jobs_days: 0,
                inbound_faxes_days: 0,
                documents_days: 0,
                events_days: 30,
                audit_days: 0,
            },
            retry: DefaultRetry {
                schedule_secs: c.retry.schedule_secs.clone(),
                max_tries: c.retry.default_max_tries,
                kill_secs: c.retry.default_kill_secs,
                max_failovers: c.retry.max_failovers,
            },
            uploads: Uploads {
                max_upload_bytes: c.max_upload_bytes,
                max_pages_per_job: 1000,
            },
            webhooks: WebhookPolicy {
                max_attempts: 8,
                require_https: false,
                max_per_client: 20,
                allowed_networks: Vec::new(),
            },
            sessions: SessionPolicy::default(),
        }
    }

    /// Checks every field against what the supervisor can honour; the error names the field.
    pub fn validate(&self, config: &Config) -> Result<(), Error> {
        let bad = |field: &str, msg: &str| Err(Error::field(field, msg));
        let r = &self.retention;
        for (field, days) in [
            ("retention.finished_jobs_days", r.finished_jobs_days),
            ("retention.inbound_faxes_days", r.inbound_faxes_days),
            ("retention.documents_days", r.documents_days),
            ("retention.events_days", r.events_days),
            ("retention.audit_days", r.audit_days),
        ] {
            if days > 36_500 {
                return bad(field, "at most 36500 days (0 keeps forever)");
            }
        }
        if self.retry.schedule_secs.is_empty() || self.retry.schedule_secs.len() > 20 {
            return bad("retry.schedule_secs", "give 1 to 20 waits");
        }
        if self
            .retry
            .schedule_secs
            .iter()
            .any(|s| *s == 0 || *s > 86_400)
        {
            return bad("retry.schedule_secs", "each wait is 1 to 86400 seconds");
        }
        if !(1..=100).contains(&self.retry.max_tries) {
            return bad("retry.max_tries", "must be 1 to 100");
        }
        if !(60..=7 * 86_400).contains(&self.retry.kill_secs) {
            return bad("retry.kill_secs", "must be 60 seconds to 7 days");
        }
        if self.retry.max_failovers > 50 {
            return bad("retry.max_failovers", "must be 0 to 50");
        }
        if self.uploads.max_upload_bytes < 1024
            || self.uploads.max_upload_bytes > config.max_upload_bytes
        {
            let msg = format!(
                "must be 1024 bytes to the server's ceiling of {} bytes",
                config.max_upload_bytes
            );
            return Err(Error::field("uploads.max_upload_bytes", msg));
        }
        if !(1..=10_000).contains(&self.uploads.max_pages_per_job) {
            return bad("uploads.max_pages_per_job", "must be 1 to 10000");
        }
        if !(1..=20).contains(&self.webhooks.max_attempts) {
            return bad("webhooks.max_attempts", "must be 1 to 20");
        }
        if !(1..=1000).contains(&self.webhooks.max_per_client) {
            return bad("webhooks.max_per_client", "must be 1 to 1000");
        }
        if !(60..=90 * 86_400).contains(&self.sessions.login_token_ttl_secs) {
            return bad(
                "sessions.login_token_ttl_secs",
                "must be 60 seconds to 90 days",
            );
        }
        if self.webhooks.allowed_networks.len() > 100 {
            return bad("webhooks.allowed_networks", "at most 100 networks");
        }
        for (i, n) in self.webhooks.allowed_networks.iter().enumerate() {
            if let Err(e) = n.parse::<Network>() {
                return Err(Error::field(&format!("webhooks.allowed_networks[{i}]"), e));
            }
        }
        Ok(())
    }

    /// The wait before the next try after this many recipient faults.
    pub fn retry_delay(&self, recipient_faults: u32) -> Duration {
        let i = usize::try_from(recipient_faults.saturating_sub(1)).unwrap_or(usize::MAX);
        let s = &self.retry.schedule_secs;
        Duration::from_secs(s.get(i).or(s.last()).copied().unwrap_or(300))
    }
}

/// The settings in force, shared by every part of the running supervisor.
#[derive(Debug)]
pub struct Live {
    current: RwLock<SupervisorSettings>,
}

impl Live {
    pub fn new(s: SupervisorSettings) -> Self {
        Self {
            current: RwLock::new(s),
        }
    }

    pub fn get(&self) -> SupervisorSettings {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads one value without cloning the whole document.
    pub fn with<T>(&self, f: impl FnOnce(&SupervisorSettings) -> T) -> T {
        f(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, s: SupervisorSettings) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// The settings in force at start: the registered version, else the configuration file's values.
pub async fn load(store: &store::Store, config: &Config) -> anyhow::Result<SupervisorSettings> {
    let Some(state) = store.settings_state(TARGET).await? else {
        return Ok(SupervisorSettings::from_config(config));
    };
    let Some(v) = store
        .settings_version(TARGET, state.desired_version)
        .await?
    else {
        return Ok(SupervisorSettings::from_config(config));
    };
    Ok(serde_json::from_str(&v.document)?)
}

/// Registers the supervisor's settings as a new version (with its audit entry, in one transaction),
/// applied at once; returns the version.
pub async fn register(
    app: &crate::AppState,
    caller: &crate::access::Caller,
    next: SupervisorSettings,
    action: &str,
) -> Result<i64, Error> {
    next.validate(&app.config)?;
    let before = app.live.get();
    let document =
        serde_json::to_string(&next).map_err(|e| Error::internal("encoding settings", e))?;
    let mut tx = app.store.begin().await?;
    let version = tx.put_settings(TARGET, &document, &caller.id).await?;
    // The supervisor applies its own settings at once.
    tx.settings_result(TARGET, version, true, None).await?;
    let after = serde_json::json!({"version": version, "settings": next});
    tx.commit_audited(crate::audit::entry(
        Ok(caller),
        action,
        Some(TARGET),
        Some(&before),
        Some(&after),
    ))
    .await?;
    app.live.set(next);
    app.retention_wake.notify_one();
    tracing::info!(by = %caller.name, version, "supervisor settings registered");
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        let config = Config::default();
        let ok = SupervisorSettings::from_config(&config);
        ok.validate(&config).expect("defaults valid");
        let check = |change: fn(&mut SupervisorSettings), field: &str| {
            let mut s = ok.clone();
            change(&mut s);
            let e = s.validate(&config).expect_err("refused");
            assert!(
                matches!(&e, crate::error::Error::Invalid { field: f, .. } if f == field),
                "{e:?}"
            );
        };
        check(|s| s.retry.schedule_secs.clear(), "retry.schedule_secs");
        check(|s| s.retry.max_tries = 0, "retry.max_tries");
        check(
            |s| s.uploads.max_upload_bytes = u64::MAX,
            "uploads.max_upload_bytes",
        );
        check(|s| s.retention.audit_days = 100_000, "retention.audit_days");
        check(|s| s.webhooks.max_attempts = 99, "webhooks.max_attempts");
        check(
            |s| s.webhooks.allowed_networks = vec!["127.0.0.0/8".into(), "localhost".into()],
            "webhooks.allowed_networks[1]",
        );
        check(
            |s| s.webhooks.allowed_networks = vec!["10.0.0.1/8".into()],
            "webhooks.allowed_networks[0]",
        );
        let mut open = ok.clone();
        open.webhooks.allowed_networks = vec!["127.0.0.0/8".into(), "::1".into()];
        open.validate(&config).expect("loopback may be allowed");
        assert!(
            open.webhooks
                .allow_list()
                .check("127.0.0.1".parse().expect("ip"))
                .is_ok()
        );
        assert!(
            ok.webhooks
                .allow_list()
                .check("127.0.0.1".parse().expect("ip"))
                .is_err(),
            "internal addresses are closed by default"
        );
        // Versions registered before the allow-list existed still load.
        let old = r#"{"max_attempts": 8, "require_https": false, "max_per_client": 20}"#;
        let policy: WebhookPolicy = serde_json::from_str(old).expect("old version");
        assert!(policy.allowed_networks.is_empty());
        check(
            |s| s.sessions.login_token_ttl_secs = 0,
            "sessions.login_token_ttl_secs",
        );
        let before: SupervisorSettings = serde_json::from_value(serde_json::json!({
            "retention": ok.retention, "retry": ok.retry, "uploads": ok.uploads, "webhooks": ok.webhooks,
        }))
        .expect("a version registered before sessions existed still loads");
        assert_eq!(before.sessions, SessionPolicy::default());
        assert_eq!(
            ok.retry_delay(1),
            Duration::from_secs(config.retry.schedule_secs[0])
        );
        assert_eq!(
            ok.retry_delay(99),
            Duration::from_secs(*config.retry.schedule_secs.last().expect("last"))
        );
    }
}
