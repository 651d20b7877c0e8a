//! The one error type of the crate: why bytes are not a SIP message or an SDP body, why a digest
//! challenge cannot be answered, why a registration or a call failed.

use std::net::SocketAddr;

use crate::message::{MAX_HEADERS, MAX_MESSAGE};

/// What went wrong, in words a fax server's operator understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Bytes that are not a SIP message (RFC 3261 §7, §25).
    #[error("message larger than {MAX_MESSAGE} octets")]
    TooLarge,
    #[error("no blank line after the headers")]
    Incomplete,
    #[error("bad start line: {0:?}")]
    StartLine(String),
    #[error("bad header line: {0:?}")]
    Header(String),
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("message is not UTF-8 text")]
    NotText,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),

    // A session description that cannot be read (RFC 4566).
    #[error("SDP is not text")]
    SdpNotText,
    #[error("bad SDP line {0:?}")]
    SdpLine(String),
    #[error("no media line")]
    NoMedia,

    // A digest challenge that cannot be answered (RFC 7616).
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("challenge without {0}")]
    ChallengeMissing(&'static str),
    #[error("unsupported digest algorithm {0}")]
    Algorithm(String),

    // Registration (RFC 3261 §10).
    #[error(
        "the registrar refused our credentials ({code} {reason}): check the SIP user and password"
    )]
    RegistrarCredentials { code: u16, reason: String },
    #[error("the registrar answered {code} {reason}")]
    RegistrarRefused { code: u16, reason: String },
    #[error("no answer from the registrar at {0} (timer F)")]
    RegistrarTimeout(SocketAddr),
    #[error("the registrar's challenge cannot be answered: {0}")]
    RegistrarChallenge(String),

    // Calls: each final response maps to a fax job outcome.
    #[error("busy ({code})")]
    Busy { code: u16 },
    #[error("no answer ({code})")]
    NoAnswer { code: u16 },
    #[error("bad number ({code})")]
    BadNumber { code: u16 },
    #[error("the far end does not accept T.38 ({code})")]
    NoT38 { code: u16 },
    #[error("trunk down ({code}): try another fax server")]
    TrunkDown { code: u16 },
    #[error("call refused: {code} {reason}")]
    Refused { code: u16, reason: String },
    #[error("no final response (timer B)")]
    Timeout,
    #[error("the answer has no usable SDP: {0}")]
    BadAnswer(String),
    #[error("the proxy refused our credentials ({code})")]
    Credentials { code: u16 },

    #[error("SIP transport {0:?} is not supported (udp or tcp)")]
    UnsupportedTransport(String),
    #[error("the user agent has stopped")]
    Stopped,
}

impl Error {
    /// The error for a final response (3xx to 6xx) to an INVITE or a request in its dialog.
    pub(crate) fn from_response(code: u16, reason: &str) -> Self {
        match code {
            486 | 600 => Error::Busy { code },
            408 | 480 | 487 => Error::NoAnswer { code },
            404 | 484 | 604 => Error::BadNumber { code },
            488 | 415 | 606 => Error::NoT38 { code },
            503 => Error::TrunkDown { code },
            401 | 403 | 407 => Error::Credentials { code },
            _ => Error::Refused {
                code,
                reason: reason.to_string(),
            },
        }
    }
}
