//! The link between a fax server and the supervising server, version 1.
//!
//! A fax server opens the link itself (so it works behind NAT): a WebSocket at `/v1/node/link` on the
//! supervisor, authenticated with the credential it obtained when it enrolled. Every message is one text frame
//! holding one JSON [`Envelope`]. Bulk data never travels on the link: the fax server downloads documents and
//! uploads received faxes over HTTPS on the same port (`/v1/node/documents/{sha256}`,
//! `/v1/node/inbound-documents`), and the link carries only their content hashes.
//!
//! # Reliability
//! Every message that changes state carries a `msg_id` that its sender allocates from a counter it persists.
//! The receiver applies it, makes the effect durable, and only then answers [`Body::Ack`] with that id. The
//! sender keeps every unacknowledged message and sends it again after a reconnect; receivers treat a
//! repeated `msg_id` (or a repeated effect, such as the result of an attempt already finished) as a no-op that
//! is acknowledged again. Messages that change nothing (heartbeats, acks) have `msg_id` 0.
//!
//! # Resuming
//! After a reconnect the fax server's [`Hello`] lists every attempt it still holds with its state. The
//! supervisor answers [`Welcome`] listing the attempts it believes are on that fax server; each side then
//! reconciles (see `ARCHITECTURE.md`, "Invariants"): the supervisor never offers an attempt twice, and a fax
//! server never executes an attempt id it has seen before.
//!
//! The full description, with examples, is in `crates/protocol/PROTOCOL.md`.

use serde::{Deserialize, Serialize};

/// A closed vocabulary of `snake_case` words (statuses, phases, fault sides): the enum with its serde,
/// OpenAPI (`openapi` feature) and database (`sqlx` feature, text columns) forms, `ALL`, `as_str`,
/// `Display` and `FromStr` (whose error names the words allowed). Each word is written once.
macro_rules! vocabulary {
    ($(#[$m:meta])* pub enum $name:ident ($what:literal) { $($(#[$vm:meta])* $v:ident = $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(
            feature = "sqlx",
            derive(sqlx::Type),
            sqlx(type_name = "TEXT", rename_all = "snake_case")
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl $name {
            /// Every word, in order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{s:?} is not {}; use {}", $what, words.join(", "))
                })
            }
        }
    };
}

pub mod failure;
pub mod job;
pub mod settings;

pub use failure::FailureReason;

/// The protocol version this build speaks. A peer announcing another major version is refused with a
/// [`Body::Goodbye`] naming both versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the WebSocket link on the supervisor.
pub const LINK_PATH: &str = "/v1/node/link";

/// One message on the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender-allocated, strictly increasing per sender; 0 for messages that need no acknowledgement.
    #[serde(default)]
    pub msg_id: u64,
    #[serde(flatten)]
    pub body: Body,
}

impl Envelope {
    pub fn new(msg_id: u64, body: Body) -> Self {
        Self { msg_id, body }
    }

    /// A message that needs no acknowledgement.
    pub fn unacked(body: Body) -> Self {
        Self { msg_id: 0, body }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain data types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::Malformed(e.to_string()))
    }
}

/// Errors reading the link.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("malformed link message: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    // Fax server -> supervisor.
    Hello(Hello),
    Heartbeat(Heartbeat),
    JobAccept {
        attempt_id: String,
    },
    JobReject {
        attempt_id: String,
        reason: String,
    },
    JobProgress(JobProgress),
    JobResult(JobResult),
    InboundFax(InboundFax),
    // Supervisor -> fax server.
    Welcome(Welcome),
    JobOffer(JobOffer),
    /// Stop an attempt; answered by a result with reason `cancelled` (or, when the call ends first, by
    /// its real result).
    JobCancel {
        attempt_id: String,
        /// Only if the attempt has not started dialling: the supervisor withdraws a duplicate of a job that
        /// another attempt has sent, and a call already under way is left to finish rather than cut mid-page.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        only_before_dialling: bool,
    },
    /// The supervisor asks for the state of an attempt whose deadline passed; answered by a `JobProgress`,
    /// a `JobResult`, or a `JobUnknown`.
    JobQuery {
        attempt_id: String,
    },
    /// The fax server holds no such attempt (it never arrived, or it was finished and acknowledged).
    JobUnknown {
        attempt_id: String,
    },
    /// The supervisor's registered settings for this fax server (claim 7), secrets included; answered by
    /// `SettingsResult`.
    SettingsPush {
        version: u64,
        settings: Box<settings::FaxServerSettings>,
    },
    /// The fax server applied (and stored) the settings of `version`, or refused them with `error`.
    SettingsResult {
        version: u64,
        applied: bool,
        error: Option<String>,
    },
    // Both ways.
    Ack {
        ack: u64,
    },
    Goodbye {
        reason: String,
    },
}

/// What a fax server can do, as it announces it on every connect (`{}`: nothing announced yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Capabilities {
    /// Lines usable at once, both directions together.
    pub channels: u32,
    /// Highest signalling rate, bit/s (14400 for V.17).
    pub max_bit_rate: u32,
    pub ecm: bool,
    /// Vertical resolutions it can send: "standard", "fine", "superfine", "300", "r8", "r16".
    pub resolutions: Vec<String>,
    /// Number prefixes it can reach (E.164 with '+'); empty means "any number".
    pub reachable_prefixes: Vec<String>,
    /// Numbers it answers (E.164).
    pub answers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub software: String,
    pub capabilities: Capabilities,
    /// Every attempt the fax server still holds, whatever its state.
    pub in_flight: Vec<AttemptState>,
    /// The highest supervisor `msg_id` this fax server has applied, so the supervisor can drop older ones.
    pub last_applied: u64,
    /// The version of the settings it runs (0: none yet).
    #[serde(default)]
    pub settings_version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptState {
    pub attempt_id: String,
    pub phase: Phase,
    /// Set when the attempt has ended but its result is not yet acknowledged.
    pub result: Option<JobResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub fax_server_id: String,
    pub heartbeat_interval_ms: u64,
    /// Attempts the supervisor believes this fax server holds.
    pub expected_attempts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    Idle,
    Sending,
    Receiving,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub channels: Vec<ChannelState>,
    /// Why the line offers fewer channels than configured (a failed SIP registration, a silent proxy),
    /// in words for an operator; absent when all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// Per-job options carried to the fax server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SendOptions {
    pub resolution: String,
    pub ecm: bool,
    pub header: Option<String>,
    pub tsi: Option<String>,
    /// Highest bit rate to try, for step-down on retries.
    pub max_bit_rate: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOffer {
    pub attempt_id: String,
    pub job_id: String,
    /// The number to dial, E.164 with '+'.
    pub recipient: String,
    pub documents: Vec<DocumentRef>,
    pub options: SendOptions,
    /// 1 for the first attempt of the job.
    pub attempt_number: u32,
    /// The job's previous attempt failed in training or transmission
    /// ([`FailureReason::calls_for_step_down`]): this one steps down as the fax server's retry policy says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step_down: bool,
    /// The longest the attempt may take from the offer's arrival to the end of the call: the fax server
    /// hangs up when it is reached (reason `call_time_limit`). The supervisor relies on it: once a fax
    /// server has been silent for this long, none of its calls for this attempt can still be running, so
    /// the job may be dispatched again without sending it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_limit_ms: Option<u64>,
}

vocabulary! {
    /// Where an attempt is. A fax server reports the phases from `Accepted` on; `Offered` is the
    /// supervisor's (the offer is out, no answer yet).
    pub enum Phase ("a phase") {
        Offered = "offered",
        Accepted = "accepted",
        Preparing = "preparing",
        Dialling = "dialling",
        Negotiating = "negotiating",
        Transmitting = "transmitting",
        Finished = "finished",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub attempt_id: String,
    pub phase: Phase,
    /// Page being sent (1-based) while transmitting.
    pub page: Option<u32>,
    pub pages_total: Option<u32>,
    /// Negotiated signalling rate, once known.
    pub bit_rate: Option<u32>,
}

vocabulary! {
    /// Who is at fault when an attempt fails: it decides how the supervisor retries.
    pub enum FaultSide ("a fault side") {
        /// Busy, no answer, no fax tone, training failed, remote hung up: retry the same number later.
        Recipient = "recipient",
        /// Line down, trunk refusing, fax server failing: retry at once on another fax server.
        FaxServer = "fax_server",
        /// Bad number, incompatible capabilities, document rejected: retrying cannot help.
        Permanent = "permanent",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver confirmed the last page (MCF after EOP, or PPS-EOP in ECM).
    Sent { pages: u32 },
    Failed {
        fault: FaultSide,
        /// A stable short code such as `busy`, `no_answer`, `no_fax_tone`, `training_failed`.
        reason: FailureReason,
        /// The detail: the T.30 state and frame when the call got that far, else the SIP response or
        /// the error.
        t30: Option<String>,
        pages_sent: u32,
    },
}

impl Outcome {
    /// A failure for `reason`, at fault the side the reason names (every line reports a reason the
    /// same way).
    pub fn failed(reason: FailureReason, detail: Option<String>, pages_sent: u32) -> Self {
        Outcome::Failed {
            fault: reason.fault(),
            reason,
            t30: detail,
            pages_sent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CallStats {
    pub bit_rate: Option<u32>,
    pub ecm: Option<bool>,
    pub coding: Option<String>,
    pub duration_ms: u64,
    pub bad_lines: u32,
    pub retransmissions: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub attempt_id: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub stats: CallStats,
}

/// A fax the fax server received; its TIFF was uploaded first and is named by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundFax {
    /// Allocated by the fax server; the supervisor stores each id once.
    pub inbound_id: String,
    pub document: DocumentRef,
    pub pages: u32,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    /// The sender's station identity.
    pub tsi: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    #[serde(default)]
    pub stats: CallStats,
    /// What arrived of each page, in order (empty from fax servers that do not say).
    #[serde(default)]
    pub page_info: Vec<InboundPage>,
    /// Why the call ended before the fax was complete; `None` when it ended as a fax ends. The pages
    /// that came are kept either way.
    #[serde(default)]
    pub failure: Option<String>,
}

/// Whether a received fax arrived whole: the call ended as a fax ends and every page was confirmed (a fax
/// server that gives no page details vouches for its pages by announcing the fax).
pub fn received_whole(pages: &[InboundPage], failure: Option<&str>) -> bool {
    failure.is_none() && pages.iter().all(|p| p.confirmed)
}

/// One page of a received fax as it arrived (T.30 copy quality).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundPage {
    /// Lines stored.
    pub lines: u32,
    /// Lines that did not decode (printed as the line above).
    pub bad_lines: u32,
    /// Lines missing: lost in transit, or after the data stopped early.
    pub lines_lost: u32,
    /// The page's data ended as a page ends (RTC / EOFB).
    pub complete: bool,
    /// The fax server confirmed it to the sender (MCF / RTP): the sender counts it delivered.
    pub confirmed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(env: Envelope, json: &str) {
        assert_eq!(env.to_json(), json);
        assert_eq!(Envelope::from_json(json).expect("parses"), env);
    }

    #[test]
    fn wire_format_is_stable() {
        check(
            Envelope::new(
                7,
                Body::JobAccept {
                    attempt_id: "a1".into(),
                },
            ),
            r#"{"msg_id":7,"type":"job_accept","attempt_id":"a1"}"#,
        );
        check(
            Envelope::unacked(Body::Ack { ack: 7 }),
            r#"{"msg_id":0,"type":"ack","ack":7}"#,
        );
        check(
            Envelope::new(
                9,
                Body::JobResult(JobResult {
                    attempt_id: "a1".into(),
                    outcome: Outcome::Failed {
                        fault: FaultSide::Recipient,
                        reason: FailureReason::Busy,
                        t30: None,
                        pages_sent: 0,
                    },
                    stats: CallStats::default(),
                }),
            ),
            r#"{"msg_id":9,"type":"job_result","attempt_id":"a1","outcome":{"status":"failed","fault":"recipient","reason":"busy","t30":null,"pages_sent":0},"stats":{"bit_rate":null,"ecm":null,"coding":null,"duration_ms":0,"bad_lines":0,"retransmissions":0}}"#,
        );
    }

    /// The settings document as it travels to a fax server: every field by name, the password in the
    /// clear (only ever inside a push to its own fax server).
    #[test]
    fn settings_push_wire_format_is_stable() {
        use settings::*;
        let s = FaxServerSettings {
            station_id: "+49 30 1234567".into(),
            header_template: "Acme {from}|{date} {time}|{page}/{pages}".into(),
            local_numbers: vec!["+49301234567".into()],
            channels: 2,
            sip: SipAccount {
                registrar: "sip.example.com:5060".into(),
                proxy: None,
                user: "fax1".into(),
                auth_user: Some("fax-auth".into()),
                password: Secret::Value("s3cret".into()),
                transport: SipTransport::Tcp,
            },
            t38: T38Options::default(),
            dial_rules: DialRules {
                prefixes: vec!["+49".into()],
                access_code: "0".into(),
            },
            retry: RetryPolicy::default(),
            receive: ReceivePolicy {
                max_pages: 50,
                resolutions: vec![ReceiveResolution::Standard, ReceiveResolution::Fine],
            },
            time_zone: "Europe/Berlin".into(),
        };
        s.validate().expect("valid");
        check(
            Envelope::new(
                3,
                Body::SettingsPush {
                    version: 5,
                    settings: Box::new(s),
                },
            ),
            r#"{"msg_id":3,"type":"settings_push","version":5,"settings":{"station_id":"+49 30 1234567","header_template":"Acme {from}|{date} {time}|{page}/{pages}","local_numbers":["+49301234567"],"channels":2,"sip":{"registrar":"sip.example.com:5060","proxy":null,"user":"fax1","auth_user":"fax-auth","password":"s3cret","transport":"tcp"},"t38":{"version":0,"max_bit_rate":14400,"ecm":true,"redundancy_depth":3,"max_datagram":400},"dial_rules":{"prefixes":["+49"],"access_code":"0"},"retry":{"step_down_rate":true,"ecm_off_on_retry":false},"receive":{"max_pages":50,"resolutions":["standard","fine"]},"time_zone":"Europe/Berlin"}}"#,
        );
        // A push naming a setting this build does not know is refused whole, not half applied.
        let unknown = r#"{"msg_id":3,"type":"settings_push","version":5,"settings":{"channels":2,"fax_speed":"warp"}}"#;
        assert!(Envelope::from_json(unknown).is_err());
    }

    fn offer(call_limit_ms: Option<u64>) -> Envelope {
        Envelope::unacked(Body::JobOffer(JobOffer {
            attempt_id: "a1".into(),
            job_id: "j1".into(),
            recipient: "+15551234567".into(),
            documents: vec![DocumentRef {
                sha256: "ab".into(),
                size: 3,
                media_type: "image/tiff".into(),
            }],
            options: SendOptions {
                resolution: "fine".into(),
                ecm: true,
                header: None,
                tsi: None,
                max_bit_rate: None,
            },
            attempt_number: 1,
            step_down: false,
            call_limit_ms,
        }))
    }

    /// The call limit and the conditional cancel are optional fields of version 1: messages without them
    /// keep their old wire form in both directions, so fax servers and supervisors of either build talk.
    #[test]
    fn call_limit_and_conditional_cancel_are_compatible_additions() {
        let old_offer = r#"{"msg_id":0,"type":"job_offer","attempt_id":"a1","job_id":"j1","recipient":"+15551234567","documents":[{"sha256":"ab","size":3,"media_type":"image/tiff"}],"options":{"resolution":"fine","ecm":true,"header":null,"tsi":null,"max_bit_rate":null},"attempt_number":1}"#;
        check(offer(None), old_offer);
        check(
            offer(Some(90_000)),
            &old_offer.replace(
                r#""attempt_number":1}"#,
                r#""attempt_number":1,"call_limit_ms":90000}"#,
            ),
        );
        // The step-down after a transmission failure likewise: absent when false.
        let mut stepped = offer(None);
        if let Body::JobOffer(o) = &mut stepped.body {
            o.attempt_number = 2;
            o.step_down = true;
        }
        check(
            stepped,
            &old_offer.replace(
                r#""attempt_number":1}"#,
                r#""attempt_number":2,"step_down":true}"#,
            ),
        );
        check(
            Envelope::unacked(Body::JobCancel {
                attempt_id: "a1".into(),
                only_before_dialling: false,
            }),
            r#"{"msg_id":0,"type":"job_cancel","attempt_id":"a1"}"#,
        );
        check(
            Envelope::unacked(Body::JobCancel {
                attempt_id: "a1".into(),
                only_before_dialling: true,
            }),
            r#"{"msg_id":0,"type":"job_cancel","attempt_id":"a1","only_before_dialling":true}"#,
        );
    }

    #[test]
    fn inbound_fax_wire_format_is_stable() {
        let fax = InboundFax {
            inbound_id: "in1".into(),
            document: DocumentRef {
                sha256: "ab".into(),
                size: 10,
                media_type: "image/tiff".into(),
            },
            pages: 2,
            caller_number: None,
            called_number: Some("+15550102".into()),
            tsi: None,
            started_at: "2026-12-02T08:00:00Z".into(),
            ended_at: "2026-12-02T08:01:00Z".into(),
            stats: CallStats::default(),
            page_info: vec![
                InboundPage {
                    lines: 2292,
                    bad_lines: 0,
                    lines_lost: 0,
                    complete: true,
                    confirmed: true,
                },
                InboundPage {
                    lines: 265,
                    bad_lines: 1,
                    lines_lost: 2021,
                    complete: false,
                    confirmed: false,
                },
            ],
            failure: Some("page 2 arrived incomplete".into()),
        };
        check(
            Envelope::new(3, Body::InboundFax(fax)),
            r#"{"msg_id":3,"type":"inbound_fax","inbound_id":"in1","document":{"sha256":"ab","size":10,"media_type":"image/tiff"},"pages":2,"caller_number":null,"called_number":"+15550102","tsi":null,"started_at":"2026-12-02T08:00:00Z","ended_at":"2026-12-02T08:01:00Z","stats":{"bit_rate":null,"ecm":null,"coding":null,"duration_ms":0,"bad_lines":0,"retransmissions":0},"page_info":[{"lines":2292,"bad_lines":0,"lines_lost":0,"complete":true,"confirmed":true},{"lines":265,"bad_lines":1,"lines_lost":2021,"complete":false,"confirmed":false}],"failure":"page 2 arrived incomplete"}"#,
        );
        // From a fax server that does not send them yet.
        let old = r#"{"msg_id":3,"type":"inbound_fax","inbound_id":"in1","document":{"sha256":"ab","size":10,"media_type":"image/tiff"},"pages":1,"caller_number":null,"called_number":null,"tsi":null,"started_at":"a","ended_at":"b"}"#;
        match Envelope::from_json(old).expect("parses").body {
            Body::InboundFax(f) => assert!(f.page_info.is_empty() && f.failure.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"msg_id":-1,"type":"ack","ack":1}"#,
        ] {
            assert!(
                Envelope::from_json(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
