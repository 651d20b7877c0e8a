//! INVITE dialogs (RFC 3261 §12 to §15): their state as caller (UAC) and callee (UAS), the 2xx the
//! callee retransmits until the ACK (§13.3.1.4), and the rule for offers inside a dialog (§14, RFC 3311):
//! a re-INVITE or UPDATE is answered with our current SDP, so a session refresh never disturbs a fax.

use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::{CallEvent, Transport};
use crate::message::{Message, addr_uri};
use crate::sdp::Sdp;
use crate::transaction::Timers;

/// One dialog, keyed by its Call-ID in the engine.
#[derive(Debug)]
pub(crate) struct Dialog {
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From / To values as sent in this dialog, without tags.
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Our current SDP (answered to refreshes).
    pub local_sdp: Vec<u8>,
    /// Our T.38 SDP, answered when the far end switches the call to T.38.
    pub t38_local: Option<Vec<u8>>,
    pub sdp_version: u64,
    /// UAS: the 2xx we retransmit until the ACK comes.
    pub pending_2xx: Option<Retransmit2xx>,
    /// We made the Call-ID (we called): our re-INVITE waits longer after a 491 (RFC 3261 §14.1).
    pub owns_call_id: bool,
}

/// A 2xx to an INVITE or re-INVITE sent by the UAS core, retransmitted from T1 doubling up to T2 until
/// the ACK with its CSeq number, given up after 64·T1 (RFC 3261 §13.3.1.4).
#[derive(Debug)]
pub(crate) struct Retransmit2xx {
    /// The INVITE's CSeq number, which its ACK carries.
    pub cseq: u32,
    pub bytes: Vec<u8>,
    pub to: SocketAddr,
    pub transport: Transport,
    pub at: Duration,
    interval: Duration,
    until: Duration,
}

impl Retransmit2xx {
    pub fn new(
        ok: &Message,
        to: SocketAddr,
        transport: Transport,
        now: Duration,
        t: Timers,
    ) -> Self {
        Self {
            cseq: ok.cseq().map_or(0, |c| c.0),
            bytes: ok.to_bytes(),
            to,
            transport,
            at: now + t.t1,
            interval: t.t1,
            until: now + t.t1 * 64,
        }
    }

    /// At its deadline: the bytes to send again, or `None` when it is time to give up.
    pub fn fire(&mut self, now: Duration, t: Timers) -> Option<Vec<u8>> {
        if now >= self.until {
            return None;
        }
        self.interval = (self.interval * 2).min(t.t2);
        self.at = now + self.interval;
        Some(self.bytes.clone())
    }
}

/// A From or To value without its tag.
fn without_tag(v: &str) -> String {
    v.split(";tag=").next().unwrap_or(v).to_string()
}

impl Dialog {
    /// The caller's dialog from its INVITE and the 2xx that answered it (§12.1.2): the route set is the
    /// response's Record-Route reversed, the remote target its Contact. A 2xx without a usable Contact
    /// breaks §12.1.2 but must still be acknowledged (and the call hung up): its target is then the
    /// INVITE's Request-URI, which reached the same peer.
    pub fn as_uac(invite: &Message, ok: &Message, t38_local: Option<Vec<u8>>) -> Self {
        let mut route_set = ok.header_values("Record-Route");
        route_set.reverse();
        Self {
            local_tag: invite.from_tag().unwrap_or_default(),
            remote_tag: ok.to_tag().unwrap_or_default(),
            local_uri: without_tag(invite.header("From").unwrap_or("")),
            remote_uri: without_tag(invite.header("To").unwrap_or("")),
            remote_target: ok
                .header("Contact")
                .and_then(addr_uri)
                .map(|u| u.to_string())
                .or_else(|| invite.request_uri().map(str::to_owned))
                .unwrap_or_default(),
            route_set,
            local_cseq: invite.cseq().map_or(1, |c| c.0),
            local_sdp: invite.body.clone(),
            t38_local,
            sdp_version: 1,
            pending_2xx: None,
            owns_call_id: true,
        }
    }

    /// The callee's dialog from the INVITE it answers with `local_sdp` (§12.1.1): the route set is the
    /// request's Record-Route in order, the remote target its Contact (else its From).
    pub fn as_uas(invite: &Message, local_tag: &str, local_sdp: Vec<u8>) -> Self {
        let remote_target = invite
            .header("Contact")
            .and_then(addr_uri)
            .or_else(|| invite.header("From").and_then(addr_uri))
            .map(|u| u.to_string())
            .unwrap_or_default();
        Self {
            local_tag: local_tag.to_string(),
            remote_tag: invite.from_tag().unwrap_or_default(),
            local_uri: without_tag(invite.header("To").unwrap_or("")),
            remote_uri: without_tag(invite.header("From").unwrap_or("")),
            remote_target,
            route_set: invite.header_values("Record-Route"),
            local_cseq: 0,
            local_sdp,
            t38_local: None,
            sdp_version: 1,
            pending_2xx: None,
            owns_call_id: false,
        }
    }

    /// From and To of our requests in this dialog.
    pub fn request_addresses(&self) -> (String, String) {
        (
            format!("{};tag={}", self.local_uri, self.local_tag),
            format!("{};tag={}", self.remote_uri, self.remote_tag),
        )
    }

    /// A re-INVITE or UPDATE from the far end (§14.2, RFC 3311): a switch to T.38 takes our prepared T.38
    /// SDP as the current one; anything else (no SDP, the same kind of media) is a refresh. Returns the
    /// event for the call; the answer carries [`Dialog::local_sdp`].
    pub fn take_offer(&mut self, request: &Message) -> CallEvent {
        let sdp = Sdp::parse(&request.body).ok();
        let offers_t38 = sdp.as_ref().and_then(Sdp::t38).is_some();
        let ours_t38 = Sdp::parse(&self.local_sdp)
            .ok()
            .and_then(|s| s.t38())
            .is_some();
        let refresh = request.body.is_empty() || offers_t38 == ours_t38;
        if offers_t38
            && !ours_t38
            && let Some(t) = self.t38_local.clone()
        {
            self.local_sdp = t;
        }
        self.sdp_version += 1;
        CallEvent::ReInvite { sdp, refresh }
    }
}
