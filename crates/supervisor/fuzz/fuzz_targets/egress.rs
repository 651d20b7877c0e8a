//! Webhook URLs and allowed networks come from clients and operators: parsing them never panics, a
//! network reads back as itself, and no address the standard library calls internal is judged public.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use supervisor::egress::{self, AddressClass, AllowList, Destination, Network};

fn internal_by_std(ip: IpAddr) -> bool {
    match egress::canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(n) = text.parse::<Network>() {
        let again: Network = n.to_string().parse().expect("a network reads back");
        assert_eq!(again, n);
    }
    let Ok(url) = reqwest::Url::parse(text) else { return };
    if let Ok(Destination::Literal(ip)) = egress::destination(&url) {
        let class = egress::classify(ip);
        assert!(
            !(class == AddressClass::Public && internal_by_std(ip)),
            "{ip} judged public"
        );
        assert_eq!(
            AllowList::default().check(ip).is_ok(),
            class == AddressClass::Public
        );
        // The allow-list of every address opens it, whatever its class.
        let all: Network = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.parse().expect("net");
        let everything = AllowList::new(vec![all, "0.0.0.0/0".parse().expect("net")]);
        assert!(everything.check(ip).is_ok());
    }
});
