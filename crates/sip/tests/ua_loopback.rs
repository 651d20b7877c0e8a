//! Two of our user agents on 127.0.0.1, each the other's proxy (no registrar), over UDP and TCP: calls
//! set up and torn down, OPTIONS keep-alives reporting the trunk state, and a TCP peer sending garbage.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sip::sdp::{self, T38Params};
use sip::transaction::Timers;
use sip::ua::{Account, CallEvent, Config, Incoming, Transport, TrunkState, UserAgent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

fn free_port() -> u16 {
    loop {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn config(port: u16, peer: u16, user: &str, transport: Transport) -> Config {
    let proxy = SocketAddr::from(([127, 0, 0, 1], peer));
    let account = Account {
        proxy,
        domain: proxy.to_string(),
        user: user.into(),
        auth_user: user.into(),
        password: String::new(),
        expires: 300,
    };
    let mut c = Config::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        account,
        "faxhub-test",
    );
    c.transport = transport;
    c.timers = Timers {
        t1: Duration::from_millis(20),
        t2: Duration::from_millis(160),
        t4: Duration::from_millis(200),
    };
    c
}

async fn pair(
    transport: Transport,
) -> (
    UserAgent,
    UnboundedReceiver<Incoming>,
    UserAgent,
    UnboundedReceiver<Incoming>,
) {
    let (pa, pb) = (free_port(), free_port());
    let (a, a_in) = UserAgent::start(config(pa, pb, "15550101", transport))
        .await
        .unwrap();
    let (b, b_in) = UserAgent::start(config(pb, pa, "15550102", transport))
        .await
        .unwrap();
    (a, a_in, b, b_in)
}

fn t38(port: u16) -> Vec<u8> {
    sdp::t38(
        1,
        1,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &T38Params::default(),
    )
}

/// Three calls from a to b: each answered with T.38, refreshed by an UPDATE, hung up; b sees the refresh
/// and then the BYE of every call.
async fn call_and_hang_up(transport: Transport) {
    let (a, _a_in, b, mut b_in) = pair(transport).await;
    let callee = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let inc = b_in.recv().await.unwrap();
            assert_eq!(
                (inc.to_user.as_str(), inc.from_user.as_str()),
                ("15550102", "15550101")
            );
            let mut call = inc.accept(t38(41000)).await.unwrap();
            while let Ok(Some(ev)) =
                tokio::time::timeout(Duration::from_secs(5), call.events.recv()).await
            {
                let bye = ev == CallEvent::Bye;
                seen.push(ev);
                if bye {
                    break;
                }
            }
        }
        seen
    });
    for round in 0..3 {
        let call = a.call("15550102", t38(40000 + round)).await.unwrap();
        assert_eq!(call.remote_sdp.t38().unwrap().0.port(), 41000);
        call.refresh(true).await.unwrap();
        call.hang_up().await;
    }
    let refresh = CallEvent::ReInvite {
        sdp: None,
        refresh: true,
    };
    assert_eq!(
        callee.await.unwrap(),
        [
            refresh.clone(),
            CallEvent::Bye,
            refresh.clone(),
            CallEvent::Bye,
            refresh,
            CallEvent::Bye
        ]
    );
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn calls_over_udp() {
    call_and_hang_up(Transport::Udp).await;
}

#[tokio::test]
async fn calls_over_tcp() {
    call_and_hang_up(Transport::Tcp).await;
}

#[tokio::test]
async fn keepalives_report_the_trunk_up_then_down() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let (pa, pb) = (free_port(), free_port());
        let mut cfg = config(pa, pb, "15550101", transport);
        cfg.keepalive = Some(Duration::from_millis(100));
        let (b, _b_in) = UserAgent::start(config(pb, pa, "15550102", transport))
            .await
            .unwrap();
        let (a, _a_in) = UserAgent::start(cfg).await.unwrap();
        let mut trunk = a.trunk();
        let wait_for = |want: TrunkState, trunk: &mut tokio::sync::watch::Receiver<TrunkState>| {
            let mut trunk = trunk.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), trunk.wait_for(|s| *s == want))
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false)
            }
        };
        assert!(
            wait_for(TrunkState::Reachable, &mut trunk).await,
            "{transport:?}: the proxy answers OPTIONS"
        );
        b.shutdown();
        assert!(
            wait_for(TrunkState::Unreachable, &mut trunk).await,
            "{transport:?}: a silent proxy is reported"
        );
        a.shutdown();
    }
}

#[tokio::test]
async fn garbage_on_a_tcp_connection_closes_it_and_the_agent_goes_on() {
    let (a, _a_in, b, mut b_in) = pair(Transport::Tcp).await;
    let mut junk = tokio::net::TcpStream::connect(b.local).await.unwrap();
    junk.write_all(b"\x00\x01 not SIP at all\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), junk.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed without an answer");
    let callee =
        tokio::spawn(async move { b_in.recv().await.unwrap().accept(t38(41002)).await.unwrap() });
    let call = a.call("15550102", t38(40010)).await.unwrap();
    assert_eq!(call.remote_sdp.t38().unwrap().0.port(), 41002);
    callee.await.unwrap();
}

#[tokio::test]
async fn a_caller_that_gives_up_cancels_the_call() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let (a, _a_in, b, mut b_in) = pair(transport).await;
        // The callee lets it ring (our agent has answered 100 Trying).
        let callee = tokio::spawn(async move {
            let inc = b_in.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            inc.accept(t38(41004)).await
        });
        let gave_up =
            tokio::time::timeout(Duration::from_millis(300), a.call("15550102", t38(40020))).await;
        assert!(gave_up.is_err(), "{transport:?}: the call was not answered");
        // The CANCEL reached the callee: its INVITE was ended with 487, so it can no longer answer.
        let answered = callee.await.unwrap();
        assert!(
            matches!(answered, Err(sip::Error::Refused { code: 481, .. })),
            "{transport:?}: {answered:?}"
        );
        a.shutdown();
        b.shutdown();
    }
}
