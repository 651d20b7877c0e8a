//! The phonebook end to end (claims 17–22): the visibility matrix through get, search, export and sending
//! by entry; who may change shared entries; a 10,000-row CSV import with bad rows; vCard round trips.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use testkit::harness::{Api, FAST_CONFIG, SupervisorProc, tiny_tiff};

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

/// A client in these groupings with this role in each; answers (id, api).
async fn client(admin: &Api, name: &str, groupings: &[&str], role: &str) -> (String, Api) {
    let grants: Vec<Value> = groupings
        .iter()
        .map(|g| json!({"role": role, "scope": {"kind": "grouping", "id": g}}))
        .collect();
    let c = made(
        admin,
        "/v1/clients",
        json!({"name": name, "kind": "application", "groupings": groupings, "grants": grants}),
    )
    .await;
    (id(&c, "/client/id"), admin.with_token(&id(&c, "/token")))
}

async fn text(api: &Api, path: &str) -> String {
    let r = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("get");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.expect("text")
}

async fn post_text(api: &Api, path: &str, body: String) -> Value {
    let r = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_matrix_through_get_search_export_and_sending() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let a = id(
        &made(&admin, "/v1/groupings", json!({"name": "A"})).await,
        "/id",
    );
    let b = id(
        &made(&admin, "/v1/groupings", json!({"name": "B"})).await,
        "/id",
    );
    for (name, g) in [("fs-a", &a), ("fs-b", &b)] {
        made(
            &admin,
            "/v1/fax-servers",
            json!({"name": name, "groupings": [g]}),
        )
        .await;
    }
    let (_o_id, owner) = client(&admin, "owner", &[&a, &b], "operator").await;
    let (u1_id, u1) = client(&admin, "u1", &[&a], "user").await;
    let (_u2_id, u2) = client(&admin, "u2", &[&a], "user").await;
    let (x_id, x) = client(&admin, "x", &[&b], "user").await;
    let (_y_id, y) = client(&admin, "y", &[&b], "user").await;
    let (_o2, outsider) = client(
        &admin,
        "outsider",
        &[&id(
            &made(&admin, "/v1/groupings", json!({"name": "C"})).await,
            "/id",
        )],
        "user",
    )
    .await;

    let entry = |name: &str, vis: Value| json!({"name": name, "company": "Zeta Corp", "fax_number": "+1 555 010 2000", "visibility": vis});
    let everyone = json!([{"kind": "everyone"}]);
    let one = json!([{"kind": "client", "id": u1_id}]);
    let several = json!([{"kind": "client", "id": u1_id}, {"kind": "client", "id": x_id}]);
    let grouping = json!([{"kind": "grouping", "id": b}]);
    let mut ids = Vec::new();
    for (name, vis) in [
        ("Personal", json!([])),
        ("Everyone", everyone),
        ("One", one),
        ("Several", several),
        ("GroupingB", grouping),
    ] {
        ids.push((
            name,
            id(
                &made(&owner, "/v1/phonebook", entry(name, vis)).await,
                "/id",
            ),
        ));
    }
    // Who may refer to which entry (claims 18, 19, 21, 22).
    let expect: [(&str, &Api, &[&str]); 6] = [
        (
            "owner",
            &owner,
            &["Personal", "Everyone", "One", "Several", "GroupingB"],
        ),
        ("u1", &u1, &["Everyone", "One", "Several"]),
        ("u2", &u2, &["Everyone"]),
        ("x", &x, &["Everyone", "Several", "GroupingB"]),
        ("y", &y, &["Everyone", "GroupingB"]),
        ("outsider", &outsider, &[]),
    ];
    let doc = owner
        .upload(tiny_tiff())
        .await
        .expect("upload")
        .expect_status(201)
        .expect("201");
    for (who, api, visible) in expect {
        let want: BTreeSet<&str> = visible.iter().copied().collect();
        // get
        let mut got = BTreeSet::new();
        for (name, eid) in &ids {
            let r = api.get(&format!("/v1/phonebook/{eid}")).await.expect("get");
            match r.status {
                200 => {
                    got.insert(*name);
                }
                404 => {}
                s => panic!("{who} get {name}: {s} {}", r.body),
            }
        }
        assert_eq!(got, want, "{who}: get");
        // search, by company word and by number
        for q in ["zeta", "%2B1555010"] {
            let found = api
                .get(&format!("/v1/phonebook?q={q}"))
                .await
                .expect("search")
                .expect_status(200)
                .expect("200");
            let got: BTreeSet<&str> = found["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|e| e["name"].as_str())
                .collect();
            assert_eq!(got, want, "{who}: search {q}");
        }
        // export, both formats
        let csv = text(api, "/v1/phonebook/export?format=csv").await;
        let vcf = text(api, "/v1/phonebook/export?format=vcard4").await;
        for (name, _) in &ids {
            assert_eq!(
                csv.contains(&format!("\n{name},")),
                want.contains(name),
                "{who}: csv export of {name}:\n{csv}"
            );
            assert_eq!(
                vcf.contains(&format!("FN:{name}\r\n")),
                want.contains(name),
                "{who}: vCard export of {name}"
            );
        }
        // sending by entry
        let sha = if who == "owner" {
            id(&doc, "/sha256")
        } else {
            id(
                &api.upload(tiny_tiff())
                    .await
                    .expect("upload")
                    .expect_status(201)
                    .expect("201"),
                "/sha256",
            )
        };
        for (name, eid) in &ids {
            let r = api
                .post(
                    "/v1/jobs",
                    json!({"documents": [sha], "recipient_entries": [eid]}),
                )
                .await
                .expect("send");
            if want.contains(name) {
                assert_eq!(r.status, 201, "{who} sends to {name}: {}", r.body);
                assert_eq!(r.body["jobs"][0]["recipient"], "+15550102000");
            } else {
                assert_eq!(
                    (r.status, r.body["error"]["field"].as_str()),
                    (422, Some("recipient_entries[0]")),
                    "{who} sends to {name}: {}",
                    r.body
                );
            }
        }
    }

    // Shared entries change only with edit_shared_phonebook; personal ones belong to their owner.
    let everyone_id = &ids[1].1;
    let r = u1
        .patch(
            &format!("/v1/phonebook/{everyone_id}"),
            json!({"notes": "mine now"}),
        )
        .await
        .expect("patch");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        u1.delete(&format!("/v1/phonebook/{everyone_id}"))
            .await
            .expect("d")
            .status,
        403
    );
    let r = u1
        .post(
            "/v1/phonebook",
            entry("Shout", json!([{"kind": "everyone"}])),
        )
        .await
        .expect("c");
    assert_eq!(r.status, 403, "a user shares nothing: {}", r.body);
    let mine = made(&u1, "/v1/phonebook", entry("Mine", json!([]))).await;
    assert_eq!(
        u2.get(&format!("/v1/phonebook/{}", id(&mine, "/id")))
            .await
            .expect("g")
            .status,
        404
    );
    let r = u1
        .patch(
            &format!("/v1/phonebook/{}", id(&mine, "/id")),
            json!({"fax_number": "bogus"}),
        )
        .await
        .expect("p");
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("fax_number")),
        "{}",
        r.body
    );
    let r = owner
        .patch(
            &format!("/v1/phonebook/{everyone_id}"),
            json!({"visibility": [{"kind": "client", "id": u1_id}]}),
        )
        .await
        .expect("p");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        u2.get(&format!("/v1/phonebook/{everyone_id}"))
            .await
            .expect("g")
            .status,
        404,
        "narrowed at once"
    );
    // The audit log records changes to shared entries.
    let log = admin
        .get(&format!("/v1/audit?target={everyone_id}"))
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
    assert_eq!(actions, ["phonebook.changed", "phonebook.created"]);
    // A client without read_phonebook sees no phonebook at all.
    made(
        &admin,
        "/v1/roles",
        json!({"name": "sender", "competences": ["send_faxes"]}),
    )
    .await;
    let (_z, z) = client(&admin, "z", &[&a], "sender").await;
    assert_eq!(z.get("/v1/phonebook?q=zeta").await.expect("s").status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_row_csv_import_keeps_good_rows_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let admin = sup.admin();
    let mut csv = String::from("name,company,fax_number,email,tags,visibility\n");
    let mut bad_lines = BTreeSet::new();
    for i in 0..10_000u32 {
        let line = u64::from(i) + 2;
        let row = match i % 997 {
            13 => "Nobody,,,,,\n".to_owned(),
            14 => format!(",Nameless,+1555{i:07},,,\n"),
            15 => format!("Bad Mail {i},,+1555{i:07},not-an-address,,\n"),
            16 => format!("Short {i},+1555{i:07}\n"),
            17 => format!("Odd Label {i},,+1555{i:07},,,planet:mars\n"),
            18 => format!("No Client {i},,+1555{i:07},,,client:ghost\n"),
            _ => {
                let vis = if i % 2 == 0 { "everyone" } else { "" };
                format!(
                    "Person {i},\"Firm {}, Ltd\",+1 555 {i:07},p{i}@example.com,a;b,{vis}\n",
                    i % 50
                )
            }
        };
        if (13..=18).contains(&(i % 997)) {
            bad_lines.insert(line);
        }
        csv.push_str(&row);
    }
    let report = post_text(&admin, "/v1/phonebook/import?format=csv", csv).await;
    let problems: BTreeSet<u64> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["line"].as_u64())
        .collect();
    assert_eq!(problems, bad_lines, "{}", report["problems"]);
    assert_eq!(report["imported"], 10_000 - bad_lines.len(), "{report}");
    let first = &report["problems"][0];
    assert_eq!(
        (first["line"].as_u64(), first["field"].as_str()),
        (Some(15), Some("fax_number")),
        "{first}"
    );
    // The good rows are there: searchable, exported, and shared as their rows said.
    let found = admin
        .get("/v1/phonebook?q=person%209998")
        .await
        .expect("s")
        .expect_status(200)
        .expect("200");
    assert_eq!(found["items"][0]["name"], "Person 9998");
    assert_eq!(found["items"][0]["fax_number"], "+15550009998");
    assert_eq!(
        found["items"][0]["visibility"],
        json!([{"kind": "everyone"}])
    );
    assert_eq!(found["items"][0]["tags"], json!(["a", "b"]));
    let export = text(&admin, "/v1/phonebook/export?format=csv").await;
    assert_eq!(export.lines().count(), 1 + 10_000 - bad_lines.len());
    // A file that is not a phonebook changes nothing and says why.
    let r = admin
        .post("/v1/phonebook/import?format=csv", json!("x"))
        .await
        .expect("p");
    assert_eq!(r.status, 422, "{}", r.body);
    // vCard 3.0 export imports back to the same entries.
    let vcf = text(&admin, "/v1/phonebook/export?format=vcard3").await;
    let back = post_text(&admin, "/v1/phonebook/import?format=vcard", vcf).await;
    assert_eq!(
        back["imported"],
        10_000 - bad_lines.len(),
        "{}",
        back["problems"]
    );
    assert_eq!(back["failed"], 0);
}
