//! The supervised network faxing for real: the supervisor (`faxhub serve`), two fax servers
//! (`faxhub node`, each with the SIP + T.38 line) registered to Kamailio with digest authentication, one
//! over UDP and one over TCP, and a client. 20 faxes at once from one fax server to the other (10 channels each) all reach the right
//! client's inbox with the pages sent; a wrong SIP password gives a clear registration error and no
//! channels; a callee that refuses T.38 (488) gives a clear job outcome.
//!
//! Real time (paced T.38): about a minute. Skipped without kamailio unless FAXHUB_SLOW_TESTS=1.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use testkit::harness::{Api, SupervisorProc, faxhub_bin, pages_below_header, read_sse};
use testkit::kamailio::Kamailio;

const CONFIG: &str = r#"
[deadlines]
offered_secs = 10
dialling_secs = 60
transmitting_secs = 120
query_secs = 2
link_grace_secs = 5
heartbeat_secs = 1

[retry]
schedule_secs = [2]
default_max_tries = 1
max_failovers = 2
"#;

struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers a fax server with the supervisor, gives it its settings and starts `faxhub node`.
#[allow(clippy::too_many_arguments)]
async fn fax_server(
    sup: &SupervisorProc,
    k: &Kamailio,
    grouping: &str,
    name: &str,
    number: &str,
    password: &str,
    transport: &str,
    dials: &[&str],
) -> (Node, String) {
    let admin = sup.admin();
    let made = admin
        .post(
            "/v1/fax-servers",
            json!({"name": name, "dial_prefixes": dials, "groupings": [grouping]}),
        )
        .await
        .unwrap()
        .expect_status(201)
        .unwrap();
    let id = made["fax_server"]["id"].as_str().unwrap().to_owned();
    let token = made["enrollment_token"].as_str().unwrap().to_owned();
    let settings = json!({
        "station_id": number,
        "local_numbers": [number],
        "channels": 10,
        "sip": {"registrar": k.addr.to_string(), "user": number.trim_start_matches('+'), "password": password, "transport": transport},
        "dial_rules": {"prefixes": dials, "access_code": ""},
    });
    admin
        .put(&format!("/v1/fax-servers/{id}/settings"), settings)
        .await
        .unwrap()
        .expect_status(200)
        .unwrap();
    let dir = sup.dir.join(format!("node-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let child = Command::new(faxhub_bin().unwrap())
        .args(["node", "--supervisor", &sup.url, "--state-dir"])
        .arg(dir.join("state"))
        .args([
            "--enroll",
            &token,
            // Port 0: the fax server binds UDP and TCP on one port both have free (a port picked here
            // and released could be taken by another test's connection before the fax server binds it).
            "--sip-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Node { child, log }, id)
}

/// Submits a job sending the document `sha` to `to`; its id.
async fn submit(admin: &Api, to: &str, sha: &str) -> String {
    let r = admin
        .post("/v1/jobs", json!({"recipients": [to], "documents": [sha]}))
        .await
        .unwrap()
        .expect_status(201)
        .unwrap();
    r["jobs"][0]["id"].as_str().unwrap().to_owned()
}

/// The job once it is sent, failed or cancelled (waiting at most `secs`).
async fn finished(admin: &Api, id: &str, secs: u64) -> serde_json::Value {
    admin
        .wait_job(id, Duration::from_secs(secs), |s| {
            matches!(s, "sent" | "failed" | "cancelled")
        })
        .await
        .unwrap()
}

/// GET `path`, which must answer 200; its body.
async fn get_ok(api: &Api, path: &str) -> serde_json::Value {
    api.get(path).await.unwrap().expect_status(200).unwrap()
}

async fn free_channels(api: &Api, id: &str) -> (bool, u64) {
    let f = get_ok(api, &format!("/v1/fax-servers/{id}")).await;
    (
        f["online"] == true,
        f["free_channels"].as_u64().unwrap_or(0),
    )
}

/// Waits until every one of these fax servers is online with its 10 channels free.
async fn wait_ready(api: &Api, ids: &[&str]) {
    for _ in 0..200 {
        let mut all = true;
        for id in ids {
            let (on, free) = free_channels(api, id).await;
            all &= on && free == 10;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fax servers {ids:?} did not come up with 10 channels each");
}

/// `faxhub convert` of `doc` (the pages as a fax server renders them, without header), below the header
/// band.
fn rendered(doc: &Path, dir: &Path) -> Vec<(u32, u32, Vec<u8>)> {
    let out = dir.join("rendered.tif");
    let st = Command::new(faxhub_bin().unwrap())
        .arg("convert")
        .arg(doc)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    pages_below_header(&std::fs::read(&out).unwrap()).unwrap()
}

fn document(dir: &Path) -> Vec<u8> {
    let t = dir.join("letter.txt");
    let body: String = (0..30)
        .map(|i| format!("Line {i}: faxhub over SIP and T.38 through Kamailio.\n"))
        .collect();
    std::fs::write(&t, body).unwrap();
    std::fs::read(&t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_faxes_through_kamailio_reach_the_inbox_identical() {
    let Some(k) = Kamailio::start(&[
        ("15550201", "pw-a"),
        ("15550202", "pw-b"),
        ("15550203", "pw-c"),
        ("15550299", "pw-z"),
    ])
    .unwrap() else {
        eprintln!("skipping: kamailio not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sup = SupervisorProc::start(tmp.path(), CONFIG).unwrap();
    let admin = sup.admin();
    let groupings = get_ok(&admin, "/v1/groupings").await;
    let grouping = groupings[0]["id"].as_str().unwrap().to_owned();

    let (_a, a_id) = fax_server(
        &sup,
        &k,
        &grouping,
        "fax-a",
        "+15550201",
        "pw-a",
        "udp",
        &["+15550202", "+15550299"],
    )
    .await;
    // fax-b's SIP goes over TCP: Kamailio relays between the two transports.
    let (b, b_id) = fax_server(
        &sup,
        &k,
        &grouping,
        "fax-b",
        "+15550202",
        "pw-b",
        "tcp",
        &["+15550201"],
    )
    .await;
    // Wrong password: the registration fails clearly and the fax server offers no channels.
    let (c, c_id) = fax_server(
        &sup,
        &k,
        &grouping,
        "fax-c",
        "+15550203",
        "not-the-password",
        "udp",
        &["+15550203"],
    )
    .await;

    wait_ready(&admin, &[&a_id, &b_id]).await;
    let b_log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        b_log.contains("registered") && b_log.contains("transport=\"TCP\""),
        "fax-b registered over TCP:\n{b_log}"
    );
    let (c_on, c_free) = free_channels(&admin, &c_id).await;
    assert!(c_on, "fax-c is linked to the supervisor");
    assert_eq!(
        c_free, 0,
        "a fax server that cannot register offers no channels"
    );
    // The reason reaches the supervisor's API with the fax server's heartbeat.
    let mut line_status = String::new();
    for _ in 0..100 {
        let f = get_ok(&admin, &format!("/v1/fax-servers/{c_id}")).await;
        line_status = f["line_status"].as_str().unwrap_or_default().to_owned();
        if !line_status.is_empty() && line_status != "the line is starting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        line_status.contains("SIP registration of 15550203")
            && line_status.contains("check the SIP user and password"),
        "line_status: {line_status:?}"
    );
    assert!(!line_status.contains("not-the-password"));
    let a_view = get_ok(&admin, &format!("/v1/fax-servers/{a_id}")).await;
    assert!(
        a_view.get("line_status").is_none(),
        "a working line has no line_status: {a_view}"
    );
    let c_log = std::fs::read_to_string(&c.log).unwrap();
    assert!(
        c_log.contains("SIP registration of 15550203")
            && c_log.contains("check the SIP user and password"),
        "no clear registration error in fax-c's log:\n{c_log}"
    );
    assert!(
        !c_log.contains("not-the-password"),
        "the password leaked into the log"
    );

    // A callee that refuses T.38 (our own SIP user agent, registered as +15550299).
    let (z, mut z_in) = sip::ua::UserAgent::start(sip::ua::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        account: sip::ua::Account {
            proxy: k.addr,
            domain: k.addr.to_string(),
            user: "15550299".into(),
            auth_user: "15550299".into(),
            password: "pw-z".into(),
            expires: 300,
        },
        transport: sip::ua::Transport::Udp,
        timers: sip::transaction::Timers::default(),
        user_agent: "refuses-t38".into(),
        keepalive: None,
    })
    .await
    .unwrap();
    z.register().await.unwrap();
    tokio::spawn(async move {
        while let Some(inc) = z_in.recv().await {
            inc.reject(488, "Not Acceptable Here");
        }
    });

    // 20 faxes at once from fax-a to fax-b's number.
    let doc = document(tmp.path());
    let up = admin.upload(doc).await.unwrap().expect_status(201).unwrap();
    let sha = up["sha256"].as_str().unwrap().to_owned();
    let mut jobs = Vec::new();
    for _ in 0..20 {
        jobs.push(submit(&admin, "+15550202", &sha).await);
    }
    let refused_id = submit(&admin, "+15550299", &sha).await;

    for id in &jobs {
        let j = finished(&admin, id, 240).await;
        assert_eq!(j["status"], "sent", "job {id}: {j}");
        let servers: Vec<&str> = j["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["fax_server_id"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(servers.last(), Some(&a_id.as_str()), "sent by fax-a");
    }
    let j = finished(&admin, &refused_id, 60).await;
    assert_eq!(j["status"], "failed", "{j}");
    let reasons: Vec<&str> = j["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons.contains(&"no_t38"),
        "the 488 should read as no_t38: {j}"
    );

    // Every fax reached the inbox of the grouping, from fax-a's number, with the same pages.
    let mut items = Vec::new();
    for _ in 0..300 {
        let inbox = get_ok(&admin, "/v1/inbox?limit=100").await;
        items = inbox["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items.len(), 20, "faxes in the inbox");
    let mut first: Option<Vec<(u32, u32, Vec<u8>)>> = None;
    for it in &items {
        let id = it["id"].as_str().unwrap();
        let caller = it["caller_number"].as_str().unwrap_or_default();
        assert!(caller.ends_with("15550201"), "{it}");
        let tiff = fetch_fax(it, &sup).await;
        let pages = pages_below_header(&tiff).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].0, 1728);
        // The inbox record says what arrived of each page: here, all of it, confirmed.
        assert_eq!(it["complete"], true, "{it}");
        assert!(it["failure"].is_null(), "{it}");
        let info = it["page_info"].as_array().expect("page_info");
        assert_eq!(info.len(), 1, "{it}");
        assert_eq!(info[0]["confirmed"], true, "{it}");
        assert_eq!(info[0]["complete"], true, "{it}");
        assert_eq!(info[0]["bad_lines"], 0, "{it}");
        assert_eq!(info[0]["lines_lost"], 0, "{it}");
        assert!(info[0]["lines"].as_u64().unwrap_or(0) > 1000, "{it}");
        match &first {
            None => first = Some(pages),
            Some(f) => assert_eq!(
                f, &pages,
                "fax {id} differs from the first one below the header line"
            ),
        }
    }
    // And the pages are the document's: our own rendering of it (no header) below the header band.
    let want = rendered(&tmp.path().join("letter.txt"), tmp.path());
    assert_eq!(
        first.unwrap(),
        want,
        "received pages are not the document's pages"
    );

    // The settings a fax server takes are the settings it runs: fax-b now announces only standard
    // resolution, fax-a prints its own header template (no date: the middle of the band stays empty).
    let classic_band = header_band(&items[0], &sup).await;
    for (id, patch) in [
        (&b_id, json!({"receive": {"resolutions": ["standard"]}})),
        (
            &a_id,
            json!({"header_template": "ACME {station}|Page {page} of {pages}", "time_zone": "Asia/Tokyo"}),
        ),
    ] {
        let v = admin
            .patch(&format!("/v1/fax-servers/{id}/settings"), patch)
            .await
            .unwrap()
            .expect_status(200)
            .unwrap();
        let want = v["desired_version"].as_i64().unwrap();
        let mut applied = 0;
        for _ in 0..100 {
            let v = get_ok(&admin, &format!("/v1/fax-servers/{id}/settings")).await;
            applied = v["applied_version"].as_i64().unwrap_or(0);
            if applied == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(applied, want, "fax server {id} applied its new settings");
    }
    let id = submit(&admin, "+15550202", &sha).await;
    let j = finished(&admin, &id, 120).await;
    assert_eq!(j["status"], "sent", "{j}");
    let mut newest = None;
    for _ in 0..300 {
        let inbox = get_ok(&admin, "/v1/inbox?limit=100").await;
        let all = inbox["items"].as_array().cloned().unwrap_or_default();
        if all.len() > 20 {
            newest = all
                .into_iter()
                .find(|it| !items.iter().any(|old| old["id"] == it["id"]));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newest = newest.expect("the 21st fax reached the inbox");
    let tiff = fetch_fax(&newest, &sup).await;
    let pages = t4::tiff::read(&tiff, &t4::tiff::ReadLimits::default()).unwrap();
    let y_dpi = pages[0].y_resolution.unwrap_or(0.0);
    assert!(
        (95.0..100.0).contains(&y_dpi),
        "fax-b takes only standard resolution, so the page came at 98 lpi, not {y_dpi}"
    );
    let band = header_band(&newest, &sup).await;
    assert_ne!(band, classic_band, "the header template changed the header");
    let ink = |band: &[Vec<bool>], cols: std::ops::Range<usize>| -> usize {
        band.iter()
            .map(|row| row[cols.clone()].iter().filter(|b| **b).count())
            .sum()
    };
    let middle = 1728 * 2 / 5..1728 * 3 / 5;
    assert!(
        ink(&classic_band, middle.clone()) > 0,
        "the classic header prints the date in the middle"
    );
    assert_eq!(ink(&band, middle), 0, "this template has no middle field");
    assert!(
        ink(&band, 0..400) > 0 && ink(&band, 1728 - 400..1728) > 0,
        "left and right fields printed"
    );
}

/// A call cut mid-fax: the sender's job is cancelled while its third page of four goes, so its fax
/// server hangs up (SIP BYE) in the middle of the page. The receiving fax server keeps the pages it
/// confirmed: they reach the inbox marked incomplete, with the reason, and the `inbound.received` event
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_mid_fax_leaves_the_confirmed_pages_in_the_inbox() {
    let Some(k) = Kamailio::start(&[("15550211", "pw-a"), ("15550212", "pw-b")]).unwrap() else {
        eprintln!("skipping: kamailio not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sup = SupervisorProc::start(tmp.path(), CONFIG).unwrap();
    let admin = sup.admin();
    let groupings = get_ok(&admin, "/v1/groupings").await;
    let grouping = groupings[0]["id"].as_str().unwrap().to_owned();
    let (_a, a_id) = fax_server(
        &sup,
        &k,
        &grouping,
        "fax-a",
        "+15550211",
        "pw-a",
        "udp",
        &["+15550212"],
    )
    .await;
    let (_b, b_id) = fax_server(
        &sup,
        &k,
        &grouping,
        "fax-b",
        "+15550212",
        "pw-b",
        "udp",
        &["+15550211"],
    )
    .await;
    wait_ready(&admin, &[&a_id, &b_id]).await;
    let events = admin
        .http
        .get(format!("{}/v1/events", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);

    // Four short pages, so that each goes in a few seconds.
    let text: String = (1..=4)
        .map(|p| {
            (0..5)
                .map(|l| format!("Page {p}, line {l}: a fax cut short keeps what was confirmed.\n"))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\x0c");
    let path = tmp.path().join("four-pages.txt");
    std::fs::write(&path, &text).unwrap();
    let up = admin
        .upload(text.into_bytes())
        .await
        .unwrap()
        .expect_status(201)
        .unwrap();
    let id = submit(&admin, "+15550212", up["sha256"].as_str().unwrap()).await;
    let mut sending_third = false;
    for _ in 0..600 {
        let j = get_ok(&admin, &format!("/v1/jobs/{id}")).await;
        let page = j["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|a| a["page"].as_i64())
            .unwrap_or(0);
        if page >= 3 {
            sending_third = true;
            break;
        }
        assert!(j["finished_at"].is_null(), "the job ended first: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sending_third, "page 3 never started");
    admin
        .post(&format!("/v1/jobs/{id}/cancel"), json!({}))
        .await
        .unwrap();
    let j = finished(&admin, &id, 60).await;
    assert_eq!(j["status"], "cancelled", "{j}");

    let got = read_sse(events, "inbound.received", 1).await.unwrap();
    let event = &got[0].1["data"];
    assert_eq!(event["complete"], false, "{event}");
    let failure = event["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("remote hung up"), "{event}");
    let pages = event["pages"].as_u64().unwrap();
    assert!(
        (2..4).contains(&pages),
        "the pages confirmed before the call ended: {event}"
    );
    let item = get_ok(
        &admin,
        &format!("/v1/inbox/{}", event["inbound_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(item["complete"], false, "{item}");
    assert_eq!(item["pages"].as_u64(), Some(pages), "{item}");
    let info = item["page_info"].as_array().unwrap();
    assert_eq!(info.len() as u64, pages, "{item}");
    assert!(info.iter().all(|p| p["confirmed"] == true), "{item}");
    // The pages kept are the document's first pages.
    let want = rendered(&path, tmp.path());
    let received = pages_below_header(&fetch_fax(&item, &sup).await).unwrap();
    assert_eq!(want.len(), 4);
    assert!(
        received[..] == want[..received.len()],
        "the kept pages are not the document's first pages"
    );
}

async fn fetch_fax(item: &serde_json::Value, sup: &SupervisorProc) -> Vec<u8> {
    let id = item["id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/v1/inbox/{id}/document", sup.url))
        .bearer_auth(&sup.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "fetching fax {id}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

/// The header band of a received fax's first page (the top 3 mm), as rows of pixels (true: black).
async fn header_band(item: &serde_json::Value, sup: &SupervisorProc) -> Vec<Vec<bool>> {
    let tiff = fetch_fax(item, sup).await;
    let pages = t4::tiff::read(&tiff, &t4::tiff::ReadLimits::default()).unwrap();
    let p = pages[0].as_page();
    let stride = t4::stride(p.width);
    let rows = (pages[0].y_resolution.unwrap_or(196.0) * 3.0 / 25.4) as usize;
    (0..rows)
        .map(|y| {
            (0..p.width as usize)
                .map(|x| p.data[y * stride + x / 8] & (0x80 >> (x % 8)) != 0)
                .collect()
        })
        .collect()
}
