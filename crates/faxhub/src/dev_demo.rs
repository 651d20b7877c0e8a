//! The fax `faxhub dev` sends on start-up to show the whole network at work: a client's PDF goes through
//! the supervisor to fax-a, over SIP and T.38 to fax-b, and back through the supervisor into the inbox.

use anyhow::{Context, bail};
use std::time::Duration;

use crate::cli::{Api, view};
use supervisor::api::Paged;
use supervisor::api::admin::FaxServerView;
use supervisor::api::events::InboundView;
use supervisor::api::jobs::{JobStatus, JobView, SubmitResponse};

/// A small two-page PDF (standard Helvetica, lines and a frame), written by hand with a correct xref.
pub fn pdf() -> Vec<u8> {
    let page_text = |n: u32| {
        let mut s = String::from(
            "q 2 w 50 50 495 742 re S Q\nBT /F1 28 Tf 72 740 Td (faxhub demo fax) Tj ET\n",
        );
        s.push_str(&format!("BT /F1 14 Tf 72 700 Td (Page {n} of 2, sent by a client through the supervisor) Tj ET\n"));
        for (i, line) in [
            "fax-a placed a SIP call to +15550102 and sent this page over T.38.",
            "fax-b answered, received it, and uploaded it to the supervisor,",
            "which delivered it to the inbox of the proper client.",
        ]
        .iter()
        .enumerate()
        {
            s.push_str(&format!(
                "BT /F1 12 Tf 72 {} Td ({line}) Tj ET\n",
                660 - 20 * i
            ));
        }
        for i in 0..10 {
            let y = 560 - 40 * i;
            s.push_str(&format!("q 0.5 w 72 {y} m 523 {y} l S Q\n"));
            s.push_str(&format!(
                "BT /F1 10 Tf 80 {} Td (Row {} of a ruled table on page {n}) Tj ET\n",
                y + 8,
                i + 1
            ));
        }
        s
    };
    let contents = [page_text(1), page_text(2)];
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 6 0 R >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 7 0 R >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!("<< /Length {} >>\nstream\n{}endstream", contents[0].len(), contents[0]),
        format!("<< /Length {} >>\nstream\n{}endstream", contents[1].len(), contents[1]),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Waits until both fax servers offer channels, sends the demo PDF to `to` and follows it into the
/// inbox; prints each step. Every wait is bounded.
pub async fn run(
    api: &Api,
    servers: &[String],
    to: &str,
    save: &std::path::Path,
) -> anyhow::Result<()> {
    let mut ready = false;
    for _ in 0..150 {
        let mut all = true;
        for id in servers {
            let f: FaxServerView = api.get_view(&format!("/v1/fax-servers/{id}")).await?;
            all &= f.online && f.free_channels > 0;
        }
        if all {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ready {
        bail!("the fax servers did not come up within 30 s");
    }
    let sent = save.with_file_name("demo.pdf");
    let document = pdf();
    std::fs::write(&sent, &document).with_context(|| format!("writing {}", sent.display()))?;
    let request =
        serde_json::json!({"recipients": [to], "resolution": "fine", "header": "faxhub demo"});
    let form = reqwest::multipart::Form::new()
        .text("request", request.to_string())
        .part(
            "document",
            reqwest::multipart::Part::bytes(document)
                .file_name("demo.pdf")
                .mime_str("application/pdf")?,
        );
    let body: SubmitResponse = view(api.post_multipart("/v1/jobs", form).await?)?;
    let job = body
        .jobs
        .first()
        .context("the supervisor returned no job")?
        .id
        .clone();
    println!(
        "demo: a client sent {} (2 pages) to {to}: job {job}",
        sent.display()
    );
    let mut last = String::new();
    let mut done = None;
    for _ in 0..600 {
        let j: JobView = api.get_view(&format!("/v1/jobs/{job}")).await?;
        let phase = j
            .attempts
            .as_deref()
            .and_then(<[_]>::last)
            .map_or("", |a| a.phase.as_str());
        let line = format!("{} {phase}", j.status);
        if line != last {
            println!("demo:   job {job}: {line}");
            last = line;
        }
        if j.status.is_finished() {
            done = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let j = done.context("the demo fax did not finish within 2 minutes")?;
    if j.status != JobStatus::Sent {
        bail!(
            "the demo fax {}: {}",
            j.status,
            j.reason.as_deref().unwrap_or("no reason given")
        );
    }
    for _ in 0..150 {
        let inbox: Paged<InboundView> = api.get_view("/v1/inbox?limit=10").await?;
        if let Some(f) = inbox.items.first() {
            let id = &f.id;
            let fax = api.get_bytes(&format!("/v1/inbox/{id}/document")).await?;
            std::fs::write(save, fax).with_context(|| format!("writing {}", save.display()))?;
            println!(
                "demo: received by the fax server answering {}, delivered to the inbox as {id}: {} pages from {} (TSI {}); saved to {}",
                f.called_number.as_deref().unwrap_or(to),
                f.pages,
                f.caller_number.as_deref().unwrap_or("-"),
                f.tsi.as_deref().unwrap_or("-"),
                save.display()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the demo fax was sent but did not reach the inbox within 30 s")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_pdf_renders_to_two_fax_pages() {
        let doc = render::load_owned(super::pdf(), &render::LoadOptions::default())
            .expect("the demo PDF loads");
        let o = render::FaxOptions::default();
        let mut pages = 0;
        render::convert::pages(&[doc], &o, |p| {
            pages += 1;
            // Text and rules: a fair share of black pixels, not a blank page.
            let black: u32 = p.data.iter().map(|b| b.count_ones()).sum();
            assert!(black > 20_000, "page {pages} has only {black} black pixels");
            Ok(())
        })
        .expect("the demo PDF converts");
        assert_eq!(pages, 2);
    }
}
