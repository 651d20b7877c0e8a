//! TLS for the HTTPS listener: a configured PEM pair, or a self-signed certificate made in the data
//! directory on the first start (and renewed before it ends), its key readable by the owner only.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: String, what: &'static str },
    #[error("making a self-signed certificate failed: {0}")]
    Generate(String),
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// How long a self-signed certificate is valid: the CA/Browser Forum's ceiling for public server
/// certificates, long enough to run a year between restarts.
pub const SELF_SIGNED_DAYS: i64 = 397;
/// A start this close to the end of the self-signed certificate makes a new one.
pub const RENEW_DAYS: i64 = 30;

/// Makes `tls/cert.pem` and `tls/key.pem` under `dir` unless they exist, renews the certificate when it
/// ends within `RENEW_DAYS`, and returns their paths. A renewal keeps the key and the subject: clients pin
/// the certificate as a trust anchor, which is its subject and key, so they go on trusting the new one.
pub fn ensure_self_signed(
    dir: &Path,
    extra_names: &[String],
    now: time::OffsetDateTime,
) -> Result<(std::path::PathBuf, std::path::PathBuf), TlsError> {
    let tls = dir.join("tls");
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Read { path, source }
    };
    at_rest::private_dir(&tls).map_err(io(&tls))?;
    let key_pair = if cert.exists() && key.exists() {
        let pem = std::fs::read(&cert).map_err(io(&cert))?;
        let ends = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .and_then(Result::ok)
            .and_then(|der| validity(&der))
            .map(|(_, not_after)| not_after);
        // A certificate this code cannot read is left alone: the TLS set-up will say what is wrong.
        match ends {
            Some(end) if end - now.unix_timestamp() <= RENEW_DAYS * 86_400 => {}
            _ => return Ok((cert, key)),
        }
        let pem = std::fs::read_to_string(&key).map_err(io(&key))?;
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| TlsError::Generate(e.to_string()))?;
        tracing::warn!(
            "the self-signed certificate {} ends within {RENEW_DAYS} days: made a new one with the same key",
            cert.display()
        );
        pair
    } else {
        let pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&key, pair.serialize_pem().as_bytes()).map_err(io(&key))?;
        pair
    };
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = host_name() {
        names.push(host);
    }
    names.extend(extra_names.iter().cloned());
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| TlsError::Generate(format!("tls_names: {e}")))?;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let made = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let tmp = tls.join("cert.pem.new");
    std::fs::write(&tmp, made.pem()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &cert).map_err(io(&cert))?;
    Ok((cert, key))
}

/// This machine's host name, when the system says it and it can be a DNS name.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (ok && name != "localhost").then(|| name.to_owned())
}

/// The validity of a DER X.509 certificate (RFC 5280, 4.1): notBefore and notAfter as Unix seconds.
/// Reads just far enough into the TBSCertificate to find them; None for anything else.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] EXPLICIT, optional.
    if let Some((0xa0, _, after)) = tlv(rest) {
        rest = after;
    }
    // serialNumber INTEGER, signature AlgorithmIdentifier, issuer Name.
    for want in [0x02, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = tlv(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (SEQUENCE, period, _) = tlv(rest)? else {
        return None;
    };
    let (t1, not_before, after) = tlv(period)?;
    let (t2, not_after, _) = tlv(after)?;
    Some((asn1_time(t1, not_before)?, asn1_time(t2, not_after)?))
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18) as Unix seconds.
fn asn1_time(tag: u8, v: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |from: usize, to: usize| text.get(from..to)?.parse::<i32>().ok();
    let (year, at) = match (tag, text.len()) {
        // RFC 5280: UTCTime years 50 to 99 are 19xx.
        (0x17, 12) => (
            num(0, 2).map(|y| if y >= 50 { 1900 + y } else { 2000 + y })?,
            2,
        ),
        (0x18, 14) => (num(0, 4)?, 4),
        _ => return None,
    };
    let part = |i: usize| num(at + 2 * i, at + 2 * i + 2).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(part(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, part(1)?).ok()?;
    let t = date.with_hms(part(2)?, part(3)?, part(4)?).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// Writes a file only the owner can read.
pub use at_rest::write_file as write_private;

pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            path: cert.display().to_string(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.display().to_string(),
            what: "certificate",
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .ok()
        .flatten()
        .ok_or(TlsError::Pem {
            path: key.display().to_string(),
            what: "private key",
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("faxhub-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn der(cert: &Path) -> CertificateDer<'static> {
        let pem = std::fs::read(cert).expect("cert");
        rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .expect("one")
            .expect("pem")
    }

    /// Whether a client that pinned `anchor` (as `faxhub node --ca-cert` does) accepts `presented`.
    fn trusted(
        anchor: &CertificateDer<'static>,
        presented: &CertificateDer<'static>,
        at: i64,
    ) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(anchor.clone()).expect("anchor");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        verifier
            .verify_server_cert(
                presented,
                &[],
                &ServerName::try_from("localhost").expect("name"),
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(at).expect("after 1970"),
                )),
            )
            .is_ok()
    }

    #[test]
    fn the_self_signed_certificate_is_sane_private_and_renewed_with_its_key() {
        let dir = temp_dir();
        let start = time::OffsetDateTime::now_utc();
        let (cert, key) =
            ensure_self_signed(&dir, &["fax.example.org".into()], start).expect("made");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600, "the key is the owner's alone");
        assert_eq!(mode(&dir.join("tls")), 0o700);
        let first = der(&cert);
        let (from, until) = validity(&first).expect("validity");
        let now = start.unix_timestamp();
        assert!(from <= now && now - from <= 86_400 + 60, "{from} {now}");
        assert_eq!((until - now) / 86_400, SELF_SIGNED_DAYS);
        server_config(&cert, &key).expect("usable");
        assert!(trusted(&first, &first, now));

        // A later start keeps it; one within 30 days of its end makes a new one with the same key.
        ensure_self_signed(&dir, &[], start + time::Duration::days(300)).expect("kept");
        assert_eq!(der(&cert), first);
        let key_before = std::fs::read(&key).expect("key");
        let late = start + time::Duration::days(SELF_SIGNED_DAYS - 10);
        ensure_self_signed(&dir, &[], late).expect("renewed");
        let second = der(&cert);
        assert_ne!(second, first);
        assert_eq!(std::fs::read(&key).expect("key"), key_before);
        let (_, until2) = validity(&second).expect("validity");
        assert_eq!((until2 - late.unix_timestamp()) / 86_400, SELF_SIGNED_DAYS);
        // A client that pinned the first certificate trusts the renewed one after the first has ended.
        let after_first = until + 86_400;
        assert!(!trusted(&first, &first, after_first));
        assert!(trusted(&first, &second, after_first));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn validity_reads_both_time_forms_and_refuses_the_rest() {
        assert_eq!(asn1_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(0x17, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(asn1_time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        for (tag, bad) in [
            (0x17, &b"4912312359Z"[..]),
            (0x17, b"491331235959Z"),
            (0x17, b"49123123595+Z"),
            (0x18, b"491231235959Z"),
            (0x17, b"491231235959"),
            (0x05, b"491231235959Z"),
        ] {
            assert_eq!(asn1_time(tag, bad), None, "{bad:?}");
        }
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
