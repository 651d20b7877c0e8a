//! Why an attempt failed: the stable short codes a fax server reports in [`crate::Outcome::Failed`] and
//! the API shows as an attempt's `reason`, each with the side at fault that decides the retry (HylaFAX's
//! rules: the recipient's faults wait and try the same number again, the fax server's move on at once to
//! another fax server, permanent ones end the job).

use crate::FaultSide;

macro_rules! failure_reasons {
    ($( $(#[$vm:meta])* $v:ident = $s:literal => $fault:ident, )+) => {
        /// A failure's code. Codes this build does not know (a newer fax server's) read as `Other` with
        /// their text, so nothing a fax server reports is lost.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum FailureReason {
            $($(#[$vm])* $v,)+
            /// A code this build does not know.
            Other(String),
        }

        impl FailureReason {
            /// Every code this build knows.
            pub const KNOWN: &'static [FailureReason] = &[$(FailureReason::$v,)+];

            pub fn as_str(&self) -> &str {
                match self {
                    $(FailureReason::$v => $s,)+
                    FailureReason::Other(s) => s,
                }
            }

            /// Who is at fault: what the supervisor does next.
            pub fn fault(&self) -> FaultSide {
                match self {
                    $(FailureReason::$v => FaultSide::$fault,)+
                    // Unknown: the recipient's, which retries the same number on the schedule.
                    FailureReason::Other(_) => FaultSide::Recipient,
                }
            }

            /// The reason a code names (`Other` for one this build does not know).
            pub fn from_code(code: &str) -> Self {
                match code {
                    $($s => FailureReason::$v,)+
                    other => FailureReason::Other(other.to_owned()),
                }
            }
        }
    };
}

failure_reasons! {
    /// The far end is busy (SIP 486/600).
    Busy = "busy" => Recipient,
    /// Nobody answered (SIP 408/480 or no final response in time).
    NoAnswer = "no_answer" => Recipient,
    /// The number does not exist (SIP 404/484/604).
    BadNumber = "bad_number" => Permanent,
    /// The far end answered but would not switch to T.38 (SIP 488).
    NoT38 = "no_t38" => Recipient,
    /// The far end's answer (SDP) could not be used.
    BadAnswer = "bad_answer" => Recipient,
    /// Any other refusal of the call.
    CallRefused = "call_refused" => Recipient,
    /// The SIP trunk refuses calls (SIP 403/503).
    TrunkDown = "trunk_down" => FaxServer,
    /// The SIP proxy did not answer.
    SipTimeout = "sip_timeout" => FaxServer,
    /// The SIP proxy refused the fax server's credentials.
    SipCredentials = "sip_credentials" => FaxServer,
    /// The fax server's line is down (no registration, shutting down).
    LineDown = "line_down" => FaxServer,
    /// Every channel of the fax server was busy.
    NoFreeChannel = "no_free_channel" => FaxServer,
    /// No UDP port for the call's media.
    NoMediaPort = "no_media_port" => FaxServer,
    /// The UDPTL media socket failed.
    MediaError = "media_error" => FaxServer,
    /// The line failed in a way it could not name.
    LineFailure = "line_failure" => FaxServer,
    /// The fax server could not fetch the job's documents.
    DocumentUnavailable = "document_unavailable" => FaxServer,
    /// The fax server could not render the documents (its own fault, not the document's).
    RenderFailed = "render_failed" => FaxServer,
    /// The fax server restarted during the attempt.
    FaxServerRestarted = "fax_server_restarted" => FaxServer,
    /// The fax server is shutting down: it took no new attempt, or its time to finish the call ran out.
    FaxServerStopping = "fax_server_stopping" => FaxServer,
    /// A document cannot be sent as fax pages.
    DocumentRejected = "document_rejected" => Permanent,
    /// No fax tone (T.30 T1 expired without DIS).
    NoFaxTone = "no_fax_tone" => Recipient,
    /// Training failed at every rate.
    TrainingFailed = "training_failed" => Recipient,
    /// The far end hung up mid-fax.
    RemoteHungUp = "remote_hung_up" => Recipient,
    /// A command went unanswered after its repeats.
    RetriesExhausted = "retries_exhausted" => Recipient,
    /// The far end cannot take what is sent (width, coding).
    Incompatible = "incompatible" => Permanent,
    /// The far end rejected a page (RTN after retries).
    PageRejected = "page_rejected" => Recipient,
    /// A page did not arrive complete and could not be confirmed.
    PageIncomplete = "page_incomplete" => Recipient,
    /// The far end stopped answering mid-fax.
    Timeout = "timeout" => Recipient,
    /// The far end's page or page count limits were exceeded.
    LimitExceeded = "limit_exceeded" => Permanent,
    /// The far end refused the password (SID).
    PasswordRejected = "password_rejected" => Permanent,
    /// The attempt reached its call limit and hung up.
    CallTimeLimit = "call_time_limit" => Recipient,
    /// The client cancelled the job.
    Cancelled = "cancelled" => Permanent,
}

impl FailureReason {
    /// A failure of training or of the transmission itself, not of the call: the next attempt steps down
    /// (a lower rate, error correction off) as the fax server's retry policy says. A busy line or no
    /// answer says nothing about the line's quality, so the attempt after them keeps the full rate.
    pub fn calls_for_step_down(&self) -> bool {
        matches!(
            self,
            Self::TrainingFailed
                | Self::RemoteHungUp
                | Self::RetriesExhausted
                | Self::PageRejected
                | Self::PageIncomplete
                | Self::Timeout
        )
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for FailureReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for FailureReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Ok(FailureReason::from_code(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_and_unknown_ones_are_kept() {
        for r in FailureReason::KNOWN {
            assert_eq!(&FailureReason::from_code(r.as_str()), r);
            let json = serde_json::to_string(r).expect("json");
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(
                serde_json::from_str::<FailureReason>(&json).expect("back"),
                *r
            );
        }
        let later: FailureReason = serde_json::from_str("\"quantum_jam\"").expect("kept");
        assert_eq!(later, FailureReason::Other("quantum_jam".into()));
        assert_eq!(later.as_str(), "quantum_jam");
        assert_eq!(FailureReason::Cancelled.fault(), FaultSide::Permanent);
        assert_eq!(FailureReason::Busy.fault(), FaultSide::Recipient);
        assert_eq!(FailureReason::LineDown.fault(), FaultSide::FaxServer);
    }
}
