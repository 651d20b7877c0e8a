//! `faxhub dev`, the README's first command, as a user runs it: a supervisor and two fax servers on
//! loopback calling each other over SIP and T.38. Its demo fax (a PDF a client sends to the number fax-b
//! answers) must be sent, received, and delivered to the inbox with the document's pages; SIGTERM stops
//! it cleanly.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::harness::{Proc, faxhub_bin, free_port, pages_below_header};

#[test]
fn faxhub_dev_faxes_a_pdf_from_one_fax_server_to_the_other_into_the_inbox() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dev");
    let mut child = Command::new(faxhub_bin().unwrap())
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args([
            "--http",
            &format!("127.0.0.1:{}", free_port()),
            "--https",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut guard = Proc::new(child);
    // Read its output on a thread, bounded by a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut out = Vec::new();
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with("demo: done");
                let failed = line.starts_with("demo: FAILED");
                out.push(line);
                if done || failed {
                    break done;
                }
            }
            Err(_) => break false,
        }
    };
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
}
