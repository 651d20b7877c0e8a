//! Transport (issue 14, section 7).
