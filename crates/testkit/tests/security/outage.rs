//! A link outage must send no fax twice and leave no job in flight (issue 14, section 5), and the chaos
//! test: the supervisor killed and restarted, a fax server killed and a link cut during a burst of jobs.
//!
//! Faxes are counted where they arrive: every sending fax server's scripted line hands each fax it sends
//! to the line of a receiving fax server (`Script::deliver_to`) at the moment the receiver would confirm
//! the last page, and a call cut short hands over nothing. Links are cut by a TCP proxy between a fax
//! server and the supervisor (`testkit::proxy`).

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::harness::{Api, NodeProc, NodeSpec, SupervisorProc, time_of, tiny_tiff};
use testkit::proxy::LinkProxy;

fn testnode() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode"))
}

fn tempdir() -> tempfile::TempDir {
    testkit::harness::tempdir("faxhub-outage")
}

/// A link grace of 2 s, and a call limit of `call_setup_secs` + 2 s for a one-page job (4800 bits at the
/// slowest rate, 2400 bit/s).
fn config(call_setup_secs: u64) -> String {
    format!(
        r#"
[deadlines]
offered_secs = 3
dialling_secs = 30
transmitting_secs = 30
query_secs = 1
link_grace_secs = 2
heartbeat_secs = 1
call_setup_secs = {call_setup_secs}
max_page_bits = 4800

[retry]
schedule_secs = [1]
default_max_tries = 3
max_failovers = 5
"#
    )
}

/// A supervisor, the receiving fax server and a document to send.
struct Net {
    sup: SupervisorProc,
    admin: Api,
    grouping: String,
    rx: NodeProc,
    doc: String,
}

impl Net {
    async fn start(dir: &Path, call_setup_secs: u64) -> Self {
        let sup = SupervisorProc::start(dir, &config(call_setup_secs)).expect("supervisor");
        let admin = sup.admin();
        let groupings = admin
            .get("/v1/groupings")
            .await
            .expect("groupings")
            .expect_status(200)
            .expect("200");
        let grouping = groupings[0]["id"].as_str().expect("grouping").to_owned();
        // It dials nothing these tests send to: it only receives.
        let spec = NodeSpec {
            name: "rx",
            prefixes: &["+4400"],
            groupings: &[&grouping],
            channels: 8,
            script: json!({}),
            via: None,
            drain_secs: None,
        };
        let (rx, rx_id) = NodeProc::start_spec(&testnode(), &sup, spec)
            .await
            .expect("rx");
        admin
            .wait_online(&[&rx_id])
            .await
            .expect("fax servers online");
        let doc = admin.upload_sha(tiny_tiff()).await.expect("upload");
        Self {
            sup,
            admin,
            grouping,
            rx,
            doc,
        }
    }

    /// A sending fax server whose calls succeed and deliver to the receiving one; `script` adds to or
    /// overrides its line's script.
    async fn sender(
        &self,
        name: &str,
        prefixes: &[&str],
        via: Option<String>,
        script: Value,
    ) -> (NodeProc, String) {
        self.sender_draining(name, prefixes, via, script, None)
            .await
    }

    /// [`Net::sender`] whose calls get `drain_secs` to finish when it is stopped (SIGTERM).
    async fn sender_draining(
        &self,
        name: &str,
        prefixes: &[&str],
        via: Option<String>,
        script: Value,
        drain_secs: Option<u64>,
    ) -> (NodeProc, String) {
        let mut full = json!({"default": "sent", "deliver_to": self.rx.inject});
        if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), script) {
            full.extend(extra);
        }
        let spec = NodeSpec {
            name,
            prefixes,
            groupings: &[&self.grouping],
            channels: 4,
            script: full,
            via,
            drain_secs,
        };
        NodeProc::start_spec(&testnode(), &self.sup, spec)
            .await
            .expect(name)
    }

    /// Waits until the job's call is under way on `fax_server`.
    async fn wait_calling(&self, id: &str, fax_server: &str) {
        self.wait_jobs(&[id], Duration::from_secs(15), "a call", |job| {
            attempts(job).last().is_some_and(|a| {
                a["fax_server_id"] == fax_server
                    && a["status"] == "active"
                    && a["phase"] == "transmitting"
            })
        })
        .await;
    }

    async fn submit(&self, number: &str) -> String {
        let r = self
            .admin
            .post(
                "/v1/jobs",
                json!({"recipients": [number], "documents": [self.doc]}),
            )
            .await
            .expect("submit")
            .expect_status(201)
            .expect("201");
        r["jobs"][0]["id"].as_str().expect("id").to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        job(&self.admin, id).await
    }

    /// Waits until `done` holds for every job; panics with the last view otherwise.
    async fn wait_jobs(
        &self,
        ids: &[&str],
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) {
        let until = Instant::now() + within;
        for id in ids {
            loop {
                let job = self.job(id).await;
                if done(&job) {
                    break;
                }
                assert!(Instant::now() < until, "{what} within {within:?}: {job:#}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Every number received exactly once by the receiving fax server (and nothing else), also after a
    /// pause in which a second sending would arrive.
    async fn assert_received_once(&self, numbers: &[&str]) {
        let until = Instant::now() + Duration::from_secs(15);
        while numbers
            .iter()
            .any(|n| !self.rx.received().contains(&n.to_string()))
        {
            assert!(
                Instant::now() < until,
                "not every fax arrived: {:?} of {numbers:?}",
                self.rx.received()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut got: HashMap<String, usize> = HashMap::new();
        for n in self.rx.received() {
            *got.entry(n).or_default() += 1;
        }
        let want: HashMap<String, usize> = numbers.iter().map(|n| (n.to_string(), 1)).collect();
        assert_eq!(got, want, "each fax must arrive exactly once");
    }

    /// No attempt open on any fax server, none of these jobs open.
    async fn assert_nothing_in_flight(&self, ids: &[&str]) {
        for id in ids {
            let job = self.job(id).await;
            assert!(
                matches!(
                    job["status"].as_str(),
                    Some("sent" | "failed" | "cancelled")
                ),
                "{job:#}"
            );
            for a in job["attempts"].as_array().into_iter().flatten() {
                assert!(
                    a["ended_at"].is_string()
                        && !matches!(
                            a["status"].as_str(),
                            Some("offered" | "active" | "in_doubt")
                        ),
                    "an attempt is still open: {job:#}"
                );
            }
        }
        let servers = self
            .admin
            .get("/v1/fax-servers")
            .await
            .expect("fax servers")
            .expect_status(200)
            .expect("200");
        for fs in servers.as_array().into_iter().flatten() {
            assert_eq!(fs["open_attempts"], 0, "{fs:#}");
        }
    }
}

async fn job(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/jobs/{id}"))
        .await
        .expect("job")
        .expect_status(200)
        .expect("200")
}

fn attempts(job: &Value) -> Vec<Value> {
    job["attempts"].as_array().cloned().unwrap_or_default()
}

fn status_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == want
}

/// Every event the admin's stream holds so far (`type` and `data`).
async fn events(api: &Api) -> Vec<Value> {
    use futures::StreamExt;
    let resp = api
        .http
        .get(format!("{}/v1/events?after=0", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("event stream");
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    // The stream stays open: read until it has been quiet for a moment.
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(Duration::from_millis(700), stream.next()).await
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    buf.split("\n\n")
        .filter_map(|block| {
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?;
            serde_json::from_str(data.trim()).ok()
        })
        .collect()
}

fn events_of<'a>(events: &'a [Value], kind: &str, job_id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["data"]["job_id"] == job_id)
        .collect()
}

/// Four calls of 6 s on each of three fax servers whose links are cut 0.5 s into the calls: for 1 s (less
/// than the 2 s grace), for 3.5 s (longer than the grace, the calls still running) and for 8 s (longer
/// than the calls, which end during the outage). A fourth fax server may take any of these calls, as the
/// supervisor once sent the jobs of a silent fax server to (so twice). Each fax must arrive once, the
/// longer outages must show the jobs in doubt meanwhile, and nothing stays in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_call_sends_each_fax_once() {
    let dir = tempdir();
    // A call limit of 20 s: longer than any of the cuts, so no job may move on.
    let net = Net::start(dir.path(), 18).await;
    let cuts = [("short", 1000u64), ("medium", 3500), ("long", 8000)];
    let mut servers = Vec::new();
    for (i, (name, cut_ms)) in cuts.iter().enumerate() {
        let proxy = LinkProxy::start(&net.sup.url).await.expect("proxy");
        let prefix = format!("+155500{}", i + 1);
        let (node, id) = net
            .sender(
                name,
                &[&prefix],
                Some(proxy.url()),
                json!({"page_ms": 6000}),
            )
            .await;
        servers.push((*name, *cut_ms, proxy, node, id, prefix));
    }
    let (fallback, fallback_id) = net
        .sender("fallback", &[], None, json!({"page_ms": 200}))
        .await;
    let mut ids: Vec<&str> = servers.iter().map(|s| s.4.as_str()).collect();
    ids.push(&fallback_id);
    net.admin
        .wait_online(&ids)
        .await
        .expect("fax servers online");

    let mut jobs = Vec::new(); // (case, number, job id)
    for (name, _, _, _, _, prefix) in &servers {
        for k in 0..4 {
            let number = format!("{prefix}{k:04}");
            jobs.push((*name, number.clone(), net.submit(&number).await));
        }
    }
    let job_ids: Vec<&str> = jobs.iter().map(|(_, _, id)| id.as_str()).collect();
    net.wait_jobs(
        &job_ids,
        Duration::from_secs(15),
        "calls under way",
        status_is("active"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut_at = Instant::now();
    for s in &servers {
        s.2.cut();
    }
    // Restore each link in its turn, and watch the jobs meanwhile.
    let mut seen_in_doubt: HashSet<String> = HashSet::new();
    let mut restored = [false; 3];
    while restored.iter().any(|r| !r) {
        for (i, s) in servers.iter().enumerate() {
            if !restored[i] && cut_at.elapsed() >= Duration::from_millis(s.1) {
                s.2.restore();
                restored[i] = true;
            }
        }
        for (case, _, id) in jobs.iter().filter(|(case, _, _)| *case != "short") {
            let job = net.job(id).await;
            let first = &attempts(&job)[0];
            if job["status"] == "in_doubt" && first["status"] == "in_doubt" {
                assert!(
                    first["in_doubt_until"].is_string(),
                    "{case}: an attempt in doubt says until when: {job:#}"
                );
                seen_in_doubt.insert(id.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    net.wait_jobs(
        &job_ids,
        Duration::from_secs(30),
        "every job sent",
        status_is("sent"),
    )
    .await;
    let numbers: Vec<&str> = jobs.iter().map(|(_, n, _)| n.as_str()).collect();
    net.assert_received_once(&numbers).await;
    let events = events(&net.admin).await;
    for (case, number, id) in &jobs {
        let job = net.job(id).await;
        let server = &servers.iter().find(|s| s.0 == *case).expect("case").4;
        let list = attempts(&job);
        let tried: Vec<(&str, &str)> = list
            .iter()
            .map(|a| {
                (
                    a["fax_server_id"].as_str().unwrap_or_default(),
                    a["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            tried,
            vec![(server.as_str(), "succeeded")],
            "{case} {number}: one attempt, on its own fax server: {job:#}"
        );
        let doubted = !events_of(&events, "job.in_doubt", id).is_empty();
        assert_eq!(
            doubted,
            *case != "short",
            "{case} {number}: a job is shown in doubt exactly when its fax server stayed away longer than the grace"
        );
        if *case != "short" {
            assert!(
                seen_in_doubt.contains(id),
                "{case} {number}: the API showed the job in doubt during the outage"
            );
            // The medium cut ends while the call runs: the fax server resumes it. The long one ends after
            // the call: the fax server comes back with its result.
            assert_eq!(
                events_of(&events, "job.resumed", id).len(),
                usize::from(*case == "medium"),
                "{case} {number}"
            );
        }
        assert_eq!(
            events_of(&events, "job.sent", id).len(),
            1,
            "{case} {number}"
        );
    }
    assert!(
        fallback.executed().is_empty(),
        "no job went to the other fax server"
    );
    for s in &servers {
        assert_eq!(s.3.executed().len(), 4, "{}: each call ran once", s.0);
    }
    net.assert_nothing_in_flight(&job_ids).await;
}

/// Three fax servers die mid-call (call limit 8 s). `stays` is back only after its call limit: its job
/// is in doubt until then and only then goes elsewhere; when it is back, the end it reports for the
/// interrupted call is recorded on the abandoned attempt. `amnesiac` is back at once without its journal:
/// it does not hold the attempt, so its job goes elsewhere at once. `cancelled`'s job is cancelled by its
/// client while in doubt: it ends cancelled and is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_fax_server_has_its_jobs_moved_on_only_when_no_call_can_run() {
    let dir = tempdir();
    let net = Net::start(dir.path(), 6).await;
    let hang = json!({"page_ms": 60_000});
    let (mut stays, stays_id) = net.sender("stays", &["+1555011"], None, hang.clone()).await;
    let (mut amnesiac, amnesiac_id) = net
        .sender("amnesiac", &["+1555012"], None, hang.clone())
        .await;
    let (mut gone, gone_id) = net.sender("cancelled", &["+1555013"], None, hang).await;
    let (fallback, fallback_id) = net
        .sender("fallback", &[], None, json!({"page_ms": 200}))
        .await;
    net.admin
        .wait_online(&[&stays_id, &amnesiac_id, &gone_id, &fallback_id])
        .await
        .expect("fax servers online");
    let numbers = ["+15550110001", "+15550120001", "+15550130001"];
    let mut ids = Vec::new();
    for n in numbers {
        ids.push(net.submit(n).await);
    }
    let [stays_job, amnesiac_job, cancelled_job] = [&ids[0], &ids[1], &ids[2]];
    net.wait_jobs(
        &[stays_job, amnesiac_job, cancelled_job],
        Duration::from_secs(15),
        "calls under way",
        status_is("active"),
    )
    .await;
    stays.kill();
    gone.kill();
    amnesiac.kill();
    let killed_at = Instant::now();
    for file in ["journal.json", "journal.log"] {
        std::fs::remove_file(amnesiac.state_dir.join("state").join(file)).expect(file);
    }
    amnesiac.restart().expect("restart");

    net.wait_jobs(
        &[amnesiac_job],
        Duration::from_secs(6),
        "the amnesiac's job sent elsewhere before the call limit",
        status_is("sent"),
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(8));
    let in_doubt = |job: &Value| job["status"] == "in_doubt";
    net.wait_jobs(
        &[stays_job, cancelled_job],
        Duration::from_secs(5),
        "in doubt",
        in_doubt,
    )
    .await;
    let doubt_ends = time_of(&attempts(&net.job(stays_job).await)[0]["in_doubt_until"]);
    let r = net
        .admin
        .post(&format!("/v1/jobs/{cancelled_job}/cancel"), json!({}))
        .await
        .expect("cancel");
    assert_eq!(r.status, 202, "{}", r.body);

    net.wait_jobs(
        &[stays_job],
        Duration::from_secs(15),
        "sent elsewhere",
        status_is("sent"),
    )
    .await;
    let job = net.job(stays_job).await;
    let tried = attempts(&job);
    assert_eq!(tried.len(), 2, "{job:#}");
    assert_eq!(tried[0]["status"], "abandoned", "{job:#}");
    assert_eq!(tried[1]["fax_server_id"], fallback_id.as_str(), "{job:#}");
    assert!(
        time_of(&tried[1]["started_at"]) >= doubt_ends,
        "dispatched again only when its doubt ended ({doubt_ends}): {job:#}"
    );
    net.wait_jobs(
        &[cancelled_job],
        Duration::from_secs(10),
        "cancelled at the end of its doubt",
        status_is("cancelled"),
    )
    .await;
    assert_eq!(attempts(&net.job(cancelled_job).await).len(), 1);

    stays.restart().expect("restart");
    net.wait_jobs(
        &[stays_job],
        Duration::from_secs(10),
        "the interrupted call recorded",
        |job| attempts(job)[0]["reason"] == "fax_server_restarted",
    )
    .await;
    let job = net.job(stays_job).await;
    assert_eq!(
        (job["status"].as_str(), attempts(&job)[0]["status"].as_str()),
        (Some("sent"), Some("failed")),
        "{job:#}"
    );
    net.assert_received_once(&numbers[..2]).await;
    assert_eq!(
        fallback.executed().len(),
        2,
        "the cancelled job was not sent again"
    );
    net.assert_nothing_in_flight(&[stays_job, amnesiac_job, cancelled_job])
        .await;
}

/// A fax server whose link is cut mid-call is revoked (as an operator does to move its jobs on): it may
/// still be running the call out of reach, so its job is shown in doubt and goes to another fax server only
/// once that call cannot be running any more (its call limit, 8 s, counted from the cut), not at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_fax_server_out_of_reach_moves_its_job_on_only_when_no_call_can_run() {
    let dir = tempdir();
    let net = Net::start(dir.path(), 6).await;
    let proxy = LinkProxy::start(&net.sup.url).await.expect("proxy");
    let (_cut, cut_id) = net
        .sender(
            "cut",
            &["+1555021"],
            Some(proxy.url()),
            json!({"page_ms": 60_000}),
        )
        .await;
    let (fallback, fallback_id) = net
        .sender("fallback", &[], None, json!({"page_ms": 200}))
        .await;
    net.admin
        .wait_online(&[&cut_id, &fallback_id])
        .await
        .expect("fax servers online");
    let number = "+15550210001";
    let job_id = net.submit(number).await;
    net.wait_jobs(
        &[&job_id],
        Duration::from_secs(15),
        "the call under way",
        status_is("active"),
    )
    .await;
    proxy.cut();
    let cut_at = time::OffsetDateTime::now_utc();
    // Revoked once the supervisor has seen the link go (a cancel sent before would still get through).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let fs = net
            .admin
            .get(&format!("/v1/fax-servers/{cut_id}"))
            .await
            .expect("fax server")
            .expect_status(200)
            .expect("200");
        if fs["online"] == false {
            break;
        }
        assert!(
            Instant::now() < until,
            "the cut link still shows online: {fs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = net
        .admin
        .post(&format!("/v1/fax-servers/{cut_id}/revoke"), json!({}))
        .await
        .expect("revoke");
    assert_eq!(r.status, 200, "{}", r.body);

    net.wait_jobs(
        &[&job_id],
        Duration::from_secs(5),
        "in doubt after the revocation",
        |job| job["status"] == "in_doubt",
    )
    .await;
    net.wait_jobs(
        &[&job_id],
        Duration::from_secs(20),
        "sent by the other fax server",
        status_is("sent"),
    )
    .await;
    let job = net.job(&job_id).await;
    let tried = attempts(&job);
    assert_eq!(tried.len(), 2, "{job:#}");
    assert_eq!(
        (
            tried[0]["status"].as_str(),
            tried[1]["fax_server_id"].as_str()
        ),
        (Some("abandoned"), Some(fallback_id.as_str())),
        "{job:#}"
    );
    let again = time_of(&tried[1]["started_at"]);
    assert!(
        again - cut_at >= time::Duration::seconds(7),
        "dispatched again {} after the cut, while the first call could still run (8 s): {job:#}",
        again - cut_at
    );
    net.assert_received_once(&[number]).await;
    assert_eq!(fallback.executed().len(), 1);
    net.assert_nothing_in_flight(&[&job_id]).await;
}

/// `a`'s link is cut just as its calls start, and stays cut past the call limit (10 s): the calls send
/// their faxes meanwhile, but the supervisor cannot know it and gives the jobs to other fax servers: `x`'s
/// to `b`, which prepares for 6 s before dialling, `y`'s to `c`, which dials at once and is still sending
/// when `a` is back. `a`'s reports are recorded as what happened: both jobs are sent, their first attempts
/// succeeded; `b`'s attempt, not yet dialling, is withdrawn, so `x` arrives once; `c`'s call is left to
/// finish rather than cut mid-page, so `y` arrives twice, as both attempts truthfully show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_reported_after_the_job_moved_on_is_recorded_and_withdraws_the_undialled_duplicate()
 {
    let dir = tempdir();
    let net = Net::start(dir.path(), 8).await;
    let proxy = LinkProxy::start(&net.sup.url).await.expect("proxy");
    let (_a, a_id) = net
        .sender(
            "a",
            &["+1555021", "+1555031"],
            Some(proxy.url()),
            json!({"page_ms": 1000}),
        )
        .await;
    let (b, b_id) = net
        .sender(
            "b",
            &["+155502"],
            None,
            json!({"page_ms": 200, "prepare_ms": 6000}),
        )
        .await;
    let (c, c_id) = net
        .sender("c", &["+155503"], None, json!({"page_ms": 5000}))
        .await;
    net.admin
        .wait_online(&[&a_id, &b_id, &c_id])
        .await
        .expect("fax servers online");
    let (x, y) = ("+15550210001", "+15550310001");
    let x_job = net.submit(x).await;
    let y_job = net.submit(y).await;
    let both = [x_job.as_str(), y_job.as_str()];
    net.wait_jobs(
        &both,
        Duration::from_secs(15),
        "calls under way",
        status_is("active"),
    )
    .await;
    proxy.cut();
    let until = Instant::now() + Duration::from_secs(5);
    while [x, y]
        .iter()
        .any(|n| !net.rx.received().contains(&n.to_string()))
    {
        assert!(
            Instant::now() < until,
            "a's calls delivered the faxes during the cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.wait_jobs(&[&x_job], Duration::from_secs(15), "b preparing x", |job| {
        attempts(job)
            .get(1)
            .is_some_and(|a| a["phase"] == "preparing")
    })
    .await;
    net.wait_jobs(&[&y_job], Duration::from_secs(5), "c sending y", |job| {
        attempts(job)
            .get(1)
            .is_some_and(|a| a["phase"] == "transmitting")
    })
    .await;
    proxy.restore();
    net.wait_jobs(
        &both,
        Duration::from_secs(15),
        "every attempt ended",
        |job| attempts(job).iter().all(|a| a["ended_at"].is_string()),
    )
    .await;
    let summary = |job: &Value| -> Vec<(String, String, String)> {
        attempts(job)
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                (s("fax_server_id"), s("status"), s("reason"))
            })
            .collect()
    };
    let own = |id: &str, status: &str, reason: &str| {
        (id.to_owned(), status.to_owned(), reason.to_owned())
    };
    let job = net.job(&x_job).await;
    assert_eq!(job["status"], "sent", "{job:#}");
    assert_eq!(
        summary(&job),
        vec![
            own(&a_id, "succeeded", ""),
            own(&b_id, "failed", "cancelled")
        ],
        "{job:#}"
    );
    let job = net.job(&y_job).await;
    assert_eq!(job["status"], "sent", "{job:#}");
    assert_eq!(
        summary(&job),
        vec![own(&a_id, "succeeded", ""), own(&c_id, "succeeded", "")],
        "{job:#}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = net.rx.received();
    let count = |n: &str| received.iter().filter(|r| *r == n).count();
    assert_eq!((count(x), count(y)), (1, 2), "{received:?}");
    assert_eq!(
        b.executed().len(),
        1,
        "b's line had x, and gave it up before dialling"
    );
    assert_eq!(c.executed().len(), 1);
    let events = events(&net.admin).await;
    for id in both {
        let sent = events_of(&events, "job.sent", id);
        assert_eq!(sent.len(), 1, "{events:#?}");
        assert_eq!(sent[0]["data"]["late"], true);
        assert_eq!(
            events_of(&events, "job.attempt_ended", id).len(),
            1,
            "{events:#?}"
        );
    }
    net.assert_nothing_in_flight(&both).await;
}

/// The supervisor's rule for attempts in doubt rests on the call limit: the fax server hangs up when it
/// is reached, whatever the line is doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_cut_at_its_call_limit() {
    let dir = tempdir();
    // A call limit of 4 s.
    let net = Net::start(dir.path(), 2).await;
    let (a, a_id) = net.sender("a", &[], None, json!({"default": "hang"})).await;
    net.admin
        .wait_online(&[&a_id])
        .await
        .expect("fax servers online");
    let r = net
        .admin
        .post(
            "/v1/jobs",
            json!({"recipients": ["+15550410001"], "documents": [net.doc], "max_tries": 1}),
        )
        .await
        .expect("submit")
        .expect_status(201)
        .expect("201");
    let id = r["jobs"][0]["id"].as_str().expect("id").to_owned();
    net.wait_jobs(
        &[&id],
        Duration::from_secs(15),
        "failed",
        status_is("failed"),
    )
    .await;
    let job = net.job(&id).await;
    let first = &attempts(&job)[0];
    assert_eq!(
        (first["fault"].as_str(), first["reason"].as_str()),
        (Some("recipient"), Some("call_time_limit")),
        "{job:#}"
    );
    let took = time_of(&first["ended_at"]) - time_of(&first["started_at"]);
    assert!(
        took >= time::Duration::seconds(4) && took < time::Duration::seconds(8),
        "hung up at the limit, not before: {took}"
    );
    assert_eq!(a.executed().len(), 1);
    assert!(net.rx.received().is_empty());
}

/// The chaos test: during a burst of 40 jobs, the supervisor is killed and restarted, one fax server's
/// link is cut for 5 s (less than the call limit of 6 s) and another fax server is killed for good. Every
/// job the supervisor acknowledged ends exactly once: sent, with one `job.sent` event and one successful
/// attempt, and received once by the receiving fax server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_acknowledged_job_ends_exactly_once() {
    let dir = tempdir();
    let mut net = Net::start(dir.path(), 4).await;
    let proxy = LinkProxy::start(&net.sup.url).await.expect("proxy");
    let call = json!({"page_ms": 1500});
    let (f1, f1_id) = net.sender("f1", &[], None, call.clone()).await;
    let (f2, f2_id) = net.sender("f2", &[], Some(proxy.url()), call.clone()).await;
    let (mut f3, f3_id) = net.sender("f3", &[], None, call).await;
    net.admin
        .wait_online(&[&f1_id, &f2_id, &f3_id])
        .await
        .expect("fax servers online");

    // Submissions go on through the crash: a failed request is repeated with its idempotency key until the
    // supervisor answers, so every job ends up acknowledged, once.
    let burst = {
        let admin = net.admin.clone();
        let doc = net.doc.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..40 {
                let number = format!("+1555777{i:04}");
                let body = json!({"recipients": [number], "documents": [doc], "idempotency_key": format!("chaos-{i}")});
                let until = Instant::now() + Duration::from_secs(30);
                loop {
                    match admin.post("/v1/jobs", body.clone()).await {
                        Ok(r) if r.status == 201 || r.status == 200 => {
                            let id = r.body["jobs"][0]["id"].as_str().unwrap_or_default();
                            acknowledged.push((number, id.to_owned()));
                            break;
                        }
                        other => {
                            assert!(
                                Instant::now() < until,
                                "submission {i} never acknowledged: {:?}",
                                other.map(|r| r.body)
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(75)).await;
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    net.sup.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    net.sup.restart().expect("restart");
    proxy.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    f3.kill();
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut_at.elapsed())).await;
    proxy.restore();
    let acknowledged = burst.await.expect("burst");
    assert_eq!(acknowledged.len(), 40);

    let ids: Vec<&str> = acknowledged.iter().map(|(_, id)| id.as_str()).collect();
    net.wait_jobs(
        &ids,
        Duration::from_secs(45),
        "every job sent",
        status_is("sent"),
    )
    .await;
    let numbers: Vec<&str> = acknowledged.iter().map(|(n, _)| n.as_str()).collect();
    net.assert_received_once(&numbers).await;
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 40, "each submission is one job");
    let events = events(&net.admin).await;
    for id in &ids {
        let job = net.job(id).await;
        let ok = attempts(&job)
            .iter()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert_eq!(ok, 1, "{job:#}");
        assert_eq!(events_of(&events, "job.sent", id).len(), 1, "{id}");
        for kind in ["job.failed", "job.cancelled"] {
            assert!(events_of(&events, kind, id).is_empty(), "{kind} for {id}");
        }
    }
    let mut executed = f1.executed();
    executed.extend(f2.executed());
    executed.extend(f3.executed());
    let runs = executed.len();
    executed.sort();
    executed.dedup();
    assert_eq!(runs, executed.len(), "an attempt ran twice");
    net.assert_nothing_in_flight(&ids).await;
}

/// SIGTERM in the background: its exit status within `within`.
fn terminate_later(
    mut proc: impl FnMut(Duration) -> anyhow::Result<std::process::ExitStatus> + Send + 'static,
    within: Duration,
) -> tokio::task::JoinHandle<anyhow::Result<std::process::ExitStatus>> {
    tokio::task::spawn_blocking(move || proc(within))
}

/// A fax server stopped with SIGTERM finishes the call under way (its fax arrives once), takes no new
/// one (the supervisor hears at once that its free channels are gone and sends the next job elsewhere),
/// acknowledges everything, says goodbye and exits 0. One whose time to finish runs out hangs up; its
/// job moves on (`fax_server_stopping`, the fax server's fault) and is sent once by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_fax_server_finishes_its_call_takes_no_new_one_and_exits() {
    let dir = tempdir();
    let net = Net::start(dir.path(), 30).await;
    // Calls of 4 s on "a", which gets 30 s to finish them.
    let (a, a_id) = net
        .sender_draining("a", &[], None, json!({"page_ms": 4000}), Some(30))
        .await;
    net.admin.wait_online(&[&a_id]).await.expect("a online");
    let first = net.submit("+15550420001").await;
    net.wait_calling(&first, &a_id).await;
    let (b, b_id) = net.sender("b", &[], None, json!({})).await;
    net.admin.wait_online(&[&b_id]).await.expect("b online");

    let a = std::sync::Arc::new(std::sync::Mutex::new(a));
    let stopping = {
        let a = a.clone();
        terminate_later(
            move |within| a.lock().expect("a").terminate(within),
            Duration::from_secs(20),
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = net
        .admin
        .get(&format!("/v1/fax-servers/{a_id}"))
        .await
        .expect("a")
        .expect_status(200)
        .expect("200");
    assert_eq!(view["channels"]["free"], 0, "{view:#}");
    assert!(
        view["line_status"]
            .as_str()
            .is_some_and(|s| s.contains("shutting down")),
        "{view:#}"
    );
    let second = net.submit("+15550420002").await;
    net.wait_jobs(
        &[&second],
        Duration::from_secs(10),
        "sent",
        status_is("sent"),
    )
    .await;
    let second_job = net.job(&second).await;
    assert!(
        attempts(&second_job)
            .iter()
            .all(|a| a["fax_server_id"] == b_id),
        "a stopping fax server takes no new attempt: {second_job:#}"
    );
    let status = stopping.await.expect("join").expect("a exits");
    assert!(status.success(), "a exits 0: {status}");
    let stopped = a.lock().expect("a").stopped().expect("stopped.json");
    assert_eq!(stopped, json!({"calls_cut": 0, "unacknowledged": 0}));
    net.wait_jobs(&[&first], Duration::from_secs(5), "sent", status_is("sent"))
        .await;
    let first_job = net.job(&first).await;
    assert_eq!(attempts(&first_job).len(), 1, "{first_job:#}");
    assert_eq!(attempts(&first_job)[0]["fax_server_id"], a_id);
    assert_eq!(
        a.lock().expect("a").executed().len(),
        1,
        "a placed one call"
    );

    // b is idle: it stops at once.
    let mut b = b;
    let status = b.terminate(Duration::from_secs(10)).expect("b exits");
    assert!(status.success(), "b exits 0: {status}");

    // "c" gets 1 s to finish a 20 s call: it hangs up, and "d" sends the fax.
    let (c, c_id) = net
        .sender_draining("c", &[], None, json!({"page_ms": 20000}), Some(1))
        .await;
    net.admin.wait_online(&[&c_id]).await.expect("c online");
    let third = net.submit("+15550420003").await;
    net.wait_calling(&third, &c_id).await;
    let (_d, d_id) = net.sender("d", &[], None, json!({})).await;
    net.admin.wait_online(&[&d_id]).await.expect("d online");
    let mut c = c;
    let began = Instant::now();
    let status = c.terminate(Duration::from_secs(15)).expect("c exits");
    assert!(status.success(), "c exits 0: {status}");
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "c stops within its 1 s to finish and the wait for acknowledgements: {:?}",
        began.elapsed()
    );
    assert_eq!(c.stopped().expect("stopped.json")["calls_cut"], 1);
    net.wait_jobs(
        &[&third],
        Duration::from_secs(15),
        "sent",
        status_is("sent"),
    )
    .await;
    let third_job = net.job(&third).await;
    let tries = attempts(&third_job);
    assert_eq!(
        (
            tries[0]["fax_server_id"].as_str(),
            tries[0]["fault"].as_str(),
            tries[0]["reason"].as_str()
        ),
        (
            Some(c_id.as_str()),
            Some("fax_server"),
            Some("fax_server_stopping")
        ),
        "{third_job:#}"
    );
    assert_eq!(
        tries.last().expect("attempt")["fax_server_id"],
        d_id,
        "{third_job:#}"
    );
    net.assert_received_once(&["+15550420001", "+15550420002", "+15550420003"])
        .await;
    net.assert_nothing_in_flight(&[&first, &second, &third])
        .await;
}

/// The supervisor stopped with SIGTERM finishes the request under way (an upload still arriving when the
/// signal comes is stored and answered 201), ends event streams, closes fax server links with a goodbye
/// and exits 0, releasing its data directory; started again, it takes its fax servers back and sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_supervisor_finishes_the_request_under_way_and_starts_again() {
    use futures::StreamExt;
    let dir = tempdir();
    let mut net = Net::start(dir.path(), 30).await;
    let (_a, a_id) = net.sender("a", &[], None, json!({})).await;
    net.admin.wait_online(&[&a_id]).await.expect("a online");
    let events = net
        .admin
        .http
        .get(format!("{}/v1/events", net.admin.base))
        .bearer_auth(&net.admin.token)
        .send()
        .await
        .expect("event stream");
    assert_eq!(events.status(), 200);
    // An upload whose second half comes after the signal.
    let doc = tiny_tiff();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let upload = {
        let req = net
            .admin
            .http
            .post(format!("{}/v1/documents", net.admin.base))
            .bearer_auth(&net.admin.token)
            .body(reqwest::Body::wrap_stream(chunks));
        tokio::spawn(async move { req.send().await })
    };
    let half = doc.len() / 2;
    tx.send(Ok(doc[..half].to_vec())).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = doc[half..].to_vec();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = tx.send(Ok(rest)).await;
    });
    let began = Instant::now();
    let status = tokio::task::block_in_place(|| net.sup.terminate(Duration::from_secs(20)))
        .expect("the supervisor exits");
    assert!(status.success(), "exit 0: {status}");
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "it waited for the upload under way: {:?}",
        began.elapsed()
    );
    let answer = upload.await.expect("join").expect("the upload is answered");
    assert_eq!(answer.status(), 201, "the upload under way is finished");
    let stored: Value = answer.json().await.expect("json");
    // The event stream ended (the client resumes by id on the next start).
    let mut stream = events.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream ended");

    net.sup
        .start_again()
        .expect("starts again on the same data directory");
    net.admin
        .wait_online(&[&a_id])
        .await
        .expect("the fax server is back");
    let kept = net
        .admin
        .get(&format!(
            "/v1/documents/{}",
            stored["sha256"].as_str().expect("sha")
        ))
        .await
        .expect("document")
        .status;
    assert_eq!(kept, 200, "the document uploaded during the stop is kept");
    let id = net.submit("+15550430001").await;
    net.wait_jobs(&[&id], Duration::from_secs(15), "sent", status_is("sent"))
        .await;
    net.assert_received_once(&["+15550430001"]).await;
}
