//! Starting the real binaries for end-to-end tests, on loopback only, and talking to them as a client would.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `faxhub` binary built beside the test executable (`cargo test --workspace` builds it).
pub fn faxhub_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Tests run from target/<profile>/deps/, tools from target/<profile>/; faxhub is in target/<profile>/.
    let dir = exe.parent().context("executable has no directory")?;
    let candidates = [
        dir.join("faxhub"),
        dir.parent().map(|p| p.join("faxhub")).unwrap_or_default(),
    ];
    candidates.into_iter().find(|b| b.is_file()).with_context(|| {
        format!("no faxhub binary beside {}: build it first (cargo build -p faxhub, or run the whole workspace's tests)", exe.display())
    })
}

/// Runs the `faxhub` command line with a client configuration file and extra environment; whether it
/// succeeded, and its output (stdout, then stderr).
pub fn faxhub_cli(config: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = faxhub_bin().and_then(|bin| {
        Ok(Command::new(bin)
            .args(args)
            .env("FAXHUB_CLIENT_CONFIG", config)
            .env("FAXHUB_LOG", "warn")
            .envs(env.iter().copied())
            .output()?)
    });
    match out {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, format!("running faxhub: {e:#}")),
    }
}

/// An RFC 3339 time the API wrote; panics naming it otherwise.
pub fn time_of(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap_or_else(|e| panic!("{v} is not an RFC 3339 time: {e}"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A child process that is killed (SIGKILL, as a crash) when dropped.
#[derive(Default)]
pub struct Proc(Option<Child>);

impl Proc {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (as systemd and `kill` do) and waits at most `within` for the process to exit: its
    /// exit status, or an error when it is still running then (it is killed).
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.0.take().context("the process is not running")?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill")?;
        if !sent.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("still running {within:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `faxhub serve` process.
pub struct SupervisorProc {
    child: Proc,
    pub dir: PathBuf,
    pub url: String,
    /// The bootstrap administrator's token and password (from the first start).
    pub token: String,
    pub password: String,
    config: PathBuf,
}

/// The bootstrap administrator's token and password, from the file a supervisor's first start leaves in
/// its data directory (`supervisor::BOOTSTRAP_FILE`; this library does not link the supervisor), if it
/// is there.
pub fn bootstrap_credentials(data_dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(data_dir.join("bootstrap-admin.txt")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Some((field("token:")?, field("password:")?))
}

/// The token `/metrics` of a supervisor started here requires.
pub const METRICS_TOKEN: &str = "faxhub-test-metrics-token";

/// Test-friendly deadlines: everything bounded within a few seconds; a one-page attempt's call limit is
/// 15 s (13 s of set-up and 4800 bits at 2400 bit/s), so a fax server gone silent has its jobs sent
/// elsewhere 15 s later.
pub const FAST_CONFIG: &str = r#"
[deadlines]
offered_secs = 3
dialling_secs = 10
transmitting_secs = 10
query_secs = 1
link_grace_secs = 2
heartbeat_secs = 1
call_setup_secs = 13
max_page_bits = 4800

[retry]
schedule_secs = [1]
default_max_tries = 3
max_failovers = 5
"#;

impl SupervisorProc {
    pub fn start(dir: &Path, extra_toml: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let config = dir.join("supervisor.toml");
        // Plain HTTP on loopback only: HTTPS (on by default, on all interfaces) is off unless the test
        // names its own address.
        let https = if extra_toml
            .lines()
            .any(|l| l.trim_start().starts_with("https_listen"))
        {
            ""
        } else {
            "https_listen = \"off\"\n"
        };
        let text = format!(
            "data_dir = {:?}\nhttp_listen = \"127.0.0.1:{port}\"\n{https}metrics_token = {METRICS_TOKEN:?}\n{extra_toml}",
            dir.join("data").display().to_string()
        );
        std::fs::write(&config, text)?;
        let mut s = Self {
            child: Proc::default(),
            dir: dir.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            password: String::new(),
            config,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut child = Command::new(faxhub_bin()?)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env(
                "FAXHUB_LOG",
                std::env::var("FAXHUB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting faxhub serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Proc(Some(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("faxhub serve did not announce its API within 30 s");
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    assert!(
                        !line.contains("password: ") && !line.contains("token: "),
                        "faxhub serve printed a credential: {line}"
                    );
                    if line.starts_with("API: http://") {
                        if let Some((token, password)) =
                            bootstrap_credentials(&self.dir.join("data"))
                        {
                            self.token = token;
                            self.password = password;
                        }
                        return Ok(());
                    }
                }
                Err(_) => bail!("faxhub serve exited or stayed silent before announcing its API"),
            }
        }
    }

    /// The configuration file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// SIGTERM, as systemd stops it: its exit status within `within` (see [`Proc::terminate`]).
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.child.terminate(within)
    }

    /// Starts it again after it stopped, on the same data directory and configuration.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    /// The `faxhub serve` process id (to watch its memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn admin(&self) -> Api {
        Api::new(&self.url, &self.token)
    }

    /// Lets webhooks reach this machine, with the command the documentation gives:
    /// `faxhub settings set supervisor 'webhooks.allowed_networks=["127.0.0.0/8","::1"]'`.
    pub fn allow_loopback_webhooks(&self) -> anyhow::Result<()> {
        let client_config = self.dir.join("admin-client.toml");
        let faxhub = |args: &[&str]| -> anyhow::Result<()> {
            let (ok, out) = faxhub_cli(&client_config, &[], args);
            if !ok {
                bail!("faxhub {args:?} failed: {out}");
            }
            Ok(())
        };
        faxhub(&["login", "--url", &self.url, "--token", &self.token])?;
        faxhub(&[
            "settings",
            "set",
            "supervisor",
            r#"webhooks.allowed_networks=["127.0.0.0/8","::1"]"#,
        ])
    }
}

/// A `faxhub-testnode` process: the real fax server runtime over a scripted line.
pub struct NodeProc {
    child: Proc,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub inject: PathBuf,
    args: Vec<String>,
    bin: PathBuf,
}

/// A test fax server to start: its registration and its line.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub prefixes: &'a [&'a str],
    pub groupings: &'a [&'a str],
    pub channels: u32,
    /// A [`crate::Script`] as JSON.
    pub script: serde_json::Value,
    /// Where it reaches the supervisor, when not directly (a [`crate::proxy::LinkProxy`]'s URL).
    pub via: Option<String>,
    /// On SIGTERM, seconds its calls get to finish (`faxhub-testnode --drain-secs`; 30 when `None`).
    pub drain_secs: Option<u64>,
}

impl NodeProc {
    /// Registers a fax server with the supervisor (name, prefixes, groupings) and starts it.
    pub async fn start(
        bin: &Path,
        sup: &SupervisorProc,
        name: &str,
        prefixes: &[&str],
        groupings: &[&str],
        channels: u32,
        script: serde_json::Value,
    ) -> anyhow::Result<(Self, String)> {
        let spec = NodeSpec {
            name,
            prefixes,
            groupings,
            channels,
            script,
            via: None,
            drain_secs: None,
        };
        Self::start_spec(bin, sup, spec).await
    }

    /// Registers a fax server with the supervisor and starts it, as `spec` says.
    pub async fn start_spec(
        bin: &Path,
        sup: &SupervisorProc,
        spec: NodeSpec<'_>,
    ) -> anyhow::Result<(Self, String)> {
        let NodeSpec {
            name,
            prefixes,
            groupings,
            channels,
            script,
            via,
            drain_secs,
        } = spec;
        let made = sup
            .admin()
            .post("/v1/fax-servers", serde_json::json!({"name": name, "dial_prefixes": prefixes, "groupings": groupings}))
            .await?
            .expect_status(201)?;
        let id = made["fax_server"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let token = made["enrollment_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let dir = sup.dir.join(format!("node-{name}"));
        std::fs::create_dir_all(&dir)?;
        let script_path = dir.join("script.json");
        std::fs::write(&script_path, script.to_string())?;
        let log = dir.join("executed.log");
        let inject = dir.join("inject");
        let args: Vec<String> = vec![
            "--supervisor".into(),
            via.unwrap_or_else(|| sup.url.clone()),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
            "--enroll".into(),
            token,
            "--channels".into(),
            channels.to_string(),
            "--script".into(),
            script_path.display().to_string(),
            "--log".into(),
            log.display().to_string(),
            "--inject-dir".into(),
            inject.display().to_string(),
            "--drain-secs".into(),
            drain_secs.unwrap_or(30).to_string(),
        ];
        let mut node = Self {
            child: Proc::default(),
            state_dir: dir,
            log,
            inject,
            args,
            bin: bin.to_owned(),
        };
        node.spawn()?;
        Ok((node, id))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Proc(Some(child));
        Ok(())
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// SIGTERM: its exit status within `within` (see [`Proc::terminate`]).
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.child.terminate(within)
    }

    /// How its graceful stop went, as `faxhub-testnode` leaves it in `stopped.json` (calls cut, messages
    /// unacknowledged).
    pub fn stopped(&self) -> anyhow::Result<serde_json::Value> {
        let path = self.state_dir.join("stopped.json");
        Ok(serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )?)
    }

    /// Attempt ids this fax server's line executed, in order.
    pub fn executed(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// The numbers of the faxes this fax server's line received (the far end of other fax servers'
    /// scripted lines, see `Script::deliver_to`), one per fax.
    pub fn received(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.inject) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "done"))
            .filter_map(|e| {
                let fax: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                fax["called"].as_str().map(str::to_owned)
            })
            .collect()
    }

    /// Makes the line "receive" a fax.
    pub fn inject(&self, tiff: &Path, caller: &str, called: &str, tsi: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.inject)?;
        let n = std::fs::read_dir(&self.inject)?.count();
        let json = serde_json::json!({"tiff": tiff, "caller": caller, "called": called, "tsi": tsi, "pages": 1});
        let tmp = self.inject.join(format!("{n}.tmp"));
        std::fs::write(&tmp, json.to_string())?;
        std::fs::rename(&tmp, self.inject.join(format!("{n}.json")))?;
        Ok(())
    }
}

/// A REST client as an application would use it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn expect_status(self, want: u16) -> anyhow::Result<serde_json::Value> {
        if self.status != want {
            bail!("expected HTTP {want}, got {}: {}", self.status, self.body);
        }
        Ok(self.body)
    }
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http,
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    async fn reply(r: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    /// GET `path`, which must answer 200: its body.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.get(path).await?.expect_status(200)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .delete(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .put(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .patch(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    /// Uploads raw bytes as a document.
    pub async fn upload(&self, bytes: Vec<u8>) -> anyhow::Result<Reply> {
        Self::reply(
            self.http
                .post(format!("{}/v1/documents", self.base))
                .bearer_auth(&self.token)
                .body(bytes),
        )
        .await
    }

    /// Submits the uploaded document `doc` to one number, with `extra` submission fields; the job made,
    /// which must be accepted (201).
    pub async fn submit_to(
        &self,
        doc: &str,
        to: &str,
        extra: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let mut body = serde_json::json!({"recipients": [to], "documents": [doc]});
        if let (Some(b), serde_json::Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let made = self.post("/v1/jobs", body).await?.expect_status(201)?;
        Ok(made["jobs"][0].clone())
    }

    /// Uploads a document, which must be accepted: its SHA-256.
    pub async fn upload_sha(&self, bytes: Vec<u8>) -> anyhow::Result<String> {
        let doc = self.upload(bytes).await?.expect_status(201)?;
        doc["sha256"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no sha256 in {doc}"))
    }

    /// The first grouping the caller sees: for the bootstrap administrator, the bootstrap grouping.
    pub async fn default_grouping(&self) -> anyhow::Result<String> {
        let gs = self.get("/v1/groupings").await?.expect_status(200)?;
        gs[0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no grouping in {gs}"))
    }

    /// A new grouping; its id.
    pub async fn new_grouping(&self, name: &str) -> anyhow::Result<String> {
        let g = self
            .post("/v1/groupings", serde_json::json!({"name": name}))
            .await?
            .expect_status(201)?;
        g["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no id in {g}"))
    }

    /// A new application client in `groupings` (with `grants` when given); its API and id.
    pub async fn new_application(
        &self,
        name: &str,
        groupings: &[&str],
        grants: Option<serde_json::Value>,
    ) -> anyhow::Result<(Api, String)> {
        let mut body =
            serde_json::json!({"name": name, "kind": "application", "groupings": groupings});
        if let Some(g) = grants {
            body["grants"] = g;
        }
        let c = self.post("/v1/clients", body).await?.expect_status(201)?;
        let (Some(token), Some(id)) = (c["token"].as_str(), c["client"]["id"].as_str()) else {
            bail!("no token or id in {c}");
        };
        Ok((self.with_token(token), id.to_owned()))
    }

    /// Waits until every one of these fax servers is online.
    pub async fn wait_online(&self, ids: &[&str]) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.get("/v1/fax-servers").await?.expect_status(200)?;
            let online = |id: &&str| {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| f["id"] == *id && f["online"] == true)
            };
            if ids.iter().all(online) {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("fax servers {ids:?} did not come online: {list}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a job until `done(status)` holds or the time is up; returns the last view.
    pub async fn wait_job(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let until = Instant::now() + within;
        loop {
            let job = self
                .get(&format!("/v1/jobs/{id}"))
                .await?
                .expect_status(200)?;
            if done(job["status"].as_str().unwrap_or_default()) {
                return Ok(job);
            }
            if Instant::now() > until {
                bail!("job {id} did not reach the awaited state within {within:?}: {job}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A temporary directory for one test's processes, removed when dropped.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// A minimal valid one-page TIFF (8×1 pixels, uncompressed), enough for the supervisor's checks.
pub fn tiny_tiff() -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 3, 1, 8),   // ImageWidth
        (257, 3, 1, 1),   // ImageLength
        (258, 3, 1, 1),   // BitsPerSample
        (259, 3, 1, 1),   // Compression none
        (262, 3, 1, 0),   // WhiteIsZero
        (273, 4, 1, 110), // StripOffsets
        (278, 3, 1, 1),   // RowsPerStrip
        (279, 4, 1, 1),   // StripByteCounts
    ];
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&value.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(b.len(), 110);
    b.push(0b1010_1010);
    b
}

/// The rows of every page of a TIFF-F below the header line band (80 rows at fine resolution), with each
/// page's width and height: two sendings of one document compare equal though their header dates differ.
pub fn pages_below_header(tiff: &[u8]) -> anyhow::Result<Vec<(u32, u32, Vec<u8>)>> {
    let pages = t4::tiff::read(tiff, &t4::tiff::ReadLimits::default())?;
    Ok(pages
        .iter()
        .map(|p| {
            let r = p.as_page();
            let stride = t4::stride(r.width);
            (
                r.width,
                r.height,
                r.data[(stride * 80).min(r.data.len())..].to_vec(),
            )
        })
        .collect())
}

/// Reads a Server-Sent Events response until `want` events of type `kind` came (within 20 s): their
/// `id` and parsed `data`.
pub async fn read_sse(
    resp: reqwest::Response,
    kind: &str,
    want: usize,
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    use futures::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < want {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .with_context(|| format!("{} of {want} {kind} events in 20 s", out.len()))?
            .context("the event stream ended")??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if field("event:").as_deref() == Some(kind) {
                let data = serde_json::from_str(&field("data:").unwrap_or_default())
                    .context("an event's data is not JSON")?;
                out.push((field("id:").unwrap_or_default(), data));
            }
        }
    }
    Ok(out)
}

/// How many of a delivery's `webhook-signature` signatures verify with `secret`, checked as the Standard
/// Webhooks specification says (independently of the supervisor's code): the key is the base64 after
/// `whsec_`, the signed content `"{webhook-id}.{webhook-timestamp}.{body}"`, each signature `v1,<base64>`.
pub fn standard_webhook_valid(
    secret: &str,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> usize {
    use base64::Engine;
    use hmac::Mac;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
    else {
        return 0;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return 0;
    };
    mac.update(
        format!(
            "{}.{}.{body}",
            header("webhook-id"),
            header("webhook-timestamp")
        )
        .as_bytes(),
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature")
        .split(' ')
        .filter(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
        .count()
}
