//! End-to-end tests: the real `faxhub serve` binary and real fax server processes (the `node` runtime over a
//! scripted line) on loopback, driven through the REST API as clients would.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::harness::{Api, FAST_CONFIG, NodeProc, SupervisorProc, read_sse, time_of, tiny_tiff};

fn testnode() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode"))
}

fn tempdir() -> tempfile::TempDir {
    testkit::harness::tempdir("faxhub-e2e")
}

async fn upload_tiff(api: &Api) -> String {
    let d = api
        .upload(tiny_tiff())
        .await
        .expect("upload")
        .expect_status(201)
        .expect("201");
    d["sha256"].as_str().expect("sha").to_owned()
}

async fn submit(api: &Api, doc: &str, to: &str, extra: Value) -> Value {
    api.submit_to(doc, to, extra).await.expect("submit")
}

fn attempt_servers(job: &Value) -> Vec<String> {
    job["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["fax_server_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sent(s: &str) -> bool {
    s == "sent"
}

fn finished(s: &str) -> bool {
    matches!(s, "sent" | "failed" | "cancelled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_prefix_and_by_load() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let script = json!({"default": "sent", "numbers": {"+442012345678": ["hang"]}, "page_ms": 50});
    let (_jp, jp) = NodeProc::start(&testnode(), &sup, "jp", &["+81"], &[&g], 4, script.clone())
        .await
        .expect("jp");
    let (_us, us) = NodeProc::start(&testnode(), &sup, "us", &["+1"], &[&g], 4, script.clone())
        .await
        .expect("us");
    let (_a1, any1) = NodeProc::start(&testnode(), &sup, "any1", &[], &[&g], 4, script.clone())
        .await
        .expect("any1");
    let (_a2, any2) = NodeProc::start(&testnode(), &sup, "any2", &[], &[&g], 4, script)
        .await
        .expect("any2");
    admin
        .wait_online(&[&jp, &us, &any1, &any2])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;

    // The most specific route wins.
    for (number, want) in [("+81312345678", &jp), ("+15551234567", &us)] {
        let job = submit(&admin, &doc, number, json!({})).await;
        let done = admin
            .wait_job(
                job["id"].as_str().expect("id"),
                Duration::from_secs(20),
                sent,
            )
            .await
            .expect("sent");
        assert_eq!(
            attempt_servers(&done),
            vec![want.clone()],
            "{number} went to the wrong fax server"
        );
    }
    // A number no prefix covers goes to a default route; with eight calls that never end, the two default
    // fax servers take four each (least loaded), and the ninth waits for a free channel.
    let mut ids = Vec::new();
    for _ in 0..9 {
        ids.push(
            submit(&admin, &doc, "+442012345678", json!({})).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let mut per_server = std::collections::HashMap::<String, usize>::new();
    let mut queued = 0;
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < until {
        per_server.clear();
        queued = 0;
        for id in &ids {
            let job = admin
                .get(&format!("/v1/jobs/{id}"))
                .await
                .expect("get")
                .expect_status(200)
                .expect("200");
            match attempt_servers(&job).as_slice() {
                [] => queued += 1,
                [one] => *per_server.entry(one.clone()).or_default() += 1,
                more => panic!("one attempt expected, got {more:?}"),
            }
        }
        if queued <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = [(&jp, "jp"), (&us, "us"), (&any1, "any1"), (&any2, "any2")];
    let named: Vec<(&str, usize)> = per_server
        .iter()
        .map(|(id, n)| {
            (
                names
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map_or("?", |(_, name)| *name),
                *n,
            )
        })
        .collect();
    assert_eq!(
        queued, 1,
        "exactly one job must wait for a channel: {named:?}"
    );
    assert_eq!(per_server.get(&any1), Some(&4), "{named:?}");
    assert_eq!(per_server.get(&any2), Some(&4), "{named:?}");
    // Cancelling frees the channels; the ninth job is then dispatched.
    let last = ids.pop().expect("nine");
    for id in &ids {
        let r = admin
            .post(&format!("/v1/jobs/{id}/cancel"), json!({}))
            .await
            .expect("cancel");
        assert_eq!(r.status, 202, "{}", r.body);
        admin
            .wait_job(id, Duration::from_secs(10), |s| s == "cancelled")
            .await
            .expect("cancelled");
    }
    admin
        .wait_job(&last, Duration::from_secs(10), |s| s == "active")
        .await
        .expect("dispatched after channels freed");
    let r = admin
        .post(&format!("/v1/jobs/{last}/cancel"), json!({}))
        .await
        .expect("cancel");
    assert_eq!(r.status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_a_fax_server_drops_mid_job() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (mut a, a_id) = NodeProc::start(
        &testnode(),
        &sup,
        "a",
        &[],
        &[&g],
        2,
        json!({"default": "hang"}),
    )
    .await
    .expect("a");
    admin
        .wait_online(&[&a_id])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    let job = submit(&admin, &doc, "+15550001111", json!({})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    admin
        .wait_job(&id, Duration::from_secs(10), |s| s == "active")
        .await
        .expect("active on a");
    let (_b, b_id) = NodeProc::start(
        &testnode(),
        &sup,
        "b",
        &[],
        &[&g],
        2,
        json!({"default": "sent"}),
    )
    .await
    .expect("b");
    admin
        .wait_online(&[&b_id])
        .await
        .expect("fax servers online");
    a.kill();
    let done = admin
        .wait_job(&id, Duration::from_secs(30), finished)
        .await
        .expect("finished");
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(attempt_servers(&done), vec![a_id.clone(), b_id.clone()]);
    let first = &done["attempts"][0];
    assert_eq!(
        (first["status"].as_str(), first["fault"].as_str()),
        (Some("abandoned"), Some("fax_server")),
        "{first}"
    );
    assert_eq!(done["attempts"][1]["status"], "succeeded");
    assert_eq!(a.executed().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_schedule_for_recipient_faults() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let script = json!({"numbers": {"+15550002222": ["busy", "no_answer", "sent"], "+15550003333": ["busy"]}});
    let (_n, n_id) = NodeProc::start(&testnode(), &sup, "n", &[], &[&g], 2, script)
        .await
        .expect("node");
    admin
        .wait_online(&[&n_id])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;

    let job = submit(
        &admin,
        &doc,
        "+15550002222",
        json!({"retry_delay_secs": 1, "max_tries": 5}),
    )
    .await;
    let done = admin
        .wait_job(
            job["id"].as_str().expect("id"),
            Duration::from_secs(30),
            finished,
        )
        .await
        .expect("done");
    assert_eq!(done["status"], "sent", "{done}");
    assert!(
        done["reason"].is_null(),
        "a sent job carries no stale failure: {done}"
    );
    let attempts = done["attempts"].as_array().expect("attempts");
    let reasons: Vec<&str> = attempts
        .iter()
        .map(|a| a["reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(reasons, vec!["busy", "no_answer", "-"]);
    let at = |i: usize| {
        time::OffsetDateTime::parse(
            attempts[i]["started_at"].as_str().expect("t"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("rfc3339")
    };
    for i in 1..attempts.len() {
        let gap = at(i) - at(i - 1);
        assert!(
            gap >= time::Duration::milliseconds(950),
            "retry {i} came after {gap}, before the 1 s delay"
        );
    }

    let job = submit(
        &admin,
        &doc,
        "+15550003333",
        json!({"retry_delay_secs": 1, "max_tries": 2}),
    )
    .await;
    let done = admin
        .wait_job(
            job["id"].as_str().expect("id"),
            Duration::from_secs(30),
            finished,
        )
        .await
        .expect("done");
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(2));
    assert!(
        done["reason"].as_str().unwrap_or_default().contains("busy"),
        "{done}"
    );

    // /metrics counts what happened: results and reasons as labels, per fax server, in base units.
    let metrics = metrics_text(&admin).await;
    for want in [
        "faxhub_build_info{version=\"".to_owned(),
        "faxhub_jobs_finished_total{result=\"sent\"} 1".to_owned(),
        "faxhub_jobs_finished_total{result=\"failed\"} 1".to_owned(),
        format!(
            "faxhub_attempts_ended_total{{fax_server_id=\"{n_id}\",result=\"failed\",reason=\"busy\"}} 3"
        ),
        format!(
            "faxhub_attempts_ended_total{{fax_server_id=\"{n_id}\",result=\"failed\",reason=\"no_answer\"}} 1"
        ),
        format!(
            "faxhub_attempts_ended_total{{fax_server_id=\"{n_id}\",result=\"succeeded\",reason=\"\"}} 1"
        ),
        format!("faxhub_pages_sent_total{{fax_server_id=\"{n_id}\"}} 1"),
        format!("faxhub_fax_server_up{{fax_server_id=\"{n_id}\",fax_server=\"n\"}} 1"),
        format!(
            "faxhub_fax_server_channels{{fax_server_id=\"{n_id}\",fax_server=\"n\",state=\"usable\"}} 2"
        ),
        "# TYPE faxhub_dispatch_latency_seconds histogram".to_owned(),
    ] {
        assert!(metrics.contains(&want), "{want} missing in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupings_isolate_in_both_directions() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g1 = admin.new_grouping("g1").await.expect("grouping");
    let g2 = admin.new_grouping("g2").await.expect("grouping");
    let (c1, c1_id) = admin
        .new_application("c1", &[&g1], None)
        .await
        .expect("client");
    let (c2, _c2_id) = admin
        .new_application("c2", &[&g2], None)
        .await
        .expect("client");
    let (n1, fs1) = NodeProc::start(&testnode(), &sup, "fs1", &["+81"], &[&g1], 2, json!({}))
        .await
        .expect("fs1");
    let (n2, fs2) = NodeProc::start(&testnode(), &sup, "fs2", &[], &[&g2], 2, json!({}))
        .await
        .expect("fs2");
    admin
        .wait_online(&[&fs1, &fs2])
        .await
        .expect("fax servers online");

    // Fax servers outside one's groupings are invisible.
    let seen = |v: Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|f| f["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(
            c1.get("/v1/fax-servers")
                .await
                .expect("list")
                .expect_status(200)
                .expect("200")
        ),
        vec![fs1.clone()]
    );
    assert_eq!(
        seen(
            c2.get("/v1/fax-servers")
                .await
                .expect("list")
                .expect_status(200)
                .expect("200")
        ),
        vec![fs2.clone()]
    );

    // Client -> fax server: c1 may not reach +1 numbers, because only fs2 (not in g1) could dial them.
    let mut own = tiny_tiff();
    if let Some(px) = own.last_mut() {
        *px = 0b0101_0101;
    }
    let d1 = c1
        .upload(own)
        .await
        .expect("upload")
        .expect_status(201)
        .expect("201")["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let d2 = upload_tiff(&c2).await;
    assert_ne!(d1, d2);
    let r = c1
        .post(
            "/v1/jobs",
            json!({"recipients": ["+15551234567"], "documents": [d1]}),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "recipients[0]");
    let j1 = submit(&c1, &d1, "+81312345678", json!({})).await;
    let j2 = submit(&c2, &d2, "+15551234567", json!({})).await;
    let (j1, j2) = (
        j1["id"].as_str().expect("id").to_owned(),
        j2["id"].as_str().expect("id").to_owned(),
    );
    assert_eq!(
        attempt_servers(
            &c1.wait_job(&j1, Duration::from_secs(20), sent)
                .await
                .expect("j1")
        ),
        vec![fs1.clone()]
    );
    assert_eq!(
        attempt_servers(
            &c2.wait_job(&j2, Duration::from_secs(20), sent)
                .await
                .expect("j2")
        ),
        vec![fs2.clone()]
    );
    // c2's document reference is not c1's to use.
    let r = c1
        .post(
            "/v1/jobs",
            json!({"recipients": ["+81312345678"], "documents": ["0".repeat(64)]}),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 422);

    // Fax server -> client: a fax received by fs2 reaches c2 only, even when a rule names c1.
    admin
        .post(
            "/v1/inbound-rules",
            json!({"fax_server_id": fs2, "targets": [{"kind": "client", "id": c1_id}]}),
        )
        .await
        .expect("rule")
        .expect_status(201)
        .expect("201");
    let tiff = dir.path().join("in.tif");
    std::fs::write(&tiff, tiny_tiff()).expect("write");
    n2.inject(&tiff, "+15557654321", "+15550000002", "REMOTE 2")
        .expect("inject");
    n1.inject(&tiff, "+15557654321", "+81300000001", "REMOTE 1")
        .expect("inject");
    let inbox_ids = |v: Value| {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let mut in1 = Vec::new();
    let mut in2 = Vec::new();
    for _ in 0..100 {
        in1 = inbox_ids(
            c1.get("/v1/inbox")
                .await
                .expect("inbox")
                .expect_status(200)
                .expect("200"),
        );
        in2 = inbox_ids(
            c2.get("/v1/inbox")
                .await
                .expect("inbox")
                .expect_status(200)
                .expect("200"),
        );
        if !in1.is_empty() && !in2.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (in1.len(), in2.len()),
        (1, 1),
        "each client sees exactly its grouping's fax"
    );
    assert_ne!(in1, in2);

    // The matrix of endpoints over the other side's objects: always 404, never 403.
    let foreign: Vec<(String, &Api)> = vec![
        (format!("/v1/fax-servers/{fs2}"), &c1),
        (format!("/v1/fax-servers/{fs1}"), &c2),
        (format!("/v1/jobs/{j2}"), &c1),
        (format!("/v1/jobs/{j1}"), &c2),
        (format!("/v1/inbox/{}", in2[0]), &c1),
        (format!("/v1/inbox/{}/document", in2[0]), &c1),
        (format!("/v1/inbox/{}", in1[0]), &c2),
        (format!("/v1/groupings/{g2}"), &c1),
        (format!("/v1/groupings/{g1}"), &c2),
        (format!("/v1/documents/{d1}"), &c2),
    ];
    for (path, api) in &foreign {
        let r = api.get(path).await.expect("get");
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
    }
    for (path, api) in [
        (format!("/v1/jobs/{j2}/cancel"), &c1),
        (format!("/v1/jobs/{j2}/resend"), &c1),
        (format!("/v1/jobs/{j1}/resend"), &c2),
    ] {
        let r = api.post(&path, json!({})).await.expect("post");
        assert_eq!(r.status, 404, "POST {path}: {}", r.body);
    }
    // Own objects are visible, administration is not theirs, and no credentials is 401.
    assert_eq!(
        c1.get(&format!("/v1/inbox/{}", in1[0]))
            .await
            .expect("get")
            .status,
        200
    );
    assert_eq!(c1.get("/v1/clients").await.expect("get").status, 403);
    assert_eq!(
        c1.with_token("fxh_wrong")
            .get("/v1/jobs")
            .await
            .expect("get")
            .status,
        401
    );
    assert_eq!(
        Api::new(&sup.url, "")
            .get("/v1/inbox")
            .await
            .expect("get")
            .status,
        401
    );
}

/// Receives webhook POSTs on loopback.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_faxes_reach_inbox_event_stream_and_webhook() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    sup.allow_loopback_webhooks().expect("webhooks to loopback");
    let admin = sup.admin();
    let g = admin.new_grouping("sales").await.expect("grouping");
    let (c1, c1_id) = admin
        .new_application("alice", &[&g], None)
        .await
        .expect("client");
    let (c2, _) = admin
        .new_application("bob", &[&g], None)
        .await
        .expect("client");
    let (n, fs) = NodeProc::start(&testnode(), &sup, "fs", &[], &[&g], 2, json!({}))
        .await
        .expect("fs");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    admin
        .post(
            "/v1/inbound-rules",
            json!({"called_number": "+15550001000", "targets": [{"kind": "client", "id": c1_id}]}),
        )
        .await
        .expect("rule")
        .expect_status(201)
        .expect("201");
    let (hook_url, mut hooks) = webhook_receiver().await;
    let hook = c1
        .post(
            "/v1/webhooks",
            json!({"url": hook_url, "events": ["inbound.*"]}),
        )
        .await
        .expect("hook")
        .expect_status(201)
        .expect("201");
    let secret = hook["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    let listed = c1
        .get("/v1/webhooks")
        .await
        .expect("list")
        .expect_status(200)
        .expect("200");
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown only at creation"
    );
    let sse = c1
        .http
        .get(format!("{}/v1/events", c1.base))
        .bearer_auth(&c1.token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);

    let tiff_bytes = tiny_tiff();
    let tiff = dir.path().join("in.tif");
    std::fs::write(&tiff, &tiff_bytes).expect("write");
    n.inject(&tiff, "+15557654321", "+15550001000", "+1 555 765 4321")
        .expect("inject");

    // The event stream.
    let events = read_sse(sse, "inbound.received", 1).await.expect("SSE");
    let (seq, data) = &events[0];
    let inbound_id = data["data"]["inbound_id"]
        .as_str()
        .expect("inbound id")
        .to_owned();
    assert_eq!(data["seq"].to_string(), *seq);
    assert_eq!(data["data"]["tsi"], "+1 555 765 4321");
    // The inbox, and the document itself.
    let item = c1
        .get(&format!("/v1/inbox/{inbound_id}"))
        .await
        .expect("get")
        .expect_status(200)
        .expect("200");
    assert_eq!(
        (
            item["caller_number"].as_str(),
            item["called_number"].as_str()
        ),
        (Some("+15557654321"), Some("+15550001000"))
    );
    let doc = c1
        .http
        .get(format!("{}/v1/inbox/{inbound_id}/document", c1.base))
        .bearer_auth(&c1.token)
        .send()
        .await
        .expect("doc");
    assert_eq!(doc.bytes().await.expect("bytes").to_vec(), tiff_bytes);
    // The rule named alice: bob, in the same grouping, does not get it.
    assert_eq!(
        c2.get(&format!("/v1/inbox/{inbound_id}"))
            .await
            .expect("get")
            .status,
        404
    );
    // The webhook, signed.
    let (headers, body) = tokio::time::timeout(Duration::from_secs(20), hooks.recv())
        .await
        .expect("webhook in time")
        .expect("webhook");
    assert_eq!(
        testkit::harness::standard_webhook_valid(&secret, &headers, &body),
        1,
        "the Standard Webhooks signature verifies with the secret: {headers:?}"
    );
    let hook_event: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        headers["webhook-id"],
        hook_event["id"].as_str().expect("id")
    );
    assert_eq!(
        hook_event["id"], data["event_id"],
        "webhook and SSE carry the same event id"
    );
    assert_eq!(hook_event["data"]["inbound_id"], inbound_id.as_str());
    // Resuming the stream with Last-Event-ID replays from there.
    let prev = seq.parse::<i64>().expect("seq") - 1;
    let again = c1
        .http
        .get(format!("{}/v1/events", c1.base))
        .bearer_auth(&c1.token)
        .header("last-event-id", prev.to_string())
        .send()
        .await
        .expect("sse");
    let replay = read_sse(again, "inbound.received", 1).await.expect("SSE");
    assert_eq!(replay[0].1["event_id"], data["event_id"]);
    // The delivery log.
    let hook_id = hook["id"].as_str().expect("id");
    let mut delivered = false;
    for _ in 0..50 {
        let log = c1
            .get(&format!("/v1/webhooks/{hook_id}/deliveries"))
            .await
            .expect("log")
            .expect_status(200)
            .expect("200");
        if log[0]["status"] == "delivered" && log[0]["last_status"] == 200 {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "the delivery log records the delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_job_and_sends_none_twice() {
    let dir = tempdir();
    let mut sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let script = json!({"default": "sent", "page_ms": 20});
    let (n1, f1) = NodeProc::start(&testnode(), &sup, "n1", &[], &[&g], 8, script.clone())
        .await
        .expect("n1");
    let (n2, f2) = NodeProc::start(&testnode(), &sup, "n2", &[], &[&g], 8, script)
        .await
        .expect("n2");
    admin
        .wait_online(&[&f1, &f2])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;

    // Submit in the background; kill -9 the supervisor in the middle of the burst.
    let burst = {
        let admin = admin.clone();
        let doc = doc.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..400 {
                let body = json!({"recipients": [format!("+1555{:07}", i)], "documents": [doc], "idempotency_key": format!("burst-{i}")});
                match admin.post("/v1/jobs", body).await {
                    Ok(r) if r.status == 201 => acknowledged.push((
                        i,
                        r.body["jobs"][0]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )),
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    sup.kill();
    let acknowledged = burst.await.expect("burst");
    assert!(
        acknowledged.len() > 5 && acknowledged.len() < 400,
        "the kill must land mid-burst ({} acknowledged)",
        acknowledged.len()
    );
    sup.restart().expect("restart");

    // Every acknowledged job is there exactly once and ends sent.
    for (_, id) in &acknowledged {
        admin
            .wait_job(id, Duration::from_secs(60), sent)
            .await
            .expect("acknowledged job sent after the crash");
    }
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=500&cursor={c}"),
            None => "/v1/jobs?limit=500".to_owned(),
        };
        let page = admin
            .get(&path)
            .await
            .expect("list")
            .expect_status(200)
            .expect("200");
        all.extend(page["items"].as_array().into_iter().flatten().map(|j| {
            (
                j["id"].as_str().unwrap_or_default().to_owned(),
                j["recipient"].as_str().unwrap_or_default().to_owned(),
            )
        }));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    for (_, id) in &acknowledged {
        assert_eq!(
            all.iter().filter(|(j, _)| j == id).count(),
            1,
            "job {id} must be present exactly once"
        );
    }
    let mut recipients: Vec<&String> = all.iter().map(|(_, r)| r).collect();
    recipients.sort();
    let before = recipients.len();
    recipients.dedup();
    assert_eq!(before, recipients.len(), "no submission was stored twice");
    // Repeating an acknowledged submission with its idempotency key returns the same job.
    let (i, id) = &acknowledged[0];
    let again = admin
        .post("/v1/jobs", json!({"recipients": [format!("+1555{:07}", i)], "documents": [doc], "idempotency_key": format!("burst-{i}")}))
        .await
        .expect("again");
    assert_eq!(again.status, 200);
    assert_eq!(again.body["jobs"][0]["id"].as_str(), Some(id.as_str()));
    // No attempt was executed twice, and each job succeeded once.
    let mut executed = n1.executed();
    executed.extend(n2.executed());
    let total = executed.len();
    executed.sort();
    executed.dedup();
    assert_eq!(total, executed.len(), "an attempt ran twice");
    for (_, id) in acknowledged.iter().take(50) {
        let job = admin
            .get(&format!("/v1/jobs/{id}"))
            .await
            .expect("get")
            .expect_status(200)
            .expect("200");
        let ok = job["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert_eq!(ok, 1, "{job}");
    }
}

fn documents_stored(data: &Path) -> usize {
    let root = data.join("data/documents");
    std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name() != "tmp")
                .map(|e| std::fs::read_dir(e.path()).map(|f| f.count()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_stores_nothing() {
    let dir = tempdir();
    let sup = SupervisorProc::start(
        dir.path(),
        &format!("max_upload_bytes = 200000\n{FAST_CONFIG}"),
    )
    .expect("supervisor");
    let admin = sup.admin();
    let before = documents_stored(dir.path());
    let r = admin.upload(vec![0u8; 300_000]).await.expect("big");
    assert_eq!(r.status, 413, "{}", r.body);
    let mut cut = tiny_tiff();
    cut.truncate(40);
    let r = admin.upload(cut).await.expect("corrupt");
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (422, Some("invalid_field")),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TIFF"),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let r = admin
        .upload(vec![0u8, 159, 146, 150, 1, 2])
        .await
        .expect("binary");
    assert_eq!(r.status, 415, "{}", r.body);
    let r = admin
        .upload(include_bytes!("../../render/tests/data/hostile/encrypted.pdf").to_vec())
        .await
        .expect("pdf");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("encrypt"),
        "{}",
        r.body
    );
    assert_eq!(
        documents_stored(dir.path()),
        before,
        "rejected uploads leave nothing behind"
    );
    let r = admin
        .upload(include_bytes!("../../render/tests/data/sample.pdf").to_vec())
        .await
        .expect("pdf");
    assert_eq!(r.status, 201, "a real PDF is accepted: {}", r.body);
    assert_eq!(documents_stored(dir.path()), before + 1);

    let g = admin.default_grouping().await.expect("default grouping");
    let (_n, fs) = NodeProc::start(&testnode(), &sup, "n", &[], &[&g], 1, json!({}))
        .await
        .expect("node");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    for (body, field) in [
        (
            json!({"recipients": ["+1 555 CALL ME"], "documents": [doc]}),
            "recipients[0]",
        ),
        (
            json!({"recipients": ["+1555000111", "12"], "documents": [doc]}),
            "recipients[1]",
        ),
        (
            json!({"recipients": ["+15550001111"], "documents": [doc], "resolution": "ultra"}),
            "resolution",
        ),
        (
            json!({"recipients": ["+15550001111"], "documents": [doc], "tsi": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}),
            "tsi",
        ),
        (
            json!({"recipients": ["+15550001111"], "documents": [doc], "send_at": "tomorrow"}),
            "send_at",
        ),
        (
            json!({"recipients": ["+15550001111"], "documents": []}),
            "documents",
        ),
    ] {
        let r = admin.post("/v1/jobs", body).await.expect("post");
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{}", r.body);
    }
    let r = admin
        .post(
            "/v1/jobs",
            json!({"recipients": ["+15550001111"], "documents": [doc], "colour": true}),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.body);
    assert_eq!(
        admin.get("/v1/jobs/job_nope").await.expect("get").status,
        404
    );
    assert_eq!(
        admin.get("/v1/nothing-here").await.expect("get").status,
        404
    );
    let r = admin
        .post("/v1/node/enroll", json!({"enrollment_token": "fxe_wrong"}))
        .await
        .expect("enroll");
    assert_eq!(r.status, 401);

    // The OpenAPI document describes every route the API serves.
    let spec = admin
        .get("/v1/openapi.json")
        .await
        .expect("spec")
        .expect_status(200)
        .expect("200");
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/resend",
        "/v1/inbox",
        "/v1/events",
        "/v1/webhooks",
        "/v1/fax-servers",
        "/v1/groupings",
        "/v1/clients",
        "/v1/documents",
        "/v1/inbound-rules",
    ] {
        assert!(spec["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    let metrics = metrics_text(&admin).await;
    assert!(
        metrics.contains("# TYPE faxhub_jobs_submitted_total counter"),
        "{metrics}"
    );
}

/// The same number twice in one submission, however written, is one recipient (it was a 500 with an
/// idempotency key); a key used again answers with the first submission only for the same request, and
/// refuses a different one, as payment APIs do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_number_is_one_recipient_and_a_key_names_one_request() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (_n, _fs) = NodeProc::start(
        &testnode(),
        &sup,
        "n",
        &[],
        &[&g],
        2,
        json!({"page_ms": 50}),
    )
    .await
    .expect("node");
    let doc = upload_tiff(&admin).await;
    let first = admin
        .post(
            "/v1/jobs",
            json!({"recipients": ["+15550100", "+1 555 0100", "+15550101", "+15550100"], "documents": [doc],
                   "idempotency_key": "order-17"}),
        )
        .await
        .expect("submit")
        .expect_status(201)
        .expect("201");
    let recipients: Vec<&str> = first["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["recipient"].as_str())
        .collect();
    assert_eq!(recipients, ["+15550100", "+15550101"], "{first}");
    // The same request again, its numbers written otherwise: the first submission's jobs.
    let again = admin
        .post(
            "/v1/jobs",
            json!({"recipients": ["+1 555 0100", "+15550101"], "documents": [doc], "idempotency_key": "order-17"}),
        )
        .await
        .expect("again")
        .expect_status(200)
        .expect("200");
    // The same jobs (they may have moved on meanwhile: compare who they are, not their state).
    let ids = |v: &Value| -> Vec<String> {
        v["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&again), ids(&first));
    // The same key for another request: refused, naming the key; nothing more is stored.
    for other in [
        json!({"recipients": ["+15550100", "+15550101"], "documents": [doc], "idempotency_key": "order-17", "priority": 5}),
        json!({"recipients": ["+15550100"], "documents": [doc], "idempotency_key": "order-17"}),
    ] {
        let r = admin.post("/v1/jobs", other).await.expect("other");
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["error"]["field"], "idempotency_key", "{}", r.body);
    }
    let jobs = admin
        .get("/v1/jobs")
        .await
        .expect("list")
        .expect_status(200)
        .expect("200");
    let listed = jobs["items"]
        .as_array()
        .or(jobs.as_array())
        .map_or(0, Vec::len);
    assert_eq!(listed, 2, "{jobs}");
}

/// `GET /v1/fax-servers` follows the heartbeats (`last_seen_at`), and its channel figures add up: a call
/// under way takes one of the usable channels; offline, none is usable and the last heartbeat is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_follows_heartbeats_and_its_channels_add_up() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (mut node, fs) = NodeProc::start(
        &testnode(),
        &sup,
        "n",
        &[],
        &[&g],
        2,
        json!({"page_ms": 8000}),
    )
    .await
    .expect("node");
    let view = |admin: Api, fs: String| async move {
        let all = admin
            .get("/v1/fax-servers")
            .await
            .expect("list")
            .expect_status(200)
            .expect("200");
        all.as_array()
            .expect("array")
            .iter()
            .find(|f| f["id"] == fs.as_str())
            .cloned()
            .expect("listed")
    };
    let doc = upload_tiff(&admin).await;
    submit(&admin, &doc, "+15550100", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let v = view(admin.clone(), fs.clone()).await;
        if v["channels"]["sending"] == 1 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        busy["channels"],
        json!({"configured": 2, "usable": 2, "sending": 1, "receiving": 0, "free": 1}),
        "{busy}"
    );
    assert_eq!(busy["free_channels"], 1);
    assert_eq!(busy["open_attempts"], 1);
    let first = time_of(&busy["last_seen_at"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = view(admin.clone(), fs.clone()).await;
    let seen = time_of(&later["last_seen_at"]);
    assert!(
        seen >= first + time::Duration::seconds(1),
        "heartbeats every second move last_seen_at: {first} then {seen}"
    );
    node.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let v = view(admin.clone(), fs.clone()).await;
        if v["online"] == false || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gone["online"], false, "{gone}");
    assert_eq!(gone["channels"]["usable"], 0, "{gone}");
    assert_eq!(gone["channels"]["configured"], 2, "{gone}");
    assert!(gone.get("connected_since").is_none(), "{gone}");
    assert!(time_of(&gone["last_seen_at"]) >= seen, "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_can_be_resent() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (_n, fs) = NodeProc::start(
        &testnode(),
        &sup,
        "n",
        &[],
        &[&g],
        1,
        json!({"page_ms": 1500}),
    )
    .await
    .expect("node");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    let job = submit(
        &admin,
        &doc,
        "+15550004444",
        json!({"header": "ACME Corp", "tsi": "+1 555 000 9999"}),
    )
    .await;
    let id = job["id"].as_str().expect("id");
    let r = admin
        .post(&format!("/v1/jobs/{id}/resend"), json!({}))
        .await
        .expect("resend");
    assert_eq!(
        r.status, 409,
        "a job still in progress cannot be resent: {}",
        r.body
    );
    admin
        .wait_job(id, Duration::from_secs(20), sent)
        .await
        .expect("sent");
    let again = admin
        .post(&format!("/v1/jobs/{id}/resend"), json!({}))
        .await
        .expect("resend")
        .expect_status(201)
        .expect("201");
    let new_id = again["jobs"][0]["id"].as_str().expect("id");
    assert_ne!(new_id, id);
    let done = admin
        .wait_job(new_id, Duration::from_secs(20), sent)
        .await
        .expect("resent job sent");
    assert_eq!(done["options"]["header"], "ACME Corp");
    assert_eq!(done["recipient"], "+15550004444");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_fax_kept_across_a_fax_server_crash_is_delivered() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (mut n, fs) = NodeProc::start(&testnode(), &sup, "n", &[], &[&g], 1, json!({}))
        .await
        .expect("node");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    n.kill();
    // What the line had received and kept when the process died (the format `node` writes).
    let inbound = n.state_dir.join("state/inbound");
    std::fs::create_dir_all(&inbound).expect("dir");
    std::fs::write(inbound.join("inb_crashtest.tif"), tiny_tiff()).expect("tif");
    let meta = json!({"id": "inb_crashtest", "pages": 1, "caller_number": "+15550009999", "called_number": null, "tsi": "KEPT",
                      "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z", "stats": {"bit_rate": null, "ecm": null,
                      "coding": null, "duration_ms": 60000, "bad_lines": 0, "retransmissions": 0}});
    std::fs::write(inbound.join("inb_crashtest.json"), meta.to_string()).expect("json");
    n.restart().expect("restart");
    let mut found = Value::Null;
    for _ in 0..100 {
        let r = admin.get("/v1/inbox/inb_crashtest").await.expect("get");
        if r.status == 200 {
            found = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        found["tsi"], "KEPT",
        "the kept fax reached the default inbox: {found}"
    );
    for _ in 0..50 {
        if !inbound.join("inb_crashtest.tif").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !inbound.join("inb_crashtest.tif").exists(),
        "delivered faxes are removed from the fax server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fax_server_faults_move_the_job_on_at_once() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (_a, a_id) = NodeProc::start(
        &testnode(),
        &sup,
        "a",
        &[],
        &[&g],
        1,
        json!({"default": "line_down"}),
    )
    .await
    .expect("a");
    admin
        .wait_online(&[&a_id])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    // Queued while only `a` is up, so that `a` takes the first attempt.
    let job = submit(
        &admin,
        &doc,
        "+15550005555",
        json!({"retry_delay_secs": 600}),
    )
    .await;
    let id = job["id"].as_str().expect("id").to_owned();
    let mut first = Value::Null;
    for _ in 0..100 {
        first = admin
            .get(&format!("/v1/jobs/{id}"))
            .await
            .expect("get")
            .expect_status(200)
            .expect("200");
        if first["attempts"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first["attempts"][0]["fault"], "fax_server", "{first}");
    assert_eq!(
        first["status"], "queued",
        "waiting for another fax server, not for the schedule: {first}"
    );
    let (_b, b_id) = NodeProc::start(
        &testnode(),
        &sup,
        "b",
        &[],
        &[&g],
        1,
        json!({"default": "sent"}),
    )
    .await
    .expect("b");
    admin
        .wait_online(&[&b_id])
        .await
        .expect("fax servers online");
    let done = admin
        .wait_job(&id, Duration::from_secs(10), finished)
        .await
        .expect("done");
    assert_eq!(
        done["status"], "sent",
        "a fax-server fault does not wait for the 600 s retry schedule: {done}"
    );
    let servers = attempt_servers(&done);
    assert_eq!(servers.last(), Some(&b_id), "{done}");
    assert!(servers[..servers.len() - 1].iter().all(|s| *s == a_id));
    assert_eq!(done["attempts"][0]["reason"], "line_down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attempt_outlives_its_bound() {
    let dir = tempdir();
    let config = FAST_CONFIG.replace("[deadlines]\n", "[deadlines]\nmax_attempt_secs = 2\n");
    let sup = SupervisorProc::start(dir.path(), &config).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    // `a` holds the call open for ever and answers every query: only the absolute bound ends it.
    let (a, a_id) = NodeProc::start(
        &testnode(),
        &sup,
        "a",
        &[],
        &[&g],
        1,
        json!({"default": "hang"}),
    )
    .await
    .expect("a");
    admin
        .wait_online(&[&a_id])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    let job = submit(&admin, &doc, "+15550006666", json!({})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    admin
        .wait_job(&id, Duration::from_secs(10), |s| s == "active")
        .await
        .expect("active");
    let (_b, b_id) = NodeProc::start(
        &testnode(),
        &sup,
        "b",
        &[],
        &[&g],
        1,
        json!({"default": "sent"}),
    )
    .await
    .expect("b");
    admin
        .wait_online(&[&b_id])
        .await
        .expect("fax servers online");
    let done = admin
        .wait_job(&id, Duration::from_secs(40), finished)
        .await
        .expect("done");
    assert_eq!(done["status"], "sent", "{done}");
    // `max_attempt_secs` (2 s) never cuts a call before the call limit its offer granted: the fax server
    // hangs up at that limit, and the job moves on.
    let first = &done["attempts"][0];
    assert_eq!(
        (first["status"].as_str(), first["reason"].as_str()),
        (Some("failed"), Some("call_time_limit")),
        "{done}"
    );
    let (started, ended) = (time_of(&first["started_at"]), time_of(&first["ended_at"]));
    assert!(
        ended - started >= time::Duration::seconds(5),
        "cut at {} by max_attempt_secs, before the call limit: {done}",
        ended - started
    );
    assert_eq!(attempt_servers(&done), vec![a_id, b_id]);
    assert_eq!(a.executed().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_interrupted_by_a_fax_server_restart_moves_on() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (mut a, a_id) = NodeProc::start(
        &testnode(),
        &sup,
        "a",
        &[],
        &[&g],
        1,
        json!({"default": "hang"}),
    )
    .await
    .expect("a");
    admin
        .wait_online(&[&a_id])
        .await
        .expect("fax servers online");
    let doc = upload_tiff(&admin).await;
    let job = submit(&admin, &doc, "+15550007777", json!({})).await;
    let id = job["id"].as_str().expect("id").to_owned();
    admin
        .wait_job(&id, Duration::from_secs(10), |s| s == "active")
        .await
        .expect("active");
    // The fax server dies mid-call and comes back at once (within the link grace): its journal reports the
    // interrupted attempt, which the supervisor moves on as a fax-server fault.
    a.restart().expect("restart");
    let (_b, b_id) = NodeProc::start(
        &testnode(),
        &sup,
        "b",
        &[],
        &[&g],
        1,
        json!({"default": "sent"}),
    )
    .await
    .expect("b");
    let done = admin
        .wait_job(&id, Duration::from_secs(20), finished)
        .await
        .expect("done");
    assert_eq!(done["status"], "sent", "{done}");
    let first = &done["attempts"][0];
    assert_eq!(
        (first["fault"].as_str(), first["reason"].as_str()),
        (Some("fax_server"), Some("fax_server_restarted")),
        "{done}"
    );
    assert_eq!(attempt_servers(&done).last(), Some(&b_id));
    assert_eq!(
        a.executed().len(),
        1,
        "the interrupted attempt is not executed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_retried_with_backoff_and_logged() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    sup.allow_loopback_webhooks().expect("webhooks to loopback");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (n, fs) = NodeProc::start(&testnode(), &sup, "n", &[], &[&g], 1, json!({}))
        .await
        .expect("node");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    // A receiver that fails twice, then accepts.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let hook = admin
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": ["inbound.received"]}),
        )
        .await
        .expect("hook")
        .expect_status(201)
        .expect("201");
    let tiff = dir.path().join("in.tif");
    std::fs::write(&tiff, tiny_tiff()).expect("write");
    n.inject(&tiff, "+15550001234", "+15550004321", "RETRY")
        .expect("inject");
    let path = format!(
        "/v1/webhooks/{}/deliveries",
        hook["id"].as_str().expect("id")
    );
    let mut log = Value::Null;
    for _ in 0..150 {
        log = admin
            .get(&path)
            .await
            .expect("log")
            .expect_status(200)
            .expect("200");
        if log[0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log[0]["status"], "delivered", "{log}");
    assert_eq!(log[0]["attempts"], 3, "two failures, then success: {log}");
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// Regression: a supervisor with nothing to say sent nothing, and its fax servers took the silence for a
/// dead link and reconnected every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_link_is_not_dropped() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("default grouping");
    let (_n, fs) = NodeProc::start(&testnode(), &sup, "n", &[], &[&g], 1, json!({}))
        .await
        .expect("node");
    admin.wait_online(&[&fs]).await.expect("fax servers online");
    let get = || async {
        admin
            .get(&format!("/v1/fax-servers/{fs}"))
            .await
            .expect("fs")
            .expect_status(200)
            .expect("200")
    };
    let first = get().await;
    assert!(first["connected_since"].is_string(), "{first}");
    // Six heartbeat intervals of silence from the supervisor's side.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = get().await;
    assert_eq!(now["online"], true);
    assert!(
        time_of(&now["last_seen_at"]) > time_of(&first["last_seen_at"]),
        "heartbeats went on: {first} {now}"
    );
    assert_eq!(
        now["connected_since"], first["connected_since"],
        "the fax server reconnected (a new hello) although nothing failed"
    );
}

/// Queue administration, as HylaFAX's `faxstat -s`, `faxalter` and `faxrm` give an administrator: a
/// client holding `manage_jobs` over a grouping sees every job of its clients (a user's job, 404 to it
/// before), alters a queued one (send time, priority; the dispatcher follows at once), cancels one
/// (recorded in the audit log, the reason naming who) and resends one as the user's; an administrator of
/// another grouping sees none of it. The CLI does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_administrator_sees_alters_cancels_and_resends_the_jobs_of_its_grouping() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let sales = admin.new_grouping("sales").await.expect("sales");
    let support = admin.new_grouping("support").await.expect("support");
    let (_fs, fs) = NodeProc::start(&testnode(), &sup, "fs", &["+1"], &[&sales], 4, json!({}))
        .await
        .expect("fax server");
    admin.wait_online(&[&fs]).await.expect("online");
    let (alice, alice_id) = admin
        .new_application("alice", &[&sales], None)
        .await
        .expect("alice");
    let operator = |g: &str| json!([{"role": "operator", "scope": {"kind": "grouping", "id": g}}]);
    let (bob, _) = admin
        .new_application("bob", &[&sales], Some(operator(&sales)))
        .await
        .expect("bob");
    let (carol, _) = admin
        .new_application("carol", &[&support], Some(operator(&support)))
        .await
        .expect("carol");
    let sha = alice.upload_sha(tiny_tiff()).await.expect("upload");
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = in_an_hour
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let queue = |number: &'static str| {
        let (alice, sha, later) = (alice.clone(), sha.clone(), later.clone());
        async move {
            let job = submit(&alice, &sha, number, json!({"send_at": later})).await;
            job["id"].as_str().expect("id").to_owned()
        }
    };
    let first = queue("+15550440001").await;
    let second = queue("+15550440002").await;

    // bob sees alice's jobs; carol, in another grouping, does not.
    let seen = bob.get(&format!("/v1/jobs/{first}")).await.expect("get");
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.body["client_id"], alice_id.as_str());
    assert_eq!(
        carol
            .get(&format!("/v1/jobs/{first}"))
            .await
            .expect("get")
            .status,
        404
    );
    let listed = bob
        .get_ok(&format!("/v1/jobs?grouping_id={sales}"))
        .await
        .expect("200");
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&second.as_str()),
        "{listed}"
    );
    let managed = bob.get_ok("/v1/jobs?scope=managed").await.expect("200");
    assert_eq!(
        managed["items"].as_array().map(Vec::len),
        Some(2),
        "{managed}"
    );
    assert_eq!(
        bob.get_ok("/v1/jobs").await.expect("200")["items"],
        json!([])
    );
    assert_eq!(
        carol
            .get(&format!("/v1/jobs?grouping_id={sales}"))
            .await
            .expect("list")
            .status,
        404
    );
    assert_eq!(
        alice
            .get(&format!("/v1/jobs?grouping_id={sales}"))
            .await
            .expect("list")
            .status,
        403
    );
    let carol_sees = carol.get_ok("/v1/jobs?scope=managed").await.expect("200");
    assert_eq!(carol_sees["items"], json!([]));

    // Bad alterations are refused, naming the field; nothing changes.
    for (body, field) in [
        (json!({}), "send_at"),
        (json!({"max_tries": 0}), "max_tries"),
        (json!({"kill_at": "2020-01-01T00:00:00Z"}), "kill_at"),
        (json!({"send_at": "tomorrow"}), "send_at"),
    ] {
        let r = bob
            .patch(&format!("/v1/jobs/{first}"), body.clone())
            .await
            .expect("patch");
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.body.to_string().contains(field), "{body}: {}", r.body);
    }
    assert_eq!(
        carol
            .patch(&format!("/v1/jobs/{first}"), json!({"priority": 1}))
            .await
            .expect("patch")
            .status,
        404
    );

    // bob moves the first job to now: the dispatcher sends it at once, not in an hour.
    let altered = bob
        .patch(
            &format!("/v1/jobs/{first}"),
            json!({"send_at": "2020-01-01T00:00:00Z", "priority": 3}),
        )
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    assert_eq!(altered["priority"], 3);
    let sent = alice
        .wait_job(&first, Duration::from_secs(15), |s| s == "sent")
        .await
        .expect("the altered job is sent now");
    assert_eq!(sent["status"], "sent");
    let r = bob
        .patch(&format!("/v1/jobs/{first}"), json!({"priority": 1}))
        .await
        .expect("patch");
    assert_eq!(r.status, 409, "a sent job cannot be altered: {}", r.body);

    // bob cancels the second job: alice sees why, and the audit log records it.
    let cancelled = bob
        .post(&format!("/v1/jobs/{second}/cancel"), json!({}))
        .await
        .expect("cancel")
        .expect_status(200)
        .expect("200");
    assert_eq!(cancelled["status"], "cancelled");
    let hers = alice
        .get_ok(&format!("/v1/jobs/{second}"))
        .await
        .expect("200");
    assert!(
        hers["reason"].as_str().is_some_and(|r| r.contains("bob")),
        "{hers}"
    );
    let audit = admin
        .get_ok(&format!("/v1/audit?target={second}"))
        .await
        .expect("200");
    let entries = audit["items"].as_array().cloned().unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "job.cancel" && e["actor_name"] == "bob"),
        "{audit}"
    );

    // bob resends the sent job: the new job is alice's.
    let again = bob
        .post(&format!("/v1/jobs/{first}/resend"), json!({}))
        .await
        .expect("resend")
        .expect_status(201)
        .expect("201");
    assert_eq!(again["jobs"][0]["client_id"], alice_id.as_str());
    let new_id = again["jobs"][0]["id"].as_str().expect("id").to_owned();
    alice
        .wait_job(&new_id, Duration::from_secs(15), |s| s == "sent")
        .await
        .expect("the resent job is alice's and is sent");

    // The CLI: bob lists the grouping's jobs and alters one.
    let third = queue("+15550440003").await;
    let config = dir.path().join("bob-cli.toml");
    let cli = |args: &[&str]| testkit::harness::faxhub_cli(&config, &[], args);
    let (ok, out) = cli(&["login", "--url", &sup.url, "--token", &bob.token]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["jobs", "--grouping", &sales]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&third) && out.contains(&alice_id) && out.contains("CLIENT"),
        "{out}"
    );
    let (ok, out) = cli(&["alter", &third, "--priority", "9", "--max-tries", "2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("priority 9") && out.contains("tries 0/2"),
        "{out}"
    );
    let (ok, out) = cli(&["cancel", &third]);
    assert!(ok && out.contains("cancelled"), "{out}");
}

/// Webhooks as the Standard Webhooks specification has them: the headers (`webhook-id` the event's, the
/// same on a redelivery; `webhook-timestamp`; `webhook-signature`) and a `User-Agent`; a test ping to one
/// webhook; a secret rotation whose old secret signs too during the overlap and not after; a redelivery of
/// a past event; a PATCH of URL and event kinds, checked as at creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_follow_standard_webhooks_with_ping_rotation_redelivery_and_patch() {
    use testkit::harness::standard_webhook_valid as valid;
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    sup.allow_loopback_webhooks().expect("webhooks to loopback");
    let admin = sup.admin();
    let (url, mut hooks) = webhook_receiver().await;
    let hook = admin
        .post("/v1/webhooks", json!({"url": url, "events": ["job.*"]}))
        .await
        .expect("hook")
        .expect_status(201)
        .expect("201");
    let id = hook["id"].as_str().expect("id").to_owned();
    let first = hook["secret"].as_str().expect("secret").to_owned();

    // A ping reaches this webhook, signed, although it takes only job.* events.
    let ping = admin
        .post(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await
        .expect("ping")
        .expect_status(202)
        .expect("202");
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .expect("in time")
        .expect("ping delivery");
    let event: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(event["type"], "webhook.ping", "{body}");
    assert_eq!(event["data"]["webhook_id"], id.as_str());
    assert_eq!(headers["webhook-id"], event["id"].as_str().expect("id"));
    let sent_at: i64 = headers["webhook-timestamp"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - sent_at).abs() <= 60, "{sent_at} vs {now}");
    assert_eq!(valid(&first, &headers, &body), 1, "{headers:?}");
    assert!(
        headers["user-agent"]
            .to_str()
            .is_ok_and(|ua| ua.starts_with("faxhub/")),
        "{headers:?}"
    );

    // A redelivery of that delivery keeps the event's webhook-id.
    let delivery = ping["id"].as_str().expect("delivery id").to_owned();
    let mut delivered = false;
    for _ in 0..100 {
        let log = admin
            .get_ok(&format!("/v1/webhooks/{id}/deliveries"))
            .await
            .expect("log");
        if log[0]["status"] == "delivered" {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the ping is logged as delivered");
    admin
        .post(
            &format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await
        .expect("redeliver")
        .expect_status(202)
        .expect("202");
    let (again, again_body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .expect("in time")
        .expect("redelivery");
    assert_eq!(
        again["webhook-id"], headers["webhook-id"],
        "the same message"
    );
    assert_eq!(again_body, body);
    let r = admin
        .post(
            &format!("/v1/webhooks/{id}/deliveries/dlv_nope/redeliver"),
            json!({}),
        )
        .await
        .expect("redeliver");
    assert_eq!(r.status, 404, "{}", r.body);

    // Rotation: a new secret, shown once; during the overlap both sign, after it only the new one.
    let rotated = rotate(&admin, &id, 3600).await;
    let second = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(second, first);
    assert!(
        rotated["previous_secret_valid_until"].is_string(),
        "{rotated}"
    );
    let (headers, body) = ping_received(&admin, &id, &mut hooks).await;
    assert_eq!(
        (
            valid(&second, &headers, &body),
            valid(&first, &headers, &body)
        ),
        (1, 1),
        "both secrets sign during the overlap: {headers:?}"
    );
    let rotated = rotate(&admin, &id, 0).await;
    let third = rotated["secret"].as_str().expect("new secret").to_owned();
    let (headers, body) = ping_received(&admin, &id, &mut hooks).await;
    assert_eq!(
        (
            valid(&third, &headers, &body),
            valid(&second, &headers, &body)
        ),
        (1, 0),
        "no overlap: only the newest secret signs: {headers:?}"
    );
    let r = admin
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            json!({"overlap_secs": 999_999_999}),
        )
        .await
        .expect("rotate");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("overlap_secs")),
        "{}",
        r.body
    );

    // PATCH: new event kinds and URL, checked as at creation.
    let patched = admin
        .patch(
            &format!("/v1/webhooks/{id}"),
            json!({"events": ["inbound.*", "job.sent"]}),
        )
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    assert_eq!(patched["events"], json!(["inbound.*", "job.sent"]));
    assert!(patched.get("secret").is_none());
    for (body, field) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "http://10.0.0.1/hook"}), "url"),
        (json!({"events": ["job sent"]}), "events[0]"),
    ] {
        let r = admin
            .patch(&format!("/v1/webhooks/{id}"), body.clone())
            .await
            .expect("patch");
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {}",
            r.body
        );
    }
    let other = admin
        .new_application("other", &[], None)
        .await
        .expect("client")
        .0;
    assert_eq!(
        other
            .patch(&format!("/v1/webhooks/{id}"), json!({"events": ["*"]}))
            .await
            .expect("patch")
            .status,
        404
    );
}

/// Sends a ping to webhook `id` and waits for it to arrive: its headers and body.
async fn ping_received(
    api: &Api,
    id: &str,
    hooks: &mut tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) -> (axum::http::HeaderMap, String) {
    api.post(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await
        .expect("ping")
        .expect_status(202)
        .expect("202");
    tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .expect("in time")
        .expect("ping")
}

/// Rotates webhook `id`'s secret with an overlap of `overlap_secs`: the answer.
async fn rotate(api: &Api, id: &str, overlap_secs: u64) -> Value {
    api.post(
        &format!("/v1/webhooks/{id}/rotate-secret"),
        json!({"overlap_secs": overlap_secs}),
    )
    .await
    .expect("rotate")
    .expect_status(200)
    .expect("200")
}

/// The supervisor's `/metrics` text.
async fn metrics_text(admin: &Api) -> String {
    admin
        .http
        .get(format!("{}/metrics", admin.base))
        .bearer_auth(testkit::harness::METRICS_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The inbox lists faxes the most recently received first, page after page (their ids are random, and the
/// inbox was once in the order of its ids); a cursor it did not give is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_is_newest_first_across_pages() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin.default_grouping().await.expect("grouping");
    let (n, fs) = NodeProc::start(&testnode(), &sup, "fs", &[], &[&g], 2, json!({}))
        .await
        .expect("fax server");
    admin.wait_online(&[&fs]).await.expect("online");
    let tiff = dir.path().join("in.tif");
    std::fs::write(&tiff, tiny_tiff()).expect("write");
    // Five faxes, one after the other, each from its own number.
    let callers: Vec<String> = (1..=5).map(|i| format!("+1555030000{i}")).collect();
    for (i, caller) in callers.iter().enumerate() {
        n.inject(&tiff, caller, "+15550001000", "").expect("inject");
        let mut arrived = false;
        for _ in 0..100 {
            let inbox = admin.get_ok("/v1/inbox?limit=10").await.expect("inbox");
            if inbox["items"].as_array().map(Vec::len) == Some(i + 1) {
                arrived = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(arrived, "fax {i} arrived");
        // Distinct received times.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/inbox?limit=2".to_owned();
    for _ in 0..5 {
        let page = admin.get_ok(&path).await.expect("page");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|f| f["caller_number"].as_str().unwrap_or_default().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/inbox?limit=2&cursor={c}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = callers.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let r = admin.get("/v1/inbox?cursor=inb_123").await.expect("inbox");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("cursor")),
        "{}",
        r.body
    );
}

/// Every 201 says where the new resource is (`Location`), and that path reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_created_resource_has_its_location() {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    sup.allow_loopback_webhooks().expect("webhooks to loopback");
    let admin = sup.admin();
    let created = |path: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            let r = admin
                .http
                .post(format!("{}{path}", admin.base))
                .bearer_auth(&admin.token)
                .json(&body)
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 201, "POST {path}");
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("POST {path}: no Location"))
                .to_owned();
            let body: Value = r.json().await.expect("json");
            (location, body)
        }
    };
    let g = admin.default_grouping().await.expect("grouping");
    let (fs_at, fs) = created(
        "/v1/fax-servers",
        json!({"name": "fs", "dial_prefixes": ["+1"], "groupings": [g]}),
    )
    .await;
    let sha = admin.upload_sha(tiny_tiff()).await.expect("upload");
    let (job_at, jobs) = created(
        "/v1/jobs",
        json!({"recipients": ["+15550100"], "documents": [sha]}),
    )
    .await;
    let (grouping_at, grouping) = created("/v1/groupings", json!({"name": "sales"})).await;
    let (client_at, client) = created(
        "/v1/clients",
        json!({"name": "app", "kind": "application", "groupings": [g]}),
    )
    .await;
    let (role_at, role) = created(
        "/v1/roles",
        json!({"name": "reader", "competences": ["read_phonebook"]}),
    )
    .await;
    let (entry_at, entry) = created(
        "/v1/phonebook",
        json!({"name": "Acme", "fax_number": "+15550100777"}),
    )
    .await;
    let (hook_at, hook) = created("/v1/webhooks", json!({"url": "http://127.0.0.1:9/hook"})).await;
    for (at, want) in [
        (
            &fs_at,
            format!(
                "/v1/fax-servers/{}",
                fs["fax_server"]["id"].as_str().expect("id")
            ),
        ),
        (
            &job_at,
            format!("/v1/jobs/{}", jobs["jobs"][0]["id"].as_str().expect("id")),
        ),
        (
            &grouping_at,
            format!("/v1/groupings/{}", grouping["id"].as_str().expect("id")),
        ),
        (
            &client_at,
            format!(
                "/v1/clients/{}",
                client["client"]["id"].as_str().expect("id")
            ),
        ),
        (
            &role_at,
            format!("/v1/roles/{}", role["id"].as_str().expect("id")),
        ),
        (
            &entry_at,
            format!("/v1/phonebook/{}", entry["id"].as_str().expect("id")),
        ),
        (
            &hook_at,
            format!("/v1/webhooks/{}", hook["id"].as_str().expect("id")),
        ),
    ] {
        assert_eq!(*at, want);
    }
    // Those with a GET read back from their Location.
    for at in [&fs_at, &job_at, &grouping_at, &client_at, &entry_at] {
        admin
            .get_ok(at)
            .await
            .unwrap_or_else(|e| panic!("GET {at}: {e}"));
    }
    let r = admin
        .http
        .post(format!("{}/v1/documents", admin.base))
        .bearer_auth(&admin.token)
        .body(b"a new text document\n".to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let at = r.headers()["location"].to_str().expect("ascii").to_owned();
    let doc: Value = r.json().await.expect("json");
    assert_eq!(
        at,
        format!("/v1/documents/{}", doc["sha256"].as_str().expect("sha"))
    );
}
