//! Supervisor configuration: a TOML file, overridden by `FAXHUB_*` environment variables, overridden by
//! command-line flags (the binary applies those last).
//!
//! Every key can be set from the environment: `FAXHUB_` and the key in capitals, a double underscore
//! between a section and its key (`FAXHUB_HTTPS_LISTEN=0.0.0.0:8443`, `FAXHUB_RETRY__SCHEDULE_SECS=[60,
//! 300]`, `FAXHUB_DIAL__COUNTRY_CODE=49`). A value is taken as the key's kind: text as it is, numbers,
//! `true`/`false` and lists in TOML syntax. Variables naming no key of a known section are errors;
//! `FAXHUB_*` variables outside the configuration (`FAXHUB_LOG`, the client's and the fax server's) are
//! left to their owners.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Holds `faxhub.db`, `documents/`, the TLS certificate and the server key.
    pub data_dir: PathBuf,
    /// Plain HTTP listener (`"off"` for none); loopback only unless `allow_plain_http` (tools on this
    /// machine, a local reverse proxy).
    #[serde(deserialize_with = "listen")]
    pub http_listen: Option<SocketAddr>,
    /// HTTPS listener (REST API and fax server links; `"off"` for none). On by default.
    #[serde(deserialize_with = "listen")]
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain and key; when absent and HTTPS is on, a self-signed pair is made in
    /// `data_dir/tls` (valid 397 days, renewed with the same key at a start within 30 days of its end).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Names the self-signed certificate is made for besides `localhost`, `127.0.0.1`, `::1` and this
    /// machine's host name (the names fax servers and clients connect to). Delete `data_dir/tls` to make
    /// it again after changing them.
    pub tls_names: Vec<String>,
    /// Lets `http_listen` (and `metrics_listen`) be an address other than loopback: tokens and passwords
    /// then cross the network in the clear. The supervisor warns in its log when it does.
    pub allow_plain_http: bool,
    /// Serves `/metrics` on this separate plain HTTP listener (a management network, or loopback for a
    /// local scraper) and no longer on the API listeners. Loopback only unless `allow_plain_http`.
    #[serde(deserialize_with = "listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token `/metrics` requires (`Authorization: Bearer <token>`), wherever it is served; at least
    /// 16 characters. With neither this nor `metrics_listen`, `/metrics` is off.
    pub metrics_token: Option<MetricsToken>,
    /// Largest document upload, bytes.
    pub max_upload_bytes: u64,
    /// Memory the checks of uploads may take at once (decoding pictures and TIFF pages), MiB; a check
    /// that needs more runs alone. They run one per core, off the async runtime.
    pub check_memory_mib: u64,
    /// The ghostscript program that converts PostScript uploads to PDF (Debian package `ghostscript`);
    /// empty to refuse PostScript (415). Fax servers then render the PDF and need no ghostscript.
    pub ghostscript: String,
    pub connections: ConnectionConfig,
    pub dial: DialConfig,
    pub retry: RetryConfig,
    pub deadlines: DeadlineConfig,
    /// Name of the bootstrap administrator made on first start.
    pub bootstrap_admin: String,
}

/// Bounds on the connections of each listener, so that clients that connect and say nothing (or say it
/// one byte at a time) cannot hold the supervisor's file descriptors.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Connections open at once per listener; beyond it new ones wait in the kernel's backlog.
    pub max: usize,
    /// Connections open at once from one IPv4 address or IPv6 /64 on the HTTPS listener; beyond it new
    /// ones are closed at once. (The plain HTTP listener is for this machine and a local reverse proxy,
    /// whose connections all come from one address.)
    pub max_per_address: usize,
    /// Time a TLS handshake may take, seconds.
    pub handshake_secs: u64,
    /// Time an HTTP/1 request's header may take to arrive, seconds; also how long a kept-alive connection
    /// may stay idle between requests.
    pub header_secs: u64,
    /// HTTP/2: a ping after this long without a frame, seconds; a connection whose ping is not answered
    /// within as long again is closed.
    pub keep_alive_secs: u64,
    /// On SIGTERM or Ctrl-C, how long the requests under way may take to finish before the supervisor
    /// closes their connections and stops, seconds.
    pub shutdown_secs: u64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max: 4096,
            max_per_address: 256,
            handshake_secs: 10,
            header_secs: 10,
            keep_alive_secs: 30,
            shutdown_secs: 10,
        }
    }
}

impl ConnectionConfig {
    pub fn handshake(&self) -> Duration {
        Duration::from_secs(self.handshake_secs.max(1))
    }

    pub fn header(&self) -> Duration {
        Duration::from_secs(self.header_secs.max(1))
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs.max(1))
    }

    pub fn shutdown(&self) -> Duration {
        Duration::from_secs(self.shutdown_secs)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialConfig {
    /// Country code for national numbers, without '+'.
    pub country_code: String,
    /// Prefix that starts an international number in local dial strings ("00", "011").
    pub international_prefix: String,
    /// Trunk prefix dropped from national numbers ("0" in most of Europe, "1" in NANP, "" for none).
    pub national_prefix: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// After a fax server's link drops, how long its attempts wait for it to come back before they are
    /// shown in doubt.
    pub link_grace_secs: u64,
    pub heartbeat_secs: u64,
    /// Longest an attempt may stay open while its fax server is in touch, whatever it reports (but never
    /// less than its call limit and the link grace); then it is cancelled and counted as a fax-server
    /// fault.
    pub max_attempt_secs: u64,
    /// Part of every attempt's call limit: fetching and rendering the documents, ringing, and T.30's
    /// phase B.
    pub call_setup_secs: u64,
    /// Part of every attempt's call limit: the most bits one coded page may take. An A4 page of dense text
    /// at fine resolution codes to about 100–300 kbit; the default leaves room for halftone pictures.
    pub max_page_bits: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/faxhub"),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8480))),
            https_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            allow_plain_http: false,
            metrics_listen: None,
            metrics_token: None,
            max_upload_bytes: 50 * 1024 * 1024,
            check_memory_mib: 512,
            ghostscript: "gs".into(),
            connections: ConnectionConfig::default(),
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
            call_setup_secs: 180,
            max_page_bits: 2_000_000,
        }
    }
}

/// The slowest rate a T.30 sender falls back to (V.27 ter), whatever the highest rate its settings allow.
pub const SLOWEST_BIT_RATE: u64 = 2400;

impl DeadlineConfig {
    /// The longest an attempt of `pages` pages may take from the offer's arrival at its fax server to the
    /// end of its call: set-up plus every page at the slowest rate. The fax server hangs up when it is
    /// reached, so once a fax server has been silent for this long no call of the attempt can still be
    /// running, and the job may go to another fax server without being sent twice.
    pub fn call_limit(&self, pages: i64) -> Duration {
        let pages = u64::try_from(pages.max(1)).unwrap_or(1);
        let page_ms = self.max_page_bits.saturating_mul(1000) / SLOWEST_BIT_RATE;
        Duration::from_millis(
            self.call_setup_secs
                .saturating_mul(1000)
                .saturating_add(pages.saturating_mul(page_ms)),
        )
    }

    pub fn for_phase(&self, phase: protocol::Phase) -> Duration {
        use protocol::Phase;
        Duration::from_secs(match phase {
            Phase::Offered => self.offered_secs,
            Phase::Negotiating | Phase::Transmitting | Phase::Finished => self.transmitting_secs,
            Phase::Accepted | Phase::Preparing | Phase::Dialling => self.dialling_secs,
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
    #[error("{0}")]
    Transport(String),
}

/// The metrics bearer token; never shown by `Debug`, so it cannot reach a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct MetricsToken(String);

impl MetricsToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Compares in time independent of where the first difference is (both sides hashed first).
    pub fn matches(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(given.as_bytes())
    }
}

/// Only ever written as a placeholder: the token itself never leaves the configuration.
impl Serialize for MetricsToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("(set)")
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// A listen address, or `"off"` (or `""`) for none.
fn listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.is_empty() || text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| {
        format!("{text:?} is not a socket address like 127.0.0.1:8480, or \"off\": {e}")
    })
}

impl Config {
    /// Reads the TOML file (when given) and applies `FAXHUB_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let doc = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let parse = |source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                };
                // Checked as a whole first, for errors that name the line.
                toml::from_str::<Config>(&text).map_err(parse)?;
                let table: toml::Table = toml::from_str(&text).map_err(parse)?;
                serde_json::to_value(table).map_err(|e| ConfigError::Env {
                    name: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => serde_json::Value::Object(Default::default()),
        };
        Self::with_env(doc, std::env::vars())
    }

    /// `doc` (the file's keys) with the configuration keys among `vars` applied over it.
    fn with_env(
        mut doc: serde_json::Value,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let defaults = serde_json::to_value(Config::default()).map_err(|e| ConfigError::Env {
            name: "FAXHUB_*".into(),
            message: e.to_string(),
        })?;
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with("FAXHUB_"))
            .collect();
        vars.sort();
        for (name, text) in vars {
            let path: Vec<String> = name["FAXHUB_".len()..]
                .to_ascii_lowercase()
                .split("__")
                .map(str::to_owned)
                .collect();
            let env_error = |message: String| ConfigError::Env {
                name: name.clone(),
                message,
            };
            let Some(kind) = path
                .iter()
                .try_fold(&defaults, |v, key| v.get(key.as_str()))
            else {
                if path.len() > 1 && defaults.get(path[0].as_str()).is_some() {
                    return Err(env_error(format!(
                        "[{}] has no key {}",
                        path[0],
                        path[1..].join(".")
                    )));
                }
                // Not a configuration key: FAXHUB_LOG, or a variable of the client or the fax server.
                continue;
            };
            let value = env_value(&text, kind).map_err(env_error)?;
            set_path(&mut doc, &path, value);
            // Checked one variable at a time, so that an error names the variable.
            serde_json::from_value::<Config>(doc.clone()).map_err(|e| env_error(e.to_string()))?;
        }
        serde_json::from_value(doc).map_err(|e| ConfigError::Env {
            name: "FAXHUB_*".into(),
            message: e.to_string(),
        })
    }
}

/// An environment variable's text as a value of the kind its key's default has (text for keys without
/// a default: paths, addresses, tokens).
fn env_value(text: &str, kind: &serde_json::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    match kind {
        Value::String(_) | Value::Null => Ok(Value::String(text.to_owned())),
        Value::Bool(_) => match text {
            "1" | "true" | "yes" => Ok(Value::Bool(true)),
            "0" | "false" | "no" | "" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not true or false")),
        },
        _ => {
            let what = if kind.is_array() {
                "a list like [1, 2]"
            } else {
                "a number"
            };
            let table: toml::Table = toml::from_str(&format!("v = {text}"))
                .map_err(|_| format!("{text:?} is not {what}"))?;
            serde_json::to_value(&table["v"]).map_err(|e| e.to_string())
        }
    }
}

fn set_path(doc: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
    let mut at = doc;
    for key in &path[..path.len() - 1] {
        if !at
            .get(key.as_str())
            .is_some_and(serde_json::Value::is_object)
        {
            at[key.as_str()] = serde_json::Value::Object(Default::default());
        }
        at = &mut at[key.as_str()];
    }
    at[path[path.len() - 1].as_str()] = value;
}

impl Config {
    /// Checks the listeners: plain HTTP only on loopback unless `allow_plain_http` insists (then each
    /// such listener is returned as a warning for the log), a metrics token long enough to resist
    /// guessing, and some listener to serve on.
    pub fn check_transport(&self) -> Result<Vec<String>, ConfigError> {
        if self.http_listen.is_none() && self.https_listen.is_none() {
            return Err(ConfigError::Transport(
                "neither https_listen nor http_listen is set: the supervisor would serve nothing"
                    .into(),
            ));
        }
        let mut warnings = Vec::new();
        for (key, addr) in [
            ("http_listen", self.http_listen),
            ("metrics_listen", self.metrics_listen),
        ] {
            let Some(addr) = addr else { continue };
            if addr.ip().is_loopback() {
                continue;
            }
            if !self.allow_plain_http {
                return Err(ConfigError::Transport(format!(
                    "{key} {addr} is not a loopback address: plain HTTP would carry tokens and passwords in the clear; serve HTTPS (https_listen), or set allow_plain_http = true if a trusted network or proxy protects it"
                )));
            }
            warnings.push(format!(
                "{key} serves plain HTTP on {addr}, beyond loopback (allow_plain_http): tokens and passwords cross the network in the clear"
            ));
        }
        if let Some(t) = &self.metrics_token
            && t.0.chars().count() < 16
        {
            return Err(ConfigError::Transport(
                "metrics_token must be at least 16 characters".into(),
            ));
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(file: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(file).expect("toml");
        Config::with_env(
            serde_json::to_value(table).expect("json"),
            vars.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn env_overrides_file_and_names_bad_values() {
        let c = env(
            "http_listen = \"127.0.0.1:1\"\n[retry]\nschedule_secs = [1, 2]",
            &[
                ("FAXHUB_HTTP_LISTEN", "127.0.0.1:2"),
                ("FAXHUB_LOG", "debug"),
            ],
        )
        .expect("env");
        assert_eq!(c.http_listen, Some("127.0.0.1:2".parse().expect("addr")));
        assert_eq!(c.retry.delay_after(1), Duration::from_secs(1));
        assert_eq!(c.retry.delay_after(5), Duration::from_secs(2));
        for (name, value, says) in [
            ("FAXHUB_HTTPS_LISTEN", "nope", "socket address"),
            ("FAXHUB_CONNECTIONS__MAX", "many", "is not a number"),
            ("FAXHUB_RETRY__SCHEDULE_SECS", "30", "sequence"),
            (
                "FAXHUB_DEADLINES__OFFERED",
                "5",
                "[deadlines] has no key offered",
            ),
            ("FAXHUB_ALLOW_PLAIN_HTTP", "perhaps", "not true or false"),
        ] {
            let err = env("", &[(name, value)]).expect_err(name);
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(says), "{text}");
        }
        assert!(
            toml::from_str::<Config>("unknown_key = 1").is_err(),
            "unknown keys are errors"
        );
    }

    /// Every key of the configuration, sections included, can be set from the environment, as the README
    /// says; a value is read as its key's kind (a country code of digits stays text).
    #[test]
    fn every_key_can_be_set_from_the_environment() {
        let c = env(
            "",
            &[
                ("FAXHUB_RETRY__SCHEDULE_SECS", "[5, 10]"),
                ("FAXHUB_DIAL__COUNTRY_CODE", "49"),
                ("FAXHUB_CONNECTIONS__MAX", "100"),
                ("FAXHUB_ALLOW_PLAIN_HTTP", "yes"),
                ("FAXHUB_METRICS_TOKEN", "1234567890123456789"),
                ("FAXHUB_TLS_NAMES", "[\"fax.example.com\"]"),
                ("FAXHUB_DEADLINES__HEARTBEAT_SECS", "7"),
                ("FAXHUB_BOOTSTRAP_ADMIN", "root"),
            ],
        )
        .expect("env");
        assert_eq!(c.retry.delay_after(2), Duration::from_secs(10));
        assert_eq!(c.dial.country_code, "49");
        assert_eq!(c.connections.max, 100);
        assert!(c.allow_plain_http);
        assert!(
            c.metrics_token
                .is_some_and(|t| t.matches("1234567890123456789"))
        );
        assert_eq!(c.tls_names, ["fax.example.com"]);
        assert_eq!(c.deadlines.heartbeat_secs, 7);
        assert_eq!(c.bootstrap_admin, "root");
        // Each leaf key of the defaults, set to its default through its variable, is taken.
        fn leaves(v: &serde_json::Value, at: String, out: &mut Vec<(String, String)>) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        let name = if at.is_empty() {
                            format!("FAXHUB_{}", k.to_ascii_uppercase())
                        } else {
                            format!("{at}__{}", k.to_ascii_uppercase())
                        };
                        leaves(v, name, out);
                    }
                }
                serde_json::Value::String(s) => out.push((at, s.clone())),
                serde_json::Value::Null => out.push((at, "off".into())),
                other => out.push((at, other.to_string())),
            }
        }
        let mut all = Vec::new();
        leaves(
            &serde_json::to_value(Config::default()).expect("defaults"),
            String::new(),
            &mut all,
        );
        assert!(all.len() > 30, "{all:?}");
        for (name, value) in &all {
            env("", &[(name.as_str(), value.as_str())])
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
    }

    #[test]
    fn https_by_default_and_plain_http_only_on_loopback_unless_insisted() {
        let d = Config::default();
        assert_eq!(d.https_listen, Some("0.0.0.0:8443".parse().expect("addr")));
        assert_eq!(d.http_listen, Some("127.0.0.1:8480".parse().expect("addr")));
        assert_eq!(d.check_transport().expect("defaults"), Vec::<String>::new());
        let c: Config =
            toml::from_str("https_listen = \"off\"\nhttp_listen = \"[::1]:1\"").expect("toml");
        assert_eq!(c.https_listen, None);
        assert!(c.check_transport().expect("loopback").is_empty());
        let open: Config = toml::from_str("http_listen = \"0.0.0.0:8480\"").expect("toml");
        let e = open.check_transport().expect_err("refused");
        assert!(e.to_string().contains("allow_plain_http"), "{e}");
        let insisted: Config =
            toml::from_str("http_listen = \"0.0.0.0:8480\"\nallow_plain_http = true")
                .expect("toml");
        let warnings = insisted.check_transport().expect("insisted");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("in the clear"), "{warnings:?}");
        let metrics: Config = toml::from_str("metrics_listen = \"10.0.0.5:9480\"").expect("toml");
        assert!(
            metrics.check_transport().is_err(),
            "metrics listener off loopback"
        );
        let none: Config =
            toml::from_str("http_listen = \"off\"\nhttps_listen = \"off\"").expect("toml");
        assert!(none.check_transport().is_err());
        let short: Config = toml::from_str("metrics_token = \"abc\"").expect("toml");
        assert!(short.check_transport().is_err());
        assert!(toml::from_str::<Config>("http_listen = \"nowhere\"").is_err());
        let token: Config =
            toml::from_str("metrics_token = \"0123456789abcdef-metrics\"").expect("toml");
        let t = token.metrics_token.as_ref().expect("token");
        assert!(t.matches("0123456789abcdef-metrics") && !t.matches("0123456789abcdef-metricz"));
        assert!(
            !format!("{token:?}").contains("0123456789abcdef"),
            "the token stays out of Debug"
        );
    }

    #[test]
    fn the_call_limit_counts_every_page_at_the_slowest_rate() {
        let d = DeadlineConfig {
            call_setup_secs: 10,
            max_page_bits: 24_000,
            ..Default::default()
        };
        assert_eq!(d.call_limit(3), Duration::from_secs(10 + 3 * 10));
        assert_eq!(
            d.call_limit(0),
            Duration::from_secs(20),
            "a document of unknown length counts as one page"
        );
        let defaults = DeadlineConfig::default();
        assert_eq!(defaults.call_limit(1).as_secs(), 180 + 833);
        assert_eq!(
            defaults.call_limit(i64::MAX),
            Duration::from_millis(u64::MAX),
            "saturates"
        );
    }
}
