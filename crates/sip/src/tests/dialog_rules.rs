//! The engine against a scripted peer (the test plays the proxy by hand) with a jumping clock: the
//! transaction timers of RFC 3261 §17 as the engine drives them, the ACK of a 2xx, digest challenges,
//! registration refresh, CANCEL, BYE, and the answer to offers inside a dialog.

use std::time::Duration;

use crate::Error;
use crate::engine::{CallEvent, Command, Engine, Event, IncomingCall, Op, Output, Transport};
use crate::message::Message;
use crate::sdp::Sdp;
use crate::tests::pair::{A, B, config};
use crate::tests::{audio, t38};

const SEC: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Our engine at A, its proxy at B played by the test.
struct Script {
    ua: Engine,
    now: Duration,
    sent: Vec<(Duration, Message)>,
    events: Vec<Event>,
}

impl Script {
    fn new() -> Self {
        Self {
            ua: Engine::new(config("15550101", B, Transport::Udp), A, 7),
            now: Duration::ZERO,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.ua.poll_output() {
            match o {
                Output::Transmit(t) => {
                    assert_eq!((t.to, t.transport), (B, Transport::Udp));
                    self.sent
                        .push((self.now, Message::parse(&t.bytes).unwrap()));
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn command(&mut self, c: Command) -> Op {
        let op = self.ua.handle_command(self.now, c);
        self.drain();
        op
    }

    fn deliver(&mut self, m: &Message) {
        self.ua.handle_datagram(self.now, B, &m.to_bytes());
        self.drain();
    }

    /// Jumps to the next deadline, if it is at or before `until`, and runs it.
    fn jump(&mut self, until: Duration) -> bool {
        match self.ua.poll_timeout() {
            Some(t) if t <= until => {
                self.now = self.now.max(t);
                self.ua.handle_timeout(self.now);
                self.drain();
                true
            }
            _ => false,
        }
    }

    /// Runs every deadline up to `until`, then sets the clock there.
    fn run_until(&mut self, until: Duration) {
        while self.jump(until) {}
        self.now = until;
    }

    /// What was sent since the last call.
    fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The one message sent since the last call.
    fn one(&mut self) -> Message {
        let mut sent = self.take();
        assert_eq!(sent.len(), 1, "{sent:?}");
        sent.remove(0)
    }
}

/// The peer's response, with a Contact for 2xx.
fn answer(req: &Message, code: u16, reason: &str, body: Vec<u8>) -> Message {
    let mut r = Message::response_to(req, code, reason, Some("peer"));
    if (200..300).contains(&code) {
        r.add_header("Contact", "<sip:15550102@10.0.0.2:5060>");
    }
    if !body.is_empty() {
        r.add_header("Content-Type", "application/sdp");
        r.body = body;
    }
    r
}

/// A request from the peer to us.
fn request(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>, body: Vec<u8>) -> Message {
    let mut m = Message::request(method, "sip:15550101@10.0.0.1:5060");
    m.add_header(
        "Via",
        format!("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{branch}"),
    );
    m.add_header("Max-Forwards", "70");
    m.add_header("From", "<sip:15550102@10.0.0.2>;tag=caller");
    match to_tag {
        Some(t) => m.add_header("To", format!("<sip:15550101@10.0.0.1>;tag={t}")),
        None => m.add_header("To", "<sip:15550101@10.0.0.1>"),
    }
    m.add_header("Call-ID", "peer-call");
    m.add_header("CSeq", format!("{cseq} {method}"));
    m.add_header("Contact", "<sip:15550102@10.0.0.2:5060>");
    m.add_header("Record-Route", "<sip:10.0.0.2:5060;lr>");
    if !body.is_empty() {
        m.add_header("Content-Type", "application/sdp");
        m.body = body;
    }
    m
}

fn codes(sent: &[Message]) -> Vec<u16> {
    sent.iter().filter_map(Message::code).collect()
}

fn invite(s: &mut Script) -> (Op, Message) {
    let op = s.command(Command::Invite {
        to: "15550102".into(),
        sdp: t38(40000, 1),
        t38: None,
    });
    let inv = s.one();
    assert_eq!(inv.method(), Some("INVITE"));
    (op, inv)
}

fn established(events: &[Event], op: Op) -> Option<&Result<Sdp, Error>> {
    events.iter().find_map(|e| match e {
        Event::Established { op: o, result, .. } if *o == op => Some(result),
        _ => None,
    })
}

#[test]
fn an_unanswered_invite_is_sent_seven_times_and_ends_at_timer_b() {
    let mut s = Script::new();
    let (op, _) = invite(&mut s);
    s.run_until(40 * SEC);
    // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; timer B at 64·T1 = 32 s.
    let times: Vec<_> = s.sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(established(&s.events, op), Some(&Err(Error::Timeout)));
    assert!(s.ua.is_idle());
    assert_eq!(s.ua.poll_timeout(), None);
}

#[test]
fn a_provisional_answer_stops_timer_a_but_not_timer_b() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    s.deliver(&answer(&inv, 100, "Trying", vec![]));
    s.run_until(40 * SEC);
    assert!(s.take().is_empty(), "no retransmission after 100");
    assert_eq!(established(&s.events, op), Some(&Err(Error::Timeout)));
}

#[test]
fn an_unanswered_register_is_sent_eleven_times_and_ends_at_timer_f() {
    let mut s = Script::new();
    let op = s.command(Command::Register);
    s.run_until(40 * SEC);
    // Timer E doubles from T1 up to T2 = 4 s; timer F at 32 s.
    assert_eq!(s.take().len(), 11);
    assert_eq!(
        s.take_events(),
        [Event::Registered {
            op: Some(op),
            result: Err(Error::RegistrarTimeout(B))
        }]
    );
}

fn challenge(req: &Message, code: u16) -> Message {
    let mut r = answer(req, code, "Unauthorized", vec![]);
    let h = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    r.add_header(
        h,
        r#"Digest realm="faxhub.test", nonce="abc123", qop="auth""#,
    );
    r
}

#[test]
fn a_register_challenge_is_answered_once_then_reported_as_credentials() {
    let mut s = Script::new();
    let op = s.command(Command::Register);
    let first = s.one();
    s.deliver(&challenge(&first, 401));
    let second = s.one();
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.cseq(), Some((2, "REGISTER".into())));
    let auth = second.header("Authorization").unwrap();
    assert!(auth.starts_with("Digest ") && auth.contains("realm=\"faxhub.test\""));
    assert!(
        !auth.contains("secret"),
        "the password never goes on the wire"
    );
    s.deliver(&challenge(&second, 401));
    assert!(s.take().is_empty(), "no third try");
    let events = s.take_events();
    let [
        Event::Registered {
            op: got,
            result: Err(e),
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*got, Some(op));
    assert!(matches!(e, Error::RegistrarCredentials { code: 401, .. }));
    assert!(
        e.to_string().contains("check the SIP user and password"),
        "{e}"
    );
}

#[test]
fn registration_is_refreshed_at_four_fifths_of_the_lifetime() {
    let mut s = Script::new();
    let op = s.command(Command::Register);
    let first = s.one();
    let mut ok = answer(&first, 200, "OK", vec![]);
    ok.add_header("Expires", "100");
    s.deliver(&ok);
    assert_eq!(
        s.take_events(),
        [Event::Registered {
            op: Some(op),
            result: Ok(100)
        }]
    );
    s.run_until(79 * SEC);
    assert!(s.take().is_empty());
    s.run_until(80 * SEC);
    let again = s.one();
    assert_eq!(again.method(), Some("REGISTER"));
    assert_eq!(again.call_id(), first.call_id());
    assert_eq!(again.cseq(), Some((2, "REGISTER".into())));
    // The registrar grants its lifetime in the Contact this time.
    let mut ok = answer(&again, 200, "OK", vec![]);
    ok.add_header("Contact", "<sip:15550101@10.0.0.1:5060>;expires=60");
    s.deliver(&ok);
    assert_eq!(
        s.take_events(),
        [Event::Registered {
            op: None,
            result: Ok(60)
        }]
    );
    s.run_until(80 * SEC + 48 * SEC);
    assert_eq!(s.one().cseq(), Some((3, "REGISTER".into())));
}

#[test]
fn a_proxy_challenge_to_invite_is_acked_and_answered_once() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    s.deliver(&challenge(&inv, 407));
    let sent = s.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (ack, again) = (&sent[0], &sent[1]);
    // The ACK of a non-2xx belongs to the INVITE's transaction (§17.1.1.3).
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.branch(), inv.branch());
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    assert_eq!(again.method(), Some("INVITE"));
    assert_eq!(again.call_id(), inv.call_id());
    assert_eq!(again.cseq(), Some((2, "INVITE".into())));
    assert_ne!(again.branch(), inv.branch());
    assert!(again.header("Proxy-Authorization").is_some());
    // A retransmitted 407 is ACKed again, not answered again.
    s.deliver(&challenge(&inv, 407));
    assert_eq!(s.one().method(), Some("ACK"));
    s.deliver(&challenge(again, 407));
    assert_eq!(s.one().method(), Some("ACK"));
    assert_eq!(
        established(&s.events, op),
        Some(&Err(Error::Credentials { code: 407 }))
    );
}

#[test]
fn a_2xx_is_acked_in_the_dialog_and_its_retransmissions_again() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    s.deliver(&challenge(&inv, 401));
    let again = s.take().pop().unwrap();
    let ok = answer(&again, 200, "OK", t38(41000, 1));
    s.deliver(&ok);
    let ack = s.one();
    // §13.2.2.4: a new transaction to the remote target, the INVITE's CSeq number.
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.request_uri(), Some("sip:15550102@10.0.0.2:5060"));
    assert_eq!(ack.cseq(), Some((2, "ACK".into())));
    assert_ne!(ack.branch(), again.branch());
    assert_eq!(ack.to_tag().as_deref(), Some("peer"));
    let result = established(&s.events, op).unwrap().as_ref().unwrap();
    assert_eq!(result.t38().unwrap().0.port(), 41000);
    s.now += SEC;
    s.deliver(&ok);
    assert_eq!(s.one().cseq(), Some((2, "ACK".into())));
    assert_eq!(s.take_events().len(), 1, "one Established only");
}

/// Found by the engine fuzz target: a 2xx without Contact (it breaks §12.1.2) was acknowledged with an
/// empty Request-URI ("ACK  SIP/2.0"), which no parser reads. The ACK goes to the INVITE's Request-URI.
#[test]
fn a_2xx_without_contact_is_acked_at_the_invites_request_uri() {
    let mut s = Script::new();
    let (_, inv) = invite(&mut s);
    let mut ok = answer(&inv, 200, "OK", t38(41000, 1));
    ok.remove_header("Contact");
    s.deliver(&ok);
    let ack = s.one();
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.request_uri(), inv.request_uri());
    assert!(Message::parse(&ack.to_bytes()).is_ok());
}

/// An incoming INVITE from the peer, answered 100 Trying and reported.
fn incoming(s: &mut Script, body: Vec<u8>) -> (Message, IncomingCall) {
    let inv = request("INVITE", "in1", 1, None, body);
    s.deliver(&inv);
    assert_eq!(codes(&s.take()), [100]);
    let events = s.take_events();
    let [Event::Incoming(inc)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (inc.to_user.as_str(), inc.from_user.as_str()),
        ("15550101", "15550102")
    );
    (inv, inc.clone())
}

fn ack_for(ok: &Message, branch: &str) -> Message {
    let mut ack = request("ACK", branch, 1, ok.to_tag().as_deref(), vec![]);
    ack.set_header("CSeq", "1 ACK");
    ack
}

#[test]
fn our_2xx_is_retransmitted_until_the_ack() {
    let mut s = Script::new();
    let (_, inc) = incoming(&mut s, t38(40000, 1));
    let op = s.command(Command::Accept {
        call_id: inc.call_id.clone(),
        sdp: t38(41000, 1),
    });
    let ok = s.one();
    assert_eq!(ok.code(), Some(200));
    assert_eq!(ok.body, t38(41000, 1));
    let Some(Ok(offer)) = established(&s.events, op) else {
        panic!("{:?}", s.events)
    };
    assert_eq!(offer.t38().unwrap().0.port(), 40000);
    s.run_until(12 * SEC);
    // From T1 doubling up to T2: 0.5, 1.5, 3.5, 7.5, 11.5 s.
    let times: Vec<_> = s.sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [500, 1500, 3500, 7500, 11500]);
    assert!(codes(&s.take()).iter().all(|c| *c == 200));
    s.deliver(&ack_for(&ok, "ack1"));
    s.run_until(60 * SEC);
    assert!(s.take().is_empty(), "the ACK stops the 2xx");
    assert!(s.ua.has_dialog(&inc.call_id));
}

#[test]
fn our_2xx_without_an_ack_is_given_up_after_64_t1() {
    let mut s = Script::new();
    let (_, inc) = incoming(&mut s, t38(40000, 1));
    s.command(Command::Accept {
        call_id: inc.call_id,
        sdp: t38(41000, 1),
    });
    s.run_until(100 * SEC);
    let last = s.sent.last().unwrap().0;
    assert!(last < 32 * SEC, "{last:?}");
    assert_eq!(s.take().len(), 1 + 10);
}

#[test]
fn a_refusal_is_retransmitted_with_timer_g_until_the_ack_and_ends_at_timer_i() {
    let mut s = Script::new();
    let (inv, inc) = incoming(&mut s, t38(40000, 1));
    s.command(Command::Reject {
        call_id: inc.call_id.clone(),
        code: 486,
        reason: "Busy Here".into(),
    });
    let busy = s.one();
    assert_eq!(busy.code(), Some(486));
    s.run_until(ms(2000));
    assert_eq!(codes(&s.take()), [486, 486]);
    // The request again: the response again (§17.2.1).
    s.deliver(&inv);
    assert_eq!(codes(&s.take()), [486]);
    s.deliver(&ack_for(&busy, "in1"));
    s.run_until(ms(2000) + 5 * SEC);
    assert!(s.take().is_empty());
    assert!(s.ua.is_idle(), "timer I ended the transaction");
}

#[test]
fn a_refusal_without_an_ack_ends_at_timer_h() {
    let mut s = Script::new();
    let (_, inc) = incoming(&mut s, vec![]);
    s.command(Command::Reject {
        call_id: inc.call_id,
        code: 488,
        reason: "Not Acceptable Here".into(),
    });
    s.run_until(31 * SEC);
    assert!(!s.ua.is_idle());
    s.run_until(33 * SEC);
    assert!(s.ua.is_idle());
    // 0, 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5 s.
    assert_eq!(s.take().len(), 11);
}

/// A call from the peer that we answered with `ours`.
fn answered_call(s: &mut Script, offer: Vec<u8>, ours: Vec<u8>) -> (String, Message) {
    let (_, inc) = incoming(s, offer);
    s.command(Command::Accept {
        call_id: inc.call_id.clone(),
        sdp: ours,
    });
    let ok = s.one();
    s.deliver(&ack_for(&ok, "ack1"));
    s.take_events();
    (inc.call_id, ok)
}

#[test]
fn re_invite_and_update_are_answered_with_the_current_sdp() {
    let mut s = Script::new();
    let (call_id, ok) = answered_call(&mut s, audio(40000, 1), audio(41000, 1));
    let tag = ok.to_tag().unwrap();
    s.command(Command::PrepareT38 {
        call_id: call_id.clone(),
        sdp: t38(41002, 2),
    });
    // A switch to T.38 is answered with the prepared T.38 SDP.
    s.deliver(&request("INVITE", "re1", 2, Some(&tag), t38(40002, 2)));
    let r = s.one();
    assert_eq!((r.code(), &r.body), (Some(200), &t38(41002, 2)));
    let events = s.take_events();
    let [
        Event::Call {
            event:
                CallEvent::ReInvite {
                    sdp: Some(_),
                    refresh: false,
                },
            ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    // A session refresh by UPDATE, without a body: answered without one.
    s.deliver(&request("UPDATE", "up1", 3, Some(&tag), vec![]));
    let r = s.one();
    assert_eq!((r.code(), r.body.len()), (Some(200), 0));
    assert_eq!(
        s.take_events(),
        [Event::Call {
            call_id: call_id.clone(),
            event: CallEvent::ReInvite {
                sdp: None,
                refresh: true
            }
        }]
    );
    // A refresh by re-INVITE with the same T.38: the current SDP again.
    s.deliver(&request("INVITE", "re2", 4, Some(&tag), t38(40002, 3)));
    assert_eq!(s.one().body, t38(41002, 2));
    // Our own refresh offers the current SDP unchanged.
    let op = s.command(Command::Refresh {
        call_id: call_id.clone(),
        update: false,
    });
    let re = s.one();
    assert_eq!((re.method(), &re.body), (Some("INVITE"), &t38(41002, 2)));
    assert_eq!(re.cseq(), Some((1, "INVITE".into())));
    assert_eq!(re.header("Route"), Some("<sip:10.0.0.2:5060;lr>"));
    s.take_events();
    s.deliver(&answer(&re, 200, "OK", t38(40002, 3)));
    assert_eq!(s.one().method(), Some("ACK"));
    assert_eq!(s.take_events(), [Event::Refreshed { op, result: Ok(()) }]);
    // An in-dialog request for a dialog we do not have.
    s.deliver(&request("UPDATE", "up2", 5, Some("other"), vec![]).with_call_id("nobody"));
    assert_eq!(codes(&s.take()), [481]);
}

trait WithCallId {
    fn with_call_id(self, id: &str) -> Self;
}

impl WithCallId for Message {
    fn with_call_id(mut self, id: &str) -> Self {
        self.set_header("Call-ID", id);
        self
    }
}

#[test]
fn bye_from_the_far_end_ends_the_dialog() {
    let mut s = Script::new();
    let (call_id, ok) = answered_call(&mut s, t38(40000, 1), t38(41000, 1));
    let tag = ok.to_tag().unwrap();
    s.deliver(&request("BYE", "bye1", 2, Some(&tag), vec![]));
    assert_eq!(codes(&s.take()), [200]);
    assert_eq!(
        s.take_events(),
        [Event::Call {
            call_id: call_id.clone(),
            event: CallEvent::Bye
        }]
    );
    assert!(!s.ua.has_dialog(&call_id));
    // Its retransmission is answered by the transaction; a new BYE finds no dialog.
    s.deliver(&request("BYE", "bye1", 2, Some(&tag), vec![]));
    assert_eq!(codes(&s.take()), [200]);
    s.deliver(&request("BYE", "bye2", 3, Some(&tag), vec![]));
    assert_eq!(codes(&s.take()), [481]);
    assert!(s.take_events().is_empty());
}

#[test]
fn our_bye_goes_in_the_dialog_and_reports_the_answer() {
    let mut s = Script::new();
    let (call_id, ok) = answered_call(&mut s, t38(40000, 1), t38(41000, 1));
    let op = s.command(Command::Bye {
        call_id: call_id.clone(),
    });
    let bye = s.one();
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.request_uri(), Some("sip:15550102@10.0.0.2:5060"));
    assert_eq!(bye.header("Route"), Some("<sip:10.0.0.2:5060;lr>"));
    assert_eq!(bye.from_tag(), ok.to_tag());
    assert_eq!(bye.to_tag().as_deref(), Some("caller"));
    assert!(!s.ua.has_dialog(&call_id));
    s.deliver(&answer(&bye, 200, "OK", vec![]));
    assert_eq!(s.take_events(), [Event::HungUp { op }]);
    // Hanging up a call that is gone answers at once.
    let op = s.command(Command::Bye { call_id });
    assert_eq!(s.take_events(), [Event::HungUp { op }]);
}

#[test]
fn a_cancel_crossing_the_200_ok_is_followed_by_ack_and_bye() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    s.deliver(&answer(&inv, 180, "Ringing", vec![]));
    s.command(Command::Abandon { invite: op });
    let cancel = s.one();
    // §9.1: the INVITE's branch, Request-URI and CSeq number.
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.branch(), inv.branch());
    assert_eq!(cancel.request_uri(), inv.request_uri());
    assert_eq!(cancel.cseq(), Some((1, "CANCEL".into())));
    // The callee answered before the CANCEL reached it.
    s.deliver(&answer(&inv, 200, "OK", t38(41000, 1)));
    let sent = s.take();
    let methods: Vec<_> = sent.iter().filter_map(Message::method).collect();
    assert_eq!(methods, ["ACK", "BYE"]);
    s.deliver(&answer(&cancel, 200, "OK", vec![]));
    s.deliver(&answer(&sent[1], 200, "OK", vec![]));
    assert!(s.take_events().is_empty(), "nobody waits for this call");
    s.run_until(60 * SEC);
    assert!(s.ua.is_idle());
}

#[test]
fn a_call_abandoned_before_it_rings_is_cancelled_once_it_does() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    s.command(Command::Abandon { invite: op });
    assert!(
        s.take().is_empty(),
        "no CANCEL before a provisional answer (§9.1)"
    );
    s.deliver(&answer(&inv, 183, "Session Progress", vec![]));
    let cancel = s.one();
    assert_eq!(cancel.method(), Some("CANCEL"));
    s.deliver(&answer(&cancel, 200, "OK", vec![]));
    s.deliver(&answer(&inv, 487, "Request Terminated", vec![]));
    assert_eq!(s.one().method(), Some("ACK"));
    assert!(s.take_events().is_empty());
}

#[test]
fn a_cancelled_incoming_call_can_no_longer_be_accepted() {
    let mut s = Script::new();
    let (inv, inc) = incoming(&mut s, t38(40000, 1));
    let mut cancel = request("CANCEL", "in1", 1, None, vec![]);
    cancel.set_header("Call-ID", inv.call_id().unwrap());
    s.deliver(&cancel);
    let sent = s.take();
    let cseqs: Vec<_> = sent.iter().map(|m| (m.code(), m.cseq())).collect();
    assert_eq!(
        cseqs,
        [
            (Some(487), Some((1, "INVITE".into()))),
            (Some(200), Some((1, "CANCEL".into())))
        ]
    );
    let op = s.command(Command::Accept {
        call_id: inc.call_id,
        sdp: t38(41000, 1),
    });
    assert!(matches!(
        established(&s.events, op),
        Some(Err(Error::Refused { code: 481, .. }))
    ));
}

#[test]
fn a_cancel_crossing_our_200_ok_leaves_the_call_up() {
    let mut s = Script::new();
    let (call_id, _) = answered_call(&mut s, t38(40000, 1), t38(41000, 1));
    let mut cancel = request("CANCEL", "in1", 1, None, vec![]);
    cancel.set_header("Call-ID", call_id.as_str());
    s.deliver(&cancel);
    assert_eq!(codes(&s.take()), [200]);
    assert!(s.ua.has_dialog(&call_id));
    assert!(s.take_events().is_empty());
}

#[test]
fn options_are_answered_with_what_we_allow() {
    let mut s = Script::new();
    s.deliver(&request("OPTIONS", "opt1", 1, None, vec![]));
    let r = s.one();
    assert_eq!(r.code(), Some(200));
    assert!(r.header("Allow").unwrap().contains("UPDATE"));
    s.deliver(&request("MESSAGE", "msg1", 1, None, vec![]));
    assert_eq!(codes(&s.take()), [405]);
}

#[test]
fn a_retransmitted_re_invite_after_our_200_is_absorbed_while_the_200_is_retransmitted_until_its_ack()
 {
    // Seed 3 of the lossy simulation: the 200 to a re-INVITE was lost, the transaction that sent it had
    // ended and nothing sent it again, so every retransmitted re-INVITE was swallowed until timer B.
    let mut s = Script::new();
    let (call_id, ok) = answered_call(&mut s, t38(40000, 1), t38(41000, 1));
    let tag = ok.to_tag().unwrap();
    let re = request("INVITE", "re1", 2, Some(&tag), t38(40002, 2));
    s.deliver(&re);
    assert_eq!(codes(&s.take()), [200]);
    assert_eq!(s.take_events().len(), 1);
    // The re-INVITE again (its 200 was lost): absorbed by the transaction (RFC 6026), not a new offer.
    s.now += ms(500);
    s.deliver(&re);
    assert!(s.take_events().is_empty());
    // The 200 goes again from T1 on until the ACK of CSeq 2; a late ACK of CSeq 1 does not stop it.
    s.run_until(ms(1600));
    assert_eq!(codes(&s.take()), [200, 200]);
    s.deliver(&ack_for(&ok, "ack-late"));
    let mut ack = request("ACK", "ack2", 2, Some(&tag), vec![]);
    ack.set_header("CSeq", "2 ACK");
    s.run_until(ms(3600));
    assert_eq!(codes(&s.take()), [200]);
    s.deliver(&ack);
    s.run_until(60 * SEC);
    assert!(s.take().is_empty());
    assert!(s.ua.has_dialog(&call_id));
}

/// A re-INVITE from the peer that overtakes the 2xx of our INVITE (a loaded proxy reorders them) finds
/// our INVITE pending: answered 491 (RFC 3261 §14.2), not 481, so the peer tries again once the dialog
/// stands, and the call is not lost.
#[test]
fn a_re_invite_that_overtakes_the_2xx_of_our_invite_is_answered_491() {
    let mut s = Script::new();
    let (op, inv) = invite(&mut s);
    let ours = inv.from_tag().unwrap();
    let re = |branch: &str, cseq| {
        let mut m = request("INVITE", branch, cseq, Some(&ours), t38(41002, 2))
            .with_call_id(inv.call_id().unwrap());
        m.set_header("From", "<sip:15550102@10.0.0.2>;tag=peer");
        m
    };
    s.deliver(&re("early", 2));
    assert_eq!(codes(&s.take()), [491]);
    assert!(established(&s.events, op).is_none());
    s.deliver(&answer(&inv, 200, "OK", audio(41000, 1)));
    assert_eq!(s.one().method(), Some("ACK"));
    assert!(established(&s.events, op).unwrap().is_ok());
    s.take_events();
    s.deliver(&re("again", 3));
    let ok = s.one();
    assert_eq!(ok.code(), Some(200));
    assert!(matches!(
        s.take_events().as_slice(),
        [Event::Call {
            event: CallEvent::ReInvite { .. },
            ..
        }]
    ));
}

/// Our re-INVITE answered 491 (it crossed the peer's) is sent again, as a new transaction with the same
/// offer, after a random wait of at most 2 s (we did not make the Call-ID, §14.1); while ours is pending,
/// the peer's re-INVITE is answered 491 in turn; after four 491s the switch is reported failed.
#[test]
fn our_re_invite_answered_491_goes_again_after_a_random_wait() {
    let mut s = Script::new();
    let (call_id, ok) = answered_call(&mut s, audio(40000, 1), audio(41000, 1));
    let tag = ok.to_tag().unwrap();
    let op = s.command(Command::ReInvite {
        call_id: call_id.clone(),
        sdp: t38(41002, 2),
    });
    let first = s.one();
    assert_eq!(first.method(), Some("INVITE"));
    // Glare: the peer's re-INVITE while ours is pending.
    s.deliver(&request("INVITE", "glare", 2, Some(&tag), t38(40002, 2)));
    assert_eq!(codes(&s.take()), [491]);
    s.deliver(&answer(&first, 491, "Request Pending", vec![]));
    assert_eq!(
        s.one().method(),
        Some("ACK"),
        "a non-2xx final is ACKed by the transaction"
    );
    assert!(s.take_events().is_empty(), "not reported: it goes again");
    let answered_at = s.now;
    let mut tries = vec![first];
    for n in 2..=4 {
        let again = loop {
            assert!(s.jump(answered_at + SEC * 60), "a try {n} is due");
            if let Some(m) = s.take().into_iter().find(|m| m.method() == Some("INVITE")) {
                break m;
            }
        };
        let prev = tries.last().unwrap();
        assert!(
            s.now - answered_at <= ms(2000) || n > 2,
            "the first wait is at most 2 s"
        );
        assert_ne!(again.branch(), prev.branch());
        assert!(again.cseq().unwrap().0 > prev.cseq().unwrap().0);
        assert_eq!(again.body, t38(41002, 2));
        if n < 4 {
            s.deliver(&answer(&again, 491, "Request Pending", vec![]));
            s.take();
            assert!(s.take_events().is_empty());
        }
        tries.push(again);
    }
    // The fourth is answered: the switch succeeds.
    let last = tries.last().unwrap();
    s.deliver(&answer(last, 200, "OK", t38(40002, 2)));
    assert_eq!(s.one().method(), Some("ACK"));
    let events = s.take_events();
    let [
        Event::Answered {
            op: o,
            result: Ok(_),
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*o, op);

    // Four 491s in a row: the switch fails.
    let op = s.command(Command::ReInvite {
        call_id,
        sdp: t38(41002, 3),
    });
    for _ in 0..4 {
        let m = loop {
            if let Some(m) = s.take().into_iter().find(|m| m.method() == Some("INVITE")) {
                break m;
            }
            assert!(s.jump(s.now + SEC * 60), "a try is due");
        };
        s.deliver(&answer(&m, 491, "Request Pending", vec![]));
    }
    let events = s.take_events();
    let [
        Event::Answered {
            op: o,
            result: Err(_),
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*o, op);
}
