//! Helpers shared by the integration tests.

#![allow(dead_code)]

use t38::{DataType, Field, FieldType, Ifp, Indicator, T38Version};

pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex: {s}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn versions(s: &str) -> Vec<T38Version> {
    s.chars()
        .map(|c| T38Version::from_number(c.to_digit(10).unwrap() as u8).unwrap())
        .collect()
}

fn by_name<T: Copy + std::fmt::Display>(all: &[T], name: &str) -> T {
    *all.iter()
        .find(|v| v.to_string() == name)
        .unwrap_or_else(|| panic!("unknown name {name}"))
}

/// Parses the text form used by the golden files (see ifp_golden.txt).
pub fn parse_ifp(s: &str) -> Ifp {
    let mut words = s.split_whitespace();
    let kind = words.next().unwrap();
    let name = words.next().unwrap();
    match kind {
        "ind" => Ifp::indicator(by_name(Indicator::ALL, name)),
        "data" => {
            let dt = by_name(DataType::ALL, name);
            let rest: Vec<&str> = words.collect();
            if rest == ["nofield"] {
                return Ifp {
                    msg_type: t38::IfpType::Data(dt),
                    data_field: None,
                };
            }
            let fields = rest
                .iter()
                .map(|f| {
                    let (name, data) = f.split_once(':').unwrap_or((f, ""));
                    Field::new(by_name(FieldType::ALL, name), hex(data))
                })
                .collect();
            Ifp::data(dt, fields)
        }
        other => panic!("bad kind {other}"),
    }
}

/// Non-comment lines of a data file, split on `|` and trimmed.
pub fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}
