//! Two lines on real UDP sockets on 127.0.0.1: our sender calls our receiver.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use t30::{Config, Page, Resolution, Role};
use tokio::net::UdpSocket;

fn page(seed: u32) -> Page {
    let width = 1728;
    let stride = t4::stride(width);
    let height = 400;
    let mut data = vec![0u8; stride * height as usize];
    for y in 0..height as usize {
        for x in (100..1600).step_by(7 + seed as usize) {
            if (y / 12) % 3 == 0 && (x / 40 + y / 5) % 2 == 0 {
                data[y * stride + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    Page {
        width,
        height,
        resolution: Resolution::Fine,
        data,
    }
}

async fn call(ecm: bool, paced: bool, pages: Vec<Page>) -> (line::CallResult, line::CallResult) {
    call_after_strays(ecm, paced, pages, false).await
}

/// A call to a receiver that learns the far end from the first datagram; with `strays`, datagrams from
/// another port that do not open a fax call arrive before the caller's.
async fn call_after_strays(
    ecm: bool,
    paced: bool,
    pages: Vec<Page>,
    strays: bool,
) -> (line::CallResult, line::CallResult) {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_addr = b.local_addr().unwrap();
    let mut s = Config::new(Role::Send(pages), true);
    s.ecm = ecm;
    s.pacing.paced = paced;
    s.ident = "sender".into();
    let mut r = Config::new(Role::Receive, false);
    r.pacing.paced = paced;
    r.ident = "receiver".into();
    let t = line::Transport::default();
    let rx =
        tokio::spawn(
            async move { line::run(&b, None, r, t, Duration::from_secs(10), |_| {}).await },
        );
    if strays {
        // Garbage, then a well-formed UDPTL datagram carrying image data (no call starts that way).
        let stray = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stray.send_to(b"\x00\x07junk", b_addr).await.unwrap();
        let image = t38::Ifp::data(
            t38::DataType::V17_14400,
            vec![t38::Field::new(t38::FieldType::T4NonEcmData, vec![0u8; 20])],
        );
        let mut u = t38::UdptlSender::new(t38::SenderConfig::default());
        stray
            .send_to(&u.build(&image).unwrap(), b_addr)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tx = line::run(&a, Some(b_addr), s, t, Duration::ZERO, |_| {})
        .await
        .unwrap();
    let rx = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (tx, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_ecm_and_non_ecm_faxes_arrive_identical() {
    for ecm in [true, false] {
        let pages = vec![page(0), page(3), page(5)];
        let (tx, rx) = call(ecm, false, pages.clone()).await;
        assert_eq!(tx.outcome.result, Ok(()), "{}", tx.outcome.detail);
        assert_eq!(rx.outcome.result, Ok(()), "{}", rx.outcome.detail);
        assert_eq!(rx.pages.len(), 3);
        for (got, want) in rx.pages.iter().zip(&pages) {
            assert_eq!(got.page, *want);
        }
        assert_eq!(tx.stats.pages, 3);
        assert_eq!(tx.stats.ecm, ecm);
        assert_eq!(rx.stats.remote_ident, "sender");
        assert_eq!(tx.stats.remote_ident, "receiver");
        assert!(tx.stats.datagrams_sent > 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_fax_takes_line_time() {
    let (tx, rx) = call(true, true, vec![page(1)]).await;
    assert_eq!(tx.outcome.result, Ok(()), "{}", tx.outcome.detail);
    assert_eq!(rx.pages.len(), 1);
    // CED (2.6 s), DIS, DCS, 1.5 s of TCF and the V.21 preambles: well over 6 s in real time.
    assert!(
        tx.stats.duration > Duration::from_secs(6),
        "{:?}",
        tx.stats.duration
    );
}

#[tokio::test]
async fn a_receiver_with_no_caller_says_so() {
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = line::run(
        &b,
        None,
        Config::new(Role::Receive, false),
        line::Transport::default(),
        Duration::from_millis(200),
        |_| {},
    )
    .await;
    assert!(matches!(r, Err(line::Error::NoPeer(_))));
}

/// Issue 21: a stray datagram from another port, before the caller's first one, became "the far end" of
/// a receiver that learns it from the first datagram; every datagram of the real caller was then ignored
/// and the call failed at T1. Strays that do not open a call are skipped now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_datagram_before_the_caller_does_not_take_its_place() {
    let pages = vec![page(2)];
    let (tx, rx) = call_after_strays(true, false, pages.clone(), true).await;
    assert_eq!(tx.outcome.result, Ok(()), "{}", tx.outcome.detail);
    assert_eq!(rx.pages.len(), 1);
    assert_eq!(rx.pages[0].page, pages[0]);
}
