//! MH, MR and MMR encode and decode of the 50-page fine benchmark document (`document.ps`, rendered by
//! ghostscript at 204x196 on the 1728-pixel line). Throughput is reported in pages. `scripts/bench.sh codecs`
//! runs libtiff's `tiffcp` on the same pages and prints the ratios.

use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use t4::{Coding, DecodeOptions, EncodeOptions, PageRef, decode, encode};

fn pages() -> Vec<t4::pbm::PbmPage> {
    let ps = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/document.ps");
    let out = Command::new("gs")
        .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pbmraw", "-r204x196", "-g1728x2292", "-sOutputFile=-", ps])
        .output()
        .expect("the codec benchmark renders its document with ghostscript (apt-get install ghostscript)");
    assert!(
        out.status.success(),
        "gs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages = t4::pbm::read(&out.stdout, u64::MAX).expect("gs wrote PBM");
    assert_eq!(pages.len(), 50);
    pages
}

const CODINGS: [(&str, Coding); 3] = [
    ("mh", Coding::Mh),
    ("mr4", Coding::Mr { k: 4 }),
    ("mmr", Coding::Mmr),
];

fn options(coding: Coding) -> EncodeOptions {
    // As TIFF Class F stores them: byte-aligned EOLs for T.4, EOFB for T.6.
    EncodeOptions {
        coding,
        eol: true,
        align_eol: coding != Coding::Mmr,
        min_line_bits: 0,
        end_marker: coding == Coding::Mmr,
    }
}

fn codecs(c: &mut Criterion) {
    let pages = pages();
    let refs: Vec<PageRef<'_>> = pages
        .iter()
        .map(|p| PageRef {
            width: p.width,
            height: p.height,
            data: &p.data,
        })
        .collect();
    let mut g = c.benchmark_group("codec-50-fine-pages");
    g.sample_size(20);
    g.throughput(Throughput::Elements(pages.len() as u64));
    for (name, coding) in CODINGS {
        g.bench_function(format!("encode-{name}"), |b| {
            b.iter(|| {
                refs.iter()
                    .map(|p| encode(*p, &options(coding)).expect("a page encodes").len())
                    .sum::<usize>()
            })
        });
        let coded: Vec<Vec<u8>> = refs
            .iter()
            .map(|p| encode(*p, &options(coding)).expect("a page encodes"))
            .collect();
        g.bench_function(format!("decode-{name}"), |b| {
            b.iter(|| {
                coded
                    .iter()
                    .map(|d| {
                        let o = DecodeOptions {
                            height: Some(2292),
                            ..DecodeOptions::fax(coding, 1728)
                        };
                        decode(d, &o).expect("our coding decodes").stats.height
                    })
                    .sum::<u32>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
