//! Our user agent against a real Kamailio (Debian package `kamailio`) started on 127.0.0.1 as registrar
//! and proxy with digest authentication: registration (and a wrong password), T.38 calls through the
//! proxy with a session-refresh re-INVITE and BYE, a callee refusing T.38 (488) or busy (486), and an
//! audio call switched to T.38 by the callee's re-INVITE.
//!
//! Skipped when kamailio is missing, unless FAXHUB_SLOW_TESTS=1, when it fails. (It lives in testkit,
//! which starts Kamailio; the `sip` crate itself has no test-only dependencies.)

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sip::Error;
use sip::sdp::{self, T38Params};
use sip::ua::{Account, CallEvent, Config, UserAgent};
use testkit::kamailio::{Kamailio, register};

fn start_kamailio() -> Option<Kamailio> {
    let k = Kamailio::start(&[("15550101", "secret-one"), ("15550102", "secret-two")]).unwrap();
    if k.is_none() {
        eprintln!("skipping: kamailio not installed");
    }
    k
}

fn account(k: &Kamailio, user: &str, password: &str) -> Account {
    Account {
        proxy: k.addr,
        domain: k.addr.to_string(),
        user: user.into(),
        auth_user: user.into(),
        password: password.into(),
        expires: 300,
    }
}

async fn ua(
    k: &Kamailio,
    user: &str,
    password: &str,
) -> (
    UserAgent,
    tokio::sync::mpsc::UnboundedReceiver<sip::ua::Incoming>,
) {
    let cfg = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        account(k, user, password),
        "faxhub-test",
    );
    UserAgent::start(cfg).await.unwrap()
}

fn t38_sdp(port: u16) -> Vec<u8> {
    sdp::t38(
        1,
        1,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &T38Params::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_calls_refresh_bye_and_refusals_through_kamailio() {
    let Some(k) = start_kamailio() else { return };
    let (one, _in_one) = ua(&k, "15550101", "secret-one").await;
    let (two, mut in_two) = ua(&k, "15550102", "secret-two").await;
    assert_eq!(register(&one).await, Ok(300));
    assert_eq!(register(&two).await, Ok(300));

    // A wrong password: a clear credentials error.
    let (bad, _) = ua(&k, "15550101", "wrong").await;
    let e = register(&bad).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::RegistrarCredentials {
                code: 401 | 403,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("password"), "{e}");

    // 1. A T.38 call through the proxy, a session refresh, then BYE.
    let callee = tokio::spawn(async move {
        let inc = in_two.recv().await.unwrap();
        assert_eq!(inc.to_user, "15550102");
        assert_eq!(inc.from_user, "15550101");
        let offer = inc.offer.clone().unwrap().t38().unwrap();
        assert_eq!(offer.0.port(), 40000);
        let mut call = inc.accept(t38_sdp(41000)).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), call.events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            CallEvent::ReInvite { refresh, .. } => {
                assert!(refresh, "a refresh must be seen as one")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), call.events.recv())
                .await
                .unwrap(),
            Some(CallEvent::Bye)
        );
        in_two
    });
    let call = one.call("15550102", t38_sdp(40000)).await.unwrap();
    let (remote, params) = call.remote_sdp.t38().unwrap();
    assert_eq!(remote, SocketAddr::from(([127, 0, 0, 1], 41000)));
    assert_eq!(params.max_datagram, 400);
    // The session refresh is answered with the callee's unchanged T.38 SDP.
    let again = call.reinvite(t38_sdp(40000)).await.unwrap();
    assert_eq!(again.t38().unwrap().0, remote);
    call.hang_up().await;
    let mut in_two = callee.await.unwrap();

    // 2. The callee does not take T.38: 488 becomes a typed outcome.
    let callee = tokio::spawn(async move {
        let inc = in_two.recv().await.unwrap();
        inc.reject(488, "Not Acceptable Here");
        in_two
    });
    let e = one.call("15550102", t38_sdp(40002)).await.unwrap_err();
    assert_eq!(e, Error::NoT38 { code: 488 });
    let mut in_two = callee.await.unwrap();

    // 3. Busy.
    let callee = tokio::spawn(async move {
        let inc = in_two.recv().await.unwrap();
        inc.reject(486, "Busy Here");
        in_two
    });
    assert_eq!(
        one.call("15550102", t38_sdp(40004)).await.unwrap_err(),
        Error::Busy { code: 486 }
    );
    let mut in_two = callee.await.unwrap();

    // 4. An audio call that the callee switches to T.38 with a re-INVITE, once the caller has the 200 OK.
    // (Sent at once, the re-INVITE can overtake the 200 OK inside a loaded Kamailio, whose UDP workers are
    // separate processes; the caller then answers 481. The engine does not yet handle that race: a
    // re-INVITE that arrives before the 2xx it follows.)
    let (established, caller_has_it) = tokio::sync::oneshot::channel::<()>();
    let callee = tokio::spawn(async move {
        let inc = in_two.recv().await.unwrap();
        assert!(inc.offer.as_ref().unwrap().audio().is_some());
        let call = inc
            .accept(sdp::audio(2, 1, SocketAddr::from(([127, 0, 0, 1], 42000))))
            .await
            .unwrap();
        caller_has_it.await.unwrap();
        let answer = call.reinvite(t38_sdp(42002)).await.unwrap();
        let t38 = answer.t38().unwrap();
        call.hang_up().await;
        t38
    });
    let mut call = one
        .call_audio(
            "15550102",
            sdp::audio(3, 1, SocketAddr::from(([127, 0, 0, 1], 43000))),
            t38_sdp(43002),
        )
        .await
        .unwrap();
    established.send(()).unwrap();
    assert!(call.remote_sdp.audio().is_some());
    match tokio::time::timeout(Duration::from_secs(5), call.events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        CallEvent::ReInvite { sdp, refresh } => {
            assert!(!refresh);
            assert_eq!(sdp.unwrap().t38().unwrap().0.port(), 42002);
        }
        other => panic!("{other:?}"),
    }
    let t38 = callee.await.unwrap();
    assert_eq!(
        t38.0.port(),
        43002,
        "the caller answered the switch with its T.38 port"
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), call.events.recv())
            .await
            .unwrap(),
        Some(CallEvent::Bye)
    );

    // 5. A number nobody registered.
    assert_eq!(
        one.call("15559999", t38_sdp(40006)).await.unwrap_err(),
        Error::BadNumber { code: 404 }
    );
}

fn page(seed: usize) -> t30::Page {
    let width = 1728;
    let stride = t4::stride(width);
    let height = 500;
    let mut data = vec![0u8; stride * height as usize];
    for y in 0..height as usize {
        for x in (64..1664).step_by(5 + seed) {
            if (y / 9 + x / 31 + seed).is_multiple_of(3) {
                data[y * stride + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    t30::Page {
        width,
        height,
        resolution: t30::Resolution::Fine,
        data,
    }
}

/// Refreshes the session four times, `every` apart (UPDATE or re-INVITE); returns how many succeeded.
async fn refresh_four_times(call: &sip::ua::Call, every: Duration, update: bool) -> usize {
    let mut ok = 0;
    for _ in 0..4 {
        tokio::time::sleep(every).await;
        call.refresh(update).await.unwrap();
        ok += 1;
    }
    ok
}

/// A T.38 fax in real time over a call set up through Kamailio, the callee on TCP and the caller on UDP,
/// while the caller refreshes the session with re-INVITEs and the callee with UPDATEs (RFC 4028): the
/// refreshes are answered with the unchanged media and every page arrives identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_refreshes_during_a_t38_fax_over_udp_and_tcp_lose_no_page() {
    let Some(k) = start_kamailio() else { return };
    let (one, _in_one) = ua(&k, "15550101", "secret-one").await;
    let mut cfg = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        account(&k, "15550102", "secret-two"),
        "faxhub-test-tcp",
    );
    cfg.transport = sip::ua::Transport::Tcp;
    let (two, mut in_two) = UserAgent::start(cfg).await.unwrap();
    assert_eq!(register(&one).await, Ok(300));
    assert_eq!(register(&two).await, Ok(300), "registration over TCP");

    let pages: Vec<t30::Page> = (0..3).map(page).collect();
    let caller_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee_port = callee_media.local_addr().unwrap().port();

    let callee = tokio::spawn(async move {
        let inc = in_two.recv().await.unwrap();
        let (remote, _) = inc.offer.clone().unwrap().t38().unwrap();
        let mut call = inc.accept(t38_sdp(callee_port)).await.unwrap();
        let mut rc = t30::Config::new(t30::Role::Receive, false);
        rc.pacing.paced = true;
        let fax = line::run(
            &callee_media,
            Some(remote),
            rc,
            line::Transport {
                redundancy: 3,
                ..line::Transport::default()
            },
            Duration::from_secs(10),
            |_| {},
        );
        let (fax, updates) = tokio::join!(
            fax,
            refresh_four_times(&call, Duration::from_millis(1500), true)
        );
        let mut seen = Vec::new();
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_secs(3), call.events.recv()).await
        {
            let bye = ev == CallEvent::Bye;
            seen.push(ev);
            if bye {
                break;
            }
        }
        (fax.unwrap(), updates, seen)
    });

    let port = caller_media.local_addr().unwrap().port();
    let mut call = one.call("15550102", t38_sdp(port)).await.unwrap();
    let (remote, _) = call.remote_sdp.t38().unwrap();
    let mut sc = t30::Config::new(t30::Role::Send(pages.clone()), true);
    sc.pacing.paced = true;
    let fax = line::run(
        &caller_media,
        Some(remote),
        sc,
        line::Transport {
            redundancy: 3,
            ..line::Transport::default()
        },
        Duration::ZERO,
        |_| {},
    );
    let (sent, reinvites) = tokio::join!(
        fax,
        refresh_four_times(&call, Duration::from_millis(1000), false)
    );
    let sent = sent.unwrap();
    call.hang_up().await;
    let (received, updates, seen) = callee.await.unwrap();

    assert_eq!(sent.outcome.result, Ok(()), "{}", sent.outcome.detail);
    assert!(
        sent.stats.duration > Duration::from_secs(5),
        "the refreshes came during the fax: {:?}",
        sent.stats.duration
    );
    assert_eq!(
        received.outcome.result,
        Ok(()),
        "{}",
        received.outcome.detail
    );
    assert_eq!(received.pages.len(), 3);
    for (got, want) in received.pages.iter().zip(&pages) {
        assert_eq!(got.page, *want, "a page changed");
    }
    assert_eq!((reinvites, updates), (4, 4));
    let refreshes_seen = seen
        .iter()
        .filter(|e| matches!(e, CallEvent::ReInvite { refresh: true, .. }))
        .count();
    assert_eq!(
        refreshes_seen, 4,
        "the callee saw the caller's re-INVITEs as refreshes: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, CallEvent::ReInvite { refresh: false, .. })),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&CallEvent::Bye));
    let caller_saw = std::iter::from_fn(|| call.events.try_recv().ok())
        .filter(|e| matches!(e, CallEvent::ReInvite { refresh: true, .. }))
        .count();
    assert_eq!(
        caller_saw, 4,
        "the caller saw the callee's UPDATEs as refreshes"
    );
}
