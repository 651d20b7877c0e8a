//! Benchmarks of the administration paths (issue: phonebook search p99 ≤ 5 ms with 100,000 entries;
//! settings push from PUT to the applied acknowledgement p99 ≤ 100 ms with 100 connected fax servers).
//!
//! faxhub-bench-admin [--entries 100000] [--searches 3000] [--clients 8] [--fax-servers 100] [--pushes 500]
//!
//! Starts the real `faxhub serve` (the binary beside this one; see scripts/bench.sh), imports the
//! phonebook through the REST API as CSV, then times searches from a user who sees the shared entries only
//! (so every search also runs the visibility check), one client at a time and then `--clients` at once.
//! Then connects `--fax-servers` fax servers (the real `node` runtime in this process) and times
//! settings pushes from the PATCH to the supervisor recording the fax server's applied acknowledgement
//! (its `applied_at`, read back afterwards); one push at a time, then all fax servers at once. Loopback only; every loop is
//! bounded.

use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::harness::{Api, SupervisorProc};
use testkit::{Script, ScriptedLine};

struct Opts {
    entries: usize,
    searches: usize,
    clients: usize,
    fax_servers: usize,
    pushes: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        entries: 100_000,
        searches: 3000,
        clients: 8,
        fax_servers: 100,
        pushes: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let n: usize = it.next().context("value missing")?.parse()?;
        match flag.as_str() {
            "--entries" => o.entries = n,
            "--searches" => o.searches = n,
            "--clients" => o.clients = n,
            "--fax-servers" => o.fax_servers = n,
            "--pushes" => o.pushes = n,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |p: f64| percentile(&v, p).as_secs_f64() * 1000.0;
    println!(
        "  {what:<44} n={:<5} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        v.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0)
    );
}

const FIRST: [&str; 16] = [
    "John", "Anna", "Maria", "Wei", "Olga", "Pedro", "Aiko", "Liam", "Noah", "Emma", "Yusuf",
    "Chloe", "Ivan", "Sara", "Omar", "Lena",
];
const LAST: [&str; 16] = [
    "Smith", "Muller", "Tanaka", "Garcia", "Rossi", "Kowalski", "Nguyen", "Brown", "Dubois",
    "Silva", "Jensen", "Kim", "Novak", "Ahmed", "Lopez", "Berg",
];
const CORP: [&str; 8] = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// What people type: a few letters of a name or company, a full name, a number prefix.
fn query(r: &mut Rng) -> String {
    let prefix = |s: &str, n: u64| {
        s.chars()
            .take(n as usize)
            .collect::<String>()
            .to_lowercase()
    };
    match r.next() % 6 {
        0 => prefix(r.pick(&FIRST), 1 + r.next() % 4),
        1 => prefix(r.pick(&LAST), 2 + r.next() % 4),
        2 => format!("{} {}", r.pick(&FIRST), prefix(r.pick(&LAST), 3)),
        3 => prefix(r.pick(&CORP), 3 + r.next() % 3),
        4 => format!("%2B1555{}", r.next() % 1000),
        _ => format!("{}{}", r.pick(&LAST).to_lowercase(), r.next() % 100),
    }
}

async fn timed_searches(api: &Api, n: usize, seed: u64) -> anyhow::Result<Vec<Duration>> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let q = query(&mut r);
        let t0 = Instant::now();
        let resp = api
            .http
            .get(format!("{}/v1/phonebook?limit=20&q={q}", api.base))
            .bearer_auth(&api.token)
            .send()
            .await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        out.push(t0.elapsed());
        anyhow::ensure!(status.is_success(), "search {q:?} answered {status}");
    }
    Ok(out)
}

fn unix_ms() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i128)
}

/// One settings push: from just before the PATCH to the supervisor recording the fax server's applied
/// acknowledgement (`applied_at`, same machine clock). Polls slowly so that watching does not load the
/// supervisor it measures.
async fn push(api: &Api, fs: &str, n: usize) -> anyhow::Result<Duration> {
    let path = format!("/v1/fax-servers/{fs}/settings");
    let t0 = unix_ms();
    let v = api
        .patch(
            &path,
            serde_json::json!({"header_template": format!("bench {n} {{page}}/{{pages}}")}),
        )
        .await?
        .expect_status(200)?;
    let want = v["desired_version"].as_i64().context("version")?;
    for _ in 0..1000 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let s = api.get(&path).await?.expect_status(200)?;
        if s["applied_version"].as_i64() >= Some(want) {
            let at = s["applied_at"].as_str().context("applied_at")?;
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)?;
            let ms = at.unix_timestamp_nanos() / 1_000_000 - t0;
            return Ok(Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)));
        }
    }
    anyhow::bail!("fax server {fs} never applied version {want}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("FAXHUB_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let o = opts()?;
    let dir = tempfile::Builder::new()
        .prefix("faxhub-bench-admin")
        .tempdir()?;
    let sup = SupervisorProc::start(dir.path(), "[deadlines]\nheartbeat_secs = 5\n")?;
    let admin = sup.admin();
    let g = admin.get("/v1/groupings").await?.expect_status(200)?[0]["id"]
        .as_str()
        .context("grouping")?
        .to_owned();

    // The phonebook: three in four entries shared with everyone, the rest personal to the administrator.
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut csv = String::from("name,company,fax_number,visibility\n");
    for i in 0..o.entries {
        let vis = if r.next().is_multiple_of(4) {
            ""
        } else {
            "everyone"
        };
        let (first, last, corp) = (r.pick(&FIRST), r.pick(&LAST), r.pick(&CORP));
        csv.push_str(&format!(
            "{first} {last}{},{corp},+1555{:07},{vis}\n",
            i % 1000,
            r.next() % 10_000_000
        ));
    }
    let t0 = Instant::now();
    let resp = admin
        .http
        .post(format!("{}/v1/phonebook/import?format=csv", admin.base))
        .bearer_auth(&admin.token)
        .body(csv)
        .send()
        .await?;
    let imported: serde_json::Value = resp.json().await?;
    anyhow::ensure!(
        imported["imported"].as_u64() == Some(o.entries as u64),
        "import: {imported}"
    );
    println!("faxhub-bench-admin: supervisor on SQLite, loopback");
    println!(
        "phonebook: {} entries imported as CSV in {:.2} s",
        o.entries,
        t0.elapsed().as_secs_f64()
    );
    let user = admin
        .post(
            "/v1/clients",
            serde_json::json!({"name": "reader", "kind": "application", "groupings": [g]}),
        )
        .await?
        .expect_status(201)?;
    let user = admin.with_token(user["token"].as_str().context("token")?);
    timed_searches(&user, 200, 1).await?;
    report(
        "search, 1 client (user; shared entries only)",
        timed_searches(&user, o.searches, 2).await?,
    );
    let mut tasks = Vec::new();
    for c in 0..o.clients {
        let api = user.clone();
        let n = o.searches / o.clients.max(1);
        tasks.push(tokio::spawn(async move {
            timed_searches(&api, n, 100 + c as u64).await
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    report(&format!("search, {} clients at once", o.clients), all);

    // Settings pushes to connected fax servers.
    let shm = std::path::Path::new("/dev/shm");
    let node_root = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("faxhub-bench-nodes")
            .tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..o.fax_servers {
        let made = admin
            .post(
                "/v1/fax-servers",
                serde_json::json!({"name": format!("bench-{i}"), "groupings": [g]}),
            )
            .await?
            .expect_status(201)?;
        let id = made["fax_server"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let config = node::NodeConfig {
            supervisor: sup.url.clone(),
            state_dir: node_root.path().join(format!("node-{i}")),
            ca_cert: None,
            reachable_prefixes: Vec::new(),
            offer_observer: None,
        };
        node::enroll(
            &config,
            made["enrollment_token"].as_str().unwrap_or_default(),
        )
        .await?;
        let (line, _inject) = ScriptedLine::new(
            Script {
                page_ms: 0,
                ..serde_json::from_str("{}")?
            },
            4,
            None,
        )?;
        nodes.push(node::run(config, Arc::new(line))?);
        ids.push(id);
    }
    for _ in 0..600 {
        let list = admin.get("/v1/fax-servers").await?.expect_status(200)?;
        if list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["online"] == true)
            .count()
            == o.fax_servers
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, fs) in ids.iter().enumerate().take(20) {
        push(&admin, fs, i).await?;
    }
    let mut one = Vec::with_capacity(o.pushes);
    for i in 0..o.pushes {
        one.push(push(&admin, &ids[i % ids.len()], 1000 + i).await?);
    }
    println!(
        "settings push, PATCH to the fax server's applied acknowledgement ({} fax servers connected):",
        o.fax_servers
    );
    report("one push at a time", one);
    let mut burst = Vec::new();
    for round in 0..5 {
        let tasks: Vec<_> = ids
            .iter()
            .map(|fs| {
                let (api, fs) = (admin.clone(), fs.clone());
                tokio::spawn(async move { push(&api, &fs, 10_000 * (round + 1)).await })
            })
            .collect();
        for t in tasks {
            burst.push(t.await??);
        }
    }
    report(
        &format!("every fax server at once (5 rounds of {})", o.fax_servers),
        burst,
    );
    for n in &nodes {
        n.abort();
    }
    Ok(())
}
