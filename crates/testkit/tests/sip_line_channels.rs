//! The fax server's SIP line (`node::SipLine`) counts its channels for both directions: a call being
//! received holds one, so with one channel a second inbound call is refused busy (486) and an outbound
//! fax finds no free channel; a number that is not the line's is refused 404; the channel comes back when
//! the call ends; once the fax server is stopping, a new call is refused 503. Our SIP user agent plays the
//! far end on 127.0.0.1.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use node::{Line, SendJob, SipLine, SipLineConfig};
use sip::Error;
use sip::sdp::{self, T38Params};
use sip::ua::{Account, Config, UserAgent};

fn free_port() -> u16 {
    testkit::kamailio::free_port_both().unwrap()
}

fn t38(port: u16) -> Vec<u8> {
    sdp::t38(
        1,
        1,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &T38Params::default(),
    )
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_count_both_directions_and_a_call_beyond_them_is_refused_busy() {
    let (line_port, peer_port) = (free_port(), free_port());
    let line = SipLine::new(SipLineConfig {
        sip_bind: SocketAddr::from(([127, 0, 0, 1], line_port)),
        media_ip: [127, 0, 0, 1].into(),
        keepalive: Duration::from_secs(30),
    });
    line.apply_settings(
        &serde_json::from_value(serde_json::json!({
            "station_id": "+15550102",
            "local_numbers": ["+15550102"],
            "channels": 1,
            "sip": {"registrar": "", "proxy": format!("127.0.0.1:{peer_port}"), "user": "15550102", "transport": "udp"},
        }))
        .unwrap(),
    )
    .unwrap();
    wait_until("the line is up with one channel", || line.channels() == 1).await;
    assert_eq!(line.status(), None);

    let peer_addr = SocketAddr::from(([127, 0, 0, 1], line_port));
    let account = Account {
        proxy: peer_addr,
        domain: peer_addr.to_string(),
        user: "15550101".into(),
        auth_user: "15550101".into(),
        password: String::new(),
        expires: 300,
    };
    let (peer, _incoming) = UserAgent::start(Config::new(
        SocketAddr::from(([127, 0, 0, 1], peer_port)),
        account,
        "far-end",
    ))
    .await
    .unwrap();

    // Not the line's number.
    assert_eq!(
        peer.call("15559999", t38(40000)).await.unwrap_err(),
        Error::BadNumber { code: 404 }
    );

    // The first call is answered with T.38 and holds the only channel while the line waits for fax data.
    let first = peer.call("15550102", t38(40002)).await.unwrap();
    assert!(first.remote_sdp.t38().is_some(), "answered with T.38");
    assert_eq!(line.receiving(), 1);
    // A second inbound call: busy.
    assert_eq!(
        peer.call("+15550102", t38(40004)).await.unwrap_err(),
        Error::Busy { code: 486 }
    );
    // An outbound fax: no free channel (refused before anything is rendered or dialled).
    let job = SendJob {
        attempt_id: "att".into(),
        job_id: "job".into(),
        recipient: "+15550101".into(),
        documents: Vec::new(),
        options: protocol::SendOptions {
            resolution: "fine".into(),
            ecm: true,
            ..Default::default()
        },
        attempt_number: 1,
        step_down: false,
    };
    let (progress, _p) = tokio::sync::mpsc::unbounded_channel();
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let out = line.send(job, progress, cancel).await;
    match out.outcome {
        protocol::Outcome::Failed { reason, .. } => {
            assert_eq!(reason, protocol::FailureReason::NoFreeChannel)
        }
        other => panic!("{other:?}"),
    }

    // The call ends: the channel is free again and a new call is answered.
    first.hang_up().await;
    wait_until("the receiving channel is released", || {
        line.receiving() == 0
    })
    .await;
    let again = peer.call("15550102", t38(40006)).await.unwrap();
    assert!(again.remote_sdp.t38().is_some());
    again.hang_up().await;

    // The fax server is stopping: a new call is refused 503, so the caller's network may try elsewhere.
    line.stop_answering();
    assert_eq!(
        peer.call("15550102", t38(40008)).await.unwrap_err(),
        Error::TrunkDown { code: 503 }
    );
    peer.shutdown();
}
