//! SIP messages (RFC 3261 §7, §20, §25): parsing and serializing requests and responses, header access
//! with the compact forms, URIs, name-addresses and Via.
//!
//! Parsing is strict about structure and lenient about spacing: header names are case-insensitive,
//! continuation lines are folded, compact names are expanded. Bounds (size, header count) keep hostile
//! input cheap. Nothing here panics on any input.

use std::fmt;

use crate::Error;

/// Largest message accepted (a fax call's INVITE with SDP is about 1 KB).
pub const MAX_MESSAGE: usize = 65_535;
/// Most header fields accepted in one message.
pub const MAX_HEADERS: usize = 256;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    /// Header fields in order, names in their long canonical form.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const COMPACT: &[(&str, &str)] = &[
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
];

const CANONICAL: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Type",
    "Content-Length",
    "Route",
    "Record-Route",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Expires",
    "User-Agent",
    "Allow",
    "Supported",
    "Require",
    "Session-Expires",
    "Min-SE",
    "Reason",
    "Subject",
    "Content-Encoding",
    "Server",
    "Accept",
    "Retry-After",
];

/// The canonical spelling of a header name (compact forms expanded).
pub fn canonical_name(name: &str) -> String {
    if let Some((_, long)) = COMPACT.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)) {
        return (*long).to_string();
    }
    if let Some(c) = CANONICAL.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        return (*c).to_string();
    }
    name.to_string()
}

impl Message {
    /// A request with no headers yet.
    pub fn request(method: &str, uri: &str) -> Self {
        Self {
            start: StartLine::Request {
                method: method.into(),
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response to `req` (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied; a To tag added when
    /// given and absent.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Self {
        let mut r = Self {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (n, v) in &req.headers {
            if matches!(
                n.as_str(),
                "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route"
            ) {
                r.headers.push((n.clone(), v.clone()));
            } else if n == "To" {
                let mut v = v.clone();
                if let Some(tag) = to_tag
                    && param(&v, "tag").is_none()
                {
                    v.push_str(";tag=");
                    v.push_str(tag);
                }
                r.headers.push((n.clone(), v));
            }
        }
        r
    }

    /// Parses one message (a whole UDP datagram). The body must match Content-Length when it is given.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        // Over UDP a body longer than Content-Length is cut to it (RFC 3261 §18.3).
        Self::parse_prefix(bytes)?
            .map(|(m, _)| m)
            .ok_or(Error::Incomplete)
    }

    /// Parses a message at the start of a stream (TCP): `Ok(None)` when more bytes are needed, else the
    /// message and the octets it used.
    pub fn parse_prefix(bytes: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        // Skip keep-alive CRLFs between messages (RFC 5626 §4.4.1).
        let skip = bytes
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let bytes = &bytes[skip..];
        let Some(end) = find(bytes, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(bytes, b"\n\n").map(|i| (i, 2)))
        else {
            if bytes.len() > MAX_MESSAGE {
                return Err(Error::TooLarge);
            }
            return Ok(None);
        };
        let (head_len, sep) = end;
        let head = std::str::from_utf8(&bytes[..head_len]).map_err(|_| Error::NotText)?;
        let mut lines: Vec<String> = Vec::new();
        for raw in head.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if (line.starts_with(' ') || line.starts_with('\t')) && !lines.is_empty() {
                // Folded continuation (RFC 3261 §7.3.1).
                if let Some(last) = lines.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                continue;
            }
            lines.push(line.to_string());
        }
        let mut it = lines.into_iter();
        let first = it.next().unwrap_or_default();
        let start = parse_start(&first)?;
        let mut headers = Vec::new();
        for line in it {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| Error::Header(truncate(&line)))?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Header(truncate(&line)));
            }
            if headers.len() >= MAX_HEADERS {
                return Err(Error::TooManyHeaders);
            }
            headers.push((canonical_name(name), value.trim().to_string()));
        }
        let body_start = head_len + sep;
        let declared = match headers.iter().find(|(n, _)| n == "Content-Length") {
            Some((_, v)) => Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| Error::Header(format!("Content-Length: {v}")))?,
            ),
            None => None,
        };
        let available = bytes.len() - body_start;
        let body_len = match declared {
            Some(d) if d > MAX_MESSAGE => return Err(Error::TooLarge),
            Some(d) if d > available => return Ok(None),
            Some(d) => d,
            None => available,
        };
        let body = bytes[body_start..body_start + body_len].to_vec();
        Ok(Some((
            Self {
                start,
                headers,
                body,
            },
            skip + body_start + body_len,
        )))
    }

    /// Checks the headers every request and response must have (RFC 3261 §8.1.1).
    pub fn check(&self) -> Result<(), Error> {
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if self.header(h).is_none() {
                return Err(Error::MissingHeader(h));
            }
        }
        if self.cseq().is_none() {
            return Err(Error::Header(format!(
                "CSeq: {}",
                self.header("CSeq").unwrap_or("")
            )));
        }
        Ok(())
    }

    /// Serializes, with Content-Length set to the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (n, v) in &self.headers {
            if n == "Content-Length" {
                continue;
            }
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical_name(name);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, comma-separated values split (outside quotes and angle brackets).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let name = canonical_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, v)| split_commas(v))
            .collect()
    }

    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((canonical_name(name), value.into()));
    }

    /// Replaces every value of a header with one.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical_name(name);
        let value = value.into();
        if let Some(i) = self.headers.iter().position(|(n, _)| *n == name) {
            self.headers[i].1 = value;
            let mut seen = false;
            self.headers.retain(|(n, _)| {
                if *n != name {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        } else {
            self.headers.push((name, value));
        }
    }

    pub fn remove_header(&mut self, name: &str) {
        let name = canonical_name(name);
        self.headers.retain(|(n, _)| *n != name);
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let mut p = v.split_whitespace();
        let n = p.next()?.parse().ok()?;
        let m = p.next()?.to_string();
        Some((n, m))
    }

    pub fn from_tag(&self) -> Option<String> {
        self.header("From").and_then(|v| param(v, "tag"))
    }

    pub fn to_tag(&self) -> Option<String> {
        self.header("To").and_then(|v| param(v, "tag"))
    }

    /// The branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        self.header_values("Via")
            .first()
            .and_then(|v| param(v, "branch"))
    }

    /// The body as text, if it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_start(line: &str) -> Result<StartLine, Error> {
    let bad = || Error::StartLine(truncate(line));
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..700).contains(&code) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let mut p = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (p.next(), p.next(), p.next(), p.next())
    else {
        return Err(bad());
    };
    if version != "SIP/2.0"
        || method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || uri.is_empty()
    {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// Splits a header value at commas that are outside quotes and angle brackets.
pub fn split_commas(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = v.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(v[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    out
}

/// A `;name=value` parameter of a header value, after any `<...>` part.
pub fn param(v: &str, name: &str) -> Option<String> {
    let after = match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => v,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_string())
    })
}

/// A SIP URI: `sip:user@host:port;params` (RFC 3261 §19.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `;name[=value]` parameters, raw.
    pub params: String,
}

impl Uri {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        let (scheme, rest) = s.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split_once('?').map_or(rest, |(a, _)| a);
        let (user, hostport_params) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.split(':').next().unwrap_or(u).to_string()), h),
            None => (None, rest),
        };
        let (hostport, params) = match hostport_params.find(';') {
            Some(i) => (&hostport_params[..i], hostport_params[i..].to_string()),
            None => (hostport_params, String::new()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, rest) = v6.split_once(']')?;
            (
                format!("[{h}]"),
                rest.strip_prefix(':').and_then(|p| p.parse().ok()),
            )
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme: scheme.to_ascii_lowercase(),
            user,
            host,
            port,
            params,
        })
    }

    /// Host and port to send to (5060 by default).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5060))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// The URI inside a name-addr or addr-spec header value (`"Name" <sip:...>;tag=x` or `sip:...;tag=x`).
pub fn addr_uri(v: &str) -> Option<Uri> {
    if let (Some(a), Some(b)) = (v.find('<'), v.find('>')) {
        if a < b {
            return Uri::parse(&v[a + 1..b]);
        }
        return None;
    }
    Uri::parse(v.split(';').next().unwrap_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15550199@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
t: <sip:+15550199@127.0.0.1>\r\n\
f: \"Fax, one\" <sip:+15550100@127.0.0.1>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:fax@127.0.0.1:5070>\r\n\
Subject: a folded\r\n  value\r\n\
c: application/sdp\r\n\
l: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_compact_folded_and_serializes_back() {
        let m = Message::parse(INVITE.as_bytes()).expect("parses");
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33"));
        assert_eq!(m.cseq(), Some((314159, "INVITE".into())));
        assert_eq!(m.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.header("subject"), Some("a folded value"));
        assert_eq!(m.body, b"v=0\n");
        m.check().expect("complete");
        let again = Message::parse(&m.to_bytes()).expect("round trip");
        assert_eq!(again, m);
        let from = addr_uri(m.header("From").unwrap_or_default()).expect("uri");
        assert_eq!(from.user.as_deref(), Some("+15550100"));
    }

    #[test]
    fn responses_copy_the_dialog_headers_and_add_a_tag() {
        let req = Message::parse(INVITE.as_bytes()).expect("parses");
        let r = Message::response_to(&req, 180, "Ringing", Some("abc"));
        let r = Message::parse(&r.to_bytes()).expect("parses");
        assert_eq!(r.code(), Some(180));
        assert_eq!(r.to_tag().as_deref(), Some("abc"));
        assert_eq!(r.branch(), req.branch());
    }

    #[test]
    fn bad_input_gives_typed_errors() {
        assert!(matches!(
            Message::parse(b"garbage\r\n\r\n"),
            Err(Error::StartLine(_))
        ));
        assert!(matches!(
            Message::parse(b"INVITE sip:a SIP/2.0\r\nnocolon\r\n\r\n"),
            Err(Error::Header(_))
        ));
        assert!(matches!(
            Message::parse(b"INVITE sip:a SIP/2.0\r\n"),
            Err(Error::Incomplete)
        ));
        assert!(matches!(
            Message::parse(b"SIP/2.0 99 Low\r\n\r\n"),
            Err(Error::StartLine(_))
        ));
        let m = Message::parse(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n").expect("parses");
        assert_eq!(m.check(), Err(Error::MissingHeader("From")));
    }

    #[test]
    fn stream_framing_waits_for_the_body() {
        let full = INVITE.as_bytes();
        assert_eq!(
            Message::parse_prefix(&full[..full.len() - 2]).expect("ok"),
            None
        );
        let (_, used) = Message::parse_prefix(full).expect("ok").expect("message");
        assert_eq!(used, full.len());
    }

    #[test]
    fn uris_parse() {
        let u = Uri::parse("sip:alice:secret@[::1]:5080;transport=tcp").expect("uri");
        assert_eq!(
            (u.user.as_deref(), u.host.as_str(), u.port),
            (Some("alice"), "[::1]", Some(5080))
        );
        assert_eq!(u.params, ";transport=tcp");
        assert_eq!(Uri::parse("tel:+1").map(|u| u.host), None);
        assert_eq!(
            split_commas("<sip:a,b>;x, sip:c"),
            vec!["<sip:a,b>;x".to_string(), "sip:c".into()]
        );
    }
}
