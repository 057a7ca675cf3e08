//! Protection against server-side request forgery: which addresses are special-purpose
//! (loopback, private, link-local, CGNAT, documentation, multicast, reserved, and IPv6
//! forms that embed such an IPv4 address).
//!
//! The check is applied to IP-literal hosts here, to every address a name resolves to
//! (the fetcher's DNS resolver drops special ones), and to the peer address after
//! connecting. Note that the `url` crate already turns `2130706433`, `0x7f000001` and
//! `0177.0.0.1` into `127.0.0.1`, so odd spellings reach this check as plain addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an IPv4 address is special-purpose (not a public unicast address).
pub fn is_special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network"
        || a == 10                           // private
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || a == 127                          // loopback
        || (a == 169 && b == 254)            // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // documentation
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113)  // documentation
        || a >= 224 // multicast, reserved, broadcast
}

/// Whether an IPv6 address is special-purpose, looking inside the forms that carry an
/// IPv4 address.
pub fn is_special_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_special_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_special_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0]     // IPv4-compatible (deprecated) ::a.b.c.d
        || (s[0] & 0xfe00) == 0xfc00         // unique local
        || (s[0] & 0xffc0) == 0xfe80         // link-local
        || (s[0] & 0xff00) == 0xff00         // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo
        || s[0] == 0x2002 // 6to4
}

/// Whether an address is special-purpose.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => is_special_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special(s: &str) -> bool {
        is_special(s.parse().expect("an address"))
    }

    #[test]
    fn special_purpose_addresses() {
        for s in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(special(s), "{s} should be special");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!special(s), "{s} should be public");
        }
    }

    #[test]
    fn odd_spellings_reach_the_check_as_addresses() {
        for s in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::ffff:a9fe:a9fe]/",
        ] {
            let url = url::Url::parse(s).expect("url");
            let ip: IpAddr = match url.host() {
                Some(url::Host::Ipv4(v4)) => v4.into(),
                Some(url::Host::Ipv6(v6)) => v6.into(),
                other => panic!("{s} parsed as {other:?}"),
            };
            assert!(is_special(ip), "{s}");
        }
    }
}
