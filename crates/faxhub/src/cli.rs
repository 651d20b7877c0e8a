//! The client CLI: `login`, `logout`, `send` (with `--wait`), `status`, `jobs`, `cancel`, `inbox`, `fetch`,
//! `webhooks`.
//! Credentials are kept in `$XDG_CONFIG_HOME/faxhub/client.toml` (or `~/.config/...`), readable by the
//! owner only.

/// `println!` for a client command's text output, left out with `--json`.
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::cli::json() {
            println!($($arg)*);
        }
    };
}
pub(crate) use say;

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::StreamExt;
use protocol::job::JobStatus;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use supervisor::api::Paged;
use supervisor::api::error::ErrorBody;
use supervisor::api::events::InboundView;
use supervisor::api::jobs::{JobView, SubmitResponse};
use supervisor::api::settings::{SettingsView, VersionView};
use supervisor::api::supervisor_settings::{SupervisorSettingsView, SupervisorVersionView};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Store the supervisor URL and a token (given, or obtained with name and password).
    Login {
        /// The supervisor's base URL, e.g. https://supervisor.example:8443.
        #[arg(long)]
        url: String,
        /// An API token (fxh_…) to store.
        #[arg(long)]
        token: Option<String>,
        /// Sign in as this client with its password (asked for on a terminal).
        #[arg(long)]
        name: Option<String>,
        /// Read from FAXHUB_PASSWORD when not given.
        #[arg(long, env = "FAXHUB_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// PEM certificate (or CA) of the supervisor to trust, for a self-signed certificate.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Sign out: revoke the stored token and forget it.
    Logout,
    /// Send documents to one or more recipients.
    Send {
        /// Documents (PDF, TIFF, PNG, JPEG, GIF, text).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Recipient numbers (repeat for several).
        #[arg(long = "to", required_unless_present = "entries")]
        to: Vec<String>,
        /// Phonebook entries (ids) as recipients (repeat for several).
        #[arg(long = "entry")]
        entries: Vec<String>,
        /// standard, fine (default) or superfine.
        #[arg(long)]
        resolution: Option<String>,
        /// Send without error correction.
        #[arg(long)]
        no_ecm: bool,
        /// Tries in all (1 to 100).
        #[arg(long)]
        max_tries: Option<u32>,
        /// Page header text: up to 60 printable characters (no line breaks or control characters).
        #[arg(long)]
        header: Option<String>,
        /// Do not send before this time (RFC 3339, e.g. 2026-12-24T08:00:00Z).
        #[arg(long)]
        at: Option<String>,
        /// 0 (most urgent) to 255; default 127.
        #[arg(long)]
        priority: Option<u8>,
        /// Station identity sent to the far end (digits, spaces and +).
        #[arg(long)]
        tsi: Option<String>,
        /// Seconds between tries after busy or no answer.
        #[arg(long)]
        retry_delay: Option<u64>,
        /// Give up this many seconds after submission.
        #[arg(long)]
        kill_after: Option<u64>,
        /// Follow the jobs until they finish, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Show one job with its attempts.
    Status {
        /// The job's id.
        job: String,
    },
    /// List your jobs; with --all, --grouping or --client also those of the queues you administer
    /// (competence manage_jobs), as `faxstat -s` shows an administrator.
    Jobs {
        /// Only jobs in this status (queued, dispatched, active, in_doubt, sent, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Your jobs and those of every client whose queue you administer.
        #[arg(long, conflicts_with_all = ["grouping", "client"])]
        all: bool,
        /// The jobs of the clients of this grouping (id or name).
        #[arg(long, conflicts_with = "client")]
        grouping: Option<String>,
        /// The jobs of this client (id or name).
        #[arg(long)]
        client: Option<String>,
    },
    /// Cancel a job (yours, or one in a queue you administer).
    Cancel {
        /// The job's id.
        job: String,
    },
    /// Change a queued job, as `faxalter` does: when it may be sent, its priority, its tries, when it is
    /// given up.
    Alter {
        /// The job's id.
        job: String,
        /// Do not send before this time (RFC 3339, e.g. 2026-12-24T08:00:00Z).
        #[arg(long)]
        at: Option<String>,
        /// 0 (most urgent) to 255.
        #[arg(long)]
        priority: Option<u8>,
        /// Tries in all, counting those made (1 to 100).
        #[arg(long)]
        max_tries: Option<u32>,
        /// Give up at this time (RFC 3339) if not sent by then.
        #[arg(long)]
        kill_at: Option<String>,
    },
    /// Send a finished job again, as a new job of the same client.
    Resend {
        /// The job's id.
        job: String,
    },
    /// List received faxes.
    Inbox {
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Read and change fax server settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Administer clients, their grants and tokens.
    #[command(subcommand)]
    Clients(crate::admin_cli::ClientsCommand),
    /// Define and list roles (named bundles of competences).
    #[command(subcommand)]
    Roles(crate::admin_cli::RolesCommand),
    /// Search and keep the phonebook.
    #[command(subcommand)]
    Phonebook(crate::phonebook_cli::PhonebookCommand),
    /// Administer groupings and their members.
    #[command(subcommand)]
    Groupings(crate::admin_cli::GroupingsCommand),
    /// Register and delete webhooks, and read their delivery logs.
    #[command(subcommand)]
    Webhooks(crate::webhooks_cli::WebhooksCommand),
    /// Register, list, revoke and delete fax servers.
    #[command(subcommand, name = "fax-servers")]
    FaxServers(crate::admin_cli::FaxServersCommand),
    /// The inbound routing rules: which clients or shared inboxes a received fax goes to.
    #[command(subcommand, name = "inbound-rules")]
    InboundRules(crate::admin_cli::InboundRulesCommand),
    /// Read the audit log (administrative changes and sign-ins), newest first.
    Audit {
        /// Only entries about this object (an id).
        #[arg(long)]
        target: Option<String>,
        /// Only this action, e.g. settings.changed, job.cancel.
        #[arg(long)]
        action: Option<String>,
        /// Only this actor (a client id).
        #[arg(long)]
        actor: Option<String>,
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Download a received fax as TIFF.
    Fetch {
        /// The received fax's id (as `faxhub inbox` prints it).
        inbound: String,
        /// Where to write the TIFF file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Show a fax server's settings with the desired and applied versions (`supervisor` for the
    /// supervisor's own).
    Get {
        /// The fax server (id or name), or `supervisor` for the supervisor's own settings.
        fax_server: String,
    },
    /// Change settings: `path=value` pairs (values are JSON, else strings), e.g. `channels=8
    /// station_id="+1 555 0100" t38.ecm=false`; or a whole document with --file. A new sip.registrar or
    /// sip.proxy discards the stored SIP password unless sip.password is given in the same command.
    ///
    /// Webhooks reach only public addresses; to let them reach the supervisor's machine:
    /// `faxhub settings set supervisor 'webhooks.allowed_networks=["127.0.0.0/8","::1"]'`.
    Set {
        /// The fax server (id or name), or `supervisor` for the supervisor's own settings.
        fax_server: String,
        /// `path=value` pairs (values are JSON, else strings).
        changes: Vec<String>,
        /// A whole settings document (JSON) instead of pairs.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List the versions of a fax server's settings.
    History {
        /// The fax server (id or name), or `supervisor` for the supervisor's own settings.
        fax_server: String,
    },
    /// Register an earlier version again.
    Rollback {
        /// The fax server (id or name), or `supervisor` for the supervisor's own settings.
        fax_server: String,
        /// The version to register again (as `settings history` lists them).
        version: i64,
    },
}

/// Turns `a.b=value` pairs into a JSON merge patch.
fn patch_from_pairs(pairs: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut patch = serde_json::json!({});
    for pair in pairs {
        let (path, value) = pair
            .split_once('=')
            .with_context(|| format!("{pair:?} is not path=value"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        let mut node = &mut patch;
        let keys: Vec<&str> = path.split('.').collect();
        for (i, key) in keys.iter().enumerate() {
            if key.is_empty() {
                bail!("{path:?} has an empty part");
            }
            let map = node
                .as_object_mut()
                .context("a path goes through a value")?;
            if i + 1 == keys.len() {
                map.insert((*key).to_owned(), value.clone());
                break;
            }
            node = map
                .entry((*key).to_owned())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    Ok(patch)
}

#[derive(Serialize, Deserialize)]
struct ClientConfig {
    url: String,
    token: String,
    /// PEM certificate (or CA) of the supervisor to trust, for a self-signed certificate.
    ca_cert: Option<PathBuf>,
}

fn config_path() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("FAXHUB_CLIENT_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(base.join("faxhub/client.toml"))
}

/// A small authenticated JSON client for the REST API.
pub struct Api {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let tls = node::tls_client_config(ca_cert)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub fn load() -> anyhow::Result<Self> {
        let path = config_path()?;
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "not logged in ({} missing); run `faxhub login`",
                path.display()
            )
        })?;
        let c: ClientConfig =
            toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?;
        Self::new(&c.url, &c.token, c.ca_cert.as_deref())
    }

    pub(crate) async fn check(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_success() {
            *LAST_ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = Some(body.clone());
        } else {
            let message = match serde_json::from_value::<ErrorBody>(body) {
                Ok(ErrorBody { error: e }) => {
                    format!("{status}: {} (request {})", e.message, e.request_id)
                }
                Err(_) => format!("{status}: the supervisor said no more"),
            };
            return Err(Failure::of_status(status.as_u16(), message).into());
        }
        Ok(body)
    }

    /// Sends a request; a failure to reach the supervisor is a network failure naming the URL, and an
    /// untrusted certificate says so and how to trust it.
    async fn sent(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        req.send()
            .await
            .map_err(|e| Failure::network(&self.base, &e).into())
    }

    /// GETs `path` and reads the answer as the supervisor's view `T`.
    pub async fn get_view<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        view(self.get(path).await?)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// A request to `path` carrying the token.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a JSON body (or none) with any method and checks the answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::check(self.sent(req).await?).await
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .sent(self.request(reqwest::Method::POST, path).body(body))
            .await?;
        Self::check(resp).await
    }

    /// A text answer (exports).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        String::from_utf8(self.get_bytes(path).await?)
            .context("the supervisor's answer is not text")
    }

    /// A binary answer (a received fax, a document).
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.get_ok(path).await?.bytes().await?.to_vec())
    }

    /// The caller's event stream from now on (the supervisor starts a stream without a position at the
    /// newest event).
    pub async fn events_from_now(&self) -> anyhow::Result<reqwest::Response> {
        self.get_ok("/v1/events").await
    }

    /// A successful answer, its body unread; an error answer as its message.
    async fn get_ok(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self.sent(self.request(reqwest::Method::GET, path)).await?;
        if !resp.status().is_success() {
            Self::check(resp).await?;
            bail!("the request failed");
        }
        Ok(resp)
    }

    pub async fn put_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// POSTs a multipart form (a submission with its documents) and checks the answer.
    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .sent(self.request(reqwest::Method::POST, path).multipart(form))
            .await?;
        Self::check(resp).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// What a job is doing and why, in words: the reason shown is the one for its state now (a sent job
/// carries no stale failure; during a retry wait, why and until when).
fn state_in_words(j: &JobView) -> String {
    let reason = j.reason.as_deref().unwrap_or("no reason given");
    match j.status {
        JobStatus::Queued if j.tries > 0 => format!(
            "waiting for try {} of {} until {}: the last try ended with {reason}",
            j.tries + 1,
            j.max_tries,
            j.not_before
        ),
        JobStatus::Queued => format!("queued; not sent before {}", j.not_before),
        JobStatus::Dispatched => "handed to a fax server".to_owned(),
        JobStatus::Active => "being sent".to_owned(),
        JobStatus::InDoubt => {
            "its fax server went silent during the call; see the attempt below".to_owned()
        }
        JobStatus::Sent => format!(
            "sent {} page(s) at {}",
            j.pages_sent,
            j.finished_at.as_deref().unwrap_or("-")
        ),
        JobStatus::Failed => format!("failed: {reason}"),
        JobStatus::Cancelled => format!("cancelled: {reason}"),
    }
}

pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Login {
            url,
            token,
            name,
            password,
            ca_cert,
        } => {
            let token = match (token, name) {
                (Some(t), _) => t,
                (None, Some(name)) => {
                    let password = match password {
                        Some(p) => p,
                        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                            prompt_password(&format!("password for {name}: "))?
                        }
                        None => bail!(
                            "give --password, set FAXHUB_PASSWORD, or run on a terminal to be asked"
                        ),
                    };
                    let api = Api::new(&url, "", ca_cert.as_deref())?;
                    let body = Api::check(
                        api.sent(
                            api.http
                                .post(format!("{}/v1/sessions", api.base))
                                .json(&serde_json::json!({"name": name, "password": password})),
                        )
                        .await?,
                    )
                    .await?;
                    body["token"].as_str().unwrap_or_default().to_owned()
                }
                (None, None) => bail!("give --token, or --name with a password"),
            };
            let api = Api::new(&url, &token, ca_cert.as_deref())?;
            let me = api
                .get("/v1/me")
                .await
                .context("the token was not accepted")?;
            let path = config_path()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = toml::to_string(&ClientConfig {
                url,
                token,
                ca_cert,
            })?;
            supervisor::tls::write_private(&path, text.as_bytes())?;
            say!("logged in as {}", me["name"].as_str().unwrap_or("?"));
            Ok(())
        }
        ClientCommand::Logout => {
            let api = Api::load()?;
            api.delete("/v1/sessions").await?;
            let path = config_path()?;
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            say!("signed out; the token is revoked");
            Ok(())
        }
        ClientCommand::Send {
            files,
            to,
            entries,
            resolution,
            no_ecm,
            max_tries,
            header,
            at,
            priority,
            tsi,
            retry_delay,
            kill_after,
            wait,
        } => {
            let api = Api::load()?;
            let request = supervisor::jobs::SubmitRequest {
                recipients: to,
                recipient_entries: entries,
                resolution,
                ecm: Some(!no_ecm),
                max_tries,
                kill_after_secs: kill_after,
                send_at: at,
                header,
                tsi,
                priority,
                retry_delay_secs: retry_delay,
                idempotency_key: Some(uuid_like()),
                ..Default::default()
            };
            let request = serde_json::to_value(&request)?;
            let mut form = reqwest::multipart::Form::new().text("request", request.to_string());
            for f in &files {
                let bytes = tokio::fs::read(f)
                    .await
                    .with_context(|| format!("reading {}", f.display()))?;
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                form = form.part(
                    "document",
                    reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
            }
            // With --wait, the event stream is opened first: it starts at that moment, so it holds every
            // event of the new jobs and none of what came before.
            let events = if wait {
                Some(api.events_from_now().await?)
            } else {
                None
            };
            let body: SubmitResponse = view(api.post_multipart("/v1/jobs", form).await?)?;
            let ids: Vec<String> = body.jobs.iter().map(|j| j.id.clone()).collect();
            for j in &body.jobs {
                say!("{}  {}  {}", j.id, j.recipient, j.status);
            }
            match events {
                Some(events) => follow(events, ids).await,
                None => Ok(()),
            }
        }
        ClientCommand::Status { job } => {
            let api = Api::load()?;
            let j: JobView = api.get_view(&format!("/v1/jobs/{job}")).await?;
            say!(
                "{}  {}  {}  tries {}/{}  pages {}/{}",
                j.id,
                j.recipient,
                j.status,
                j.tries,
                j.max_tries,
                j.pages_sent,
                j.pages_total
            );
            say!("  {}", state_in_words(&j));
            for a in j.attempts.unwrap_or_default() {
                let doubt = a
                    .in_doubt_until
                    .map(|t| {
                        format!(
                            "  (its fax server is silent; sent again after {t} unless it reports)"
                        )
                    })
                    .unwrap_or_default();
                say!(
                    "  attempt {}  {}  {}  {}  {}{doubt}",
                    a.number,
                    a.fax_server_id,
                    a.status,
                    a.phase,
                    a.reason.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        ClientCommand::Jobs {
            status,
            limit,
            all,
            grouping,
            client,
        } => {
            let api = Api::load()?;
            let mut query = vec![("limit", limit.to_string())];
            query.extend(status.map(|s| ("status", s)));
            if let Some(g) = grouping {
                query.push(("grouping_id", resolve(&api, Named::Grouping, &g).await?));
            }
            if let Some(c) = client {
                query.push(("client_id", resolve(&api, Named::Client, &c).await?));
            }
            if all {
                query.push(("scope", "managed".to_owned()));
            }
            let url = reqwest::Url::parse_with_params("http://faxhub/v1/jobs", &query)?;
            let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
            let page: Paged<JobView> = api.get_view(&path).await?;
            say!(
                "{:<30} {:<24} {:<16} {:<10} CREATED",
                "JOB",
                "CLIENT",
                "RECIPIENT",
                "STATUS"
            );
            for j in page.items {
                say!(
                    "{:<30} {:<24} {:<16} {:<10} {}",
                    j.id,
                    j.client_id,
                    j.recipient,
                    j.status,
                    j.created_at
                );
            }
            Ok(())
        }
        ClientCommand::Alter {
            job,
            at,
            priority,
            max_tries,
            kill_at,
        } => {
            let api = Api::load()?;
            let change = supervisor::jobs::AlterRequest {
                send_at: at,
                priority,
                max_tries,
                kill_at,
            };
            let j: JobView = view(
                api.send(
                    reqwest::Method::PATCH,
                    &format!("/v1/jobs/{job}"),
                    Some(&serde_json::to_value(&change)?),
                )
                .await?,
            )?;
            say!(
                "{}  {}  priority {}  tries {}/{}  not before {}  given up at {}",
                j.id,
                j.status,
                j.priority,
                j.tries,
                j.max_tries,
                j.not_before,
                j.kill_at
            );
            Ok(())
        }
        ClientCommand::Resend { job } => {
            let api = Api::load()?;
            let body: SubmitResponse = view(
                api.post_json(&format!("/v1/jobs/{job}/resend"), &serde_json::json!({}))
                    .await?,
            )?;
            for j in &body.jobs {
                say!("{}  {}  {}", j.id, j.recipient, j.status);
            }
            Ok(())
        }
        ClientCommand::Cancel { job } => {
            let api = Api::load()?;
            let j: JobView = view(
                api.post_json(&format!("/v1/jobs/{job}/cancel"), &serde_json::json!({}))
                    .await?,
            )?;
            say!("{}  {}", j.id, j.status);
            Ok(())
        }
        ClientCommand::Inbox { limit } => {
            let api = Api::load()?;
            let page: Paged<InboundView> =
                api.get_view(&format!("/v1/inbox?limit={limit}")).await?;
            say!("ID  FROM  TSI  PAGES  RECEIVED");
            for f in page.items {
                say!(
                    "{}  from {:<16} tsi {:<20} pages {}  {}",
                    f.id,
                    f.caller_number.as_deref().unwrap_or("-"),
                    f.tsi.as_deref().unwrap_or("-"),
                    f.pages,
                    f.received_at
                );
            }
            Ok(())
        }
        ClientCommand::Settings(cmd) => settings(cmd).await,
        ClientCommand::Clients(cmd) => crate::admin_cli::clients(cmd).await,
        ClientCommand::Roles(cmd) => crate::admin_cli::roles(cmd).await,
        ClientCommand::Groupings(cmd) => crate::admin_cli::groupings(cmd).await,
        ClientCommand::FaxServers(cmd) => crate::admin_cli::fax_servers(cmd).await,
        ClientCommand::InboundRules(cmd) => crate::admin_cli::inbound_rules(cmd).await,
        ClientCommand::Audit {
            target,
            action,
            actor,
            limit,
        } => crate::admin_cli::audit(target, action, actor, limit).await,
        ClientCommand::Phonebook(cmd) => crate::phonebook_cli::run(cmd).await,
        ClientCommand::Webhooks(cmd) => crate::webhooks_cli::run(cmd).await,
        ClientCommand::Fetch { inbound, output } => {
            let api = Api::load()?;
            let bytes = api
                .get_bytes(&format!("/v1/inbox/{inbound}/document"))
                .await?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            say!("{} bytes written to {}", bytes.len(), output.display());
            Ok(())
        }
    }
}

/// Prints a settings answer: the supervisor's own settings, or a fax server's with its versions.
fn show_settings(supervisor: bool, v: serde_json::Value) -> anyhow::Result<()> {
    let settings = if supervisor {
        let v: SupervisorSettingsView = view(v)?;
        say!("version {}", v.version);
        serde_json::to_string_pretty(&v.settings)?
    } else {
        let v: SettingsView = view(v)?;
        say!(
            "desired version {}  applied version {}{}",
            v.desired_version,
            v.applied_version,
            if v.pending { "  (pending)" } else { "" }
        );
        if let Some(e) = &v.last_error {
            say!(
                "refused version {}: {e}",
                v.error_version
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            );
        }
        serde_json::to_string_pretty(&v.settings)?
    };
    say!("{settings}");
    Ok(())
}

async fn settings(cmd: SettingsCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    let show = |target: &str, v| show_settings(target == "supervisor", v);
    // "supervisor" names the supervisor's own settings; anything else is a fax server id.
    let base = |target: &str| {
        if target == "supervisor" {
            "/v1/settings".to_owned()
        } else {
            format!("/v1/fax-servers/{target}/settings")
        }
    };
    // A fax server may be named by its name.
    let cmd = match cmd {
        SettingsCommand::Get { fax_server } if fax_server != "supervisor" => SettingsCommand::Get {
            fax_server: resolve(&api, Named::FaxServer, &fax_server).await?,
        },
        SettingsCommand::Set {
            fax_server,
            changes,
            file,
        } if fax_server != "supervisor" => SettingsCommand::Set {
            fax_server: resolve(&api, Named::FaxServer, &fax_server).await?,
            changes,
            file,
        },
        SettingsCommand::History { fax_server } if fax_server != "supervisor" => {
            SettingsCommand::History {
                fax_server: resolve(&api, Named::FaxServer, &fax_server).await?,
            }
        }
        SettingsCommand::Rollback {
            fax_server,
            version,
        } if fax_server != "supervisor" => SettingsCommand::Rollback {
            fax_server: resolve(&api, Named::FaxServer, &fax_server).await?,
            version,
        },
        other => other,
    };
    match cmd {
        SettingsCommand::Get { fax_server } => {
            show(&fax_server, api.get(&base(&fax_server)).await?)?
        }
        SettingsCommand::Set {
            fax_server,
            changes,
            file,
        } => {
            let path = base(&fax_server);
            let answer = match file {
                Some(f) => {
                    let doc: serde_json::Value = serde_json::from_slice(
                        &std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
                    )
                    .with_context(|| format!("{} is not JSON", f.display()))?;
                    api.put_json(&path, &doc).await?
                }
                None => {
                    let patch = patch_from_pairs(&changes)?;
                    api.send(reqwest::Method::PATCH, &path, Some(&patch))
                        .await?
                }
            };
            show(&fax_server, answer)?;
        }
        SettingsCommand::History { fax_server } => {
            let history = api.get(&format!("{}/history", base(&fax_server))).await?;
            let versions: Vec<(i64, String, String)> = if fax_server == "supervisor" {
                view::<Vec<SupervisorVersionView>>(history)?
                    .into_iter()
                    .map(|v| (v.version, v.created_at, v.created_by))
                    .collect()
            } else {
                view::<Vec<VersionView>>(history)?
                    .into_iter()
                    .map(|v| (v.version, v.created_at, v.created_by))
                    .collect()
            };
            for (version, at, by) in versions {
                say!("{version:>4}  {at}  by {by}");
            }
        }
        SettingsCommand::Rollback {
            fax_server,
            version,
        } => {
            let answer = api
                .post_json(
                    &format!("{}/rollback", base(&fax_server)),
                    &serde_json::json!({"version": version}),
                )
                .await?;
            show(&fax_server, answer)?;
        }
    }
    Ok(())
}

fn uuid_like() -> String {
    format!("cli-{}-{}", std::process::id(), store_now())
}

fn store_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Prints the events of the jobs `open` from the event stream `events` until each has ended.
async fn follow(events: reqwest::Response, mut open: Vec<String>) -> anyhow::Result<()> {
    let mut stream = events.bytes_stream();
    let mut buf = String::new();
    let mut failed = false;
    while !open.is_empty() {
        let Some(chunk) = stream.next().await else {
            bail!("the event stream ended")
        };
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let ev: serde_json::Value = serde_json::from_str(data.trim()).unwrap_or_default();
            let job = ev["data"]["job_id"].as_str().unwrap_or_default().to_owned();
            if !open.contains(&job) {
                continue;
            }
            let kind = ev["type"].as_str().unwrap_or_default();
            match kind {
                "job.progress" => say!(
                    "{job}: {} {}",
                    ev["data"]["phase"].as_str().unwrap_or(""),
                    ev["data"]["page"]
                        .as_u64()
                        .map(|p| format!("page {p}/{}", ev["data"]["pages_total"]))
                        .unwrap_or_default()
                ),
                "job.in_doubt" => say!(
                    "{job}: in doubt: {} (sent again after {} unless it reports)",
                    ev["data"]["reason"].as_str().unwrap_or(""),
                    ev["data"]["until"]
                        .as_i64()
                        .map(supervisor::api::rfc3339)
                        .unwrap_or_default()
                ),
                "job.sent" | "job.failed" | "job.cancelled" => {
                    say!(
                        "{job}: {} {}",
                        kind.trim_start_matches("job."),
                        ev["data"]["reason"].as_str().unwrap_or("")
                    );
                    failed |= kind != "job.sent";
                    open.retain(|j| j != &job);
                }
                other => say!("{job}: {}", other.trim_start_matches("job.")),
            }
        }
    }
    if failed {
        return Err(Failure::FaxFailed("not every job was sent".into()).into());
    }
    Ok(())
}

/// Reads an answer of the supervisor as its view `T` (the types the API itself serialises).
pub(crate) fn view<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(body).with_context(|| {
        format!(
            "the supervisor's answer is not a {}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("view")
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_become_a_merge_patch() {
        let p = super::patch_from_pairs(&[
            "channels=8".into(),
            "t38.ecm=false".into(),
            "station_id=+1 555".into(),
            "sip.user=fax1".into(),
        ])
        .expect("patch");
        assert_eq!(
            p,
            serde_json::json!({"channels": 8, "t38": {"ecm": false}, "station_id": "+1 555", "sip": {"user": "fax1"}})
        );
        assert!(super::patch_from_pairs(&["nothing".into()]).is_err());
        assert!(super::patch_from_pairs(&["a..b=1".into()]).is_err());
    }
}

/// How a client command failed, which its exit code tells (see `faxhub --help`).
#[derive(Debug)]
pub enum Failure {
    /// The supervisor does not know the object, or the caller may not see it (404).
    NotFound(String),
    /// The supervisor refused the request: not signed in, not allowed, or a bad value (other 4xx).
    Refused(String),
    /// The supervisor failed (5xx).
    Server(String),
    /// The supervisor could not be reached (connection, TLS, timeout).
    Network(String),
    /// A fax that was followed (`send --wait`) ended failed or cancelled.
    FaxFailed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound(m)
            | Failure::Refused(m)
            | Failure::Server(m)
            | Failure::Network(m)
            | Failure::FaxFailed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

impl Failure {
    fn of_status(status: u16, message: String) -> Self {
        match status {
            404 => Failure::NotFound(message),
            400..=499 => Failure::Refused(message),
            _ => Failure::Server(message),
        }
    }

    /// A request that did not get an answer. An untrusted certificate names the certificate problem and
    /// suggests `--ca-cert`.
    fn network(base: &str, e: &reqwest::Error) -> Self {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        let untrusted = ["UnknownIssuer", "invalid peer certificate", "certificate"]
            .iter()
            .any(|w| chain.contains(w));
        if untrusted && base.starts_with("https://") {
            Failure::Network(format!(
                "cannot reach {base}: its TLS certificate is not trusted ({chain}); if the supervisor uses \
                 its own self-signed certificate, trust it with `faxhub login --url {base} --ca-cert \
                 PATH/TO/cert.pem` (the supervisor's data directory has it as tls/cert.pem)"
            ))
        } else {
            Failure::Network(format!("cannot reach {base}: {chain}"))
        }
    }

    /// The exit code of a command that ended with `e`.
    pub fn exit_code(e: &anyhow::Error) -> u8 {
        match e.chain().find_map(|c| c.downcast_ref::<Failure>()) {
            Some(Failure::NotFound(_)) => EXIT_NOT_FOUND,
            Some(Failure::Refused(_)) => EXIT_REFUSED,
            Some(Failure::FaxFailed(_)) => EXIT_FAX_FAILED,
            Some(Failure::Network(_) | Failure::Server(_)) => EXIT_NETWORK,
            None => 1,
        }
    }
}

/// Exit codes of the client commands (0 success, 1 any other error, 2 bad usage).
pub const EXIT_NOT_FOUND: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;
pub const EXIT_FAX_FAILED: u8 = 5;
pub const EXIT_NETWORK: u8 = 6;

/// Reads a password from the terminal without echoing it (`stty -echo` while it is typed).
fn prompt_password(prompt: &str) -> anyhow::Result<String> {
    use std::process::{Command, Stdio};
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .stdin(Stdio::inherit())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprint!("{prompt}");
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        stty("echo");
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password given");
    }
    Ok(password)
}

/// `--json`: client commands print the supervisor's answer as JSON instead of their text.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The last successful answer of the supervisor, which `--json` prints.
static LAST_ANSWER: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

/// Turns `--json` on.
pub fn set_json(on: bool) {
    JSON.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `--json` is on (then the text output is left out).
pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// With `--json`, prints the supervisor's last answer (its API representation, `null` for none) once the
/// command succeeded.
pub fn print_json_answer() -> anyhow::Result<()> {
    if json() {
        let answer = LAST_ANSWER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or(serde_json::Value::Null);
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}

/// Objects a person names on the command line by id or by name.
#[derive(Debug, Clone, Copy)]
pub enum Named {
    FaxServer,
    Grouping,
    Client,
}

impl Named {
    fn prefix(self) -> &'static str {
        match self {
            Named::FaxServer => "fs_",
            Named::Grouping => "grp_",
            Named::Client => "cli_",
        }
    }

    fn list(self) -> &'static str {
        match self {
            Named::FaxServer => "/v1/fax-servers",
            Named::Grouping => "/v1/groupings",
            Named::Client => "/v1/clients",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Named::FaxServer => "fax server",
            Named::Grouping => "grouping",
            Named::Client => "client",
        }
    }
}

/// The id of what `given` names: an id as it is, else the one object of that kind the caller can see by
/// that name (none is a not-found, several must be told apart by id).
pub async fn resolve(api: &Api, kind: Named, given: &str) -> anyhow::Result<String> {
    if given.starts_with(kind.prefix()) {
        return Ok(given.to_owned());
    }
    let all: Vec<serde_json::Value> = api.get_view(kind.list()).await?;
    let ids: Vec<&str> = all
        .iter()
        .filter(|o| o["name"] == given)
        .filter_map(|o| o["id"].as_str())
        .collect();
    match ids.as_slice() {
        [id] => Ok((*id).to_owned()),
        [] => Err(Failure::NotFound(format!(
            "no {} named {given:?} that you can see (give its id or its exact name)",
            kind.what()
        ))
        .into()),
        _ => Err(Failure::Refused(format!(
            "{} {}s are named {given:?}; give the id",
            ids.len(),
            kind.what()
        ))
        .into()),
    }
}
