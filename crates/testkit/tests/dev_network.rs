//! `faxhub dev`, the README's first command, as a user runs it: a supervisor and two fax servers on
//! loopback calling each other over SIP and T.38. Its demo fax (a PDF a client sends to the number fax-b
//! answers) must be sent, received, and delivered to the inbox with the document's pages; SIGTERM stops
//! it cleanly, and `faxhub dev --data-dir` on that directory resumes the network with its inbox.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::harness::{Api, Proc, faxhub_bin, free_port, pages_below_header};

/// Starts `faxhub dev` on `data` with the given listeners; its stdout lines arrive on the receiver.
fn start_dev(
    data: &std::path::Path,
    http: &str,
    https: &str,
) -> (Proc, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(faxhub_bin().unwrap())
        .args(["dev", "--data-dir"])
        .arg(data)
        .args(["--http", http, "--https", https])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read its output on a thread, bounded by the callers' deadlines.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc::new(child), rx)
}

/// Lines until one that `last` accepts (included), or all that came within `within`; whether it came.
fn lines_until(
    rx: &std::sync::mpsc::Receiver<String>,
    within: Duration,
    last: impl Fn(&str) -> bool,
) -> (bool, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = last(&line);
                out.push(line);
                if done {
                    return (true, out);
                }
            }
            Err(_) => return (false, out),
        }
    }
}

#[test]
fn faxhub_dev_faxes_a_pdf_from_one_fax_server_to_the_other_into_the_inbox() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dev");
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let (mut guard, rx) = start_dev(&data, &http, &https);
    let (_, out) = lines_until(&rx, Duration::from_secs(180), |l| {
        l.starts_with("demo: done") || l.starts_with("demo: FAILED")
    });
    let result = out.iter().any(|l| l.starts_with("demo: done"));
    let text = out.join("\n");
    assert!(result, "the demo fax did not go through:\n{text}");
    assert!(
        text.contains("token:    fxh_"),
        "dev prints the administrator's token:\n{text}"
    );
    assert!(
        text.contains("faxhub send --to +15550102"),
        "dev says how to send a fax:\n{text}"
    );
    assert!(
        text.contains("sent finished") || text.contains(": sent"),
        "the job reached sent:\n{text}"
    );
    assert!(
        text.contains("delivered to the inbox as inb_") && text.contains("2 pages from 15550101"),
        "{text}"
    );
    assert!(
        text.contains("answering +15550102"),
        "the called number as the settings spell it:\n{text}"
    );

    // The pages in the inbox are the PDF's pages, as `faxhub convert` renders them, below the header.
    let received =
        pages_below_header(&std::fs::read(data.join("demo-received.tif")).unwrap()).unwrap();
    let rendered = tmp.path().join("rendered.tif");
    let st = Command::new(faxhub_bin().unwrap())
        .arg("convert")
        .arg(data.join("demo.pdf"))
        .arg("-o")
        .arg(&rendered)
        .args(["--resolution", "fine"])
        .status()
        .unwrap();
    assert!(st.success());
    let want = pages_below_header(&std::fs::read(&rendered).unwrap()).unwrap();
    assert_eq!(received.len(), 2);
    assert!(
        received == want,
        "the received pages are not the PDF's pages"
    );

    // SIGTERM stops the whole network gracefully, and the process exits 0.
    let status = guard.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "faxhub dev exits 0 on SIGTERM: {status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l == "SIGTERM: stopping the network"),
        "{rest:?}"
    );
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().to_owned())
        .expect("the token line");

    // Started again on its directory, it resumes the network: the same administrator, the inbox with the
    // demo fax, both fax servers back online; no second demo fax.
    let (mut again, rx) = start_dev(&data, &http, &https);
    let (up, out) = lines_until(&rx, Duration::from_secs(60), |l| {
        l.starts_with("try: faxhub login")
    });
    let text = out.join("\n");
    assert!(up && text.contains("resumed the network"), "{text}");
    assert!(
        text.contains(&token),
        "the same administrator's token:\n{text}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::new(&format!("http://{http}"), &token);
        let inbox = api.get_ok("/v1/inbox").await.unwrap();
        assert_eq!(inbox["items"].as_array().map(Vec::len), Some(1), "{inbox}");
        let servers = api.get_ok("/v1/fax-servers").await.unwrap();
        let ids: Vec<String> = servers
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 2, "{servers}");
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        api.wait_online(&ids).await.unwrap();
    });
    let status = again.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");

    // A directory it did not make is still refused.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let out = Command::new(faxhub_bin().unwrap())
        .args(["dev", "--data-dir"])
        .arg(&other)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("was not made by faxhub dev"),
        "{said}"
    );
}
