//! The settings of a fax server (claims 5–8): the one typed document the supervisor validates, versions and
//! pushes over the link ([`crate::Body::SettingsPush`]) and the fax server applies. Both sides use these
//! types and [`FaxServerSettings::validate`], so what the supervisor accepts is what the fax server runs:
//! every field here is honoured by the fax server's line, and a value it could not honour does not validate.
//!
//! Secrets (the SIP password) travel as a [`Secret`]: in the clear only inside a push to their own fax
//! server, sealed at rest on both sides, masked (`{"set": true}`) whenever a client reads them.

use serde::{Deserialize, Deserializer, Serialize};
use std::str::FromStr;

/// A field that does not validate: its path in the document (`sip.user`, `local_numbers[1]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A secret value as it travels: a new value (a string), `{"set": true}` to keep the stored one (what a
/// read shows), `{"set": false}` to clear it; `{"sealed": …}` only where it is kept at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl Secret {
    /// The secret in the clear, when this is one.
    pub fn plain(&self) -> Option<&str> {
        match self {
            Secret::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// How SIP messages travel (RFC 3261 §18). SIP over TLS is not offered: a fax server could not honour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
}

impl FromStr for SipTransport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(SipTransport::Udp),
            "tcp" => Ok(SipTransport::Tcp),
            "tls" => Err("SIP over TLS is not supported; use udp or tcp".into()),
            other => Err(format!("{other:?} is not a SIP transport; use udp or tcp")),
        }
    }
}

impl<'de> Deserialize<'de> for SipTransport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `udp` or `tcp`.
    pub transport: SipTransport,
}

impl SipAccount {
    /// The same registrar and proxy (host names compared without regard to case).
    pub fn same_servers(&self, other: &SipAccount) -> bool {
        let norm = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
        norm(Some(&self.registrar)) == norm(Some(&other.registrar))
            && norm(self.proxy.as_deref()) == norm(other.proxy.as_deref())
    }

    /// The proxy to send requests to: the outbound proxy when one is set, else the registrar.
    pub fn next_hop(&self) -> Option<&str> {
        self.proxy
            .as_deref()
            .filter(|p| !p.is_empty())
            .or(Some(self.registrar.as_str()).filter(|r| !r.is_empty()))
    }

    /// The digest user name: `auth_user` when given, else `user`.
    pub fn digest_user(&self) -> &str {
        self.auth_user
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.user)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DialRules {
    /// E.164 prefixes this fax server dials (routing); empty for any number.
    pub prefixes: Vec<String>,
    /// Digits dialled before every number (an outside-line code), up to 4.
    pub access_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// After an attempt that failed in training or transmission, cap the next one at 9600 bit/s (not after
    /// a busy line or no answer).
    pub step_down_rate: bool,
    /// After an attempt that failed in training or transmission, turn ECM off for the next one.
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

/// A vertical resolution a receiver announces in DIS (T.30 Table 2, bits 15 and 41–43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReceiveResolution {
    /// 3.85 lines/mm: every fax terminal takes it.
    Standard,
    /// 7.7 lines/mm.
    Fine,
    /// 15.4 lines/mm.
    Superfine,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ReceivePolicy {
    /// Pages accepted in one call, 1 to 1000.
    pub max_pages: u32,
    /// Vertical resolutions announced to callers: `standard` (always), `fine`, `superfine`.
    pub resolutions: Vec<ReceiveResolution>,
}

impl Default for ReceivePolicy {
    fn default() -> Self {
        Self {
            max_pages: 200,
            resolutions: vec![
                ReceiveResolution::Standard,
                ReceiveResolution::Fine,
                ReceiveResolution::Superfine,
            ],
        }
    }
}

impl ReceivePolicy {
    pub fn takes(&self, r: ReceiveResolution) -> bool {
        self.resolutions.contains(&r)
    }
}

/// The header line printed at the top of every page sent, by default
/// `From {from}|{date} {time} {zone}|Page {page}/{pages}`.
pub const DEFAULT_HEADER_TEMPLATE: &str = "From {from}|{date} {time} {zone}|Page {page}/{pages}";

/// The settings of one fax server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct FaxServerSettings {
    /// Station identity (TSI / CSID): up to 20 digits, spaces and '+'.
    pub station_id: String,
    /// The header printed on every page sent, up to 80 characters: `|` separates fields spread across the
    /// line (the first at the left, the last at the right); `{from}` (the job's header name, else the
    /// station identity), `{station}`, `{date}`, `{time}`, `{zone}` (in `time_zone`), `{page}` and
    /// `{pages}` are filled in; `{{` and `}}` print braces. Empty: no header.
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
    /// IANA time zone name, e.g. "Europe/Berlin", for the date and time in the page header.
    pub time_zone: String,
}

impl Default for FaxServerSettings {
    fn default() -> Self {
        Self {
            station_id: String::new(),
            header_template: DEFAULT_HEADER_TEMPLATE.into(),
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

/// One part of a header field: text, or a value filled in when the page is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPart {
    Text(String),
    /// The job's header name, else the station identity.
    From,
    Station,
    /// `YYYY-MM-DD` in the fax server's time zone.
    Date,
    /// `HH:MM` in the fax server's time zone.
    Time,
    /// The time zone's abbreviation (`UTC`, `CET`).
    Zone,
    Page,
    Pages,
}

/// A parsed `header_template`: fields (split at `|`) of parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderTemplate {
    pub fields: Vec<Vec<HeaderPart>>,
}

impl FromStr for HeaderTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut fields = Vec::new();
        if s.is_empty() {
            return Ok(Self { fields });
        }
        for field in s.split('|') {
            let mut parts = Vec::new();
            let mut text = String::new();
            let mut chars = field.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '{' if chars.peek() == Some(&'{') => {
                        chars.next();
                        text.push('{');
                    }
                    '}' if chars.peek() == Some(&'}') => {
                        chars.next();
                        text.push('}');
                    }
                    '{' => {
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(c) => name.push(c),
                                None => {
                                    return Err(format!(
                                        "{{{name} is not closed (write {{{{ for a brace)"
                                    ));
                                }
                            }
                        }
                        let part = match name.as_str() {
                            "from" => HeaderPart::From,
                            "station" => HeaderPart::Station,
                            "date" => HeaderPart::Date,
                            "time" => HeaderPart::Time,
                            "zone" => HeaderPart::Zone,
                            "page" => HeaderPart::Page,
                            "pages" => HeaderPart::Pages,
                            other => {
                                return Err(format!(
                                    "{{{other}}} is not a header value; use {{from}}, {{station}}, {{date}}, {{time}}, {{zone}}, {{page}} or {{pages}} (and {{{{ }}}} for braces)"
                                ));
                            }
                        };
                        if !text.is_empty() {
                            parts.push(HeaderPart::Text(std::mem::take(&mut text)));
                        }
                        parts.push(part);
                    }
                    '}' => return Err("a lone '}' (write }} for a brace)".into()),
                    c => text.push(c),
                }
            }
            if !text.is_empty() {
                parts.push(HeaderPart::Text(text));
            }
            fields.push(parts);
        }
        if fields.len() > 5 {
            return Err("at most 5 fields separated by '|'".into());
        }
        Ok(Self { fields })
    }
}

/// The rules for every value that reaches a SIP message, a T.30 frame or a printed page. The job API
/// checks its printed fields with them too, so each rule is written once.
pub mod rules {
    use super::FieldError;

    fn refuse(field: &str, value: &str, at: usize, c: char, allowed: &str) -> FieldError {
        FieldError::new(
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
    ) -> Result<(), FieldError> {
        if value.chars().count() > max {
            return Err(FieldError::new(
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
    pub fn sip_user(field: &str, value: &str) -> Result<(), FieldError> {
        const ALLOWED: &str =
            "use letters, digits, -_.!~*'()&=+$,;?/ and %XX escapes (RFC 3261 user)";
        if value.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
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
                return Err(FieldError::new(
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
    pub fn digest_user(field: &str, value: &str) -> Result<(), FieldError> {
        if value.trim().is_empty() || value.trim() != value {
            return Err(FieldError::new(
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
    pub fn host_port(field: &str, value: &str) -> Result<(), FieldError> {
        let bad = || {
            FieldError::new(
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

    /// E.164 number prefixes ("+81"): a '+' and 1 to 15 digits each; the error names `field[i]`.
    pub fn dial_prefixes(field: &str, prefixes: &[String]) -> Result<(), FieldError> {
        for (i, p) in prefixes.iter().enumerate() {
            let digits = p.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(FieldError::new(
                    &format!("{field}[{i}]"),
                    format!("{p:?} is not an E.164 prefix like \"+81\""),
                ));
            }
        }
        Ok(())
    }

    /// The T.30 identity (TSI / CSI, T.30 §5.3.6.2.4): at most 20 of digits, spaces and '+'.
    pub fn station_id(field: &str, value: &str) -> Result<(), FieldError> {
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
    pub fn printed(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
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

/// E.164: '+', then 8 to 15 digits not starting with 0.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// The time zone of an IANA name, from the time zone database built into faxhub (the same on the
/// supervisor and every fax server, whatever their systems hold).
pub fn time_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    jiff::tz::db().get(name).ok()
}

impl FaxServerSettings {
    /// Checks every field; the error names the first bad one by its path.
    pub fn validate(&self) -> Result<(), FieldError> {
        let bad = |field: &str, why: &str| Err(FieldError::new(field, why));
        rules::station_id("station_id", &self.station_id)?;
        rules::printed("header_template", &self.header_template, 80)?;
        self.header()?;
        for (i, n) in self.local_numbers.iter().enumerate() {
            if !is_e164(n) {
                return Err(FieldError::new(
                    &format!("local_numbers[{i}]"),
                    format!("{n:?} is not an E.164 number like +15551234567"),
                ));
            }
        }
        if !(1..=240).contains(&self.channels) {
            return bad("channels", "must be 1 to 240");
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
        // An empty digest user name means none (the user name is used).
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
        rules::dial_prefixes("dial_rules.prefixes", &self.dial_rules.prefixes)?;
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
        if !self.receive.takes(ReceiveResolution::Standard) {
            return bad(
                "receive.resolutions",
                "must include standard (every fax terminal can send it; T.30 makes it mandatory)",
            );
        }
        if time_zone(&self.time_zone).is_none() {
            return Err(FieldError::new(
                "time_zone",
                format!(
                    "{:?} is not an IANA time zone name like Europe/Berlin or UTC",
                    self.time_zone
                ),
            ));
        }
        Ok(())
    }

    /// The parsed header template.
    pub fn header(&self) -> Result<HeaderTemplate, FieldError> {
        self.header_template
            .parse()
            .map_err(|e| FieldError::new("header_template", e))
    }

    /// The form a client sees: secrets as set / not set.
    pub fn masked(mut self) -> Self {
        let set = !matches!(self.sip.password, Secret::Masked { set: false });
        self.sip.password = Secret::Masked { set };
        self
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
                Box::new(|s| s.receive.resolutions = vec![ReceiveResolution::Fine]),
                "receive.resolutions",
            ),
            (
                Box::new(|s| s.time_zone = "Not a zone!".into()),
                "time_zone",
            ),
            (
                Box::new(|s| s.time_zone = "Europe/Atlantis".into()),
                "time_zone",
            ),
            (
                Box::new(|s| s.header_template = "{station} {datum}".into()),
                "header_template",
            ),
            (
                Box::new(|s| s.header_template = "a}b".into()),
                "header_template",
            ),
        ];
        for (change, field) in cases {
            let mut s = FaxServerSettings::default();
            change(&mut s);
            let err = s.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
        for zone in ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"] {
            let s = FaxServerSettings {
                time_zone: zone.into(),
                ..FaxServerSettings::default()
            };
            s.validate().expect(zone);
        }
    }

    /// Values a document cannot even carry: the error names the field and what is allowed.
    #[test]
    fn unknown_transports_and_resolutions_do_not_parse() {
        for (doc, says) in [
            (
                r#"{"sip": {"transport": "sctp"}}"#,
                "\"sctp\" is not a SIP transport; use udp or tcp",
            ),
            (
                r#"{"sip": {"transport": "tls"}}"#,
                "SIP over TLS is not supported; use udp or tcp",
            ),
            (
                r#"{"receive": {"resolutions": ["ultra"]}}"#,
                "unknown variant `ultra`, expected one of `standard`, `fine`, `superfine`",
            ),
        ] {
            let err = serde_json::from_str::<FaxServerSettings>(doc).expect_err(doc);
            assert!(err.to_string().contains(says), "{doc}: {err}");
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
            assert_eq!(err.field, field, "{}", err.reason);
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
    fn header_templates_parse_into_fields() {
        use HeaderPart::*;
        let t: HeaderTemplate = DEFAULT_HEADER_TEMPLATE.parse().expect("default");
        assert_eq!(
            t.fields,
            vec![
                vec![Text("From ".into()), From],
                vec![Date, Text(" ".into()), Time, Text(" ".into()), Zone],
                vec![Text("Page ".into()), Page, Text("/".into()), Pages],
            ]
        );
        let t: HeaderTemplate = "{{x}} {station}".parse().expect("braces");
        assert_eq!(t.fields, vec![vec![Text("{x} ".into()), Station]]);
        assert!(
            "".parse::<HeaderTemplate>()
                .expect("empty")
                .fields
                .is_empty()
        );
        assert!("a|b|c|d|e|f".parse::<HeaderTemplate>().is_err());
        assert!("{page".parse::<HeaderTemplate>().is_err());
    }
}
