//! Phonebook imports are untrusted API bodies: CSV and vCard readers must never panic, every row they
//! accept must validate or be refused cleanly, and what is accepted must survive an export and a re-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phonebook::{csv, vcard, Entry, Index, Label};

fn number(s: &str) -> Result<String, String> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if (8..=15).contains(&digits.len()) { Ok(format!("+{digits}")) } else { Err("bad".into()) }
}

fuzz_target!(|data: &[u8]| {
    let (csv_side, vcard_side) = data.split_at(data.len() / 2);
    let mut rows: Vec<_> = csv::read(csv_side).unwrap_or_default();
    rows.extend(vcard::read(vcard_side));
    let mut entries = Vec::new();
    for (i, row) in rows.into_iter().flatten().enumerate() {
        if let Ok(fields) = row.fields.validate(number) {
            entries.push(Entry { id: format!("e{i}"), owner_id: "o".into(), fields, labels: vec![Label::Everyone], created_at: 0, updated_at: 0 });
        }
    }
    let label = |_: &Label| "everyone".to_owned();
    for text in [csv::write(&entries, label), vcard::write(&entries, vcard::Version::V4, label)] {
        let _ = csv::read(text.as_bytes());
        let _ = vcard::read(text.as_bytes());
    }
    let index = Index::build(entries);
    if let Ok(q) = std::str::from_utf8(&data[..data.len().min(16)]) {
        let _ = index.search(q, 10, |_| true);
    }
});
