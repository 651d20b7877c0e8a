//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616 / RFC 8760): MD5 and SHA-256, `qop=auth`
//! or none. The password is used to compute the response and never stored in the header or logged.

use md5::Digest as _;

use crate::Error;

/// A challenge from `WWW-Authenticate` or `Proxy-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, s: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(md5::Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(s.as_bytes())),
        }
    }
}

/// `key=value` pairs of an auth header, values unquoted.
fn pairs(v: &str) -> Vec<(String, String)> {
    crate::message::split_commas(v)
        .into_iter()
        .filter_map(|p| {
            let (k, val) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                val.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

impl Challenge {
    /// Parses `Digest realm="..", nonce="..", ...`.
    pub fn parse(v: &str) -> Result<Self, Error> {
        let v = v.trim();
        let rest = v
            .strip_prefix("Digest")
            .or_else(|| v.strip_prefix("digest"))
            .ok_or(Error::NotDigest)?;
        let kv = pairs(rest);
        let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("MD5") => Algorithm::Md5,
            Some("SHA-256") => Algorithm::Sha256,
            Some(other) => return Err(Error::Algorithm(other.to_string())),
        };
        Ok(Self {
            realm: get("realm").ok_or(Error::ChallengeMissing("realm"))?,
            nonce: get("nonce").ok_or(Error::ChallengeMissing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth: get("qop").is_some_and(|q| q.split(',').any(|x| x.trim() == "auth")),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for a request.
    pub fn answer(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let a = self.algorithm;
        let ha1 = a.hash(&format!("{user}:{}:{password}", self.realm));
        let ha2 = a.hash(&format!("{method}:{uri}"));
        let mut v = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
            self.realm,
            self.nonce,
            a.name()
        );
        let response = if self.qop_auth {
            let nc = format!("{nc:08x}");
            v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
            a.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            a.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        v.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

/// Checks an `Authorization` value against a password (for tests and our own registrar-less peers).
pub fn verify(authorization: &str, method: &str, password: &str) -> bool {
    let Some(rest) = authorization.trim().strip_prefix("Digest") else {
        return false;
    };
    let kv = pairs(rest);
    let get = |k: &str| {
        kv.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let a = if get("algorithm").eq_ignore_ascii_case("SHA-256") {
        Algorithm::Sha256
    } else {
        Algorithm::Md5
    };
    let ha1 = a.hash(&format!("{}:{}:{password}", get("username"), get("realm")));
    let ha2 = a.hash(&format!("{method}:{}", get("uri")));
    let expect = if get("qop") == "auth" {
        a.hash(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce")
        ))
    } else {
        a.hash(&format!("{ha1}:{}:{ha2}", get("nonce")))
    };
    expect == get("response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 §3.5: the Mufasa example, qop=auth, MD5.
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("parses");
        let a = c.answer(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(verify(&a, "GET", "Circle Of Life"));
        assert!(!verify(&a, "GET", "wrong"));
    }

    #[test]
    fn sha256_and_bad_challenges() {
        let c =
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256").expect("parses");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let a = c.answer("REGISTER", "sip:r", "u", "p", "c", 1);
        assert!(verify(&a, "REGISTER", "p"));
        assert_eq!(Challenge::parse("Basic realm=x"), Err(Error::NotDigest));
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(Error::ChallengeMissing("realm"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
            Err(Error::Algorithm(_))
        ));
    }
}
