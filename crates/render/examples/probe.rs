//! Loads each file given and renders every page at fine A4, printing the outcome.
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        match render::load(&bytes, &render::LoadOptions::default()) {
            Err(e) => println!("{path}: load error: {e:?}"),
            Ok(doc) => {
                let mut out = Vec::new();
                doc.render_all(&render::PageSpec::default(), |_, r| {
                    out.push(match r {
                        Ok(p) => format!("ok {}x{} black {}", p.width, p.height, p.black_pixels()),
                        Err(e) => format!("err {e:?}"),
                    });
                    true
                });
                println!(
                    "{path}: {} pages {:?} in {:?}",
                    doc.page_count(),
                    out,
                    t.elapsed()
                );
            }
        }
    }
}
