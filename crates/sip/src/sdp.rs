//! SDP for fax calls (RFC 4566; T.38 Annex D / E for `m=image <port> udptl t38` and its attributes).
//!
//! Only what fax needs: a T.38 offer or answer, a G.711 audio offer for the common audio-first call, and
//! reading the far end's address, port and T.38 parameters from its SDP.

use std::net::{IpAddr, SocketAddr};

use crate::Error;

/// `T38FaxUdpEC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEc {
    Redundancy,
    Fec,
    None,
}

/// The T.38 attributes of an `m=image` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T38Params {
    pub version: u8,
    pub max_bit_rate: u32,
    pub max_buffer: u32,
    pub max_datagram: u32,
    pub udp_ec: UdpEc,
}

impl Default for T38Params {
    fn default() -> Self {
        Self {
            version: 0,
            max_bit_rate: 14400,
            max_buffer: 2000,
            max_datagram: 400,
            udp_ec: UdpEc::Redundancy,
        }
    }
}

/// What kind of media a line carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    T38(T38Params),
    /// Audio with these RTP payload types.
    Audio(Vec<u8>),
    Other(String),
}

/// One `m=` line with its port (0: rejected) and the address that applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    pub media: Media,
    pub addr: Option<IpAddr>,
    pub port: u16,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub media: Vec<MediaLine>,
}

impl Sdp {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(body).map_err(|_| Error::SdpNotText)?;
        let mut session_addr: Option<IpAddr> = None;
        let mut media: Vec<MediaLine> = Vec::new();
        for raw in text.lines() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| Error::SdpLine(line.chars().take(60).collect()))?;
            match k {
                "c" => {
                    // c=IN IP4 127.0.0.1
                    let addr = v
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse().ok());
                    match media.last_mut() {
                        Some(m) => m.addr = addr.or(m.addr),
                        None => session_addr = addr,
                    }
                }
                "m" => {
                    let mut p = v.split_whitespace();
                    let kind = p.next().unwrap_or("");
                    let port: u16 = p
                        .next()
                        .and_then(|x| x.split('/').next())
                        .and_then(|x| x.parse().ok())
                        .ok_or_else(|| Error::SdpLine(line.chars().take(60).collect()))?;
                    let proto = p.next().unwrap_or("");
                    let fmts: Vec<&str> = p.collect();
                    let m = if kind == "image"
                        && proto.eq_ignore_ascii_case("udptl")
                        && fmts.iter().any(|f| f.eq_ignore_ascii_case("t38"))
                    {
                        Media::T38(T38Params {
                            udp_ec: UdpEc::None,
                            ..T38Params::default()
                        })
                    } else if kind == "audio" {
                        Media::Audio(fmts.iter().filter_map(|f| f.parse().ok()).collect())
                    } else {
                        Media::Other(kind.to_string())
                    };
                    media.push(MediaLine {
                        media: m,
                        addr: session_addr,
                        port,
                    });
                }
                "a" => {
                    if let Some(MediaLine {
                        media: Media::T38(t),
                        ..
                    }) = media.last_mut()
                    {
                        let (name, value) = v.split_once(':').unwrap_or((v, ""));
                        let num = || value.trim().parse::<u32>().ok();
                        match name.to_ascii_lowercase().as_str() {
                            "t38faxversion" => t.version = num().unwrap_or(0).min(3) as u8,
                            "t38maxbitrate" => t.max_bit_rate = num().unwrap_or(14400),
                            "t38faxmaxbuffer" => t.max_buffer = num().unwrap_or(2000),
                            "t38faxmaxdatagram" => t.max_datagram = num().unwrap_or(400),
                            "t38faxudpec" => {
                                t.udp_ec = match value.trim() {
                                    "t38UDPRedundancy" => UdpEc::Redundancy,
                                    "t38UDPFEC" => UdpEc::Fec,
                                    _ => UdpEc::None,
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if media.is_empty() {
            return Err(Error::NoMedia);
        }
        Ok(Self { media })
    }

    /// The accepted T.38 stream: where to send and with what parameters.
    pub fn t38(&self) -> Option<(SocketAddr, T38Params)> {
        self.media.iter().find_map(|m| match (&m.media, m.addr) {
            (Media::T38(t), Some(a)) if m.port != 0 => {
                Some((SocketAddr::new(a, m.port), t.clone()))
            }
            _ => None,
        })
    }

    /// Whether it offers audio (a call that starts as voice and switches to T.38 later).
    pub fn audio(&self) -> Option<SocketAddr> {
        self.media.iter().find_map(|m| match (&m.media, m.addr) {
            (Media::Audio(_), Some(a)) if m.port != 0 => Some(SocketAddr::new(a, m.port)),
            _ => None,
        })
    }
}

fn origin(session: u64, version: u64, addr: IpAddr) -> String {
    let fam = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=faxhub {session} {version} IN {fam} {addr}\r\ns=fax\r\nc=IN {fam} {addr}\r\nt=0 0\r\n"
    )
}

/// A T.38 offer or answer (`m=image <port> udptl t38`, rate management transferredTCF).
pub fn t38(session: u64, version: u64, local: SocketAddr, p: &T38Params) -> Vec<u8> {
    let ec = match p.udp_ec {
        UdpEc::Redundancy => "t38UDPRedundancy",
        UdpEc::Fec => "t38UDPFEC",
        UdpEc::None => "t38UDPNoEC",
    };
    format!(
        "{}m=image {} udptl t38\r\na=T38FaxVersion:{}\r\na=T38MaxBitRate:{}\r\na=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxBuffer:{}\r\na=T38FaxMaxDatagram:{}\r\na=T38FaxUdpEC:{ec}\r\n",
        origin(session, version, local.ip()),
        local.port(),
        p.version,
        p.max_bit_rate,
        p.max_buffer,
        p.max_datagram,
    )
    .into_bytes()
}

/// A G.711 audio offer (PCMU and PCMA), for peers that want voice first.
pub fn audio(session: u64, version: u64, local: SocketAddr) -> Vec<u8> {
    format!(
        "{}m=audio {} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n",
        origin(session, version, local.ip()),
        local.port()
    )
    .into_bytes()
}

/// The answer to an offer we cannot take: the same m-line with port 0 (RFC 3264 §6).
pub fn reject(session: u64, version: u64, local: IpAddr, kind: &str) -> Vec<u8> {
    format!(
        "{}m={kind} 0 udptl t38\r\n",
        origin(session, version, local)
    )
    .into_bytes()
}

/// Negotiates an answer's T.38 parameters from an offer and our limits (T.38 Annex D: the answer's
/// version and rate are not above the offer's).
pub fn answer_params(offer: &T38Params, ours: &T38Params) -> T38Params {
    T38Params {
        version: offer.version.min(ours.version),
        max_bit_rate: offer.max_bit_rate.min(ours.max_bit_rate),
        max_buffer: ours.max_buffer,
        max_datagram: ours.max_datagram,
        udp_ec: if offer.udp_ec == UdpEc::Redundancy {
            UdpEc::Redundancy
        } else {
            UdpEc::None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t38_offer_round_trips() {
        let p = T38Params {
            version: 1,
            max_bit_rate: 9600,
            max_buffer: 1000,
            max_datagram: 320,
            udp_ec: UdpEc::Redundancy,
        };
        let local: SocketAddr = "127.0.0.1:40000"
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 40000)));
        let s = Sdp::parse(&t38(1, 1, local, &p)).expect("parses");
        assert_eq!(s.t38(), Some((local, p)));
        assert_eq!(s.audio(), None);
    }

    #[test]
    fn audio_offer_and_a_rejected_image_line() {
        let local = SocketAddr::from(([127, 0, 0, 1], 4000));
        let s = Sdp::parse(&audio(1, 1, local)).expect("parses");
        assert_eq!(s.audio(), Some(local));
        let r = Sdp::parse(&reject(1, 2, local.ip(), "image")).expect("parses");
        assert_eq!(r.t38(), None);
        assert_eq!(Sdp::parse(b"v=0\r\n"), Err(Error::NoMedia));
        assert!(matches!(Sdp::parse(b"garbage"), Err(Error::SdpLine(_))));
    }
}
