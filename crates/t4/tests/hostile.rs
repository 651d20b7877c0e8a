//! Coded data the fuzzer found troublesome: decoded without a panic.

use t4::{Coding, DecodeOptions, decode};

/// An MMR line of V0 codes longer than 32 (here 64 one bits in a row): the decoder must take at most 32
/// at a time (a 64-bit shift of the bit reader overflowed).
#[test]
fn a_long_string_of_v0_codes() {
    let coded: &[u8] = &[
        45, 115, 1, 191, 40, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136,
        136, 142, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136,
        136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136,
        136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136,
        136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 136, 125, 119, 119, 119,
        119, 119, 119, 119, 136, 136, 136, 137, 136, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 136,
    ];
    let mut o = DecodeOptions::fax(Coding::Mmr, 2432);
    o.max_height = 512;
    o.height = Some(64);
    let page = decode(coded, &o).expect("decodes");
    assert_eq!(page.stats.height, 64);
    assert_eq!(page.data.len(), t4::stride(2432) * 64);
}
