//! SIP transactions (RFC 3261 §17), sans I/O: the client and server state machines for INVITE and
//! non-INVITE, with timers A to K. Time is an argument; the caller sends what [`ClientTx::poll_transmit`]
//! / [`ServerTx::poll_transmit`] return and calls `on_timer` at [`ClientTx::deadline`].

use std::time::Duration;

use crate::message::Message;

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1: round-trip estimate (500 ms).
    pub t1: Duration,
    /// T2: longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// T4: longest a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What a client transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// 1xx.
    Provisional(Message),
    /// 2xx to 6xx (for INVITE, 2xx is passed up and the transaction ends: the ACK is the dialog's).
    Final(Message),
    /// Timer B or F: no final response (RFC 3261 §17.1.1.2: treat as 408).
    Timeout,
    /// The transaction is over and can be dropped.
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    /// Calling (INVITE) / Trying (non-INVITE).
    Trying,
    Proceeding,
    /// Completed: absorbing retransmitted final responses (timer D / K).
    Completed,
    Terminated,
}

/// A client transaction.
#[derive(Debug)]
pub struct ClientTx {
    invite: bool,
    reliable: bool,
    timers: Timers,
    request: Vec<u8>,
    /// ACK for a non-2xx final response to INVITE (built by us, same branch).
    ack: Option<Vec<u8>>,
    state: CState,
    out: Vec<Vec<u8>>,
    /// Retransmission (A / E) and its interval.
    retransmit_at: Option<Duration>,
    interval: Duration,
    /// B / F timeout, D / K end.
    timeout_at: Option<Duration>,
    end_at: Option<Duration>,
    pub branch: String,
}

impl ClientTx {
    /// Starts a transaction for `request` (its top Via carries `branch`); the request is sent at once.
    pub fn new(request: &Message, reliable: bool, timers: Timers, now: Duration) -> Self {
        let invite = request.method() == Some("INVITE");
        let bytes = request.to_bytes();
        Self {
            invite,
            reliable,
            timers,
            out: vec![bytes.clone()],
            request: bytes,
            ack: None,
            state: CState::Trying,
            retransmit_at: (!reliable).then_some(now + timers.t1),
            interval: timers.t1,
            timeout_at: Some(now + timers.t1 * 64),
            end_at: None,
            branch: request.branch().unwrap_or_default(),
        }
    }

    /// A datagram to send now.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop()
    }

    /// When [`on_timer`](Self::on_timer) is next due.
    pub fn deadline(&self) -> Option<Duration> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == CState::Terminated
    }

    /// A response matched to this transaction (by branch and CSeq method).
    pub fn on_response(
        &mut self,
        now: Duration,
        resp: &Message,
        request: &Message,
    ) -> Option<ClientEvent> {
        let code = resp.code()?;
        match self.state {
            CState::Trying | CState::Proceeding => {
                if code < 200 {
                    self.state = CState::Proceeding;
                    if self.invite {
                        // Timer A stops once anything is heard (RFC 3261 §17.1.1.2).
                        self.retransmit_at = None;
                    } else {
                        self.interval = self.timers.t2;
                    }
                    return Some(ClientEvent::Provisional(resp.clone()));
                }
                self.retransmit_at = None;
                self.timeout_at = None;
                if self.invite && code < 300 {
                    self.state = CState::Terminated;
                    return Some(ClientEvent::Final(resp.clone()));
                }
                if self.invite {
                    let ack = ack_for(request, resp).to_bytes();
                    self.out.push(ack.clone());
                    self.ack = Some(ack);
                }
                self.state = CState::Completed;
                let wait = if self.reliable {
                    Duration::ZERO
                } else if self.invite {
                    Duration::from_secs(32)
                } else {
                    self.timers.t4
                };
                self.end_at = Some(now + wait);
                Some(ClientEvent::Final(resp.clone()))
            }
            CState::Completed => {
                // A retransmitted final response: ACK it again (INVITE), else absorb.
                if let Some(a) = &self.ack {
                    self.out.push(a.clone());
                }
                None
            }
            CState::Terminated => None,
        }
    }

    pub fn on_timer(&mut self, now: Duration) -> Option<ClientEvent> {
        if self.end_at.is_some_and(|t| t <= now) {
            self.state = CState::Terminated;
            self.end_at = None;
            return Some(ClientEvent::Terminated);
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.state = CState::Terminated;
            self.timeout_at = None;
            self.retransmit_at = None;
            return Some(ClientEvent::Timeout);
        }
        if let Some(t) = self.retransmit_at
            && t <= now
        {
            self.out.push(self.request.clone());
            self.interval = if self.invite {
                self.interval * 2
            } else {
                (self.interval * 2).min(self.timers.t2)
            };
            self.retransmit_at = Some(now + self.interval);
        }
        None
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top Via, From, Call-ID,
/// CSeq number and Route; To from the response.
pub fn ack_for(request: &Message, resp: &Message) -> Message {
    let mut ack = Message::request("ACK", request.request_uri().unwrap_or_default());
    if let Some(v) = request.header_values("Via").first() {
        ack.add_header("Via", v.clone());
    }
    for h in ["From", "Call-ID", "Route"] {
        for v in request
            .headers
            .iter()
            .filter(|(n, _)| n == h)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
        {
            ack.add_header(h, v);
        }
    }
    if let Some(to) = resp.header("To") {
        ack.add_header("To", to);
    }
    if let Some((n, _)) = request.cseq() {
        ack.add_header("CSeq", format!("{n} ACK"));
    }
    ack.add_header("Max-Forwards", "70");
    ack
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SState {
    Proceeding,
    Completed,
    /// INVITE only: ACK received, absorbing ACKs (timer I).
    Confirmed,
    /// INVITE only, after a 2xx (RFC 6026 §7.1): retransmissions of the request are absorbed while the
    /// dialog retransmits the 2xx, until timer L.
    Accepted,
    Terminated,
}

/// What a server transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H: no ACK for our final response to INVITE.
    NoAck,
    Terminated,
}

/// A server transaction.
#[derive(Debug)]
pub struct ServerTx {
    invite: bool,
    reliable: bool,
    timers: Timers,
    state: SState,
    last: Option<Vec<u8>>,
    out: Vec<Vec<u8>>,
    retransmit_at: Option<Duration>,
    interval: Duration,
    timeout_at: Option<Duration>,
    end_at: Option<Duration>,
    pub branch: String,
}

impl ServerTx {
    pub fn new(request: &Message, reliable: bool, timers: Timers) -> Self {
        Self {
            invite: request.method() == Some("INVITE"),
            reliable,
            timers,
            state: SState::Proceeding,
            last: None,
            out: Vec::new(),
            retransmit_at: None,
            interval: timers.t1,
            timeout_at: None,
            end_at: None,
            branch: request.branch().unwrap_or_default(),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop()
    }

    pub fn deadline(&self) -> Option<Duration> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == SState::Terminated
    }

    /// Sends a response. A 2xx to INVITE moves to Accepted (RFC 6026): the dialog retransmits it until
    /// the ACK, the transaction absorbs retransmitted INVITEs until timer L (64·T1).
    pub fn respond(&mut self, now: Duration, resp: &Message) {
        let code = resp.code().unwrap_or(500);
        let bytes = resp.to_bytes();
        self.out.push(bytes.clone());
        self.last = Some(bytes);
        if code < 200 || self.state != SState::Proceeding {
            return;
        }
        if self.invite && code < 300 {
            self.state = SState::Accepted;
            self.end_at = Some(now + self.timers.t1 * 64);
            return;
        }
        self.state = SState::Completed;
        if self.invite {
            if !self.reliable {
                self.retransmit_at = Some(now + self.timers.t1);
            }
            self.timeout_at = Some(now + self.timers.t1 * 64);
        } else {
            self.end_at = Some(
                now + if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t1 * 64
                },
            );
        }
    }

    /// A retransmission of the request (or the ACK of a non-2xx final response); in Accepted both are
    /// absorbed.
    pub fn on_request(&mut self, now: Duration, req: &Message) {
        if req.method() == Some("ACK") {
            if self.invite && self.state == SState::Completed {
                self.state = SState::Confirmed;
                self.retransmit_at = None;
                self.timeout_at = None;
                self.end_at = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    },
                );
            }
            return;
        }
        if matches!(self.state, SState::Proceeding | SState::Completed)
            && let Some(l) = &self.last
        {
            self.out.push(l.clone());
        }
    }

    pub fn on_timer(&mut self, now: Duration) -> Option<ServerEvent> {
        if self.end_at.is_some_and(|t| t <= now) {
            self.state = SState::Terminated;
            self.end_at = None;
            return Some(ServerEvent::Terminated);
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.state = SState::Terminated;
            self.timeout_at = None;
            self.retransmit_at = None;
            return Some(ServerEvent::NoAck);
        }
        if let Some(t) = self.retransmit_at
            && t <= now
        {
            if let Some(l) = &self.last {
                self.out.push(l.clone());
            }
            self.interval = (self.interval * 2).min(self.timers.t2);
            self.retransmit_at = Some(now + self.interval);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str) -> Message {
        let mut m = Message::request(method, "sip:b@127.0.0.1");
        m.add_header("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc");
        m.add_header("From", "<sip:a@127.0.0.1>;tag=1");
        m.add_header("To", "<sip:b@127.0.0.1>");
        m.add_header("Call-ID", "c1");
        m.add_header("CSeq", format!("1 {method}"));
        m
    }

    fn drive(tx: &mut ClientTx, until: Duration) -> (usize, Vec<ClientEvent>) {
        let (mut sent, mut ev) = (0, Vec::new());
        while let Some(now) = tx.deadline() {
            if now > until {
                break;
            }
            ev.extend(tx.on_timer(now));
            while tx.poll_transmit().is_some() {
                sent += 1;
            }
        }
        (sent, ev)
    }

    #[test]
    fn invite_retransmits_on_timer_a_and_times_out_at_b() {
        let r = req("INVITE");
        let mut tx = ClientTx::new(&r, false, Timers::default(), Duration::ZERO);
        assert!(tx.poll_transmit().is_some());
        let (sent, ev) = drive(&mut tx, Duration::from_secs(40));
        // A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: six retransmissions before B at 32 s.
        assert_eq!(sent, 6);
        assert_eq!(ev, vec![ClientEvent::Timeout]);
    }

    #[test]
    fn non_invite_caps_at_t2_and_times_out_at_f() {
        let r = req("REGISTER");
        let mut tx = ClientTx::new(&r, false, Timers::default(), Duration::ZERO);
        let _ = tx.poll_transmit();
        let (sent, ev) = drive(&mut tx, Duration::from_secs(40));
        // E: 0.5, 1.5, 3.5, 7.5, then every 4 s until 32 s: 0.5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5.
        assert_eq!(sent, 10);
        assert_eq!(ev, vec![ClientEvent::Timeout]);
    }

    #[test]
    fn invite_error_is_acked_and_retransmissions_absorbed_until_d() {
        let r = req("INVITE");
        let mut tx = ClientTx::new(&r, false, Timers::default(), Duration::ZERO);
        let _ = tx.poll_transmit();
        let busy = Message::response_to(&r, 486, "Busy Here", Some("x"));
        assert!(matches!(
            tx.on_response(Duration::from_millis(100), &busy, &r),
            Some(ClientEvent::Final(_))
        ));
        let ack = Message::parse(&tx.poll_transmit().expect("ACK")).expect("parses");
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.cseq(), Some((1, "ACK".into())));
        assert_eq!(ack.to_tag().as_deref(), Some("x"));
        // A retransmitted 486 is absorbed and ACKed again.
        assert_eq!(tx.on_response(Duration::from_millis(600), &busy, &r), None);
        assert!(tx.poll_transmit().is_some());
        assert_eq!(
            tx.on_timer(Duration::from_secs(33)),
            Some(ClientEvent::Terminated)
        );
    }

    #[test]
    fn server_invite_retransmits_final_until_ack_then_absorbs_for_i() {
        let r = req("INVITE");
        let mut st = ServerTx::new(&r, false, Timers::default());
        st.respond(
            Duration::ZERO,
            &Message::response_to(&r, 488, "Not Acceptable Here", Some("t")),
        );
        assert!(st.poll_transmit().is_some());
        // G at 0.5 s, 1.5 s.
        st.on_timer(Duration::from_millis(500));
        st.on_timer(Duration::from_millis(1500));
        assert!(st.poll_transmit().is_some() && st.poll_transmit().is_some());
        // The request again: the response again.
        st.on_request(Duration::from_millis(1600), &r);
        assert!(st.poll_transmit().is_some());
        st.on_request(Duration::from_millis(1700), &req("ACK"));
        assert_eq!(
            st.on_timer(Duration::from_millis(1700) + Duration::from_secs(5)),
            Some(ServerEvent::Terminated)
        );
        // Without an ACK, H ends it with NoAck.
        let mut st = ServerTx::new(&r, false, Timers::default());
        st.respond(
            Duration::ZERO,
            &Message::response_to(&r, 486, "Busy", Some("t")),
        );
        let mut ev = None;
        let mut now = Duration::ZERO;
        while let Some(d) = st.deadline() {
            now = d;
            if let Some(e) = st.on_timer(now) {
                ev = Some(e);
                break;
            }
        }
        assert_eq!(ev, Some(ServerEvent::NoAck));
        assert_eq!(now, Duration::from_secs(32));
    }

    #[test]
    fn server_invite_2xx_absorbs_retransmissions_until_timer_l() {
        let r = req("INVITE");
        let mut st = ServerTx::new(&r, false, Timers::default());
        st.respond(
            Duration::ZERO,
            &Message::response_to(&r, 200, "OK", Some("t")),
        );
        assert!(st.poll_transmit().is_some());
        // Not retransmitted by the transaction (that is the dialog's), and the request again is absorbed.
        assert_eq!(st.deadline(), Some(Duration::from_secs(32)));
        st.on_request(Duration::from_secs(1), &r);
        st.on_request(Duration::from_secs(1), &req("ACK"));
        assert!(st.poll_transmit().is_none());
        assert!(!st.is_terminated());
        assert_eq!(
            st.on_timer(Duration::from_secs(32)),
            Some(ServerEvent::Terminated)
        );
    }

    #[test]
    fn server_non_invite_absorbs_retransmissions_for_j() {
        let r = req("OPTIONS");
        let mut st = ServerTx::new(&r, false, Timers::default());
        st.respond(
            Duration::ZERO,
            &Message::response_to(&r, 200, "OK", Some("t")),
        );
        let _ = st.poll_transmit();
        st.on_request(Duration::from_secs(1), &r);
        assert!(st.poll_transmit().is_some());
        assert_eq!(
            st.on_timer(Duration::from_secs(32)),
            Some(ServerEvent::Terminated)
        );
    }
}
