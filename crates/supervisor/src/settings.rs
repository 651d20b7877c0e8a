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
    /// Registrar `host[:port]`; empty for none (peer-to-peer calls only). Changing it (or the proxy)
    /// discards the stored password unless the same request gives it again.
    pub registrar: String,
    /// Outbound proxy `host[:port]`.
    pub proxy: Option<String>,
    /// The SIP user name (RFC 3261 `user`: letters, digits, `-_.!~*'()&=+$,;?/` and `%XX` escapes).
    pub user: String,
    /// The digest user name when it differs from `user`: printable, without `"` or `\`.
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

impl SipAccount {
    /// The same registrar and proxy (host names compared without regard to case).
    fn same_servers(&self, other: &SipAccount) -> bool {
        let norm = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
        norm(Some(&self.registrar)) == norm(Some(&other.registrar))
            && norm(self.proxy.as_deref()) == norm(other.proxy.as_deref())
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

/// The rules for every value that reaches a SIP message, a T.30 frame or a printed page. The job API
/// checks its printed fields with them too, so each rule is written once.
pub mod rules {
    use crate::error::ApiError;

    fn refuse(field: &str, value: &str, at: usize, c: char, allowed: &str) -> ApiError {
        ApiError::field(
            field,
            format!(
                "{c:?} (character {} of {value:?}) is not allowed; {allowed}",
                at + 1
            ),
        )
    }

    fn check(
        field: &str,
        value: &str,
        max: usize,
        ok: impl Fn(char) -> bool,
        allowed: &str,
    ) -> Result<(), ApiError> {
        if value.chars().count() > max {
            return Err(ApiError::field(
                field,
                format!("at most {max} characters; {allowed}"),
            ));
        }
        match value.chars().enumerate().find(|(_, c)| !ok(*c)) {
            Some((at, c)) => Err(refuse(field, value, at, c, allowed)),
            None => Ok(()),
        }
    }

    /// RFC 3261 §25.1 `user`: `unreserved` (letters, digits, `-_.!~*'()`), `user-unreserved`
    /// (`&=+$,;?/`) and `escaped` (`%` and two hex digits); 1 to 128 characters.
    pub fn sip_user(field: &str, value: &str) -> Result<(), ApiError> {
        const ALLOWED: &str =
            "use letters, digits, -_.!~*'()&=+$,;?/ and %XX escapes (RFC 3261 user)";
        if value.is_empty() {
            return Err(ApiError::field(field, "must not be empty"));
        }
        check(
            field,
            value,
            128,
            |c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c),
            ALLOWED,
        )?;
        let bytes = value.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let hex = |k: usize| bytes.get(i + k).is_some_and(u8::is_ascii_hexdigit);
            if *b == b'%' && !(hex(1) && hex(2)) {
                return Err(ApiError::field(
                    field,
                    format!(
                        "'%' at character {} of {value:?} must start an escape like %40; {ALLOWED}",
                        i + 1
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The digest `username` (RFC 3261 §25.1 `username-value`, a quoted-string the user agent writes
    /// without escapes): printable ASCII or UTF-8, spaces inside, no `"`, `\` or control characters.
    pub fn digest_user(field: &str, value: &str) -> Result<(), ApiError> {
        if value.trim().is_empty() || value.trim() != value {
            return Err(ApiError::field(
                field,
                "must not be empty or start or end with a space",
            ));
        }
        check(
            field,
            value,
            128,
            |c| !c.is_control() && !invisible(c) && c != '"' && c != '\\',
            "printable characters without '\"' or '\\' (an RFC 3261 quoted-string)",
        )
    }

    /// RFC 3261 §25.1 `hostport`: a host name, an IPv4 address or a bracketed IPv6 address, and an
    /// optional port 1 to 65535.
    pub fn host_port(field: &str, value: &str) -> Result<(), ApiError> {
        let bad = || {
            ApiError::field(
                field,
                format!(
                    "{value:?} is not host or host:port (a host name, IPv4 or [IPv6] address, port 1 to 65535)"
                ),
            )
        };
        let (host, port) = match value.strip_prefix('[') {
            Some(rest) => {
                let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
                v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
                let port = match after {
                    "" => None,
                    a => Some(a.strip_prefix(':').ok_or_else(bad)?),
                };
                (None, port)
            }
            None => match value.rsplit_once(':') {
                Some((h, p)) => (Some(h), Some(p)),
                None => (Some(value), None),
            },
        };
        if let Some(p) = port
            && (p.is_empty()
                || p.len() > 5
                || !p.bytes().all(|b| b.is_ascii_digit())
                || !(1..=65535).contains(&p.parse::<u32>().unwrap_or(0)))
        {
            return Err(bad());
        }
        match host {
            None => Ok(()),
            Some(h) if h.parse::<std::net::Ipv4Addr>().is_ok() => Ok(()),
            Some(h) if is_hostname(h) => Ok(()),
            Some(_) => Err(bad()),
        }
    }

    /// `hostname = *( domainlabel "." ) toplabel [ "." ]`: labels of letters, digits and inner '-', the
    /// last starting with a letter; at most 253 characters.
    fn is_hostname(h: &str) -> bool {
        let h = h.strip_suffix('.').unwrap_or(h);
        let label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(label)
            && h.rsplit('.')
                .next()
                .is_some_and(|top| top.starts_with(|c: char| c.is_ascii_alphabetic()))
    }

    /// The T.30 identity (TSI / CSI, T.30 §5.3.6.2.4): at most 20 of digits, spaces and '+'.
    pub fn station_id(field: &str, value: &str) -> Result<(), ApiError> {
        check(
            field,
            value,
            20,
            |c| c.is_ascii_digit() || c == ' ' || c == '+',
            "use at most 20 digits, spaces and '+' (the T.30 identity set)",
        )
    }

    /// Text printed on a page: at most `max` characters, none a control character (line breaks, escape
    /// sequences) or an invisible one that reorders or hides text (bidirectional overrides, zero-width).
    pub fn printed(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
        check(
            field,
            value,
            max,
            |c| !c.is_control() && !invisible(c),
            "printable characters only (no line breaks, tabs, escapes or invisible formatting characters)",
        )
    }

    /// Formatting characters that print nothing but change what is shown: zero-width characters, line
    /// and paragraph separators, bidirectional embeddings, overrides and isolates, the byte order mark.
    fn invisible(c: char) -> bool {
        matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{061C}')
    }
}

fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

impl FaxServerSettings {
    /// Checks every field; the error names the first bad one by its path.
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |field: &str, why: &str| Err(ApiError::field(field, why));
        rules::station_id("station_id", &self.station_id)?;
        rules::printed("header_template", &self.header_template, 80)?;
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
        if !self.sip.registrar.is_empty() {
            rules::host_port("sip.registrar", &self.sip.registrar)?;
        }
        if let Some(p) = &self.sip.proxy {
            rules::host_port("sip.proxy", p)?;
        }
        if !self.sip.registrar.is_empty() && self.sip.user.is_empty() {
            return bad("sip.user", "a registrar needs a user");
        }
        if !self.sip.user.is_empty() {
            rules::sip_user("sip.user", &self.sip.user)?;
        }
        // An empty digest user name means none (the user name is used), as the fax server reads it.
        if let Some(a) = self.sip.auth_user.as_deref().filter(|a| !a.is_empty()) {
            rules::digest_user("sip.auth_user", a)?;
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
    /// sealed value from `current` (or discards it when the registrar or proxy changed), a masked "clear"
    /// removes it.
    pub fn for_storage(
        &self,
        mut next: FaxServerSettings,
        current: Option<&FaxServerSettings>,
    ) -> Result<FaxServerSettings, ApiError> {
        next.sip.password = match next.sip.password {
            Secret::Value(v) => Secret::Sealed {
                sealed: self.seal(&v)?,
            },
            Secret::Masked { set: true } => match current.map(|c| (c, &c.sip.password)) {
                // The digest must not follow the account to a host someone else chose: a new registrar
                // or proxy needs the password given again.
                Some((c, Secret::Sealed { .. })) if !c.sip.same_servers(&next.sip) => {
                    tracing::info!(
                        registrar = %next.sip.registrar,
                        "the SIP registrar or proxy changed: the stored password is discarded"
                    );
                    Secret::Masked { set: false }
                }
                Some((_, Secret::Sealed { sealed })) => Secret::Sealed {
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
    fn sip_values_follow_the_rfc_3261_grammar() {
        type Change = fn(&mut FaxServerSettings);
        let refused: [(Change, &str); 14] = [
            (|s| s.sip.user = "fax1\r\nVia: x".into(), "sip.user"),
            (|s| s.sip.user = "fax one".into(), "sip.user"),
            (|s| s.sip.user = "a@b".into(), "sip.user"),
            (|s| s.sip.user = "a:b".into(), "sip.user"),
            (|s| s.sip.user = "bad%4".into(), "sip.user"),
            (|s| s.sip.user = "x".repeat(129), "sip.user"),
            (|s| s.sip.auth_user = Some("a\"b".into()), "sip.auth_user"),
            (|s| s.sip.auth_user = Some("a\\b".into()), "sip.auth_user"),
            (|s| s.sip.auth_user = Some("a\nb".into()), "sip.auth_user"),
            (|s| s.sip.auth_user = Some(" a".into()), "sip.auth_user"),
            (
                |s| s.sip.registrar = "sip.example.com:0".into(),
                "sip.registrar",
            ),
            (|s| s.sip.registrar = "999.1.1.1".into(), "sip.registrar"),
            (|s| s.sip.proxy = Some("[::1".into()), "sip.proxy"),
            (
                |s| s.header_template = "Acme\u{202E}xob".into(),
                "header_template",
            ),
        ];
        for (change, field) in refused {
            let mut s = FaxServerSettings::default();
            s.sip.user = "fax1".into();
            change(&mut s);
            let err = s.validate().expect_err(field);
            assert_eq!(err.field.as_deref(), Some(field), "{}", err.message);
        }
        let accepted: [Change; 8] = [
            |s| s.sip.user = "+15551234567".into(),
            |s| s.sip.user = "fax.1_a-b!~*'()&=+$,;?/%40".into(),
            |s| s.sip.auth_user = Some("Fax Büro 1".into()),
            |s| s.sip.auth_user = Some(String::new()),
            |s| s.sip.registrar = "sip.example.com.".into(),
            |s| s.sip.registrar = "127.0.0.1:5060".into(),
            |s| s.sip.proxy = Some("[2001:db8::1]:5061".into()),
            |s| s.sip.proxy = Some("[::1]".into()),
        ];
        for change in accepted {
            let mut s = FaxServerSettings::default();
            s.sip.user = "fax1".into();
            change(&mut s);
            s.validate().expect("accepted");
        }
    }

    #[test]
    fn a_new_registrar_or_proxy_discards_the_kept_password() {
        let sealer = Sealer::new(&[9u8; 32]);
        let mut first = FaxServerSettings::default();
        first.sip.registrar = "sip.example.com".into();
        first.sip.password = Secret::Value("hunter2hunter2".into());
        let stored = sealer.for_storage(first, None).expect("seal");
        let keep = |change: fn(&mut SipAccount)| {
            let mut next = FaxServerSettings::default();
            next.sip.registrar = "sip.example.com".into();
            next.sip.password = Secret::Masked { set: true };
            change(&mut next.sip);
            sealer
                .for_storage(next, Some(&stored))
                .expect("stored")
                .sip
                .password
        };
        assert_eq!(keep(|_| {}), stored.sip.password, "same servers: kept");
        assert_eq!(
            keep(|s| s.registrar = "SIP.Example.COM".into()),
            stored.sip.password,
            "host names compare without case"
        );
        for moved in [
            (|s: &mut SipAccount| s.registrar = "attacker.example".into()) as fn(&mut SipAccount),
            |s| s.registrar = "sip.example.com:5070".into(),
            |s| s.proxy = Some("attacker.example".into()),
        ] {
            assert_eq!(keep(moved), Secret::Masked { set: false });
        }
        let mut given = FaxServerSettings::default();
        given.sip.registrar = "other.example".into();
        given.sip.password = Secret::Value("new-password".into());
        let again = sealer.for_storage(given, Some(&stored)).expect("given");
        assert_eq!(
            sealer.for_fax_server(again).sip.password,
            Secret::Value("new-password".into()),
            "a password given with the new host is kept"
        );
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
