//! PDF → bilevel fax pages at 204 × 196 dpi on a 20-page text-and-graphics PDF.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use render::{LoadOptions, PageSpec, PaperSize, Resolution, load};

static PDF: &[u8] = include_bytes!("data/bench20.pdf");

fn pdf_to_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdf_to_bilevel");
    group.sample_size(10);
    group.throughput(Throughput::Elements(20));
    for (name, res, threads) in [
        ("fine_a4", Resolution::Fine, 1),
        ("fine_a4_2_threads", Resolution::Fine, 2),
        ("standard_a4", Resolution::Standard, 1),
    ] {
        let spec = PageSpec::new(res, PaperSize::A4);
        let options = LoadOptions {
            threads,
            ..LoadOptions::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let doc = load(PDF, &options).expect("bench PDF loads");
                let mut black = 0u64;
                doc.render_all(&spec, |_, page| {
                    black += page.map(|p| p.black_pixels()).unwrap_or(0);
                    true
                });
                black
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pdf_to_pages);
criterion_main!(benches);
