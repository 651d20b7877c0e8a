//! Recipient numbers: E.164 validation and normalisation of local dial strings by dial rules.

use crate::config::DialConfig;

/// Why a number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumberError {
    #[error("is empty")]
    Empty,
    #[error("contains {0:?}, which is not a digit or a separator")]
    BadCharacter(char),
    #[error("has {0} digits; an E.164 number has 8 to 15 (country code included)")]
    BadLength(usize),
    #[error("country code cannot start with 0")]
    BadCountryCode,
}

/// Normalises a dial string to E.164 (`+` and digits). Accepts `+` numbers, international-prefix numbers
/// ("011 81 3 ..."), national numbers (trunk prefix, then area code) and the usual separators (space,
/// `-`, `.`, `(`, `)`, `/`).
pub fn normalize(input: &str, rules: &DialConfig) -> Result<String, NumberError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(NumberError::Empty);
    }
    let mut digits = String::with_capacity(trimmed.len());
    let plus = trimmed.starts_with('+');
    for c in trimmed.chars().skip(usize::from(plus)) {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            other => return Err(NumberError::BadCharacter(other)),
        }
    }
    let international = if plus {
        digits
    } else if !rules.international_prefix.is_empty()
        && digits.starts_with(&rules.international_prefix)
    {
        digits[rules.international_prefix.len()..].to_owned()
    } else {
        let national =
            if !rules.national_prefix.is_empty() && digits.starts_with(&rules.national_prefix) {
                &digits[rules.national_prefix.len()..]
            } else {
                &digits[..]
            };
        format!("{}{}", rules.country_code, national)
    };
    if international.starts_with('0') {
        return Err(NumberError::BadCountryCode);
    }
    if !(8..=15).contains(&international.len()) {
        return Err(NumberError::BadLength(international.len()));
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, rules: &DialConfig, expect: Result<&str, NumberError>) {
        assert_eq!(
            normalize(input, rules),
            expect.map(str::to_owned),
            "input {input:?}"
        );
    }

    #[test]
    fn dial_strings() {
        let us = DialConfig::default();
        let de = DialConfig {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        };
        check("+81 3-1234-5678", &us, Ok("+81312345678"));
        check("011 81 3 1234 5678", &us, Ok("+81312345678"));
        check("1 (555) 123-4567", &us, Ok("+15551234567"));
        check("555 123 4567", &us, Ok("+15551234567"));
        check("030 1234567", &de, Ok("+49301234567"));
        check("0049 30 1234567", &de, Ok("+49301234567"));
        check("", &us, Err(NumberError::Empty));
        check("+1 555 CALL", &us, Err(NumberError::BadCharacter('C')));
        check("+1234", &us, Err(NumberError::BadLength(4)));
        check("+0123456789", &us, Err(NumberError::BadCountryCode));
        check("+1234567890123456", &us, Err(NumberError::BadLength(16)));
    }
}
