//! Where the supervisor may connect on a client's behalf (webhooks): only to public addresses, unless the
//! supervisor's settings allow a network (`webhooks.allowed_networks`). A client-given URL could otherwise
//! make the supervisor reach its own loopback services, the cloud metadata address or the private network
//! it runs in (server-side request forgery).
//!
//! The address is checked where it is used: a URL's literal address before each request, and every address
//! a host name resolves to at the moment of connecting (`GuardedResolver`), so a name that resolved to a
//! public address at registration and to a private one later (DNS rebinding) is refused. Numeric spellings
//! (`http://2130706433/`, `http://0177.0.0.1/`, `http://0x7f.1/`) are normalised to dotted quads by the URL
//! parser (WHATWG rules), and IPv4-mapped IPv6 addresses (`[::ffff:127.0.0.1]`) are judged as the IPv4
//! address they reach.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a name may take to resolve.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of address an IP address is, as far as reaching it from the supervisor goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// Globally routable: the only class reachable by default.
    Public,
    /// `0.0.0.0/8`, `::` (connecting to it reaches the local host on most systems).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918); deprecated IPv6 site-local `fec0::/10`;
    /// local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    Shared,
    /// `169.254.0.0/16` (where cloud metadata services answer), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else set aside by IANA: `240.0.0.0/4`, `192.0.0.0/24`, IPv4-compatible IPv6 `::/96`,
    /// `100::/64`, `2001::/23`, and IPv6 outside global unicast `2000::/3`.
    Reserved,
}

impl AddressClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::Shared => "shared (carrier-grade NAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The address a connection to `ip` actually reaches: IPv4-mapped IPv6 addresses are the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::Shared,
        (127, _, _) => AddressClass::Loopback,
        (169, 254, _) => AddressClass::LinkLocal,
        (192, 0, 0) => AddressClass::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (198, 18..=19, _) => AddressClass::Benchmarking,
        (224..=239, _, _) => AddressClass::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => AddressClass::Broadcast,
        (240..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

/// The IPv4 address in the last 32 bits of an IPv6 address.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let b = ip.octets();
    Ipv4Addr::new(b[12], b[13], b[14], b[15])
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    let bits = u128::from(ip);
    let within = |net: u128, prefix: u32| bits & mask128(prefix) == net;
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if within(0, 96) {
        // IPv4-compatible (deprecated): some stacks still route it to the embedded IPv4 address.
        AddressClass::Reserved
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xffc0 == 0xfec0 {
        AddressClass::Private
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::UniqueLocal
    } else if within(0x0064_ff9b << 96, 96) {
        // NAT64 (RFC 6052): reaches the embedded IPv4 address.
        classify_v4(low_v4(ip))
    } else if within(0x0064_ff9b_0001 << 80, 48) {
        AddressClass::Private
    } else if s[0] == 0x2002 {
        // 6to4 (RFC 3056): the relay reaches the IPv4 address in bits 16 to 48.
        classify_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else if within(0x2001_0db8 << 96, 32) || within(0x3fff << 112, 20) {
        AddressClass::Documentation
    } else if within(0x2001_0002 << 96, 48) {
        AddressClass::Benchmarking
    } else if within(0x2001 << 112, 23) || within(0x0100 << 112, 64) || s[0] & 0xe000 != 0x2000 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn mask32(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix).unwrap_or(0)
}

fn mask128(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix).unwrap_or(0)
}

/// An IP network in CIDR notation (`10.1.0.0/16`, `::1/128`); a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    #[error("{0:?} is not an IP address or network like 10.1.0.0/16 or fd00::/8")]
    NotAnAddress(String),
    #[error("the prefix length must be 0 to {max}")]
    BadPrefix { max: u8 },
    #[error("{given} has bits set after the prefix; the network is {network}")]
    HostBits { given: String, network: Network },
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask32(u32::from(self.prefix));
                u32::from(ip) & m == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask128(u32::from(self.prefix));
                u128::from(ip) & m == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::NotAnAddress(text.chars().take(64).collect());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: u8's parser would take "+8".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or(NetworkError::BadPrefix { max })?,
            Some(_) => return Err(NetworkError::BadPrefix { max }),
        };
        // A mapped network (::ffff:10.0.0.0/104) is the IPv4 network it reaches.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) => Network {
                addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(u32::from(prefix)))),
                prefix,
            },
            IpAddr::V6(v6) => Network {
                addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(u32::from(prefix)))),
                prefix,
            },
        };
        if network.addr != addr {
            return Err(NetworkError::HostBits {
                given: text.to_owned(),
                network,
            });
        }
        Ok(network)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Public addresses, plus the networks the operator allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
}

impl AllowList {
    pub fn new(networks: Vec<Network>) -> Self {
        Self { networks }
    }

    /// Ok when the supervisor may connect to `ip`; else the class that bars it.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            AddressClass::Public => Ok(()),
            _ if self.networks.iter().any(|n| n.contains(ip)) => Ok(()),
            class => Err(class),
        }
    }
}

/// Why the supervisor will not connect to a URL. The messages name no resolved address: the client learns
/// what kind of address its name reaches, not the supervisor's view of the internal network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    #[error("must be an http or https URL with a host")]
    NotHttp,
    #[error(
        "{ip} is a {class} address; webhooks go only to public addresses unless the supervisor's settings allow its network (webhooks.allowed_networks)"
    )]
    RefusedLiteral { ip: IpAddr, class: AddressClass },
    #[error(
        "the host resolves to a {class} address; webhooks go only to public addresses unless the supervisor's settings allow its network (webhooks.allowed_networks)"
    )]
    RefusedName { class: AddressClass },
    #[error("the host does not resolve to any address")]
    Unresolved,
    #[error("resolving the host failed or took longer than {} s", LOOKUP_TIMEOUT.as_secs())]
    LookupFailed,
}

/// Where a URL points: a literal address (no lookup happens) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Literal(IpAddr),
    Name(String),
}

/// The destination of an http(s) URL; other schemes and hostless URLs are refused.
pub fn destination(url: &reqwest::Url) -> Result<Destination, EgressError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressError::NotHttp);
    }
    match url.host() {
        Some(url::Host::Ipv4(v4)) => Ok(Destination::Literal(IpAddr::V4(v4))),
        Some(url::Host::Ipv6(v6)) => Ok(Destination::Literal(IpAddr::V6(v6))),
        Some(url::Host::Domain(name)) if !name.is_empty() => Ok(Destination::Name(name.to_owned())),
        _ => Err(EgressError::NotHttp),
    }
}

/// Checks a literal destination, before a request is made.
pub fn check_literal(allow: &AllowList, ip: IpAddr) -> Result<(), EgressError> {
    allow
        .check(ip)
        .map_err(|class| EgressError::RefusedLiteral { ip, class })
}

pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Name resolution, replaceable in tests (to play a rebinding name server without one).
#[derive(Clone)]
pub struct Lookup(Arc<dyn Fn(&str) -> LookupFuture + Send + Sync>);

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lookup")
    }
}

impl Lookup {
    /// The system resolver (getaddrinfo, on a blocking thread).
    pub fn system() -> Self {
        Self::from_fn(|host| {
            let host = host.to_owned();
            Box::pin(async move {
                Ok(tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|a| a.ip())
                    .collect())
            })
        })
    }

    pub fn from_fn(f: impl Fn(&str) -> LookupFuture + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, EgressError> {
        tokio::time::timeout(LOOKUP_TIMEOUT, (self.0)(host))
            .await
            .map_err(|_| EgressError::LookupFailed)?
            .map_err(|_| EgressError::LookupFailed)
    }

    /// The addresses the supervisor may connect to for `host`: every address it resolves to, checked now.
    /// When some are allowed, only those are returned; when none is, the error names why.
    pub async fn allowed(&self, host: &str, allow: &AllowList) -> Result<Vec<IpAddr>, EgressError> {
        let addrs = self.resolve(host).await?;
        let mut refused = None;
        let mut ok = Vec::with_capacity(addrs.len());
        for ip in addrs {
            match allow.check(ip) {
                Ok(()) => ok.push(ip),
                Err(class) => refused = refused.or(Some(class)),
            }
        }
        match (ok.is_empty(), refused) {
            (false, _) => Ok(ok),
            (true, Some(class)) => Err(EgressError::RefusedName { class }),
            (true, None) => Err(EgressError::Unresolved),
        }
    }

    /// The check at registration: the URL must point only at allowed addresses now. Stricter than at
    /// delivery (where refused addresses are skipped): a name that resolves to a private address beside a
    /// public one is refused outright.
    pub async fn check_url(
        &self,
        url: &reqwest::Url,
        allow: &AllowList,
    ) -> Result<(), EgressError> {
        let name = match destination(url)? {
            Destination::Literal(ip) => return check_literal(allow, ip),
            Destination::Name(name) => name,
        };
        let addrs = self.resolve(&name).await?;
        if addrs.is_empty() {
            return Err(EgressError::Unresolved);
        }
        for ip in addrs {
            allow
                .check(ip)
                .map_err(|class| EgressError::RefusedName { class })?;
        }
        Ok(())
    }
}

/// A resolver for reqwest that returns only addresses the allow-list in force permits. reqwest connects
/// only to what its resolver returns (literal addresses skip it: `check_literal` covers those), so every
/// connection to a named host is checked when it is made.
pub struct GuardedResolver {
    lookup: Lookup,
    allow: Arc<dyn Fn() -> AllowList + Send + Sync>,
}

impl GuardedResolver {
    pub fn new(lookup: Lookup, allow: impl Fn() -> AllowList + Send + Sync + 'static) -> Self {
        Self {
            lookup,
            allow: Arc::new(allow),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.lookup.clone();
        let allow = (self.allow)();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = lookup.allowed(&host, &allow).await?;
            // Port 0: reqwest puts in the URL's port.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The `EgressError` somewhere in an error's chain of sources (reqwest wraps what the resolver returned).
pub fn find_in_chain<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressError> {
    loop {
        if let Some(found) = e.downcast_ref::<EgressError>() {
            return Some(found);
        }
        e = e.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().expect("address"))
    }

    #[test]
    fn ipv4_classes() {
        for (ip, want) in [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("10.0.0.1", AddressClass::Private),
            ("10.255.255.255", AddressClass::Private),
            ("172.15.255.255", AddressClass::Public),
            ("172.16.0.0", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.0", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("192.169.0.1", AddressClass::Public),
            ("100.63.255.255", AddressClass::Public),
            ("100.64.0.1", AddressClass::Shared),
            ("100.127.255.255", AddressClass::Shared),
            ("100.128.0.0", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.253.0.1", AddressClass::Public),
            ("192.0.0.8", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Documentation),
            ("198.51.100.7", AddressClass::Documentation),
            ("203.0.113.9", AddressClass::Documentation),
            ("198.18.0.1", AddressClass::Benchmarking),
            ("198.19.255.255", AddressClass::Benchmarking),
            ("198.20.0.1", AddressClass::Public),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.254", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Broadcast),
            ("1.1.1.1", AddressClass::Public),
            ("8.8.8.8", AddressClass::Public),
            ("93.184.216.34", AddressClass::Public),
            ("223.255.255.255", AddressClass::Public),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        for (ip, want) in [
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::ffff:8.8.8.8", AddressClass::Public),
            ("::127.0.0.1", AddressClass::Reserved),
            ("::8.8.8.8", AddressClass::Reserved),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("fec0::1", AddressClass::Private),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fd12:3456::1", AddressClass::UniqueLocal),
            ("ff02::1", AddressClass::Multicast),
            ("ff05::1:3", AddressClass::Multicast),
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("64:ff9b::808:808", AddressClass::Public),
            ("64:ff9b:1::1", AddressClass::Private),
            ("2002:7f00:1::1", AddressClass::Loopback),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("2002:808:808::1", AddressClass::Public),
            ("2001:db8::1", AddressClass::Documentation),
            ("3fff::1", AddressClass::Documentation),
            ("3fff:fff::1", AddressClass::Documentation),
            ("3fff:1000::1", AddressClass::Public),
            ("2001:2::1", AddressClass::Benchmarking),
            ("2001::1", AddressClass::Reserved),
            ("2001:1ff::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("4000::1", AddressClass::Reserved),
            ("1::1", AddressClass::Reserved),
            ("2001:4860:4860::8888", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("2001:200::1", AddressClass::Public),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn url_spellings_of_loopback_are_literals_the_classifier_refuses() {
        let allow = AllowList::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::1]:8080/",
            "https://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://10.1/",
            "http://[fd00::1]/",
            "http://224.0.0.1/",
            "http://100.64.0.1/",
        ] {
            let parsed = reqwest::Url::parse(url).expect("parses");
            match destination(&parsed).expect("http destination") {
                Destination::Literal(ip) => assert!(
                    check_literal(&allow, ip).is_err(),
                    "{url} reached {ip}, allowed"
                ),
                Destination::Name(n) => panic!("{url} taken as the name {n:?}"),
            }
        }
        // Spellings the URL parser refuses never reach a socket either.
        for url in [
            "http://[fe80::1%25eth0]/",
            "http://256.0.0.1/",
            "http://0x100000000/",
        ] {
            assert!(reqwest::Url::parse(url).is_err(), "{url}");
        }
        let public = reqwest::Url::parse("http://134744072/").expect("url");
        assert_eq!(
            destination(&public),
            Ok(Destination::Literal("8.8.8.8".parse().expect("ip")))
        );
        for bad in ["ftp://example.com/", "file:///etc/passwd", "gopher://x/"] {
            let u = reqwest::Url::parse(bad).expect("url");
            assert_eq!(destination(&u), Err(EgressError::NotHttp), "{bad}");
        }
    }

    #[test]
    fn networks_parse_and_match() {
        let n = |s: &str| s.parse::<Network>();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let lo = n("127.0.0.0/8").expect("net");
        assert!(lo.contains(ip("127.0.0.1")) && lo.contains(ip("127.255.0.9")));
        assert!(
            lo.contains(ip("::ffff:127.0.0.1")),
            "mapped is the same host"
        );
        assert!(!lo.contains(ip("128.0.0.1")) && !lo.contains(ip("::1")));
        assert_eq!(n("10.1.2.3").expect("one").to_string(), "10.1.2.3/32");
        assert_eq!(n("::1").expect("one").to_string(), "::1/128");
        assert_eq!(n("0.0.0.0/0").expect("all").to_string(), "0.0.0.0/0");
        assert!(n("0.0.0.0/0").expect("all").contains(ip("203.0.113.1")));
        assert!(n("::/0").expect("all").contains(ip("fd00::1")));
        assert_eq!(
            n("::ffff:10.0.0.0/104").expect("mapped").to_string(),
            "10.0.0.0/8"
        );
        let fd = n("fd00::/8").expect("ula");
        assert!(fd.contains(ip("fd12::1")) && !fd.contains(ip("fc00::1")));
        assert_eq!(n("10.0.0.0/33"), Err(NetworkError::BadPrefix { max: 32 }));
        assert_eq!(n("::/129"), Err(NetworkError::BadPrefix { max: 128 }));
        assert_eq!(n("10.0.0.0/+8"), Err(NetworkError::BadPrefix { max: 32 }));
        assert_eq!(n("10.0.0.0/"), Err(NetworkError::BadPrefix { max: 32 }));
        assert!(matches!(
            n("0177.0.0.1"),
            Err(NetworkError::NotAnAddress(_))
        ));
        assert!(matches!(n("localhost"), Err(NetworkError::NotAnAddress(_))));
        assert!(matches!(n(""), Err(NetworkError::NotAnAddress(_))));
        let e = n("127.0.0.1/8").expect_err("host bits");
        assert_eq!(
            e.to_string(),
            "127.0.0.1/8 has bits set after the prefix; the network is 127.0.0.0/8"
        );
    }

    #[test]
    fn the_allow_list_opens_only_what_it_names() {
        let none = AllowList::default();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(none.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        assert_eq!(none.check(ip("8.8.8.8")), Ok(()));
        let lo = AllowList::new(vec![
            "127.0.0.0/8".parse().expect("net"),
            "::1".parse().expect("net"),
        ]);
        assert_eq!(lo.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(lo.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(lo.check(ip("::1")), Ok(()));
        assert_eq!(lo.check(ip("10.0.0.1")), Err(AddressClass::Private));
        assert_eq!(lo.check(ip("0.0.0.0")), Err(AddressClass::Unspecified));
        assert_eq!(
            lo.check(ip("169.254.169.254")),
            Err(AddressClass::LinkLocal)
        );
    }

    fn fixed(answers: &'static [&'static str]) -> Lookup {
        Lookup::from_fn(move |_| {
            let ips = answers
                .iter()
                .map(|a| a.parse().expect("ip"))
                .collect::<Vec<IpAddr>>();
            Box::pin(async move { Ok(ips) })
        })
    }

    #[tokio::test]
    async fn names_are_judged_by_every_address_they_resolve_to() {
        let url = reqwest::Url::parse("https://hooks.test/x").expect("url");
        let none = AllowList::default();
        assert_eq!(fixed(&["8.8.8.8"]).check_url(&url, &none).await, Ok(()));
        assert_eq!(
            fixed(&["8.8.8.8", "10.0.0.1"]).check_url(&url, &none).await,
            Err(EgressError::RefusedName {
                class: AddressClass::Private
            })
        );
        assert_eq!(
            fixed(&[]).check_url(&url, &none).await,
            Err(EgressError::Unresolved)
        );
        // At delivery the refused address is skipped and the public one kept.
        assert_eq!(
            fixed(&["10.0.0.1", "8.8.8.8"])
                .allowed("hooks.test", &none)
                .await,
            Ok(vec!["8.8.8.8".parse().expect("ip")])
        );
        assert_eq!(
            fixed(&["::1"]).allowed("hooks.test", &none).await,
            Err(EgressError::RefusedName {
                class: AddressClass::Loopback
            })
        );
        let failing =
            Lookup::from_fn(|_| Box::pin(async { Err(std::io::Error::other("no name server")) }));
        assert_eq!(
            failing.check_url(&url, &none).await,
            Err(EgressError::LookupFailed)
        );
        let message = EgressError::RefusedName {
            class: AddressClass::Private,
        }
        .to_string();
        assert!(
            !message.contains("10.0.0.1") && message.contains("private"),
            "{message}"
        );
    }

    /// DNS rebinding: the name was public when the webhook was registered; at delivery it answers a
    /// loopback address. The resolver checks what it returns each time a connection is made, so the
    /// request never leaves, and with loopback allowed it reaches the (loopback) listener.
    #[tokio::test]
    async fn a_rebinding_name_is_refused_at_connect_time() {
        crate::server::install_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        // The first answer (at registration) is public, every later one loopback.
        let rebinding = Lookup::from_fn(move |_| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ip: IpAddr = if n == 0 {
                [8, 8, 8, 8].into()
            } else {
                [127, 0, 0, 1].into()
            };
            Box::pin(async move { Ok(vec![ip]) })
        });
        let url = reqwest::Url::parse(&format!("http://rebind.test:{port}/hook")).expect("url");
        assert_eq!(
            rebinding.check_url(&url, &AllowList::default()).await,
            Ok(()),
            "registration saw a public address"
        );
        let client = |allow: AllowList| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver::new(
                    rebinding.clone(),
                    move || allow.clone(),
                )))
                .no_proxy()
                .build()
                .expect("client")
        };
        let err = client(AllowList::default())
            .post(url.clone())
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            find_in_chain(&err),
            Some(&EgressError::RefusedName {
                class: AddressClass::Loopback
            })
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        let allowed = AllowList::new(vec!["127.0.0.0/8".parse().expect("net")]);
        let ok = client(allowed).post(url).send().await.expect("sent");
        assert_eq!(ok.status(), 200);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
