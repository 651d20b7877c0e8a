//! Supervisor configuration: a TOML file, overridden by `FAXHUB_*` environment variables, overridden by
//! command-line flags (the binary applies those last).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Holds `faxhub.db`, `documents/`, the TLS certificate and the server key.
    pub data_dir: PathBuf,
    /// Plain HTTP listener; meant for loopback (development, a local reverse proxy).
    pub http_listen: Option<SocketAddr>,
    /// HTTPS listener (REST API and fax server links).
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain and key; when absent and HTTPS is on, a self-signed pair is made in `data_dir`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest document upload, bytes.
    pub max_upload_bytes: u64,
    /// Memory the checks of uploads may take at once (decoding pictures and TIFF pages), MiB; a check
    /// that needs more runs alone. They run one per core, off the async runtime.
    pub check_memory_mib: u64,
    pub dial: DialConfig,
    pub retry: RetryConfig,
    pub deadlines: DeadlineConfig,
    /// Name of the bootstrap administrator made on first start.
    pub bootstrap_admin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialConfig {
    /// Country code for national numbers, without '+'.
    pub country_code: String,
    /// Prefix that starts an international number in local dial strings ("00", "011").
    pub international_prefix: String,
    /// Trunk prefix dropped from national numbers ("0" in most of Europe, "1" in NANP, "" for none).
    pub national_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the n-th retry after a recipient fault (busy, no answer...); the last value repeats.
    pub schedule_secs: Vec<u64>,
    pub default_max_tries: u32,
    /// Default time after submission at which an unsent job is given up.
    pub default_kill_secs: u64,
    /// How many times a job may move on after fax-server faults before it fails.
    pub max_failovers: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlineConfig {
    /// Offer sent, acceptance awaited.
    pub offered_secs: u64,
    /// Accepted, preparing or dialling.
    pub dialling_secs: u64,
    /// Negotiating or transmitting, renewed by each progress report (per page).
    pub transmitting_secs: u64,
    /// After a deadline passes with the fax server connected, how long its answer to a query is awaited.
    pub query_secs: u64,
    /// After a fax server's link drops, how long its attempts wait for it to come back.
    pub link_grace_secs: u64,
    pub heartbeat_secs: u64,
    /// Longest an attempt may stay open, whatever its fax server reports; then it is cancelled and
    /// counted as a fax-server fault.
    pub max_attempt_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/faxhub"),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8480))),
            https_listen: None,
            tls_cert: None,
            tls_key: None,
            max_upload_bytes: 50 * 1024 * 1024,
            check_memory_mib: 512,
            dial: DialConfig::default(),
            retry: RetryConfig::default(),
            deadlines: DeadlineConfig::default(),
            bootstrap_admin: "admin".into(),
        }
    }
}

impl Default for DialConfig {
    fn default() -> Self {
        Self {
            country_code: "1".into(),
            international_prefix: "011".into(),
            national_prefix: "1".into(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        // HylaFAX's habit: a few minutes between tries, growing.
        Self {
            schedule_secs: vec![180, 300, 600, 900],
            default_max_tries: 6,
            default_kill_secs: 3 * 3600,
            max_failovers: 5,
        }
    }
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        Self {
            offered_secs: 15,
            dialling_secs: 120,
            transmitting_secs: 300,
            query_secs: 15,
            link_grace_secs: 60,
            heartbeat_secs: 10,
            max_attempt_secs: 3 * 3600,
        }
    }
}

impl DeadlineConfig {
    pub fn for_phase(&self, phase: &str) -> Duration {
        Duration::from_secs(match phase {
            "offered" => self.offered_secs,
            "negotiating" | "transmitting" | "finished" => self.transmitting_secs,
            _ => self.dialling_secs,
        })
    }
}

impl RetryConfig {
    pub fn delay_after(&self, recipient_faults: u32) -> Duration {
        let i = usize::try_from(recipient_faults.saturating_sub(1)).unwrap_or(usize::MAX);
        let secs = self
            .schedule_secs
            .get(i)
            .or(self.schedule_secs.last())
            .copied()
            .unwrap_or(300);
        Duration::from_secs(secs)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name} is invalid: {message}")]
    Env { name: String, message: String },
}

impl Config {
    /// Reads the TOML file (when given) and applies `FAXHUB_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn addr(name: &str, v: String) -> Result<Option<SocketAddr>, ConfigError> {
            if v.is_empty() || v == "off" {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                    name: name.into(),
                    message: format!("{v:?} is not a socket address: {e}"),
                })
        }
        if let Some(v) = get("FAXHUB_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("FAXHUB_HTTP_LISTEN") {
            self.http_listen = addr("FAXHUB_HTTP_LISTEN", v)?;
        }
        if let Some(v) = get("FAXHUB_HTTPS_LISTEN") {
            self.https_listen = addr("FAXHUB_HTTPS_LISTEN", v)?;
        }
        if let Some(v) = get("FAXHUB_MAX_UPLOAD_BYTES") {
            self.max_upload_bytes = v.parse().map_err(|_| ConfigError::Env {
                name: "FAXHUB_MAX_UPLOAD_BYTES".into(),
                message: format!("{v:?} is not a byte count"),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_names_bad_values() {
        let mut c: Config =
            toml::from_str("http_listen = \"127.0.0.1:1\"\n[retry]\nschedule_secs = [1, 2]")
                .expect("toml");
        c.apply_env(|n| (n == "FAXHUB_HTTP_LISTEN").then(|| "127.0.0.1:2".to_string()))
            .expect("env");
        assert_eq!(c.http_listen, Some("127.0.0.1:2".parse().expect("addr")));
        assert_eq!(c.retry.delay_after(1), Duration::from_secs(1));
        assert_eq!(c.retry.delay_after(5), Duration::from_secs(2));
        let err = c
            .apply_env(|n| (n == "FAXHUB_HTTPS_LISTEN").then(|| "nope".to_string()))
            .expect_err("bad");
        assert!(err.to_string().contains("FAXHUB_HTTPS_LISTEN"), "{err}");
        assert!(
            toml::from_str::<Config>("unknown_key = 1").is_err(),
            "unknown keys are errors"
        );
    }
}
