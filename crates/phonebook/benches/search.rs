//! Phonebook search over 100,000 entries (the target: p99 ≤ 5 ms per search through the API; this
//! measures the index alone).

use criterion::{Criterion, criterion_group, criterion_main};
use phonebook::{Entry, EntryFields, Index, Label};
use std::hint::black_box;

const FIRST: [&str; 16] = [
    "John", "Anna", "Maria", "Wei", "Olga", "Pedro", "Aiko", "Liam", "Noah", "Emma", "Yusuf",
    "Chloe", "Ivan", "Sara", "Omar", "Lena",
];
const LAST: [&str; 16] = [
    "Smith", "Müller", "Tanaka", "Garcia", "Rossi", "Kowalski", "Nguyen", "Brown", "Dubois",
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

pub fn entries(n: usize) -> Vec<Entry> {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let r = next();
            let name = format!(
                "{} {}{}",
                FIRST[(r % 16) as usize],
                LAST[((r >> 8) % 16) as usize],
                (r >> 16) % 1000
            );
            Entry {
                id: format!("pbe_{i:08}"),
                owner_id: format!("cli_{}", (r >> 32) % 50),
                fields: EntryFields {
                    name,
                    company: CORP[((r >> 24) % 8) as usize].into(),
                    fax_number: format!("+1555{:07}", (r >> 40) % 10_000_000),
                    ..EntryFields::default()
                },
                labels: if (r >> 20) % 4 == 0 {
                    vec![]
                } else {
                    vec![Label::Everyone]
                },
                created_at: 0,
                updated_at: 0,
            }
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let index = Index::build(entries(100_000));
    let visible = |e: &Entry| e.owner_id == "cli_7" || !e.labels.is_empty();
    let mut g = c.benchmark_group("phonebook_100k");
    for q in [
        "j",
        "smith",
        "anna müller",
        "acme",
        "wayne ent",
        "+1555123",
        "zzz",
    ] {
        g.bench_function(format!("search {q:?} top 20"), |b| {
            b.iter(|| black_box(index.search(black_box(q), 20, visible)))
        });
    }
    g.bench_function("list first 50", |b| {
        b.iter(|| black_box(index.list(None, 50, visible)))
    });
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
