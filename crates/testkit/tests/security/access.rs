//! Issue 14, sections 1 and 2: privilege escalation between clients and groupings, and the credential
//! lifecycle (tokens, sign-in, disabling and deleting clients, revoking and deleting fax servers).

use futures::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::harness::{Api, FAST_CONFIG, NodeProc, Reply, SupervisorProc, faxhub_cli, tiny_tiff};

fn testnode() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("faxhub-security")
        .tempdir()
        .expect("temp dir")
}

fn start() -> (tempfile::TempDir, SupervisorProc) {
    let dir = tempdir();
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    (dir, sup)
}

fn want(r: anyhow::Result<Reply>, status: u16, what: &str) -> Value {
    let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.status, status, "{what}: {}", r.body);
    r.body
}

fn id(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
        .to_owned()
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A person with a password; its id.
async fn person(admin: &Api, name: &str, password: &str, groupings: &[&str]) -> String {
    let body =
        json!({"name": name, "kind": "person", "password": password, "groupings": groupings});
    id(
        &want(admin.post("/v1/clients", body).await, 201, "person"),
        "/client/id",
    )
}

fn grouping_admin_of(g: &str) -> Value {
    json!([{"role": "grouping administrator", "scope": {"kind": "grouping", "id": g}}])
}

async fn sign_in(sup: &SupervisorProc, name: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/sessions", sup.url))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .expect("sign-in request")
}

async fn admin_name(admin: &Api) -> String {
    id(&want(admin.get("/v1/me").await, 200, "me"), "/name")
}

async fn open_events(api: &Api) -> reqwest::Response {
    let r = api
        .http
        .get(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("event stream");
    assert_eq!(r.status(), 200);
    r
}

/// Reads an event stream until it ends; how long that took, or None if it was still open after `within`.
async fn ended_within<T>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<T>> + Unpin),
    within: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return Some(t0.elapsed()),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Every way of acting on a client (a person in `grouping`): each must be refused with 403.
async fn refused_to_act_on(api: &Api, client: &str, grouping: &str) {
    let path = format!("/v1/clients/{client}");
    let grant = json!({"role": "user", "scope": {"kind": "grouping", "id": grouping}});
    let membership = format!("/v1/groupings/{grouping}/members/client/{client}");
    let password = json!({"password": "a new password here"});
    for (what, r) in [
        (
            "token",
            api.post(&format!("{path}/tokens"), json!({"label": "t"}))
                .await,
        ),
        (
            "password",
            api.put(&format!("{path}/password"), password).await,
        ),
        ("grant", api.post(&format!("{path}/grants"), grant).await),
        ("membership", api.delete(&membership).await),
        ("disable", api.patch(&path, json!({"disabled": true})).await),
        ("delete", api.delete(&path).await),
    ] {
        want(r, 403, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouping_administrator_cannot_act_as_the_bootstrap_administrator() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let root = id(&want(admin.get("/v1/me").await, 200, "me"), "/id");
    let (ga, _) = admin
        .new_application("ga", &[&default], Some(grouping_admin_of(&default)))
        .await
        .expect("client");

    // The finding: a token minted for the bootstrap administrator held scope `all`.
    let r = want(
        ga.post(
            &format!("/v1/clients/{root}/tokens"),
            json!({"label": "mine"}),
        )
        .await,
        403,
        "token for the administrator",
    );
    assert!(message(&r).contains("in scope all"), "{r}");
    refused_to_act_on(&ga, &root, &default).await;
    let path = format!("/v1/clients/{root}");
    // Reading is not acting: the tokens are listed (never their secrets), not revoked.
    let tokens = want(ga.get(&format!("{path}/tokens")).await, 200, "tokens");
    let bootstrap = id(&tokens, "/0/id");
    assert!(tokens[0].get("token").is_none(), "{tokens}");
    want(
        ga.delete(&format!("{path}/tokens/{bootstrap}")).await,
        403,
        "revoke",
    );
    let labels: Vec<String> = want(admin.get(&format!("{path}/tokens")).await, 200, "tokens")
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| id(t, "/label"))
        .collect();
    assert_eq!(labels, ["bootstrap"]);

    // A client the grouping administrator does administer stays open to it.
    let (_, member) = admin
        .new_application("member", &[&default], None)
        .await
        .expect("client");
    want(
        ga.post(
            &format!("/v1/clients/{member}/tokens"),
            json!({"label": "ok"}),
        )
        .await,
        201,
        "token for a member",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouping_administrator_cannot_act_as_a_client_also_in_another_grouping() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let a = admin.new_grouping("a").await.expect("grouping");
    let b = admin.new_grouping("b").await.expect("grouping");
    let (ga, _) = admin
        .new_application("ga-a", &[&a], Some(grouping_admin_of(&a)))
        .await
        .expect("client");
    let both = person(&admin, "in-a-and-b", "a long password 1", &[&a, &b]).await;
    let path = format!("/v1/clients/{both}");

    // The finding: such a token read B's received faxes.
    let r = want(
        ga.post(&format!("{path}/tokens"), json!({"label": "t"}))
            .await,
        403,
        "token",
    );
    assert!(
        message(&r).contains(&b),
        "the refusal names the grouping: {r}"
    );
    refused_to_act_on(&ga, &both, &a).await;
    // It may still see the client (it is in A), and an administrator of both may act on it.
    want(ga.get(&path).await, 200, "visible");
    want(
        admin
            .post(&format!("{path}/tokens"), json!({"label": "t"}))
            .await,
        201,
        "administrator everywhere",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_administrator_everywhere_keeps_the_role() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let me = want(admin.get("/v1/me").await, 200, "me");
    let root = id(&me, "/id");
    let grant = me["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["role"] == "administrator" && g["scope"]["kind"] == "all")
        .map(|g| id(g, "/id"))
        .expect("the bootstrap grant");
    let r = want(
        admin
            .delete(&format!("/v1/clients/{root}/grants/{grant}"))
            .await,
        409,
        "last grant",
    );
    assert!(
        message(&r).contains("administrator role in scope all"),
        "{r}"
    );
    assert_eq!(r["error"]["code"], "conflict");
    want(
        admin
            .patch(&format!("/v1/clients/{root}"), json!({"disabled": true}))
            .await,
        409,
        "disable",
    );
    want(
        admin.delete(&format!("/v1/clients/{root}")).await,
        409,
        "delete",
    );
    want(admin.get("/v1/me").await, 200, "still the administrator");

    // With a second administrator everywhere, the first may go; then the second is the last.
    let everywhere = json!([{"role": "administrator", "scope": {"kind": "all"}}]);
    let (second, second_id) = admin
        .new_application("second", &[], Some(everywhere))
        .await
        .expect("client");
    want(
        admin
            .delete(&format!("/v1/clients/{root}/grants/{grant}"))
            .await,
        204,
        "no longer the last",
    );
    let second_grant = id(&want(second.get("/v1/me").await, 200, "me"), "/grants/0/id");
    want(
        second
            .delete(&format!("/v1/clients/{second_id}/grants/{second_grant}"))
            .await,
        409,
        "the second is the last now",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_a_grouping_administrator_only_entries_about_its_scope() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    // The bootstrap administrator is a member of the default grouping: its actions elsewhere leaked.
    let (ga, _) = admin
        .new_application("ga", &[&default], Some(grouping_admin_of(&default)))
        .await
        .expect("client");
    let b = admin.new_grouping("b").await.expect("grouping");
    let fs = want(
        admin
            .post("/v1/fax-servers", json!({"name": "fs-b", "groupings": [b]}))
            .await,
        201,
        "fax server",
    );
    let fs = id(&fs, "/fax_server/id");
    want(
        admin
            .patch(
                &format!("/v1/fax-servers/{fs}"),
                json!({"dial_prefixes": ["+44"]}),
            )
            .await,
        200,
        "change",
    );
    let (_, in_b) = admin
        .new_application("in-b", &[&b], None)
        .await
        .expect("client");
    let (_, in_default) = admin
        .new_application("in-default", &[&default], None)
        .await
        .expect("client");

    let log = want(ga.get("/v1/audit?limit=500").await, 200, "audit");
    let targets: Vec<String> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["target"].as_str().unwrap_or("(none)").to_owned())
        .collect();
    for hidden in [&b, &fs, &in_b] {
        assert!(!targets.contains(hidden), "{hidden} leaked: {targets:?}");
    }
    assert!(!targets.contains(&"(none)".to_owned()), "{targets:?}");
    assert!(targets.contains(&in_default), "{targets:?}");
    // Asking for the administrator's entries by name changes nothing.
    let root = id(&want(admin.get("/v1/me").await, 200, "me"), "/id");
    let log = want(
        ga.get(&format!("/v1/audit?actor={root}&limit=500")).await,
        200,
        "audit",
    );
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["target"] != fs.as_str() && e["target"] != b.as_str()),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_expire_and_stop_at_the_next_request_once_revoked() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let (client, client_id) = admin
        .new_application("app", &[&default], None)
        .await
        .expect("client");
    let tokens = format!("/v1/clients/{client_id}/tokens");

    let short = want(
        client
            .post(&tokens, json!({"label": "short", "expires_in_secs": 2}))
            .await,
        201,
        "short-lived token",
    );
    assert!(short["expires_at"].is_string(), "{short}");
    let short_api = client.with_token(&id(&short, "/token"));
    want(short_api.get("/v1/me").await, 200, "before expiry");
    let listed = want(client.get(&tokens).await, 200, "list");
    let labels: Vec<String> = listed
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| id(t, "/label"))
        .collect();
    assert_eq!(labels, ["short", "created"], "newest first: {listed}");
    assert_eq!(listed[1]["current"], true, "{listed}");
    assert!(listed.to_string().find("fxh_").is_none(), "no secrets");
    // The last use is recorded (off the request's path, so give it a moment).
    let mut used = Value::Null;
    for _ in 0..50 {
        used = want(client.get(&tokens).await, 200, "list")[0]["last_used_at"].clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used.is_string(), "last use of the short token: {used}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    want(short_api.get("/v1/me").await, 401, "after expiry");
    assert_eq!(
        want(client.get(&tokens).await, 200, "list")
            .as_array()
            .map(Vec::len),
        Some(1),
        "an expired token is no longer listed"
    );

    let other = want(
        client.post(&tokens, json!({"label": "other"})).await,
        201,
        "token",
    );
    let other_api = client.with_token(&id(&other, "/token"));
    want(
        client
            .delete(&format!("{tokens}/{}", id(&other, "/token_id")))
            .await,
        204,
        "revoke",
    );
    want(other_api.get("/v1/me").await, 401, "revoked");
    want(
        client
            .delete(&format!("{tokens}/{}", id(&other, "/token_id")))
            .await,
        404,
        "revoked twice",
    );
    // Bad input names its field.
    for (body, field) in [
        (json!({"label": ""}), "label"),
        (json!({"label": "x\ny"}), "label"),
        (
            json!({"label": "ok", "expires_in_secs": 0}),
            "expires_in_secs",
        ),
    ] {
        let r = want(client.post(&tokens, body).await, 422, field);
        assert_eq!(r["error"]["field"], field, "{r}");
    }
    // Signing out revokes the token of the request.
    want(client.delete("/v1/sessions").await, 204, "sign out");
    want(client.get("/v1/me").await, 401, "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_or_disabling_its_client_ends_its_event_streams() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let (client, client_id) = admin
        .new_application("watcher", &[&default], None)
        .await
        .expect("client");
    let tokens = format!("/v1/clients/{client_id}/tokens");
    let second = want(
        client.post(&tokens, json!({"label": "second"})).await,
        201,
        "token",
    );
    let second_api = client.with_token(&id(&second, "/token"));
    let first_id = want(client.get(&tokens).await, 200, "list")
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["current"] == true)
        .map(|t| id(t, "/id"))
        .expect("the token in use");
    let mut first_stream = open_events(&client).await.bytes_stream();
    let mut second_stream = open_events(&second_api).await.bytes_stream();

    want(
        admin.delete(&format!("{tokens}/{first_id}")).await,
        204,
        "revoke",
    );
    let took = ended_within(&mut first_stream, Duration::from_secs(10)).await;
    assert!(took.is_some(), "the revoked token's stream is still open");
    eprintln!("stream ended {took:?} after the revocation");
    assert_eq!(
        ended_within(&mut second_stream, Duration::from_millis(500)).await,
        None,
        "another token's stream goes on"
    );
    want(
        admin
            .patch(
                &format!("/v1/clients/{client_id}"),
                json!({"disabled": true}),
            )
            .await,
        200,
        "disable",
    );
    assert!(
        ended_within(&mut second_stream, Duration::from_secs(10))
            .await
            .is_some(),
        "a disabled client's streams end"
    );
    want(second_api.get("/v1/me").await, 401, "disabled");
    let c = want(
        admin
            .patch(
                &format!("/v1/clients/{client_id}"),
                json!({"disabled": false}),
            )
            .await,
        200,
        "enable",
    );
    assert_eq!(c["disabled"], false);
    want(second_api.get("/v1/me").await, 200, "enabled again");
    // A stream opened with a revoked token never starts.
    let r = client
        .http
        .get(format!("{}/v1/events", client.base))
        .bearer_auth(&client.token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    // A 401 names the scheme that would be accepted (RFC 9110).
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"faxhub\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_tokens_expire_after_the_session_setting() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let name = admin_name(&admin).await;
    want(
        admin
            .patch(
                "/v1/settings",
                json!({"sessions": {"login_token_ttl_secs": 120}}),
            )
            .await,
        200,
        "settings",
    );
    let r = sign_in(&sup, &name, &sup.password).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.expect("json");
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().expect("expiry"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let left = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((100..=120).contains(&left), "{left} s left of 120");
    let session = admin.with_token(&id(&body, "/token"));
    let me = id(&want(session.get("/v1/me").await, 200, "me"), "/id");
    let listed = want(
        session.get(&format!("/v1/clients/{me}/tokens")).await,
        200,
        "tokens",
    );
    let current = listed
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["current"] == true)
        .expect("listed");
    assert_eq!(current["label"], "session");
    assert_eq!(current["expires_at"], body["expires_at"]);
    let r = want(
        admin
            .patch(
                "/v1/settings",
                json!({"sessions": {"login_token_ttl_secs": 5}}),
            )
            .await,
        422,
        "too short",
    );
    assert_eq!(r["error"]["field"], "sessions.login_token_ttl_secs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_deleted_clients_are_refused_and_a_deleted_name_is_free() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let pat = person(&admin, "pat", "pat's long password", &[&default]).await;
    let path = format!("/v1/clients/{pat}");
    let r = sign_in(&sup, "pat", "pat's long password").await;
    assert_eq!(r.status(), 201);
    let token = id(&r.json::<Value>().await.expect("json"), "/token");
    let session = admin.with_token(&token);
    want(session.get("/v1/me").await, 200, "signed in");

    let c = want(
        admin.patch(&path, json!({"disabled": true})).await,
        200,
        "disable",
    );
    assert_eq!(c["disabled"], true);
    want(session.get("/v1/me").await, 401, "disabled");
    assert_eq!(
        sign_in(&sup, "pat", "pat's long password").await.status(),
        401
    );
    want(
        admin.patch(&path, json!({"disabled": false})).await,
        200,
        "enable",
    );
    want(session.get("/v1/me").await, 200, "enabled");

    want(admin.delete(&path).await, 204, "delete");
    want(session.get("/v1/me").await, 401, "deleted");
    assert_eq!(
        sign_in(&sup, "pat", "pat's long password").await.status(),
        401
    );
    want(admin.get(&path).await, 404, "gone");
    want(admin.delete(&path).await, 404, "deleted twice");
    let names = want(admin.get("/v1/clients").await, 200, "list").to_string();
    assert!(!names.contains("\"pat"), "{names}");
    let again = person(&admin, "pat", "a new long password", &[&default]).await;
    assert_ne!(again, pat);
    // Passwords: bounded, and one's own needs the current one.
    let pat_again = admin.with_token(&id(
        &sign_in(&sup, "pat", "a new long password")
            .await
            .json::<Value>()
            .await
            .expect("json"),
        "/token",
    ));
    let own = format!("/v1/clients/{again}/password");
    let r = want(
        pat_again
            .put(&own, json!({"password": "yet another password"}))
            .await,
        422,
        "no current password",
    );
    assert_eq!(r["error"]["field"], "current_password");
    want(
        pat_again
            .put(
                &own,
                json!({"password": "yet another password", "current_password": "wrong one!"}),
            )
            .await,
        403,
        "wrong current password",
    );
    let r = want(
        admin.put(&own, json!({"password": "x".repeat(257)})).await,
        422,
        "too long",
    );
    assert_eq!(r["error"]["field"], "password");
    want(
        pat_again
            .put(
                &own,
                json!({"password": "yet another password", "current_password": "a new long password"}),
            )
            .await,
        204,
        "own password",
    );
    assert_eq!(
        sign_in(&sup, "pat", "yet another password").await.status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_the_sessions_signed_in_with_the_old_one() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let pat = person(&admin, "pat", "the first password", &[&default]).await;
    let session = |password: &'static str| {
        let (sup, admin) = (&sup, &admin);
        async move {
            let r = sign_in(sup, "pat", password).await;
            assert_eq!(r.status(), 201);
            admin.with_token(&id(&r.json::<Value>().await.expect("json"), "/token"))
        }
    };
    let (first, second) = (
        session("the first password").await,
        session("the first password").await,
    );
    let minted = admin.with_token(&id(
        &want(
            admin
                .post(
                    &format!("/v1/clients/{pat}/tokens"),
                    json!({"label": "app"}),
                )
                .await,
            201,
            "token",
        ),
        "/token",
    ));
    let listed = want(
        first.get(&format!("/v1/clients/{pat}/tokens")).await,
        200,
        "list",
    );
    let sessions = listed
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["session"] == true)
        .count();
    assert_eq!(sessions, 2, "{listed}");
    // Changing one's own password keeps the session that did it and ends the others.
    want(
        first
            .put(
                &format!("/v1/clients/{pat}/password"),
                json!({"password": "the second password", "current_password": "the first password"}),
            )
            .await,
        204,
        "own password",
    );
    want(
        first.get("/v1/me").await,
        200,
        "the session that changed it",
    );
    want(second.get("/v1/me").await, 401, "another session");
    // A reset by an administrator ends them all; tokens not from a sign-in stay.
    want(
        admin
            .put(
                &format!("/v1/clients/{pat}/password"),
                json!({"password": "the third password"}),
            )
            .await,
        204,
        "reset",
    );
    want(first.get("/v1/me").await, 401, "after the reset");
    want(minted.get("/v1/me").await, 200, "an issued token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_clients_queued_jobs_wait_until_it_is_enabled() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let (_node, _fs) = fax_server(&sup, "fs", &[], &[&default], json!({})).await;
    let (client, client_id) = admin
        .new_application("sender", &[&default], None)
        .await
        .expect("client");
    let doc = upload(&client).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let at = soon
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let job = want(
        client
            .post(
                "/v1/jobs",
                json!({"recipients": ["+15550003333"], "documents": [doc], "send_at": at}),
            )
            .await,
        201,
        "job",
    );
    let job = id(&job, "/jobs/0/id");
    let path = format!("/v1/clients/{client_id}");
    want(
        admin.patch(&path, json!({"disabled": true})).await,
        200,
        "disable",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let enabled_at = time::OffsetDateTime::now_utc();
    want(
        admin.patch(&path, json!({"disabled": false})).await,
        200,
        "enable",
    );
    let done = client
        .wait_job(&job, Duration::from_secs(20), |s| s == "sent")
        .await
        .expect("sent once enabled");
    let started = time::OffsetDateTime::parse(
        done["attempts"][0]["started_at"].as_str().expect("attempt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(
        started >= enabled_at,
        "dispatched at {started} while disabled (enabled at {enabled_at})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_to_the_client_api_is_refused_naming_the_field() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let root = id(&want(admin.get("/v1/me").await, 200, "me"), "/id");
    for (path, body, field) in [
        (
            "/v1/roles".to_owned(),
            json!({"name": "sender\nadministrator", "competences": ["send_faxes"]}),
            "name",
        ),
        (
            "/v1/clients".to_owned(),
            json!({"name": "many", "kind": "application", "groupings": vec![default.clone(); 101]}),
            "groupings",
        ),
        (
            "/v1/clients".to_owned(),
            json!({"name": "long-pw", "kind": "person", "password": "p".repeat(100_000)}),
            "password",
        ),
        (
            format!("/v1/clients/{root}/tokens"),
            json!({"label": "l".repeat(65)}),
            "label",
        ),
        (
            format!("/v1/clients/{root}/tokens"),
            json!({"label": "ok", "expires_in_secs": u64::MAX}),
            "expires_in_secs",
        ),
    ] {
        let r = want(admin.post(&path, body).await, 422, field);
        assert_eq!(r["error"]["field"], field, "{r}");
    }
    let names = want(admin.get("/v1/clients").await, 200, "clients").to_string();
    assert!(
        !names.contains("many") && !names.contains("long-pw"),
        "{names}"
    );
}

/// A fax server over a scripted line; waits until it is online.
async fn fax_server(
    sup: &SupervisorProc,
    name: &str,
    prefixes: &[&str],
    groupings: &[&str],
    script: Value,
) -> (NodeProc, String) {
    let (node, id) = NodeProc::start(&testnode(), sup, name, prefixes, groupings, 2, script)
        .await
        .expect("fax server");
    let admin = sup.admin();
    for _ in 0..200 {
        let fs = want(
            admin.get(&format!("/v1/fax-servers/{id}")).await,
            200,
            "fax server",
        );
        if fs["online"] == true {
            return (node, id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fax server {name} did not come online");
}

async fn upload(api: &Api) -> String {
    id(
        &want(api.upload(tiny_tiff()).await, 201, "upload"),
        "/sha256",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_fax_server_closes_its_link_refuses_its_credential_and_moves_its_jobs() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    // The more specific route makes the first fax server take the job; its call never ends.
    let (node, first) = fax_server(
        &sup,
        "first",
        &["+1555"],
        &[&default],
        json!({"default": "hang"}),
    )
    .await;
    let (_other, second) = fax_server(&sup, "second", &[], &[&default], json!({})).await;
    let doc = upload(&admin).await;
    let job = want(
        admin
            .post(
                "/v1/jobs",
                json!({"recipients": ["+15550001111"], "documents": [doc]}),
            )
            .await,
        201,
        "job",
    );
    let job = id(&job, "/jobs/0/id");
    admin
        .wait_job(&job, Duration::from_secs(20), |s| s == "active")
        .await
        .expect("the first fax server took the job");

    let t0 = Instant::now();
    let fs = want(
        admin
            .post(&format!("/v1/fax-servers/{first}/revoke"), json!({}))
            .await,
        200,
        "revoke",
    );
    assert_eq!(fs["online"], false, "the link is closed at once: {fs}");
    assert!(fs["revoked_at"].is_string(), "{fs}");
    let done = admin
        .wait_job(&job, Duration::from_secs(20), |s| s == "sent")
        .await
        .expect("the job moved to the other fax server");
    eprintln!("job sent elsewhere {:?} after the revocation", t0.elapsed());
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts[0]["fax_server_id"], first.as_str(), "{done}");
    assert_eq!(attempts[0]["status"], "abandoned", "{done}");
    assert!(
        attempts[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{done}"
    );
    let last = attempts.last().expect("attempt");
    assert_eq!(
        (last["fax_server_id"].as_str(), last["status"].as_str()),
        (Some(second.as_str()), Some("succeeded"))
    );

    // Its credential opens nothing: not the document endpoint, not the link (it keeps trying).
    let credential = std::fs::read_to_string(node.state_dir.join("state").join("credential"))
        .expect("the fax server's credential");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/node/documents/{doc}", sup.url))
        .bearer_auth(credential.trim())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fs = want(
        admin.get(&format!("/v1/fax-servers/{first}")).await,
        200,
        "fax server",
    );
    assert_eq!(fs["online"], false, "it did not link again: {fs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_fax_server_takes_it_out_of_groupings_and_rules_and_needs_all_its_groupings() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let a = admin.new_grouping("a").await.expect("grouping");
    let b = admin.new_grouping("b").await.expect("grouping");
    let (ga, _) = admin
        .new_application("ga-a", &[&a], Some(grouping_admin_of(&a)))
        .await
        .expect("client");
    let made = |name: &'static str, groupings: Vec<String>| {
        let admin = admin.clone();
        async move {
            let fs = want(
                admin
                    .post(
                        "/v1/fax-servers",
                        json!({"name": name, "groupings": groupings}),
                    )
                    .await,
                201,
                "fax server",
            );
            id(&fs, "/fax_server/id")
        }
    };
    let shared = made("shared", vec![a.clone(), b.clone()]).await;
    let own = made("own", vec![a.clone()]).await;
    // Withdrawing a fax server B also uses needs authority over B.
    let r = want(
        ga.post(&format!("/v1/fax-servers/{shared}/revoke"), json!({}))
            .await,
        403,
        "revoke shared",
    );
    assert!(message(&r).contains(&b), "{r}");
    want(
        ga.delete(&format!("/v1/fax-servers/{shared}")).await,
        403,
        "delete shared",
    );
    let rule = want(
        ga.post(
            "/v1/inbound-rules",
            json!({"fax_server_id": own, "targets": [{"kind": "grouping", "id": a}]}),
        )
        .await,
        201,
        "rule",
    );
    want(
        ga.delete(&format!("/v1/fax-servers/{own}")).await,
        204,
        "delete own",
    );
    want(
        admin.get(&format!("/v1/fax-servers/{own}")).await,
        404,
        "gone",
    );
    let members = want(
        admin.get(&format!("/v1/groupings/{a}")).await,
        200,
        "grouping",
    );
    assert!(!members.to_string().contains(&own), "{members}");
    let rules = want(admin.get("/v1/inbound-rules").await, 200, "rules");
    assert!(!rules.to_string().contains(&id(&rule, "/id")), "{rules}");
    made("own", vec![a.clone()]).await;
}

/// A fax server serving groupings A and B: A's administrator may read its settings, but changing what it
/// does for everyone (its settings, routing and inbound rules, the groupings it serves) needs authority
/// over B too, or A could take B's received faxes or send B's faxes through a proxy of its choosing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fax_server_shared_with_another_grouping_is_changed_only_with_authority_over_both() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let a = admin.new_grouping("a").await.expect("grouping");
    let b = admin.new_grouping("b").await.expect("grouping");
    let c = admin.new_grouping("c").await.expect("grouping");
    let (ga, _) = admin
        .new_application("ga-a", &[&a], Some(grouping_admin_of(&a)))
        .await
        .expect("client");
    let fs = want(
        admin
            .post(
                "/v1/fax-servers",
                json!({"name": "shared", "groupings": [a, b]}),
            )
            .await,
        201,
        "fax server",
    );
    let shared = id(&fs, "/fax_server/id");
    // B's administrator routes B's number to B.
    let b_rule = want(
        admin
            .post(
                "/v1/inbound-rules",
                json!({"fax_server_id": shared, "called_number": "+15550002",
                       "targets": [{"kind": "grouping", "id": b}]}),
            )
            .await,
        201,
        "B's rule",
    );
    let b_rule = id(&b_rule, "/id");

    want(
        ga.get(&format!("/v1/fax-servers/{shared}/settings")).await,
        200,
        "reading the settings",
    );
    let r = want(
        ga.delete(&format!("/v1/inbound-rules/{b_rule}")).await,
        403,
        "deleting B's rule",
    );
    assert!(message(&r).contains(&b), "{r}");
    want(
        ga.post(
            "/v1/inbound-rules",
            json!({"fax_server_id": shared, "priority": -1, "called_number": "+15550002",
                   "targets": [{"kind": "grouping", "id": a}]}),
        )
        .await,
        403,
        "a rule taking B's number",
    );
    want(
        ga.patch(
            &format!("/v1/fax-servers/{shared}/settings"),
            json!({"sip": {"proxy": "192.0.2.7:5060"}}),
        )
        .await,
        403,
        "pointing its SIP proxy elsewhere",
    );
    want(
        ga.put(
            &format!("/v1/fax-servers/{shared}/settings"),
            json!({"channels": 1}),
        )
        .await,
        403,
        "replacing its settings",
    );
    want(
        ga.patch(
            &format!("/v1/fax-servers/{shared}"),
            json!({"dial_prefixes": ["+999"]}),
        )
        .await,
        403,
        "changing its routing",
    );
    // Even into a grouping A's administrator also runs.
    want(
        admin
            .post(
                &format!(
                    "/v1/clients/{}/grants",
                    id(&want(ga.get("/v1/me").await, 200, "me"), "/id")
                ),
                json!({"role": "grouping administrator", "scope": {"kind": "grouping", "id": c}}),
            )
            .await,
        201,
        "ga also runs c",
    );
    want(
        ga.put(
            &format!("/v1/groupings/{c}/members"),
            json!({"kind": "fax_server", "id": shared}),
        )
        .await,
        403,
        "adding it to another grouping",
    );
    let rules = want(admin.get("/v1/inbound-rules").await, 200, "rules");
    assert!(
        rules.to_string().contains(&b_rule),
        "B's rule stays: {rules}"
    );

    // A fax server of A alone stays A's to change.
    let own = want(
        admin
            .post("/v1/fax-servers", json!({"name": "own", "groupings": [a]}))
            .await,
        201,
        "fax server",
    );
    let own = id(&own, "/fax_server/id");
    want(
        ga.patch(
            &format!("/v1/fax-servers/{own}/settings"),
            json!({"channels": 1}),
        )
        .await,
        200,
        "its own fax server's settings",
    );
    want(
        ga.post(
            "/v1/inbound-rules",
            json!({"fax_server_id": own, "targets": [{"kind": "grouping", "id": a}]}),
        )
        .await,
        201,
        "its own fax server's rule",
    );
}

/// A token a client makes for itself with a sign-in token lives no longer than the sign-in, and ends
/// with it when the password changes: a stolen sign-in token cannot be turned into lasting access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_with_a_sign_in_token_does_not_outlive_it() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    let default = admin.default_grouping().await.expect("default grouping");
    let pat = person(&admin, "pat", "pat's long password", &[&default]).await;
    let r = sign_in(&sup, "pat", "pat's long password").await;
    assert_eq!(r.status(), 201);
    let session: Value = r.json().await.expect("session");
    let session_api = admin.with_token(&id(&session, "/token"));
    let session_ends = time::OffsetDateTime::parse(
        &id(&session, "/expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expires_at");

    let minted = want(
        session_api
            .post(
                &format!("/v1/clients/{pat}/tokens"),
                json!({"label": "mine"}),
            )
            .await,
        201,
        "a token for oneself",
    );
    let ends = time::OffsetDateTime::parse(
        minted["expires_at"].as_str().expect("it expires"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expires_at");
    assert!(
        ends <= session_ends,
        "{minted} outlives the session ({session_ends})"
    );
    let r = want(
        session_api
            .post(
                &format!("/v1/clients/{pat}/tokens"),
                json!({"label": "longer", "expires_in_secs": 315_000_000u64}),
            )
            .await,
        422,
        "a token for oneself longer than the session",
    );
    assert_eq!(r["error"]["field"], "expires_in_secs", "{r}");

    let minted_api = admin.with_token(&id(&minted, "/token"));
    want(
        minted_api.get("/v1/me").await,
        200,
        "the minted token works",
    );
    want(
        admin
            .put(
                &format!("/v1/clients/{pat}/password"),
                json!({"password": "a brand new password"}),
            )
            .await,
        204,
        "a new password",
    );
    want(
        minted_api.get("/v1/me").await,
        401,
        "the minted token after a new password",
    );
    want(
        session_api.get("/v1/me").await,
        401,
        "the session after a new password",
    );
    // An administrator's token for pat is not a sign-in: it stays as issued.
    let issued = want(
        admin
            .post(
                &format!("/v1/clients/{pat}/tokens"),
                json!({"label": "by admin"}),
            )
            .await,
        201,
        "a token by the administrator",
    );
    assert!(issued["expires_at"].is_null(), "{issued}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_in_is_throttled_per_name_and_per_address() {
    let (_dir, sup) = start();
    let name = admin_name(&sup.admin()).await;
    let retry_after = |r: &reqwest::Response| {
        r.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    for i in 0..6 {
        let r = sign_in(&sup, &name, "wrong password").await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
    // The sixth failure locked the name for a second; even the right password waits.
    let r = sign_in(&sup, &name, &sup.password).await;
    assert_eq!(r.status(), 429);
    assert_eq!(retry_after(&r), Some(1));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sign_in(&sup, &name, "wrong again").await.status(), 401);
    let r = sign_in(&sup, &name, &sup.password).await;
    assert_eq!(r.status(), 429);
    assert_eq!(retry_after(&r), Some(2), "each lock doubles");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(sign_in(&sup, &name, &sup.password).await.status(), 201);

    // Per address: one name after another, until the address is locked; then nobody signs in from it.
    let mut locked_at = None;
    for i in 0..30 {
        if sign_in(&sup, &format!("nobody{i}"), "guess").await.status() == 429 {
            locked_at = Some(i);
            break;
        }
    }
    let i = locked_at.expect("the address was locked");
    assert!((10..=20).contains(&i), "locked after {i} more names");
    assert_eq!(sign_in(&sup, &name, &sup.password).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_take_as_long_as_wrong_passwords() {
    let (_dir, sup) = start();
    let name = admin_name(&sup.admin()).await;
    let timed = |name: String| {
        let sup_url = sup.url.clone();
        async move {
            let http = reqwest::Client::new();
            let t0 = Instant::now();
            let r = http
                .post(format!("{sup_url}/v1/sessions"))
                .json(&json!({"name": name, "password": "not the password"}))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 401);
            t0.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..5 {
        known.push(timed(name.clone()).await);
        unknown.push(timed(format!("nobody-{i}")).await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2], unknown[2]);
    eprintln!("median refusal: wrong password {k:?}, unknown name {u:?}");
    // Without the dummy check an unknown name answers in a millisecond and argon2 takes tens; the margin
    // is wide so that a busy machine does not matter.
    assert!(
        u * 3 >= k && k * 3 >= u,
        "wrong password {k:?}, unknown name {u:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_names_reach_the_audit_log_verbatim_a_bounded_number_of_times() {
    let (_dir, sup) = start();
    let admin = sup.admin();
    for _ in 0..6 {
        assert_eq!(sign_in(&sup, "mallory", "guess").await.status(), 401);
    }
    assert_eq!(
        sign_in(&sup, "Tr0ub4dor&3 horse", "guess").await.status(),
        401
    );
    let huge = "n".repeat(100_000);
    assert_eq!(sign_in(&sup, &huge, "guess").await.status(), 401);
    let log = want(
        admin
            .get("/v1/audit?action=session.refused&limit=100")
            .await,
        200,
        "audit",
    );
    let names: Vec<String> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| id(e, "/actor_name"))
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    // Newest first: the huge name, the password-like one, then mallory's six.
    assert!(
        names[0].len() < 64 && names[0].starts_with("(name withheld"),
        "{}",
        &names[0][..80.min(names[0].len())]
    );
    assert!(!names[1].contains("Tr0ub4dor"), "{names:?}");
    let mallory = &names[2..];
    assert_eq!(
        mallory.iter().filter(|n| *n == "mallory").count(),
        3,
        "{mallory:?}"
    );
    let withheld: Vec<&String> = mallory.iter().filter(|n| *n != "mallory").collect();
    assert!(
        withheld
            .iter()
            .all(|n| n.starts_with("(name withheld") && *n == withheld[0]),
        "{mallory:?}"
    );
    assert!(!log.to_string().contains(&huge[..100]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_fax_hidden_from_the_inbox_is_not_readable_by_id() {
    let (dir, sup) = start();
    let admin = sup.admin();
    let g = admin.new_grouping("g").await.expect("grouping");
    let everywhere = json!([{"role": "user", "scope": {"kind": "all"}}]);
    let (client, client_id) = admin
        .new_application("receiver", &[&g], Some(everywhere))
        .await
        .expect("client");
    let (node, fs) = fax_server(&sup, "fs", &[], &[&g], json!({})).await;
    want(
        admin
            .post(
                "/v1/inbound-rules",
                json!({"called_number": "+15550002000", "targets": [{"kind": "client", "id": client_id}]}),
            )
            .await,
        201,
        "rule",
    );
    let tiff = dir.path().join("in.tif");
    std::fs::write(&tiff, tiny_tiff()).expect("write");
    node.inject(&tiff, "+15557654321", "+15550002000", "+1 555 765 4321")
        .expect("inject");
    let mut inbound = None;
    for _ in 0..200 {
        let items = want(client.get("/v1/inbox").await, 200, "inbox");
        if let Some(f) = items["items"].as_array().and_then(|v| v.first()) {
            inbound = Some(id(f, "/id"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inbound = inbound.expect("the fax arrived");
    want(
        client.get(&format!("/v1/inbox/{inbound}")).await,
        200,
        "readable",
    );
    // The fax server leaves the grouping it shared with the client: the list hides the fax, and so must
    // every other way to it (the client's competence reaches every fax server, its groupings do not).
    want(
        admin
            .delete(&format!("/v1/groupings/{g}/members/fax_server/{fs}"))
            .await,
        204,
        "leave",
    );
    let items = want(client.get("/v1/inbox").await, 200, "inbox");
    assert_eq!(items["items"].as_array().map(Vec::len), Some(0), "{items}");
    want(
        client.get(&format!("/v1/inbox/{inbound}")).await,
        404,
        "by id",
    );
    want(
        client.get(&format!("/v1/inbox/{inbound}/document")).await,
        404,
        "document",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_openapi_document_cover_the_credential_lifecycle() {
    let (dir, sup) = start();
    let admin = sup.admin();
    let doc = want(admin.get("/v1/openapi.json").await, 200, "openapi");
    for (path, method) in [
        ("/v1/sessions", "delete"),
        ("/v1/clients/{id}", "patch"),
        ("/v1/clients/{id}", "delete"),
        ("/v1/clients/{id}/password", "put"),
        ("/v1/clients/{id}/tokens", "get"),
        ("/v1/clients/{id}/tokens", "post"),
        ("/v1/clients/{id}/tokens/{token_id}", "delete"),
        ("/v1/fax-servers/{id}", "delete"),
        ("/v1/fax-servers/{id}/revoke", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["SessionPolicy"].is_object());
    assert!(doc["paths"]["/v1/sessions"]["post"]["responses"]["429"].is_object());

    let default = admin.default_grouping().await.expect("default grouping");
    let root = id(&want(admin.get("/v1/me").await, 200, "me"), "/id");
    let cli_token = id(
        &want(
            admin
                .post(
                    &format!("/v1/clients/{root}/tokens"),
                    json!({"label": "for the cli"}),
                )
                .await,
            201,
            "token",
        ),
        "/token",
    );
    let config = dir.path().join("client.toml");
    let (ok, out) = faxhub_cli(
        &config,
        &[],
        &["login", "--url", &sup.url, "--token", &cli_token],
    );
    assert!(ok, "{out}");
    let (ok, out) = faxhub_cli(
        &config,
        &[],
        &[
            "clients",
            "token",
            "me",
            "--label",
            "ci",
            "--expires-in",
            "600",
        ],
    );
    assert!(
        ok && out.contains("shown once") && !out.contains("never"),
        "{out}"
    );
    let token_id = out
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .expect("token id printed")
        .to_owned();
    let (ok, out) = faxhub_cli(&config, &[], &["clients", "tokens", "me"]);
    assert!(
        ok && out.contains(&token_id) && out.contains("(this one)") && !out.contains("fxh_"),
        "{out}"
    );
    let (ok, out) = faxhub_cli(&config, &[], &["clients", "revoke-token", "me", &token_id]);
    assert!(ok, "{out}");
    let (ok, out) = faxhub_cli(&config, &[], &["clients", "tokens", "me"]);
    assert!(ok && !out.contains(&token_id), "{out}");

    let pat = person(&admin, "pat", "pat's long password", &[&default]).await;
    let (ok, out) = faxhub_cli(
        &config,
        &[("FAXHUB_NEW_PASSWORD", "pat's newer password")],
        &["clients", "password", &pat],
    );
    assert!(ok, "{out}");
    assert_eq!(
        sign_in(&sup, "pat", "pat's newer password").await.status(),
        201
    );
    for cmd in ["disable", "enable", "delete"] {
        let (ok, out) = faxhub_cli(&config, &[], &["clients", cmd, &pat]);
        assert!(ok, "{cmd}: {out}");
    }
    want(
        admin.get(&format!("/v1/clients/{pat}")).await,
        404,
        "deleted",
    );

    let fs = want(
        admin
            .post(
                "/v1/fax-servers",
                json!({"name": "fs", "groupings": [default]}),
            )
            .await,
        201,
        "fax server",
    );
    let fs = id(&fs, "/fax_server/id");
    let (ok, out) = faxhub_cli(&config, &[], &["fax-servers", "revoke", &fs]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (ok, out) = faxhub_cli(&config, &[], &["fax-servers", "list"]);
    assert!(ok && out.contains(&fs) && out.contains("revoked"), "{out}");
    let (ok, out) = faxhub_cli(&config, &[], &["fax-servers", "delete", &fs]);
    assert!(ok, "{out}");
    let (ok, out) = faxhub_cli(&config, &[], &["fax-servers", "list"]);
    assert!(ok && !out.contains(&fs), "{out}");

    let (ok, out) = faxhub_cli(&config, &[], &["logout"]);
    assert!(ok, "{out}");
    assert!(!config.exists());
    want(
        admin.with_token(&cli_token).get("/v1/me").await,
        401,
        "revoked by logout",
    );
    want(admin.get("/v1/me").await, 200, "the other tokens stay");
}
