//! The settings registry (claims 5–8) end to end: registered, versioned, pushed to the real fax server
//! runtime, applied or refused, pending while it is offline.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use testkit::harness::{Api, FAST_CONFIG, NodeProc, SupervisorProc};

async fn wait_settings(api: &Api, fs: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = api
            .get(&format!("/v1/fax-servers/{fs}/settings"))
            .await
            .expect("get")
            .expect_status(200)
            .expect("200");
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("settings never reached the awaited state: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_registered_pushed_refused_and_kept_pending_while_offline() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin
        .get("/v1/groupings")
        .await
        .expect("g")
        .expect_status(200)
        .expect("200")[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let other = admin
        .post("/v1/groupings", json!({"name": "other"}))
        .await
        .expect("g")
        .expect_status(201)
        .expect("201");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode"));
    let (mut node, fs) = NodeProc::start(&bin, &sup, "fs", &[], &[&g], 2, json!({}))
        .await
        .expect("node");
    let path = format!("/v1/fax-servers/{fs}/settings");

    // Before anything is registered: version 0 and the defaults.
    let first = wait_settings(&admin, &fs, |v| v["desired_version"] == 0).await;
    assert_eq!(first["settings"]["sip"]["password"], json!({"set": false}));

    // Registered and pushed while online (claim 7).
    let mut doc: Value = first["settings"].clone();
    doc["channels"] = json!(2);
    doc["station_id"] = json!("+1 555 0100");
    doc["sip"] = json!({"registrar": "127.0.0.1:5060", "user": "fax1", "password": "s3cret-pass-1", "transport": "udp"});
    doc["dial_rules"]["prefixes"] = json!(["+1"]);
    let put = admin
        .put(&path, doc)
        .await
        .expect("put")
        .expect_status(200)
        .expect("200");
    assert_eq!(put["desired_version"], 1);
    let applied = wait_settings(&admin, &fs, |v| v["applied_version"] == 1).await;
    assert_eq!(applied["pending"], false);
    assert_eq!(
        applied["settings"]["sip"]["password"],
        json!({"set": true}),
        "secrets are shown only as set"
    );
    assert_eq!(applied["settings"]["station_id"], "+1 555 0100");
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(node.state_dir.join("state/settings.json"))
            .expect("kept by the fax server"),
    )
    .expect("json");
    assert!(
        kept["settings"]["sip"]["password"]["sealed"].is_string()
            && !kept.to_string().contains("s3cret-pass-1"),
        "the fax server keeps its SIP password sealed: {kept}"
    );
    let db = std::fs::read(sup.dir.join("data/faxhub.db")).expect("db");
    let wal = std::fs::read(sup.dir.join("data/faxhub.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(13).any(|w| w == b"s3cret-pass-1"),
            "the password is not stored in the clear"
        );
    }
    // The dial rules drive routing.
    let fsv = admin
        .get(&format!("/v1/fax-servers/{fs}"))
        .await
        .expect("fs")
        .expect_status(200)
        .expect("200");
    assert_eq!(fsv["dial_prefixes"], json!(["+1"]));

    // A setting the fax server refuses: the error reaches the API, the applied version stays.
    admin
        .patch(&path, json!({"channels": 8}))
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    let refused = wait_settings(&admin, &fs, |v| v["error_version"] == 2).await;
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("channels"),
        "{refused}"
    );
    assert_eq!(
        (
            refused["applied_version"].clone(),
            refused["pending"].clone()
        ),
        (json!(1), json!(true))
    );

    // Offline: the new version is pending, and pushed on reconnect.
    node.kill();
    let patched = admin
        .patch(&path, json!({"channels": 2, "station_id": "+1 555 0199"}))
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    assert_eq!(
        (
            patched["desired_version"].clone(),
            patched["pending"].clone()
        ),
        (json!(3), json!(true))
    );
    node.restart().expect("restart");
    let back = wait_settings(&admin, &fs, |v| v["applied_version"] == 3).await;
    assert_eq!(
        back["last_error"],
        Value::Null,
        "a later success clears the error"
    );
    assert_eq!(
        back["settings"]["sip"]["password"],
        json!({"set": true}),
        "a patch keeps the secret"
    );

    // History, diff and rollback.
    let history = admin
        .get(&format!("{path}/history"))
        .await
        .expect("h")
        .expect_status(200)
        .expect("200");
    let versions: Vec<i64> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);
    let changes = admin
        .get(&format!("{path}/diff?from=1&to=3"))
        .await
        .expect("d")
        .expect_status(200)
        .expect("200");
    let paths: Vec<&str> = changes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(paths, vec!["station_id"], "{changes}");
    let rolled = admin
        .post(&format!("{path}/rollback"), json!({"version": 1}))
        .await
        .expect("rb")
        .expect_status(200)
        .expect("200");
    assert_eq!(rolled["desired_version"], 4);
    let applied = wait_settings(&admin, &fs, |v| v["applied_version"] == 4).await;
    assert_eq!(applied["settings"]["station_id"], "+1 555 0100");

    // Bad input names the field; clients read only within their groupings and change nothing (claim 6).
    let r = admin
        .patch(&path, json!({"t38": {"max_bit_rate": 33600}}))
        .await
        .expect("patch");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("t38.max_bit_rate")),
        "{}",
        r.body
    );
    let r = admin
        .patch(&path, json!({"colour": true}))
        .await
        .expect("patch");
    assert_eq!(r.status, 422, "unknown settings are refused: {}", r.body);
    admin.post("/v1/roles", json!({"name": "settings reader", "competences": ["read_fax_server_settings", "send_faxes"]})).await.expect("role").expect_status(201).expect("201");
    let grants = json!([{"role": "settings reader", "scope": {"kind": "grouping", "id": g}}]);
    let inside = admin
        .post(
            "/v1/clients",
            json!({"name": "reader", "kind": "application", "groupings": [g], "grants": grants}),
        )
        .await
        .expect("c")
        .expect_status(201)
        .expect("201");
    let plain = admin
        .post(
            "/v1/clients",
            json!({"name": "plain", "kind": "application", "groupings": [g]}),
        )
        .await
        .expect("c")
        .expect_status(201)
        .expect("201");
    let plain = admin.with_token(plain["token"].as_str().expect("t"));
    assert_eq!(
        plain.get(&path).await.expect("get").status,
        403,
        "a user without read_fax_server_settings"
    );
    let outside = admin
        .post(
            "/v1/clients",
            json!({"name": "stranger", "kind": "application", "groupings": [other["id"]]}),
        )
        .await
        .expect("c")
        .expect_status(201)
        .expect("201");
    let reader = admin.with_token(inside["token"].as_str().expect("t"));
    let stranger = admin.with_token(outside["token"].as_str().expect("t"));
    assert_eq!(reader.get(&path).await.expect("get").status, 200);
    assert_eq!(
        reader
            .patch(&path, json!({"channels": 1}))
            .await
            .expect("patch")
            .status,
        403
    );
    assert_eq!(stranger.get(&path).await.expect("get").status, 404);
    assert_eq!(
        stranger
            .get(&format!("{path}/history"))
            .await
            .expect("get")
            .status,
        404
    );

    // The audit log: every change, with before and after, and never a secret.
    let audit = admin
        .get(&format!("/v1/audit?target={fs}&limit=500"))
        .await
        .expect("audit")
        .expect_status(200)
        .expect("200");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "settings.rolled_back",
            "settings.changed",
            "settings.changed",
            "settings.changed",
            "fax_server.created"
        ],
        "{audit}"
    );
    let refused_change = &audit["items"][2];
    assert_eq!(
        (
            refused_change["before"]["channels"].clone(),
            refused_change["after"]["settings"]["channels"].clone()
        ),
        (json!(2), json!(8))
    );
    assert_eq!(refused_change["actor_name"], "admin");
    let all = admin
        .get("/v1/audit?limit=500")
        .await
        .expect("audit")
        .expect_status(200)
        .expect("200")
        .to_string();
    assert!(
        !all.contains("s3cret-pass-1"),
        "secrets are redacted in the audit log"
    );
    assert!(
        all.contains("client.created") && all.contains("grouping.created"),
        "{all}"
    );
    assert_eq!(reader.get("/v1/audit").await.expect("audit").status, 403);

    // Sign-ins, refused and accepted, are audited too; the password appears nowhere.
    let anon = Api::new(&sup.url, "");
    assert!(
        !sup.password.is_empty(),
        "the bootstrap password is printed once"
    );
    let r = anon
        .post(
            "/v1/sessions",
            json!({"name": "admin", "password": "wrong password!"}),
        )
        .await
        .expect("login");
    assert_eq!(r.status, 401);
    let r = anon
        .post(
            "/v1/sessions",
            json!({"name": "admin", "password": sup.password}),
        )
        .await
        .expect("login");
    assert_eq!(r.status, 201, "{}", r.body);
    let session = admin.with_token(r.body["token"].as_str().expect("token"));
    assert_eq!(
        session
            .get("/v1/me")
            .await
            .expect("me")
            .expect_status(200)
            .expect("200")["name"],
        "admin"
    );
    let signins = admin
        .get("/v1/audit?limit=5")
        .await
        .expect("audit")
        .expect_status(200)
        .expect("200");
    let actions: Vec<&str> = signins["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        &actions[..2],
        &["session.created", "session.refused"],
        "{signins}"
    );
    assert!(
        !signins.to_string().contains("wrong password!")
            && !signins.to_string().contains(&sup.password)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_settings_are_versioned_guarded_and_in_force_at_once() {
    use testkit::harness::tiny_tiff;
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let g = admin
        .get("/v1/groupings")
        .await
        .expect("g")
        .expect_status(200)
        .expect("200")[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    admin
        .post("/v1/fax-servers", json!({"name": "fs", "groupings": [g]}))
        .await
        .expect("fs")
        .expect_status(201)
        .expect("201");

    let first = admin
        .get("/v1/settings")
        .await
        .expect("get")
        .expect_status(200)
        .expect("200");
    assert_eq!(first["version"], 0, "{first}");
    assert_eq!(
        first["settings"]["retry"]["max_tries"], 3,
        "the configuration file's value: {first}"
    );

    // Only an administrator everywhere changes them (claim 11).
    let grants =
        json!([{"role": "grouping administrator", "scope": {"kind": "grouping", "id": g}}]);
    let ga = admin
        .post(
            "/v1/clients",
            json!({"name": "ga", "kind": "application", "groupings": [g], "grants": grants}),
        )
        .await
        .expect("c")
        .expect_status(201)
        .expect("201");
    let ga = admin.with_token(ga["token"].as_str().expect("token"));
    assert_eq!(ga.get("/v1/settings").await.expect("get").status, 403);
    assert_eq!(
        ga.patch("/v1/settings", json!({"retry": {"max_tries": 9}}))
            .await
            .expect("patch")
            .status,
        403
    );

    // Bad values name their field and change nothing.
    for (patch, field) in [
        (json!({"retry": {"max_tries": 0}}), "retry.max_tries"),
        (
            json!({"uploads": {"max_upload_bytes": 1u64 << 40}}),
            "uploads.max_upload_bytes",
        ),
        (
            json!({"retention": {"audit_days": 99999}}),
            "retention.audit_days",
        ),
    ] {
        let r = admin.patch("/v1/settings", patch).await.expect("patch");
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (422, Some(field)),
            "{}",
            r.body
        );
    }
    let r = admin
        .patch("/v1/settings", json!({"colour": "blue"}))
        .await
        .expect("patch");
    assert_eq!(r.status, 422, "{}", r.body);

    // In force at once: default retry policy, page and upload limits, webhook policy.
    let v = admin
        .patch("/v1/settings", json!({"retry": {"max_tries": 2}, "uploads": {"max_pages_per_job": 1, "max_upload_bytes": 2048}}))
        .await
        .expect("patch")
        .expect_status(200)
        .expect("200");
    assert_eq!(v["version"], 1, "{v}");
    let doc = admin
        .upload(tiny_tiff())
        .await
        .expect("upload")
        .expect_status(201)
        .expect("201");
    let sha = doc["sha256"].as_str().expect("sha").to_owned();
    let job = admin
        .post(
            "/v1/jobs",
            json!({"documents": [sha], "recipients": ["+15550100001"]}),
        )
        .await
        .expect("job")
        .expect_status(201)
        .expect("201");
    assert_eq!(job["jobs"][0]["max_tries"], 2);
    let r = admin
        .post(
            "/v1/jobs",
            json!({"documents": [sha, sha], "recipients": ["+15550100001"]}),
        )
        .await
        .expect("job");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("documents")),
        "{}",
        r.body
    );
    let r = admin.upload(vec![0u8; 8192]).await.expect("upload");
    assert_eq!(r.status, 413, "{}", r.body);
    admin
        .patch(
            "/v1/settings",
            json!({"webhooks": {"require_https": true, "max_per_client": 1, "allowed_networks": ["127.0.0.0/8"]}}),
        )
        .await
        .expect("p")
        .expect_status(200)
        .expect("200");
    let r = admin
        .post(
            "/v1/webhooks",
            json!({"url": "http://hooks.example.com/fax"}),
        )
        .await
        .expect("wh");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("url")),
        "{}",
        r.body
    );
    admin
        .post("/v1/webhooks", json!({"url": "http://127.0.0.1:9/fax"}))
        .await
        .expect("wh")
        .expect_status(201)
        .expect("loopback may stay plain");
    assert_eq!(
        admin
            .post(
                "/v1/webhooks",
                json!({"url": "https://hooks.example.com/fax"})
            )
            .await
            .expect("wh")
            .status,
        409
    );

    // Versioned: history, rollback, audit.
    let history = admin
        .get("/v1/settings/history")
        .await
        .expect("h")
        .expect_status(200)
        .expect("200");
    assert_eq!(history.as_array().expect("list").len(), 2);
    let back = admin
        .post("/v1/settings/rollback", json!({"version": 1}))
        .await
        .expect("rb")
        .expect_status(200)
        .expect("200");
    assert_eq!(
        (
            back["version"].as_i64(),
            back["settings"]["webhooks"]["require_https"].as_bool()
        ),
        (Some(3), Some(false))
    );
    let log = admin
        .get("/v1/audit?target=supervisor")
        .await
        .expect("a")
        .expect_status(200)
        .expect("200");
    let actions: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "supervisor_settings.rolled_back",
            "supervisor_settings.changed",
            "supervisor_settings.changed"
        ]
    );

    // They survive a restart.
    let mut sup = sup;
    sup.kill();
    sup.restart().expect("restart");
    let again = sup
        .admin()
        .get("/v1/settings")
        .await
        .expect("get")
        .expect_status(200)
        .expect("200");
    assert_eq!(
        (
            again["version"].as_i64(),
            again["settings"]["retry"]["max_tries"].as_i64()
        ),
        (Some(3), Some(2))
    );
}
