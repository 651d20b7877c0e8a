//! Throughput of the IFP codec and of a UDPTL sender → receiver pair with
//! redundancy 3, on a 14400 bit/s page's worth of image IFPs.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use t38::{
    DataType, ErrorRecovery, Field, FieldType, Ifp, ReceiverConfig, SenderConfig, T38Version,
    UdptlReceiver, UdptlSender,
};

/// 54 octets per IFP: 30 ms of 14400 bit/s, SpanDSP's paced chunk.
fn page_ifps() -> Vec<Ifp> {
    (0..1000)
        .map(|i| {
            Ifp::data(
                DataType::V17_14400,
                vec![Field::new(FieldType::T4NonEcmData, vec![i as u8; 54])],
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ifps = page_ifps();
    let mut g = c.benchmark_group("t38");
    g.throughput(Throughput::Elements(ifps.len() as u64));
    g.bench_function("ifp_encode_decode", |b| {
        b.iter(|| {
            for i in &ifps {
                let bytes = i.encode(T38Version::V2).unwrap_or_default();
                black_box(Ifp::decode(&bytes, T38Version::V2).ok());
            }
        })
    });
    g.bench_function("udptl_redundancy3_send_receive", |b| {
        b.iter(|| {
            let mut s = UdptlSender::new(SenderConfig {
                version: T38Version::V2,
                recovery: ErrorRecovery::Redundancy { depth: 3 },
                max_datagram: 400,
                first_seq: 0,
            });
            let mut r = UdptlReceiver::new(ReceiverConfig {
                version: T38Version::V2,
                ..ReceiverConfig::default()
            });
            for (n, i) in ifps.iter().enumerate() {
                let d = s.build(i).unwrap_or_default();
                // Lose one datagram in ten; redundancy recovers it.
                if n % 10 != 3 {
                    let _ = r.handle_datagram(&d);
                }
                while let Some(x) = r.poll_ifp() {
                    black_box(x);
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
