//! The settings of every fax server (claims 5–8): a typed, validated, versioned document that the
//! supervisor registers and pushes to the fax server over its link. Secrets (the SIP password) are sealed
//! with AES-256-GCM under a key derived from the server key before they are stored, shown to clients only as
//! set / not set, and unsealed only to be pushed to their fax server.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A secret value as it travels: a new value (a string), `{"set": true}` to keep the stored one (what a
/// read shows), `{"set": false}` to clear it; `{"sealed": …}` only inside the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Secret {
    Value(String),
    Masked { set: bool },
    Sealed { sealed: String },
}

impl Default for Secret {
    fn default() -> Self {
        Secret::Masked { set: false }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SipAccount {
    /// Registrar `host[:port]`; empty for none (peer-to-peer calls only).
    pub registrar: String,
    pub proxy: Option<String>,
    pub user: String,
    pub auth_user: Option<String>,
    pub password: Secret,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
}

impl Default for SipAccount {
    fn default() -> Self {
        Self {
            registrar: String::new(),
            proxy: None,
            user: String::new(),
            auth_user: None,
            password: Secret::default(),
            transport: "udp".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct T38Options {
    /// T.38 version 0 to 3.
    pub version: u8,
    /// 2400, 4800, 7200, 9600, 12000 or 14400.
    pub max_bit_rate: u32,
    pub ecm: bool,
    /// UDPTL redundancy depth 0 to 5.
    pub redundancy_depth: u8,
    /// Largest UDPTL datagram, 72 to 1400 bytes.
    pub max_datagram: u16,
}

impl Default for T38Options {
    fn default() -> Self {
        Self {
            version: 0,
            max_bit_rate: 14_400,
            ecm: true,
            redundancy_depth: 3,
            max_datagram: 400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DialRules {
    /// E.164 prefixes this fax server dials (routing); empty for any number.
    pub prefixes: Vec<String>,
    /// Digits dialled before every number (an outside-line code), up to 4.
    pub access_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// After a failed attempt, cap the next one at 9600 bit/s.
    pub step_down_rate: bool,
    /// After a failed attempt, turn ECM off for the next one.
    pub ecm_off_on_retry: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            step_down_rate: true,
            ecm_off_on_retry: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReceivePolicy {
    pub max_pages: u32,
    /// Resolutions accepted: `standard`, `fine`, `superfine`, `300`, `r8`, `r16`.
    pub resolutions: Vec<String>,
}

impl Default for ReceivePolicy {
    fn default() -> Self {
        Self {
            max_pages: 200,
            resolutions: vec!["standard".into(), "fine".into(), "superfine".into()],
        }
    }
}

/// The settings of one fax server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaxServerSettings {
    /// Station identity (TSI / CSID): up to 20 digits, spaces and '+'.
    pub station_id: String,
    /// Page header, e.g. "{station} {date} {time} Page {page}/{pages}"; up to 80 characters.
    pub header_template: String,
    /// Numbers this fax server answers (E.164).
    pub local_numbers: Vec<String>,
    /// Channels, 1 to 240.
    pub channels: u32,
    pub sip: SipAccount,
    pub t38: T38Options,
    pub dial_rules: DialRules,
    pub retry: RetryPolicy,
    pub receive: ReceivePolicy,
    /// IANA time zone name, e.g. "Europe/Berlin".
    pub time_zone: String,
}

impl Default for FaxServerSettings {
    fn default() -> Self {
        Self {
            station_id: String::new(),
            header_template: "{station} {date} {time} Page {page}/{pages}".into(),
            local_numbers: Vec::new(),
            channels: 4,
            sip: SipAccount::default(),
            t38: T38Options::default(),
            dial_rules: DialRules::default(),
            retry: RetryPolicy::default(),
            receive: ReceivePolicy::default(),
            time_zone: "UTC".into(),
        }
    }
}

fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn host_port(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

impl FaxServerSettings {
    /// Checks every field; the error names the first bad one by its path.
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |field: &str, why: &str| Err(ApiError::field(field, why));
        if self.station_id.chars().count() > 20
            || !self
                .station_id
                .chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '+')
        {
            return bad(
                "station_id",
                "use at most 20 digits, spaces and '+' (the T.30 identity set)",
            );
        }
        if self.header_template.chars().count() > 80
            || self.header_template.chars().any(char::is_control)
        {
            return bad("header_template", "at most 80 printable characters");
        }
        for (i, n) in self.local_numbers.iter().enumerate() {
            if !is_e164(n) {
                return Err(ApiError::field(
                    &format!("local_numbers[{i}]"),
                    format!("{n:?} is not an E.164 number like +15551234567"),
                ));
            }
        }
        if !(1..=240).contains(&self.channels) {
            return bad("channels", "must be 1 to 240");
        }
        if !matches!(self.sip.transport.as_str(), "udp" | "tcp" | "tls") {
            return bad("sip.transport", "must be udp, tcp or tls");
        }
        if !self.sip.registrar.is_empty() && !host_port(&self.sip.registrar) {
            return bad("sip.registrar", "must be host or host:port");
        }
        if self.sip.proxy.as_deref().is_some_and(|p| !host_port(p)) {
            return bad("sip.proxy", "must be host or host:port");
        }
        if !self.sip.registrar.is_empty() && self.sip.user.is_empty() {
            return bad("sip.user", "a registrar needs a user");
        }
        if let Secret::Value(p) = &self.sip.password
            && (p.is_empty() || p.len() > 256)
        {
            return bad("sip.password", "must be 1 to 256 characters");
        }
        if self.t38.version > 3 {
            return bad("t38.version", "must be 0 to 3");
        }
        if ![2400, 4800, 7200, 9600, 12000, 14400].contains(&self.t38.max_bit_rate) {
            return bad(
                "t38.max_bit_rate",
                "must be 2400, 4800, 7200, 9600, 12000 or 14400",
            );
        }
        if self.t38.redundancy_depth > 5 {
            return bad("t38.redundancy_depth", "must be 0 to 5");
        }
        if !(72..=1400).contains(&self.t38.max_datagram) {
            return bad("t38.max_datagram", "must be 72 to 1400");
        }
        for (i, p) in self.dial_rules.prefixes.iter().enumerate() {
            let digits = p.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ApiError::field(
                    &format!("dial_rules.prefixes[{i}]"),
                    format!("{p:?} is not an E.164 prefix like \"+81\""),
                ));
            }
        }
        if self.dial_rules.access_code.len() > 4
            || !self
                .dial_rules
                .access_code
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return bad("dial_rules.access_code", "at most 4 digits");
        }
        if !(1..=1000).contains(&self.receive.max_pages) {
            return bad("receive.max_pages", "must be 1 to 1000");
        }
        for (i, r) in self.receive.resolutions.iter().enumerate() {
            if !matches!(
                r.as_str(),
                "standard" | "fine" | "superfine" | "300" | "r8" | "r16"
            ) {
                return Err(ApiError::field(
                    &format!("receive.resolutions[{i}]"),
                    "must be standard, fine, superfine, 300, r8 or r16",
                ));
            }
        }
        let tz = &self.time_zone;
        if tz.is_empty()
            || tz.len() > 64
            || !tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))
        {
            return bad("time_zone", "an IANA time zone name like Europe/Berlin");
        }
        Ok(())
    }

    /// The form a client sees: secrets as set / not set.
    pub fn masked(mut self) -> Self {
        let set = !matches!(self.sip.password, Secret::Masked { set: false });
        self.sip.password = Secret::Masked { set };
        self
    }
}

/// Seals and unseals secrets with a key derived from the server key.
#[derive(Clone, Debug)]
pub struct Sealer {
    sealed: at_rest::SecretBox,
}

impl Sealer {
    pub fn new(server_key: &[u8; 32]) -> Self {
        Self {
            sealed: at_rest::SecretBox::derived(server_key, b"faxhub settings secrets"),
        }
    }

    fn seal(&self, plain: &str) -> Result<String, ApiError> {
        self.sealed
            .seal(plain)
            .map_err(|e| ApiError::internal("sealing a secret", e))
    }

    fn unseal(&self, sealed: &str) -> Option<String> {
        self.sealed.open(sealed)
    }

    /// Prepares a validated document for storage: a new secret is sealed, a masked "keep" takes the stored
    /// sealed value from `current`, a masked "clear" removes it.
    pub fn for_storage(
        &self,
        mut next: FaxServerSettings,
        current: Option<&FaxServerSettings>,
    ) -> Result<FaxServerSettings, ApiError> {
        next.sip.password = match next.sip.password {
            Secret::Value(v) => Secret::Sealed {
                sealed: self.seal(&v)?,
            },
            Secret::Masked { set: true } => match current.map(|c| &c.sip.password) {
                Some(Secret::Sealed { sealed }) => Secret::Sealed {
                    sealed: sealed.clone(),
                },
                _ => {
                    return Err(ApiError::field(
                        "sip.password",
                        "no password is stored to keep; give one",
                    ));
                }
            },
            Secret::Masked { set: false } => Secret::Masked { set: false },
            Secret::Sealed { .. } => {
                return Err(ApiError::field(
                    "sip.password",
                    "give the password itself, or {\"set\": true} to keep it",
                ));
            }
        };
        Ok(next)
    }

    /// The document as its fax server needs it: secrets in the clear.
    pub fn for_fax_server(&self, mut stored: FaxServerSettings) -> FaxServerSettings {
        if let Secret::Sealed { sealed } = &stored.sip.password {
            stored.sip.password = match self.unseal(sealed) {
                Some(plain) => Secret::Value(plain),
                None => {
                    tracing::error!(
                        "a stored SIP password cannot be unsealed (was the server key replaced?)"
                    );
                    Secret::Masked { set: false }
                }
            };
        }
        stored
    }
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(p) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The paths whose values differ between two documents (secrets compared masked).
pub fn diff(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, serde_json::Value, serde_json::Value)>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = serde_json::Value::Null;
                diff(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &p,
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_owned(), a.clone(), b.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let ok = FaxServerSettings::default();
        assert!(ok.validate().is_ok());
        // A change that breaks one field, and the field the error must name.
        type Break = Box<dyn Fn(&mut FaxServerSettings)>;
        let cases: Vec<(Break, &str)> = vec![
            (Box::new(|s| s.station_id = "ABC".into()), "station_id"),
            (Box::new(|s| s.channels = 0), "channels"),
            (
                Box::new(|s| s.sip.transport = "sctp".into()),
                "sip.transport",
            ),
            (Box::new(|s| s.t38.max_bit_rate = 33600), "t38.max_bit_rate"),
            (Box::new(|s| s.t38.version = 4), "t38.version"),
            (
                Box::new(|s| s.local_numbers = vec!["+15551234567".into(), "5551234".into()]),
                "local_numbers[1]",
            ),
            (
                Box::new(|s| s.dial_rules.prefixes = vec!["81".into()]),
                "dial_rules.prefixes[0]",
            ),
            (
                Box::new(|s| s.receive.resolutions = vec!["ultra".into()]),
                "receive.resolutions[0]",
            ),
            (
                Box::new(|s| s.time_zone = "Not a zone!".into()),
                "time_zone",
            ),
        ];
        for (change, field) in cases {
            let mut s = FaxServerSettings::default();
            change(&mut s);
            let err = s.validate().expect_err(field);
            assert_eq!(err.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn secrets_are_sealed_kept_and_masked() {
        let sealer = Sealer::new(&[9u8; 32]);
        let mut s = FaxServerSettings::default();
        s.sip.password = Secret::Value("hunter2hunter2".into());
        let stored = sealer.for_storage(s.clone(), None).expect("seal");
        let Secret::Sealed { sealed } = &stored.sip.password else {
            panic!("sealed")
        };
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            stored.clone().masked().sip.password,
            Secret::Masked { set: true }
        );
        assert_eq!(
            sealer.for_fax_server(stored.clone()).sip.password,
            Secret::Value("hunter2hunter2".into())
        );
        let mut keep = FaxServerSettings::default();
        keep.sip.password = Secret::Masked { set: true };
        let kept = sealer
            .for_storage(keep.clone(), Some(&stored))
            .expect("keep");
        assert_eq!(kept.sip.password, stored.sip.password);
        assert!(sealer.for_storage(keep, None).is_err(), "nothing to keep");
        assert_eq!(
            Sealer::new(&[8u8; 32]).for_fax_server(stored).sip.password,
            Secret::Masked { set: false },
            "another key cannot unseal"
        );
    }

    #[test]
    fn merge_patch_and_diff() {
        let mut doc = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(
            &mut doc,
            &serde_json::json!({"b": {"c": null, "e": 4}, "f": [1]}),
        );
        assert_eq!(
            doc,
            serde_json::json!({"a": 1, "b": {"d": 3, "e": 4}, "f": [1]})
        );
        let mut out = Vec::new();
        diff(
            &serde_json::json!({"a": 1, "b": {"c": 2}}),
            &serde_json::json!({"a": 1, "b": {"c": 3}}),
            "",
            &mut out,
        );
        assert_eq!(
            out,
            vec![("b.c".to_owned(), serde_json::json!(2), serde_json::json!(3))]
        );
    }
}
