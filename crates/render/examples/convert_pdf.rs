//! Renders every page of a PDF to bilevel fax pages and reports pages per second; the
//! benchmark script runs it beside ghostscript. Usage: `convert_pdf FILE [standard|fine]
//! [OUT.pbm]` (OUT gets the pages as concatenated raw PBM, like `gs -sDEVICE=pbmraw`);
//! `THREADS=n` spreads pages over n worker threads.
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .ok_or("usage: convert_pdf FILE [standard|fine] [OUT.pbm]")?;
    let res = match args.get(2).map(String::as_str) {
        Some("standard") => render::Resolution::Standard,
        _ => render::Resolution::Fine,
    };
    let mut out = match args.get(3) {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let start = std::time::Instant::now();
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let options = render::LoadOptions {
        threads,
        ..Default::default()
    };
    let doc = render::load(&std::fs::read(input)?, &options)?;
    let spec = render::PageSpec::new(res, render::PaperSize::A4);
    let mut pages = 0;
    let mut failed = None;
    doc.render_all(&spec, |_, page| match page {
        Ok(p) => {
            pages += 1;
            if let Some(w) = out.as_mut() {
                let written =
                    write!(w, "P4\n{} {}\n", p.width, p.height).and_then(|()| w.write_all(&p.data));
                if let Err(e) = written {
                    failed = Some(e.to_string());
                    return false;
                }
            }
            true
        }
        Err(e) => {
            failed = Some(e.to_string());
            false
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{pages} pages in {secs:.3} s: {:.1} pages/s",
        f64::from(pages) / secs
    );
    Ok(())
}
