//! The `faxhub` command line as a person uses it: `dev`, and the client commands against a supervisor.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::harness::{
    Api, FAST_CONFIG, NodeProc, SupervisorProc, faxhub_bin, free_port, tiny_tiff,
};

fn faxhub(config: &Path, args: &[&str]) -> (bool, String) {
    testkit::harness::faxhub_cli(config, &[], args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_send_follow_and_fetch() {
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
    let (node, fs) = NodeProc::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_faxhub-testnode")),
        &sup,
        "n",
        &[],
        &[&g],
        2,
        json!({"page_ms": 200, "numbers": {"+15550109999": ["busy"]}}),
    )
    .await
    .expect("node");
    for _ in 0..100 {
        let l = admin
            .get(&format!("/v1/fax-servers/{fs}"))
            .await
            .expect("fs")
            .expect_status(200)
            .expect("200");
        if l["online"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = dir.path().join("client.toml");
    let (ok, out) = faxhub(
        &config,
        &["login", "--url", &sup.url, "--token", "fxh_not_valid"],
    );
    assert!(!ok && out.contains("not accepted"), "{out}");
    let (ok, out) = faxhub(
        &config,
        &["login", "--url", &sup.url, "--token", &sup.token],
    );
    assert!(ok && out.contains("logged in as admin"), "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&config).expect("config").permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the client config holds a token: owner only"
    );

    let doc = dir.path().join("page.tif");
    std::fs::write(&doc, tiny_tiff()).expect("write");
    let doc = doc.display().to_string();
    let (ok, out) = faxhub(
        &config,
        &[
            "send",
            &doc,
            "--to",
            "+1 555 010 2000",
            "--header",
            "ACME",
            "--wait",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("transmitting") && out.contains(": sent"),
        "send --wait shows progress and the end: {out}"
    );
    let job = out
        .split_whitespace()
        .find(|w| w.starts_with("job_"))
        .expect("job id printed")
        .trim_end_matches(':')
        .to_owned();
    let (ok, out) = faxhub(&config, &["status", &job]);
    assert!(
        ok && out.contains("+15550102000") && out.contains("succeeded"),
        "{out}"
    );
    let (ok, out) = faxhub(&config, &["jobs"]);
    assert!(ok && out.contains(&job), "{out}");
    // --json: the supervisor's answer as JSON, instead of the text.
    for (args, check) in [
        (vec!["--json", "jobs"], "/items/0/id"),
        (vec!["status", &job, "--json"], "/id"),
        (vec!["--json", "fax-servers", "list"], "/0/id"),
    ] {
        let (ok, out) = faxhub(&config, &args);
        assert!(ok, "{args:?}: {out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert!(
            v.pointer(check).is_some_and(serde_json::Value::is_string),
            "{args:?}: {v}"
        );
    }
    // A sent job says it was sent, with no stale failure; one waiting for its next try says why and until
    // when.
    assert!(out.lines().count() > 1);
    let (ok, out) = faxhub(&config, &["status", &job]);
    assert!(ok && out.contains("sent 1 page(s) at"), "{out}");
    let sha = admin.upload_sha(tiny_tiff()).await.expect("upload");
    let busy = admin
        .submit_to(&sha, "+15550109999", json!({"retry_delay_secs": 600}))
        .await
        .expect("submit")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    admin
        .wait_job(&busy, Duration::from_secs(10), |s| s == "queued")
        .await
        .expect("queued");
    let mut out = String::new();
    for _ in 0..100 {
        let (ok, o) = faxhub(&config, &["status", &busy]);
        assert!(ok, "{o}");
        out = o;
        if out.contains("waiting for try 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        out.contains("waiting for try 2 of") && out.contains("until") && out.contains("busy"),
        "{out}"
    );
    let (ok, out) = faxhub(&config, &["cancel", &busy]);
    assert!(ok && out.contains("cancelled"), "{out}");
    let (ok, out) = faxhub(
        &config,
        &["send", "/nonexistent.pdf", "--to", "+15550102000"],
    );
    assert!(
        !ok && out.contains("/nonexistent.pdf"),
        "a missing file is named: {out}"
    );
    let (ok, out) = faxhub(&config, &["send", &doc, "--to", "+1 555 CALL"]);
    assert!(
        !ok && out.contains("recipients[0]"),
        "a bad number is named: {out}"
    );

    // Settings through the CLI.
    let (ok, out) = faxhub(
        &config,
        &[
            "settings",
            "set",
            &fs,
            "channels=2",
            "station_id=+1 555 0100",
            "t38.ecm=false",
        ],
    );
    assert!(
        ok && out.contains("desired version 1") && out.contains("\"station_id\": \"+1 555 0100\""),
        "{out}"
    );
    let (ok, out) = faxhub(&config, &["settings", "set", &fs, "t38.max_bit_rate=33600"]);
    assert!(!ok && out.contains("t38.max_bit_rate"), "{out}");
    let (ok, out) = faxhub(&config, &["settings", "history", &fs]);
    assert!(ok && out.trim_start().starts_with('1'), "{out}");

    // Received faxes: inbox and fetch.
    let bytes = tiny_tiff();
    node.inject(Path::new(&doc), "+15550103000", "+15550104000", "REMOTE")
        .expect("inject");
    let until = Instant::now() + Duration::from_secs(20);
    let inbound = loop {
        let (_, out) = faxhub(&config, &["inbox"]);
        if let Some(id) = out.split_whitespace().find(|w| w.starts_with("inb_")) {
            break id.to_owned();
        }
        assert!(
            Instant::now() < until,
            "the fax never reached the inbox: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let target = dir.path().join("fetched.tif");
    let (ok, out) = faxhub(
        &config,
        &["fetch", &inbound, "-o", &target.display().to_string()],
    );
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(&target).expect("fetched"), bytes);
}

/// `faxhub serve` holds its data directory: a second supervisor on the same files stops with a message naming
/// the first. The bootstrap administrator's credentials go to an owner-only file, not to the console (whose
/// output a service manager keeps in its log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_holds_its_data_directory_and_keeps_the_first_credentials_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let mut sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let file = dir.path().join("data").join(supervisor::BOOTSTRAP_FILE);
    let mode = std::fs::metadata(&file)
        .expect("the credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        sup.token.starts_with("fxh_") && text.contains(&sup.token),
        "{text}"
    );
    assert!(
        !sup.password.is_empty() && text.contains(&sup.password),
        "{text}"
    );
    sup.admin()
        .get("/v1/clients")
        .await
        .expect("clients")
        .expect_status(200)
        .expect("the token from the file works");
    let login = tempfile::tempdir().expect("client dir");
    let client_config = login.path().join("client.toml");
    let (ok, out) = testkit::harness::faxhub_cli(
        &client_config,
        &[("FAXHUB_PASSWORD", &sup.password)],
        &["login", "--url", &sup.url, "--name", "admin"],
    );
    assert!(ok, "the password from the file signs in: {out}");

    let second = Command::new(faxhub_bin().expect("bin"))
        .args(["serve", "--config"])
        .arg(sup.config_path())
        .env("FAXHUB_LOG", "warn")
        .output()
        .expect("second supervisor");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    let pid = sup.pid().expect("pid");
    assert!(
        said.contains("is in use by another faxhub supervisor")
            && said.contains(&format!("(process {pid})")),
        "{said}"
    );
    // Killed, the first lets go of the directory: it starts again on it, with the same administrator.
    sup.restart().expect("restart");
    sup.admin()
        .get("/v1/clients")
        .await
        .expect("clients")
        .expect_status(200)
        .expect("200 after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_supervised_network_over_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("dev");
    let (http, https) = (free_port(), free_port());
    let mut child = Command::new(faxhub_bin().expect("faxhub"))
        .args([
            "dev",
            "--data-dir",
            &data.display().to_string(),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--https",
            &format!("127.0.0.1:{https}"),
        ])
        .env("FAXHUB_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("faxhub dev");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut token = String::new();
    let mut ca = PathBuf::new();
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(t) = line.trim().strip_prefix("token:") {
            token = t.trim().to_owned();
        }
        if let Some(p) = line.strip_prefix("CA certificate for clients: ") {
            ca = PathBuf::from(p.trim());
        }
        if line.starts_with("note:") {
            break;
        }
    }
    assert!(
        token.starts_with("fxh_"),
        "dev prints an administrator token"
    );
    let tls = node::tls_client_config(Some(&ca)).expect("trust the dev certificate");
    let http_client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .expect("client");
    let api = Api {
        base: format!("https://localhost:{https}"),
        token,
        http: http_client,
    };
    let mut online = 0;
    for _ in 0..100 {
        let list = api
            .get("/v1/fax-servers")
            .await
            .expect("https request")
            .expect_status(200)
            .expect("200");
        online = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["online"] == true)
            .count();
        if online == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(online, 2, "both dev fax servers are linked over TLS");
    // Without the certificate, the CLI says which certificate it did not trust and how to trust it.
    let config = dir.path().join("untrusting.toml");
    let url = format!("https://localhost:{https}");
    let out = Command::new(faxhub_bin().expect("faxhub"))
        .args(["login", "--url", &url, "--token", &api.token])
        .env("FAXHUB_CLIENT_CONFIG", &config)
        .env("FAXHUB_LOG", "warn")
        .output()
        .expect("login");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(
        said.contains("certificate is not trusted") && said.contains("--ca-cert"),
        "{said}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The client's exit codes tell failures apart (documented in `faxhub --help`); output to a pipe closed
/// early ends quietly; `login --name` on a terminal asks for the password without echoing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_closed_pipes_and_the_password_prompt() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let config = dir.path().join("client.toml");
    let code = |args: &[&str]| {
        let out = Command::new(faxhub_bin().expect("faxhub"))
            .args(args)
            .env("FAXHUB_CLIENT_CONFIG", &config)
            .env("FAXHUB_LOG", "warn")
            .output()
            .expect("faxhub");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (help, _) = code(&["--help"]);
    assert_eq!(help, Some(0));
    let help = Command::new(faxhub_bin().expect("faxhub"))
        .arg("--help")
        .output()
        .expect("help");
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Exit codes: 0 success"),
        "the codes are documented"
    );
    assert_eq!(code(&["status"]).0, Some(2), "bad usage");
    let (c, said) = code(&["login", "--url", &sup.url, "--token", "fxh_wrong"]);
    assert_eq!(c, Some(4), "refused: {said}");
    let (c, said) = code(&["login", "--url", &sup.url, "--token", &sup.token]);
    assert_eq!(c, Some(0), "{said}");
    let (c, said) = code(&["status", "job_nonexistent"]);
    assert_eq!(c, Some(3), "not found: {said}");
    let (c, said) = code(&[
        "login",
        "--url",
        "http://127.0.0.1:9",
        "--token",
        &sup.token,
    ]);
    assert_eq!(c, Some(6), "unreachable: {said}");
    assert!(said.contains("cannot reach http://127.0.0.1:9"), "{said}");

    // A pipe closed before the output comes: no complaint, success.
    let faxhub = faxhub_bin().expect("faxhub");
    let out = Command::new("bash")
        .args([
            "-c",
            "\"$0\" jobs --limit 5 | true; echo \"status ${PIPESTATUS[0]}\"",
        ])
        .arg(&faxhub)
        .env("FAXHUB_CLIENT_CONFIG", &config)
        .env("FAXHUB_LOG", "warn")
        .output()
        .expect("bash");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("status 0") && !said.contains("panicked") && !said.contains("Broken pipe"),
        "{said}"
    );

    // On a terminal (script(1) gives it one), login --name asks for the password.
    let prompt_config = dir.path().join("prompted.toml");
    let command = format!("{} login --url {} --name admin", faxhub.display(), sup.url);
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("FAXHUB_CLIENT_CONFIG", &prompt_config)
        .env("FAXHUB_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // Typed once the prompt is up.
        std::thread::sleep(Duration::from_millis(1500));
        writeln!(stdin, "{}", sup.password).expect("type the password");
    }
    let out = child.wait_with_output().expect("script ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("password for admin:") && said.contains("logged in as admin"),
        "{said}"
    );
    assert!(
        !said.contains(&sup.password),
        "the password is not echoed: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_commands_manage_groupings_clients_roles_grants_fax_servers_rules_and_audit()
{
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let config = dir.path().join("client.toml");
    let (ok, out) = faxhub(
        &config,
        &["login", "--url", &sup.url, "--token", &sup.token],
    );
    assert!(ok, "{out}");
    let run = |args: &[&str]| {
        let (ok, out) = faxhub(&config, args);
        assert!(ok, "faxhub {args:?}: {out}");
        out
    };
    let made = run(&["groupings", "create", "sales"]);
    let g = made
        .split_whitespace()
        .nth(1)
        .expect("grouping id")
        .to_owned();
    assert!(g.starts_with("grp_"), "{made}");
    assert!(run(&["roles", "list"]).contains("grouping administrator (built in)"));
    run(&[
        "roles",
        "create",
        "dispatcher",
        "send_faxes",
        "read_phonebook",
    ]);
    let grant = format!("dispatcher@grouping:{g}");
    let made = run(&[
        "clients",
        "create",
        "bot",
        "--grouping",
        &g,
        "--grant",
        &grant,
    ]);
    let client = made
        .split_whitespace()
        .next()
        .expect("client id")
        .to_owned();
    assert!(made.contains("token (shown once): fxh_"), "{made}");
    assert!(
        made.contains(&format!("dispatcher in grouping:{g}")),
        "{made}"
    );
    let out = run(&[
        "clients",
        "grant",
        &client,
        "user",
        &format!("grouping:{g}"),
    ]);
    let grant_id = out
        .split_whitespace()
        .nth(1)
        .expect("grant id")
        .trim_end_matches(':')
        .to_owned();
    let shown = run(&["clients", "show", &client]);
    assert!(
        shown.contains(&format!("user in grouping:{g}"))
            && shown.contains(&format!("groupings: {g}")),
        "{shown}"
    );
    run(&["clients", "revoke", &client, &grant_id]);
    assert!(!run(&["clients", "show", &client]).contains("user in"));
    let shown = run(&["groupings", "show", &g]);
    assert!(shown.contains(&format!("client {client}")), "{shown}");
    run(&["groupings", "remove", &g, "client", &client]);
    assert!(!run(&["groupings", "show", &g]).contains(&client));
    // Fax servers as the command line shows them: listed, shown, revoked.
    let api = Api::new(&sup.url, &sup.token);
    let fs = api
        .post(
            "/v1/fax-servers",
            json!({"name": "fs-cli", "groupings": [g.clone()]}),
        )
        .await
        .expect("fax server");
    assert_eq!(fs.status, 201, "{:?}", fs.body);
    let fs = fs.body["fax_server"]["id"]
        .as_str()
        .expect("fax server id")
        .to_owned();
    let listed = run(&["fax-servers", "list"]);
    assert!(
        listed.contains(&format!("{fs}  fs-cli  offline  groupings: {g}")),
        "{listed}"
    );
    // Tables name their columns.
    for (args, header) in [
        (vec!["fax-servers", "list"], "ID  NAME  STATE  GROUPINGS"),
        (vec!["groupings", "list"], "ID  NAME"),
        (vec!["clients", "list"], "ID  NAME  KIND"),
        (vec!["roles", "list"], "ID  NAME: COMPETENCES"),
        (vec!["inbound-rules", "list"], "ID  PRIORITY  WHEN  TO"),
    ] {
        let out = run(&args);
        assert_eq!(out.lines().next(), Some(header), "{args:?}: {out}");
    }
    // Names where a person would type them: a fax server, a grouping, a client.
    assert!(run(&["fax-servers", "show", "fs-cli"]).contains(&fs));
    assert!(run(&["groupings", "show", "sales"]).contains(&g));
    assert!(run(&["clients", "show", "bot"]).contains(&client));
    assert!(run(&["settings", "get", "fs-cli"]).contains("version"));
    let (ok, out) = faxhub(&config, &["fax-servers", "show", "no-such-server"]);
    assert!(
        !ok && out.contains("no fax server named \"no-such-server\""),
        "{out}"
    );
    let revoked = run(&["fax-servers", "revoke", &fs]);
    assert!(
        revoked.contains(&format!("{fs}  fs-cli  revoked")),
        "{revoked}"
    );
    assert!(run(&["fax-servers", "show", &fs]).contains("revoked"));
    // Refusals name what was wrong.
    let (ok, out) = faxhub(&config, &["clients", "grant", &client, "user", "planet:x"]);
    assert!(
        !ok && out.contains("use all, grouping:ID or fax-server:ID"),
        "{out}"
    );
    let (ok, out) = faxhub(&config, &["roles", "create", "odd", "fly"]);
    assert!(!ok && out.contains("no competence \"fly\""), "{out}");
    // The supervisor's own settings through the same commands.
    let out = run(&[
        "settings",
        "set",
        "supervisor",
        "retry.max_tries=4",
        "retention.audit_days=400",
    ]);
    assert!(
        out.contains("version 1") && out.contains("\"max_tries\": 4"),
        "{out}"
    );
    let history = run(&["settings", "history", "supervisor"]);
    assert!(
        history
            .lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains(" by cli_")),
        "{history}"
    );
    let (ok, out) = faxhub(
        &config,
        &["settings", "set", "supervisor", "retry.max_tries=0"],
    );
    assert!(!ok && out.contains("retry.max_tries"), "{out}");

    // A fax server registered from the CLI (in the administrator's grouping, to send through below),
    // with the command that enrolls it.
    let home = sup
        .admin()
        .default_grouping()
        .await
        .expect("the administrator's grouping");
    let out = run(&[
        "fax-servers",
        "create",
        "fs-new",
        "--grouping",
        &home,
        "--prefix",
        "+1555",
    ]);
    assert!(
        out.contains("fs-new  offline")
            && out.contains(&format!("faxhub node --supervisor {} ", sup.url))
            && out.contains("--enroll fxe_"),
        "{out}"
    );
    // Inbound rules: added, listed, removed.
    let out = run(&[
        "inbound-rules",
        "add",
        "--to-grouping",
        &g,
        "--called",
        "+15550107777",
        "--priority",
        "10",
    ]);
    let rule = out.split_whitespace().next().expect("rule id").to_owned();
    assert!(
        out.contains("priority 10") && out.contains("called +15550107777") && out.contains(&g),
        "{out}"
    );
    assert!(run(&["inbound-rules", "list"]).contains(&rule));
    let (ok, out) = faxhub(&config, &["inbound-rules", "add", "--called", "+1555"]);
    assert!(!ok && out.contains("--to-client or --to-grouping"), "{out}");
    run(&["inbound-rules", "rm", &rule]);
    assert!(!run(&["inbound-rules", "list"]).contains(&rule));
    // The audit log shows those changes.
    let out = run(&["audit", "--target", &rule]);
    assert!(out.contains("ACTION") && out.contains(&rule), "{out}");
    // Send with its options: a time, a priority, a station identity (the job shows them).
    let doc = dir.path().join("page.tif");
    std::fs::write(&doc, tiny_tiff()).expect("write");
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let out = run(&[
        "send",
        &doc.display().to_string(),
        "--to",
        "+15550109876",
        "--at",
        &tomorrow,
        "--priority",
        "7",
        "--tsi",
        "+1 555 0100",
        "--json",
    ]);
    let sent: serde_json::Value = serde_json::from_str(&out).expect("json");
    let job = &sent["jobs"][0];
    assert_eq!(job["priority"], 7, "{sent}");
    assert_eq!(job["options"]["tsi"], "+1 555 0100", "{sent}");
    assert!(
        job["not_before"]
            .as_str()
            .is_some_and(|t| t.starts_with(tomorrow.trim_end_matches('Z'))),
        "{tomorrow}: {sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phonebook_commands_search_add_edit_import_and_export() {
    let dir = tempfile::tempdir().expect("dir");
    let sup = SupervisorProc::start(dir.path(), FAST_CONFIG).expect("supervisor");
    let config = dir.path().join("client.toml");
    let (ok, out) = faxhub(
        &config,
        &["login", "--url", &sup.url, "--token", &sup.token],
    );
    assert!(ok, "{out}");
    let run = |args: &[&str]| {
        let (ok, out) = faxhub(&config, args);
        assert!(ok, "faxhub {args:?}: {out}");
        out
    };
    let out = run(&[
        "phonebook",
        "add",
        "Ann Lee",
        "--fax",
        "+1 555 010 3000",
        "--company",
        "Acme",
        "--visible-to",
        "everyone",
    ]);
    assert!(
        out.contains("Ann Lee (Acme)  fax +15550103000  [everyone]"),
        "{out}"
    );
    let entry = out.split_whitespace().next().expect("id").to_owned();
    run(&["phonebook", "edit", &entry, "company=Globex"]);
    assert!(run(&["phonebook", "search", "glob"]).contains("Ann Lee (Globex)"));
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "name,fax_number\nBo Diaz,+15550103001\nNo Number,\n").expect("csv");
    let out = run(&["phonebook", "import", csv.to_str().expect("path")]);
    assert!(
        out.contains("1 imported, 1 refused") && out.contains("line 3: fax_number"),
        "{out}"
    );
    let vcf = dir.path().join("out.vcf");
    run(&[
        "phonebook",
        "export",
        "--format",
        "vcard4",
        "-o",
        vcf.to_str().expect("path"),
    ]);
    let text = std::fs::read_to_string(&vcf).expect("vcf");
    assert!(
        text.contains("FN:Bo Diaz\r\n") && text.contains("VERSION:4.0"),
        "{text}"
    );
    run(&["phonebook", "rm", &entry]);
    assert!(!run(&["phonebook", "search"]).contains("Ann Lee"));
    let (ok, out) = faxhub(
        &config,
        &[
            "phonebook",
            "add",
            "X",
            "--fax",
            "12",
            "--visible-to",
            "planet",
        ],
    );
    assert!(
        !ok && out.contains("use everyone, client:ID or grouping:ID"),
        "{out}"
    );
}
