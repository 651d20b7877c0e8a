//! Competences (claims 11–12) end to end: a matrix over every guarded endpoint × every role × in scope /
//! out of scope, asserting allowed or denied, and the rule that nobody grants what they do not hold.
//!
//! Each role is granted in grouping A; "in scope" objects live in grouping A, "out of scope" ones in
//! grouping B. The administrator granted everywhere is the control row: allowed on both sides.
//!
//! Acting on a client or withdrawing a fax server needs authority over everything it reaches, so cases on
//! objects in both groupings (and on an administrator everywhere who is a member of the side's grouping)
//! are allowed to the administrator everywhere only, whatever the caller holds in A.

use serde_json::{Value, json};
use testkit::harness::{Api, FAST_CONFIG, SupervisorProc, tiny_tiff};

const ROLES: [(&str, &[&str]); 4] = [
    (
        "administrator",
        &[
            "send_faxes",
            "receive_faxes",
            "read_phonebook",
            "edit_shared_phonebook",
            "read_fax_server_settings",
            "change_fax_server_settings",
            "change_supervisor_settings",
            "manage_clients",
            "manage_groupings",
            "manage_inbound_rules",
            "read_audit_log",
            "manage_jobs",
        ],
    ),
    (
        "grouping administrator",
        &[
            "send_faxes",
            "receive_faxes",
            "read_phonebook",
            "edit_shared_phonebook",
            "read_fax_server_settings",
            "change_fax_server_settings",
            "manage_clients",
            "manage_groupings",
            "manage_inbound_rules",
            "read_audit_log",
            "manage_jobs",
        ],
    ),
    (
        "operator",
        &[
            "send_faxes",
            "receive_faxes",
            "read_phonebook",
            "edit_shared_phonebook",
            "read_fax_server_settings",
            "change_fax_server_settings",
            "manage_inbound_rules",
            "manage_jobs",
        ],
    ),
    ("user", &["send_faxes", "receive_faxes", "read_phonebook"]),
];

/// The objects of one side (grouping A or B).
struct Side {
    grouping: String,
    fax_server: String,
    /// A client of the side that tests may change (tokens, grants, memberships).
    client: String,
    rule: String,
    /// A number only this side's fax server may dial.
    number: &'static str,
}

/// What an endpoint needs and how a refusal looks.
struct Case {
    name: &'static str,
    /// `None`: any client passes the competence check (visibility still applies).
    needs: Option<&'static str>,
    /// Whether the check is against the whole supervisor (no grouping scope can pass it).
    system: bool,
    /// Whether holding the competence anywhere suffices (lists filtered by scope, the caller's own data).
    unscoped: bool,
    /// Whether the object reaches beyond the side's grouping (a client or fax server in both groupings, an
    /// administrator everywhere): only the administrator everywhere reaches it.
    whole: bool,
    allowed: u16,
    denied_in_scope: u16,
    denied_out_of_scope: u16,
    /// The answer to a caller that does not hold the competence anywhere, when it differs (the object is
    /// invisible to it although it is in grouping A).
    denied_unheld: Option<u16>,
}

fn case(
    name: &'static str,
    needs: Option<&'static str>,
    allowed: u16,
    denied_in: u16,
    denied_out: u16,
) -> Case {
    Case {
        name,
        needs,
        system: false,
        unscoped: false,
        whole: false,
        allowed,
        denied_in_scope: denied_in,
        denied_out_of_scope: denied_out,
        denied_unheld: None,
    }
}

fn unscoped_case(name: &'static str, needs: &'static str, allowed: u16) -> Case {
    Case {
        unscoped: true,
        ..case(name, Some(needs), allowed, 403, 403)
    }
}

fn system_case(name: &'static str, needs: &'static str, allowed: u16) -> Case {
    Case {
        system: true,
        ..case(name, Some(needs), allowed, 403, 403)
    }
}

/// An action on an object that reaches beyond grouping A.
fn whole_case(
    name: &'static str,
    needs: &'static str,
    allowed: u16,
    denied_in: u16,
    denied_out: u16,
    denied_unheld: Option<u16>,
) -> Case {
    Case {
        whole: true,
        denied_unheld,
        ..case(name, Some(needs), allowed, denied_in, denied_out)
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "get settings",
            Some("read_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "settings history",
            Some("read_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "settings diff",
            Some("read_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "patch settings",
            Some("change_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "put settings",
            Some("change_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "rollback settings",
            Some("change_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "patch fax server",
            Some("change_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "create fax server",
            Some("change_fax_server_settings"),
            201,
            403,
            422,
        ),
        case("get fax server", None, 200, 0, 404),
        case("get grouping", None, 200, 0, 404),
        case(
            "add grouping member",
            Some("manage_groupings"),
            204,
            403,
            404,
        ),
        case(
            "remove grouping member",
            Some("manage_groupings"),
            204,
            403,
            404,
        ),
        case("create client", Some("manage_clients"), 201, 403, 422),
        case("get client", Some("manage_clients"), 200, 404, 404),
        case("create token", Some("manage_clients"), 201, 404, 404),
        case("grant role", Some("manage_clients"), 201, 404, 404),
        case(
            "create inbound rule",
            Some("manage_inbound_rules"),
            201,
            403,
            422,
        ),
        case(
            "delete inbound rule",
            Some("manage_inbound_rules"),
            204,
            404,
            404,
        ),
        case("send fax", Some("send_faxes"), 201, 403, 422),
        case(
            "alter another client's job",
            Some("manage_jobs"),
            200,
            404,
            404,
        ),
        case(
            "cancel another client's job",
            Some("manage_jobs"),
            200,
            404,
            404,
        ),
        case("list a grouping's jobs", Some("manage_jobs"), 200, 403, 404),
        case(
            "share phonebook entry with grouping",
            Some("edit_shared_phonebook"),
            201,
            403,
            422,
        ),
        unscoped_case("search phonebook", "read_phonebook", 200),
        unscoped_case("list clients", "manage_clients", 200),
        unscoped_case("list inbound rules", "manage_inbound_rules", 200),
        unscoped_case("read audit log", "read_audit_log", 200),
        system_case(
            "change supervisor settings",
            "change_supervisor_settings",
            200,
        ),
        system_case("create grouping", "manage_groupings", 201),
        system_case("create role", "manage_clients", 201),
        system_case("create client in no grouping", "manage_clients", 201),
        system_case(
            "inbound rule for every fax server",
            "manage_inbound_rules",
            201,
        ),
        case("list tokens", Some("manage_clients"), 200, 404, 404),
        case("revoke token", Some("manage_clients"), 204, 404, 404),
        case("set password", Some("manage_clients"), 204, 404, 404),
        case("disable client", Some("manage_clients"), 200, 404, 404),
        case("delete client", Some("manage_clients"), 204, 404, 404),
        case(
            "revoke fax server",
            Some("change_fax_server_settings"),
            200,
            403,
            404,
        ),
        case(
            "delete fax server",
            Some("change_fax_server_settings"),
            204,
            403,
            404,
        ),
        whole_case(
            "token for a client in both groupings",
            "manage_clients",
            201,
            403,
            403,
            Some(404),
        ),
        whole_case(
            "password of a client in both groupings",
            "manage_clients",
            204,
            403,
            403,
            Some(404),
        ),
        whole_case(
            "grant to a client in both groupings",
            "manage_clients",
            201,
            403,
            403,
            Some(404),
        ),
        whole_case(
            "disable a client in both groupings",
            "manage_clients",
            200,
            403,
            403,
            Some(404),
        ),
        whole_case(
            "delete a client in both groupings",
            "manage_clients",
            204,
            403,
            403,
            Some(404),
        ),
        whole_case(
            "remove a client in both groupings from the grouping",
            "manage_groupings",
            204,
            403,
            404,
            None,
        ),
        whole_case(
            "token for an administrator everywhere in the grouping",
            "manage_clients",
            201,
            403,
            404,
            Some(404),
        ),
        whole_case(
            "revoke a fax server in both groupings",
            "change_fax_server_settings",
            200,
            403,
            403,
            None,
        ),
        whole_case(
            "delete a fax server in both groupings",
            "change_fax_server_settings",
            204,
            403,
            403,
            None,
        ),
        whole_case(
            "patch settings of a fax server in both groupings",
            "change_fax_server_settings",
            200,
            403,
            403,
            None,
        ),
        whole_case(
            "patch a fax server in both groupings",
            "change_fax_server_settings",
            200,
            403,
            403,
            None,
        ),
        whole_case(
            "inbound rule on a fax server in both groupings",
            "manage_inbound_rules",
            201,
            403,
            403,
            None,
        ),
    ]
}

/// A person in `groupings` (with the `user` role in each, or `grants`); its id.
async fn person_in(
    admin: &Api,
    name: String,
    groupings: &[&String],
    grants: Option<Value>,
) -> String {
    let mut body = json!({"name": name, "kind": "person", "password": "a long password", "groupings": groupings});
    if let Some(g) = grants {
        body["grants"] = g;
    }
    id(&made(admin, "/v1/clients", body).await, "/client/id")
}

/// A fax server (never enrolled) in `groupings`; its id.
async fn fax_server_in(admin: &Api, name: String, groupings: &[&String]) -> String {
    let fs = made(
        admin,
        "/v1/fax-servers",
        json!({"name": name, "groupings": groupings}),
    )
    .await;
    id(&fs, "/fax_server/id")
}

fn id(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
        .to_owned()
}

async fn made(api: &Api, path: &str, body: Value) -> Value {
    let r = api.post(path, body).await.expect("request");
    assert!(r.status == 201, "POST {path}: {} {}", r.status, r.body);
    r.body
}

/// A job a fresh member of the side's grouping submits to the side's number; it stays queued (the side's
/// fax server never comes online). Its id.
async fn queued_job_of_a_member(admin: &Api, s: &Side, n: usize) -> String {
    let grants = json!([{"role": "user", "scope": {"kind": "grouping", "id": s.grouping}}]);
    let c = made(
        admin,
        "/v1/clients",
        json!({"name": format!("owner-{n}"), "kind": "application", "groupings": [s.grouping], "grants": grants}),
    )
    .await;
    let owner = admin.with_token(&id(&c, "/token"));
    let doc = owner.upload(tiny_tiff()).await.expect("upload");
    let sha = id(&doc.body, "/sha256");
    let job = made(
        &owner,
        "/v1/jobs",
        json!({"documents": [sha], "recipients": [s.number]}),
    )
    .await;
    id(&job, "/jobs/0/id")
}

/// Makes a fresh side: grouping, fax server, a client, an inbound rule.
async fn side(admin: &Api, name: &str, number: &'static str, prefix: &str) -> Side {
    let grouping = id(
        &made(admin, "/v1/groupings", json!({"name": name})).await,
        "/id",
    );
    let fs = made(
        admin,
        "/v1/fax-servers",
        json!({"name": format!("fs-{name}"), "dial_prefixes": [prefix], "groupings": [grouping]}),
    )
    .await;
    let fax_server = id(&fs, "/fax_server/id");
    admin
        .patch(
            &format!("/v1/fax-servers/{fax_server}/settings"),
            json!({"station_id": "+1 555 0001"}),
        )
        .await
        .expect("v1")
        .expect_status(200)
        .expect("200");
    let client = id(&made(admin, "/v1/clients", json!({"name": format!("member-{name}"), "kind": "application", "groupings": [grouping]})).await, "/client/id");
    let rule = made(
        admin,
        "/v1/inbound-rules",
        json!({"fax_server_id": fax_server, "targets": [{"kind": "grouping", "id": grouping}]}),
    )
    .await;
    Side {
        grouping,
        fax_server,
        client,
        rule: id(&rule, "/id"),
        number,
    }
}

/// Runs one endpoint against one side as `api`; answers the status. Each call makes the fresh objects it
/// consumes, with the administrator, so cases do not depend on each other. `both` are the two groupings.
async fn run(
    admin: &Api,
    api: &Api,
    case: &Case,
    s: &Side,
    both: [&String; 2],
    n: usize,
) -> (u16, Value) {
    let fs = &s.fax_server;
    let g = &s.grouping;
    let r = match case.name {
        "list tokens" => api.get(&format!("/v1/clients/{}/tokens", s.client)).await,
        "revoke token" => {
            let t = made(admin, &format!("/v1/clients/{}/tokens", s.client), json!({"label": "r"})).await;
            api.delete(&format!("/v1/clients/{}/tokens/{}", s.client, t["token_id"].as_str().unwrap_or("(none)"))).await
        }
        "set password" => {
            let c = person_in(admin, format!("pw-{n}"), &[g], None).await;
            api.put(&format!("/v1/clients/{c}/password"), json!({"password": "another long one"})).await
        }
        "disable client" => {
            let c = made(admin, "/v1/clients", json!({"name": format!("dis-{n}"), "kind": "application", "groupings": [g]})).await;
            api.patch(&format!("/v1/clients/{}", id(&c, "/client/id")), json!({"disabled": true})).await
        }
        "delete client" => {
            let c = made(admin, "/v1/clients", json!({"name": format!("del-{n}"), "kind": "application", "groupings": [g]})).await;
            api.delete(&format!("/v1/clients/{}", id(&c, "/client/id"))).await
        }
        "revoke fax server" => {
            let f = fax_server_in(admin, format!("rv-{n}"), &[g]).await;
            api.post(&format!("/v1/fax-servers/{f}/revoke"), json!({})).await
        }
        "delete fax server" => {
            let f = fax_server_in(admin, format!("dl-{n}"), &[g]).await;
            api.delete(&format!("/v1/fax-servers/{f}")).await
        }
        "token for a client in both groupings" => {
            let c = person_in(admin, format!("both-t-{n}"), &both, None).await;
            api.post(&format!("/v1/clients/{c}/tokens"), json!({"label": "t"})).await
        }
        "password of a client in both groupings" => {
            let c = person_in(admin, format!("both-p-{n}"), &both, None).await;
            api.put(&format!("/v1/clients/{c}/password"), json!({"password": "another long one"})).await
        }
        "grant to a client in both groupings" => {
            let c = person_in(admin, format!("both-g-{n}"), &both, None).await;
            let scope = json!({"kind": "grouping", "id": g});
            api.post(&format!("/v1/clients/{c}/grants"), json!({"role": "user", "scope": scope})).await
        }
        "disable a client in both groupings" => {
            let c = person_in(admin, format!("both-d-{n}"), &both, None).await;
            api.patch(&format!("/v1/clients/{c}"), json!({"disabled": true})).await
        }
        "delete a client in both groupings" => {
            let c = person_in(admin, format!("both-x-{n}"), &both, None).await;
            api.delete(&format!("/v1/clients/{c}")).await
        }
        "remove a client in both groupings from the grouping" => {
            let c = person_in(admin, format!("both-m-{n}"), &both, None).await;
            api.delete(&format!("/v1/groupings/{g}/members/client/{c}")).await
        }
        "token for an administrator everywhere in the grouping" => {
            let everywhere = json!([{"role": "administrator", "scope": {"kind": "all"}}]);
            let c = person_in(admin, format!("root-{n}"), &[g], Some(everywhere)).await;
            api.post(&format!("/v1/clients/{c}/tokens"), json!({"label": "t"})).await
        }
        "revoke a fax server in both groupings" => {
            let f = fax_server_in(admin, format!("both-rv-{n}"), &both).await;
            api.post(&format!("/v1/fax-servers/{f}/revoke"), json!({})).await
        }
        "delete a fax server in both groupings" => {
            let f = fax_server_in(admin, format!("both-dl-{n}"), &both).await;
            api.delete(&format!("/v1/fax-servers/{f}")).await
        }
        "patch settings of a fax server in both groupings" => {
            let f = fax_server_in(admin, format!("both-ps-{n}"), &both).await;
            api.patch(&format!("/v1/fax-servers/{f}/settings"), json!({"header_template": format!("b{n}")})).await
        }
        "patch a fax server in both groupings" => {
            let f = fax_server_in(admin, format!("both-pf-{n}"), &both).await;
            api.patch(&format!("/v1/fax-servers/{f}"), json!({"dial_prefixes": ["+1"]})).await
        }
        "inbound rule on a fax server in both groupings" => {
            let f = fax_server_in(admin, format!("both-ir-{n}"), &both).await;
            api.post("/v1/inbound-rules", json!({"fax_server_id": f, "targets": [{"kind": "grouping", "id": g}]})).await
        }
        "get settings" => api.get(&format!("/v1/fax-servers/{fs}/settings")).await,
        "settings history" => api.get(&format!("/v1/fax-servers/{fs}/settings/history")).await,
        "settings diff" => api.get(&format!("/v1/fax-servers/{fs}/settings/diff?from=1&to=1")).await,
        "patch settings" => api.patch(&format!("/v1/fax-servers/{fs}/settings"), json!({"header_template": format!("h{n}")})).await,
        "put settings" => {
            let cur = admin.get(&format!("/v1/fax-servers/{fs}/settings")).await.expect("get").expect_status(200).expect("200");
            let mut doc = cur["settings"].clone();
            doc["header_template"] = json!(format!("p{n}"));
            api.put(&format!("/v1/fax-servers/{fs}/settings"), doc).await
        }
        "rollback settings" => api.post(&format!("/v1/fax-servers/{fs}/settings/rollback"), json!({"version": 1})).await,
        "patch fax server" => api.patch(&format!("/v1/fax-servers/{fs}"), json!({"dial_prefixes": [s.number[..2].to_owned(), format!("+{}", 100 + n)]})).await,
        "create fax server" => api.post("/v1/fax-servers", json!({"name": format!("new-fs-{n}"), "dial_prefixes": [&s.number[..2]], "groupings": [g]})).await,
        "get fax server" => api.get(&format!("/v1/fax-servers/{fs}")).await,
        "get grouping" => api.get(&format!("/v1/groupings/{g}")).await,
        "add grouping member" => {
            let c = made(admin, "/v1/clients", json!({"name": format!("add-{n}"), "kind": "application", "groupings": [g]})).await;
            api.put(&format!("/v1/groupings/{g}/members"), json!({"kind": "client", "id": id(&c, "/client/id")})).await
        }
        "remove grouping member" => {
            let c = made(admin, "/v1/clients", json!({"name": format!("rm-{n}"), "kind": "application", "groupings": [g]})).await;
            api.delete(&format!("/v1/groupings/{g}/members/client/{}", id(&c, "/client/id"))).await
        }
        "create client" => api.post("/v1/clients", json!({"name": format!("c-{n}"), "kind": "application", "groupings": [g]})).await,
        "get client" => api.get(&format!("/v1/clients/{}", s.client)).await,
        "create token" => api.post(&format!("/v1/clients/{}/tokens", s.client), json!({"label": "t"})).await,
        "grant role" => {
            let scope = json!({"kind": "grouping", "id": g});
            api.post(&format!("/v1/clients/{}/grants", s.client), json!({"role": "user", "scope": scope})).await
        }
        "create inbound rule" => {
            let targets = json!([{"kind": "grouping", "id": g}]);
            api.post("/v1/inbound-rules", json!({"fax_server_id": fs, "called_number": format!("+1555{n}"), "targets": targets})).await
        }
        "delete inbound rule" => {
            let targets = json!([{"kind": "grouping", "id": g}]);
            let rule = made(admin, "/v1/inbound-rules", json!({"fax_server_id": fs, "called_number": format!("+1666{n}"), "targets": targets})).await;
            api.delete(&format!("/v1/inbound-rules/{}", id(&rule, "/id"))).await
        }
        "send fax" => {
            let doc = api.upload(tiny_tiff()).await.expect("upload");
            let sha = doc.body["sha256"].as_str().map(str::to_owned);
            match sha {
                Some(sha) => api.post("/v1/jobs", json!({"documents": [sha], "recipients": [s.number]})).await,
                None => Ok(doc),
            }
        }
        "alter another client's job" => {
            let job = queued_job_of_a_member(admin, s, n).await;
            api.patch(&format!("/v1/jobs/{job}"), json!({"priority": 5})).await
        }
        "cancel another client's job" => {
            let job = queued_job_of_a_member(admin, s, n).await;
            api.post(&format!("/v1/jobs/{job}/cancel"), json!({})).await
        }
        "list a grouping's jobs" => api.get(&format!("/v1/jobs?grouping_id={g}")).await,
        "share phonebook entry with grouping" => {
            let vis = json!([{"kind": "grouping", "id": g}]);
            api.post("/v1/phonebook", json!({"name": format!("Shared {n}"), "fax_number": "+15550100009", "visibility": vis})).await
        }
        "search phonebook" => api.get("/v1/phonebook?q=shared").await,
        "list clients" => api.get("/v1/clients").await,
        "list inbound rules" => api.get("/v1/inbound-rules").await,
        "read audit log" => api.get("/v1/audit?limit=5").await,
        "change supervisor settings" => api.patch("/v1/settings", json!({"retention": {"audit_days": 365 + n}})).await,
        "create grouping" => api.post("/v1/groupings", json!({"name": format!("new-g-{n}")})).await,
        "create role" => api.post("/v1/roles", json!({"name": format!("role-{n}"), "competences": ["send_faxes"]})).await,
        "create client in no grouping" => api.post("/v1/clients", json!({"name": format!("loose-{n}"), "kind": "application", "groupings": []})).await,
        "inbound rule for every fax server" => {
            let targets = json!([{"kind": "grouping", "id": g}]);
            api.post("/v1/inbound-rules", json!({"called_number": format!("+1777{n}"), "targets": targets})).await
        }
        other => panic!("no case {other}"),
    }
    .expect("request");
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_every_role_in_and_out_of_scope() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let a = side(&admin, "A", "+15550000001", "+1").await;
    let b = side(&admin, "B", "+445550000001", "+44").await;

    // One client per role, granted in grouping A; plus the administrator everywhere as the control row.
    let mut callers: Vec<(String, &[&str], bool, Api)> = Vec::new();
    for (role, competences) in ROLES {
        let grants = json!([{"role": role, "scope": {"kind": "grouping", "id": a.grouping}}]);
        let name = format!("as-{}", role.replace(' ', "-"));
        let c = made(&admin, "/v1/clients", json!({"name": name, "kind": "application", "groupings": [a.grouping], "grants": grants})).await;
        callers.push((
            format!("{role} in A"),
            competences,
            false,
            admin.with_token(&id(&c, "/token")),
        ));
    }
    let grants = json!([{"role": "administrator", "scope": {"kind": "all"}}]);
    let both = [&a.grouping, &b.grouping];
    let c = made(
        &admin,
        "/v1/clients",
        json!({"name": "as-admin-all", "kind": "application", "groupings": both, "grants": grants}),
    )
    .await;
    callers.push((
        "administrator everywhere".into(),
        ROLES[0].1,
        true,
        admin.with_token(&id(&c, "/token")),
    ));

    let mut n = 0;
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        for (who, competences, everywhere, api) in &callers {
            for (in_scope, s) in [(true, &a), (false, &b)] {
                n += 1;
                let holds = case.needs.is_none_or(|c| competences.contains(&c));
                let reaches =
                    *everywhere || case.unscoped || (in_scope && !case.system && !case.whole);
                let want = match case.denied_unheld {
                    _ if holds && reaches => case.allowed,
                    _ if case.system => case.denied_in_scope,
                    Some(unheld) if !holds => unheld,
                    _ if in_scope => case.denied_in_scope,
                    _ => case.denied_out_of_scope,
                };
                let (got, body) = run(&admin, api, &case, s, [&a.grouping, &b.grouping], n).await;
                checked += 1;
                if got != want {
                    let side = if in_scope { "in scope" } else { "out of scope" };
                    failures.push(format!(
                        "{} as {who}, {side}: want {want}, got {got} {body}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, cases().len() * callers.len() * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_what_they_do_not_hold() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let a = side(&admin, "A", "+15550000001", "+1").await;
    let b = side(&admin, "B", "+445550000001", "+44").await;
    let grants = json!([{"role": "grouping administrator", "scope": {"kind": "grouping", "id": a.grouping}}]);
    let ga = made(
        &admin,
        "/v1/clients",
        json!({"name": "ga", "kind": "application", "groupings": [a.grouping], "grants": grants}),
    )
    .await;
    let ga = admin.with_token(&id(&ga, "/token"));
    let target = &a.client;
    let grant = |role: &str, scope: Value| json!({"role": role, "scope": scope});
    let in_a = json!({"kind": "grouping", "id": a.grouping});

    // A competence it lacks (change_supervisor_settings, inside "administrator"), a wider scope, a scope
    // it cannot see.
    let r = ga
        .post(
            &format!("/v1/clients/{target}/grants"),
            grant("administrator", in_a.clone()),
        )
        .await
        .expect("r");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("change_supervisor_settings"),
        "{}",
        r.body
    );
    let r = ga
        .post(
            &format!("/v1/clients/{target}/grants"),
            grant("operator", json!({"kind": "all"})),
        )
        .await
        .expect("r");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = ga
        .post(
            &format!("/v1/clients/{target}/grants"),
            grant("operator", json!({"kind": "grouping", "id": b.grouping})),
        )
        .await
        .expect("r");
    assert_eq!(
        r.status, 422,
        "an invisible scope reads as missing: {}",
        r.body
    );
    // What it holds, where it holds it: allowed, narrowing to one fax server too.
    let r = ga
        .post(
            &format!("/v1/clients/{target}/grants"),
            grant("operator", in_a.clone()),
        )
        .await
        .expect("r");
    assert_eq!(r.status, 201, "{}", r.body);
    let r = ga
        .post(
            &format!("/v1/clients/{target}/grants"),
            grant(
                "operator",
                json!({"kind": "fax_server", "id": a.fax_server}),
            ),
        )
        .await
        .expect("r");
    assert_eq!(r.status, 201, "{}", r.body);
    // Creating a client with a grant beyond its own is refused, and nothing is created.
    let r = ga
        .post("/v1/clients", json!({"name": "sneaky", "kind": "application", "groupings": [a.grouping], "grants": [grant("administrator", in_a.clone())]}))
        .await
        .expect("r");
    assert_eq!(r.status, 403, "{}", r.body);
    let names: Vec<String> = admin
        .get("/v1/clients")
        .await
        .expect("l")
        .expect_status(200)
        .expect("200")
        .as_array()
        .expect("list")
        .iter()
        .map(|c| id(c, "/name"))
        .collect();
    assert!(!names.contains(&"sneaky".to_owned()), "{names:?}");
    // Roles: only an administrator everywhere defines them.
    let r = ga
        .post(
            "/v1/roles",
            json!({"name": "mine", "competences": ["send_faxes"]}),
        )
        .await
        .expect("r");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin
        .post("/v1/roles", json!({"name": "odd", "competences": ["fly"]}))
        .await
        .expect("r");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("competences[0]")),
        "{}",
        r.body
    );

    // Withdrawing a competence takes effect at once: the operator grant in A made the target able to read
    // settings; the grouping administrator withdraws it again.
    let target_api = {
        let t = ga
            .post(
                &format!("/v1/clients/{target}/tokens"),
                json!({"label": "t"}),
            )
            .await
            .expect("t")
            .expect_status(201)
            .expect("201");
        admin.with_token(&id(&t, "/token"))
    };
    assert_eq!(
        target_api
            .get(&format!("/v1/fax-servers/{}/settings", a.fax_server))
            .await
            .expect("g")
            .status,
        200
    );
    let detail = ga
        .get(&format!("/v1/clients/{target}"))
        .await
        .expect("d")
        .expect_status(200)
        .expect("200");
    for g in detail["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter(|g| g["role"] == "operator")
    {
        let gid = id(g, "/id");
        ga.delete(&format!("/v1/clients/{target}/grants/{gid}"))
            .await
            .expect("d")
            .expect_status(204)
            .expect("204");
    }
    assert_eq!(
        target_api
            .get(&format!("/v1/fax-servers/{}/settings", a.fax_server))
            .await
            .expect("g")
            .status,
        403
    );

    // The grouping administrator's audit log covers grouping A's objects, not B's.
    let log = ga
        .get("/v1/audit?limit=500")
        .await
        .expect("a")
        .expect_status(200)
        .expect("200");
    let targets: Vec<String> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["target"].as_str().map(str::to_owned))
        .collect();
    assert!(targets.contains(&a.fax_server), "{targets:?}");
    assert!(
        !targets.contains(&b.fax_server) && !targets.contains(&b.grouping),
        "{targets:?}"
    );
    // Its inbound-rule list likewise.
    let rules = ga
        .get("/v1/inbound-rules")
        .await
        .expect("r")
        .expect_status(200)
        .expect("200");
    let ids: Vec<String> = rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| id(r, "/id"))
        .collect();
    assert!(ids.contains(&a.rule) && !ids.contains(&b.rule), "{ids:?}");
}
