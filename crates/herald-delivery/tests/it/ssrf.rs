//! The SSRF policy on its own: every refused range and spelling, the public addresses that pass,
//! and how an allowlist opens exactly its networks.

use std::net::IpAddr;

use herald_delivery::ssrf::{NetworkPolicy, SpecialRange, UrlRefused};
use ipnet::IpNet;

fn policy_allowing(cidrs: &[&str]) -> NetworkPolicy {
    NetworkPolicy::with_allowed(cidrs.iter().map(|cidr| cidr.parse::<IpNet>().unwrap()))
}

/// `expected` is `None` for an allowed address, or the range that must refuse it.
fn check(policy: &NetworkPolicy, address: &str, expected: Option<SpecialRange>) {
    let ip: IpAddr = address.parse().unwrap();
    let actual = policy.check_ip(ip).err().map(|refused| {
        assert_eq!(
            refused.address, ip,
            "{address}: the refusal names the address"
        );
        assert!(refused.range.contains(&ip) || refused.embedded.is_some());
        refused.kind
    });
    assert_eq!(actual, expected, "{address}");
}

#[test]
fn default_policy_refuses_every_special_range() {
    use SpecialRange::*;
    let policy = NetworkPolicy::default();
    let table = [
        // IPv4
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.0.1", Private),
        ("192.168.255.255", Private),
        ("169.254.0.1", LinkLocal),
        ("169.254.169.254", CloudMetadata),
        ("168.63.129.16", CloudMetadata),
        ("100.64.0.1", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("100.100.100.200", SharedAddressSpace),
        ("192.0.0.8", ProtocolAssignments),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("192.88.99.1", SixToFour),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("240.0.0.1", Reserved),
        ("254.1.2.3", Reserved),
        ("255.255.255.255", Broadcast),
        // IPv6
        ("::", Unspecified),
        ("::1", Loopback),
        ("::127.0.0.1", Ipv4Compatible),
        ("::8.8.8.8", Ipv4Compatible),
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:7f00:1", Loopback),
        ("::ffff:10.0.0.1", Private),
        ("::ffff:169.254.169.254", CloudMetadata),
        ("::ffff:0.0.0.0", Unspecified),
        ("::ffff:0:8.8.8.8", Ipv4Translated),
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::a9fe:a9fe", CloudMetadata),
        ("64:ff9b:1::1", LocalNat64),
        ("100::1", DiscardOnly),
        ("2001::1", ProtocolAssignments),
        ("2001:db8::1", Documentation),
        ("2002:7f00:1::1", SixToFour),
        ("3fff::1", Documentation),
        ("5f00::1", SegmentRouting),
        ("fc00::1", UniqueLocal),
        ("fd12:3456::1", UniqueLocal),
        ("fd00:ec2::254", CloudMetadata),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", SiteLocal),
        ("ff02::1", Multicast),
        ("ff0e::1", Multicast),
        ("4000::1", Reserved),
        ("1::1", Reserved),
    ];
    for (address, range) in table {
        check(&policy, address, Some(range));
    }
}

#[test]
fn default_policy_allows_public_addresses() {
    let policy = NetworkPolicy::default();
    for address in [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "192.169.0.1",
        "169.253.255.255",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:93.184.216.34",
        "64:ff9b::8.8.8.8",
    ] {
        check(&policy, address, None);
    }
}

#[test]
fn an_allowlist_opens_exactly_its_networks() {
    use SpecialRange::*;
    let loopback = policy_allowing(&["127.0.0.0/8"]);
    check(&loopback, "127.0.0.1", None);
    check(&loopback, "127.8.9.10", None);
    check(&loopback, "::ffff:127.0.0.1", None);
    check(&loopback, "::1", Some(Loopback));
    check(&loopback, "10.0.0.1", Some(Private));
    check(&loopback, "169.254.169.254", Some(CloudMetadata));
    check(&loopback, "93.184.216.34", None);

    let one_subnet = policy_allowing(&["10.1.0.0/16", "fd00::/8"]);
    check(&one_subnet, "10.1.2.3", None);
    check(&one_subnet, "10.2.0.1", Some(Private));
    check(&one_subnet, "fd00:ec2::254", None);
    check(&one_subnet, "fc00::1", Some(UniqueLocal));
}

#[test]
fn a_refusal_names_the_address_the_range_and_the_embedded_address() {
    let policy = NetworkPolicy::default();
    let refused = policy
        .check_ip("169.254.169.254".parse().unwrap())
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "169.254.169.254 is in 169.254.169.254/32 (cloud metadata service); add an allowed network to open it"
    );
    let refused = policy
        .check_ip("::ffff:127.0.0.1".parse().unwrap())
        .unwrap_err();
    assert_eq!(refused.embedded, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        refused.to_string(),
        "::ffff:127.0.0.1 embeds 127.0.0.1, which is in 127.0.0.0/8 (loopback); add an allowed network to open it"
    );
}

/// One line per outcome, so the table below reads as a list of spellings and verdicts.
fn url_verdict(policy: &NetworkPolicy, url: &str) -> String {
    match policy.check_url(url) {
        Ok(target) => format!("ok {}", target.as_str()),
        Err(UrlRefused::Address(refused)) => {
            format!("refused {} {:?}", refused.address, refused.kind)
        }
        Err(UrlRefused::Scheme(scheme)) => format!("scheme {scheme}"),
        Err(UrlRefused::UserInfo) => "userinfo".to_owned(),
        Err(UrlRefused::MissingHost) => "missing host".to_owned(),
        Err(UrlRefused::LocalName { host }) => format!("local name {host}"),
        Err(UrlRefused::Invalid(_)) => "invalid".to_owned(),
        Err(other) => format!("unexpected {other}"),
    }
}

fn check_url(policy: &NetworkPolicy, url: &str, expected: &str) {
    assert_eq!(url_verdict(policy, url), expected, "{url}");
}

#[test]
fn urls_are_refused_for_every_spelling_of_a_refused_address() {
    let policy = NetworkPolicy::default();
    let table = [
        ("http://127.0.0.1/", "refused 127.0.0.1 Loopback"),
        ("http://127.0.0.1:8080/hook", "refused 127.0.0.1 Loopback"),
        ("http://2130706433/", "refused 127.0.0.1 Loopback"),
        ("http://0x7f000001/", "refused 127.0.0.1 Loopback"),
        ("http://0X7F000001/", "refused 127.0.0.1 Loopback"),
        ("http://0177.0.0.1/", "refused 127.0.0.1 Loopback"),
        ("http://017700000001/", "refused 127.0.0.1 Loopback"),
        ("http://127.1/", "refused 127.0.0.1 Loopback"),
        ("http://127.0.1/", "refused 127.0.0.1 Loopback"),
        ("http://0x7f.1/", "refused 127.0.0.1 Loopback"),
        ("http://0x7f.0.0.0x1/", "refused 127.0.0.1 Loopback"),
        ("http://127.0.0.1./", "refused 127.0.0.1 Loopback"),
        ("http://%31%32%37.0.0.1/", "refused 127.0.0.1 Loopback"),
        ("http://１２７.０.０.１/", "refused 127.0.0.1 Loopback"),
        ("http://0/", "refused 0.0.0.0 Unspecified"),
        ("http://0.0.0.0:80/", "refused 0.0.0.0 Unspecified"),
        ("http://10.0.0.1/", "refused 10.0.0.1 Private"),
        ("http://167772161/", "refused 10.0.0.1 Private"),
        ("http://192.168.1.1/", "refused 192.168.1.1 Private"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused 169.254.169.254 CloudMetadata",
        ),
        (
            "http://2852039166/",
            "refused 169.254.169.254 CloudMetadata",
        ),
        (
            "http://0xa9fea9fe/",
            "refused 169.254.169.254 CloudMetadata",
        ),
        ("https://[::1]/", "refused ::1 Loopback"),
        ("http://[::]/", "refused :: Unspecified"),
        (
            "http://[::ffff:127.0.0.1]/",
            "refused ::ffff:127.0.0.1 Loopback",
        ),
        (
            "http://[::ffff:7f00:1]/",
            "refused ::ffff:127.0.0.1 Loopback",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "refused ::ffff:169.254.169.254 CloudMetadata",
        ),
        (
            "http://[64:ff9b::7f00:1]/",
            "refused 64:ff9b::7f00:1 Loopback",
        ),
        ("http://[::127.0.0.1]/", "refused ::7f00:1 Ipv4Compatible"),
        (
            "http://[fd00:ec2::254]/",
            "refused fd00:ec2::254 CloudMetadata",
        ),
        ("http://[fe80::1]/", "refused fe80::1 LinkLocal"),
        ("http://[fc00::1]/", "refused fc00::1 UniqueLocal"),
        ("http://[ff02::1]/", "refused ff02::1 Multicast"),
        ("http://[2001:db8::1]/", "refused 2001:db8::1 Documentation"),
        ("http://224.0.0.1/", "refused 224.0.0.1 Multicast"),
        (
            "http://255.255.255.255/",
            "refused 255.255.255.255 Broadcast",
        ),
        ("http://localhost/", "local name localhost"),
        ("http://LOCALHOST:8080/", "local name localhost"),
        ("http://localhost./", "local name localhost."),
        ("http://api.localhost/hook", "local name api.localhost"),
        ("http://user:secret@example.com/", "userinfo"),
        ("http://user@example.com/", "userinfo"),
        ("https://:secret@example.com/", "userinfo"),
        ("ftp://example.com/", "scheme ftp"),
        ("file:///etc/passwd", "scheme file"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme gopher"),
        ("javascript:alert(1)", "scheme javascript"),
        ("not a url", "invalid"),
        ("http://", "invalid"),
        ("http://256.0.0.1/", "invalid"),
    ];
    for (url, expected) in table {
        check_url(&policy, url, expected);
    }
}

#[test]
fn urls_with_public_hosts_and_names_are_accepted() {
    let policy = NetworkPolicy::default();
    let table = [
        (
            "https://example.com/webhooks",
            "ok https://example.com/webhooks",
        ),
        (
            "HTTPS://Example.COM:8443/a?b=c",
            "ok https://example.com:8443/a?b=c",
        ),
        ("http://93.184.216.34/", "ok http://93.184.216.34/"),
        ("http://1572395042/", "ok http://93.184.216.34/"),
        (
            "http://[2606:4700::1111]:8080/",
            "ok http://[2606:4700::1111]:8080/",
        ),
        // Names are judged at connect time, on the addresses they resolve to.
        ("http://localtest.me/", "ok http://localtest.me/"),
        (
            "http://localhost.example.com/",
            "ok http://localhost.example.com/",
        ),
        ("http://127.0.0.1.nip.io/", "ok http://127.0.0.1.nip.io/"),
    ];
    for (url, expected) in table {
        check_url(&policy, url, expected);
    }
}

#[test]
fn an_allowlist_opens_urls_and_local_names_in_its_networks() {
    let loopback = policy_allowing(&["127.0.0.0/8"]);
    check_url(
        &loopback,
        "http://127.0.0.1:8470/",
        "ok http://127.0.0.1:8470/",
    );
    check_url(&loopback, "http://0x7f000001/", "ok http://127.0.0.1/");
    check_url(
        &loopback,
        "http://localhost:9000/",
        "ok http://localhost:9000/",
    );
    check_url(
        &loopback,
        "http://api.localhost/",
        "ok http://api.localhost/",
    );
    check_url(&loopback, "http://[::1]/", "refused ::1 Loopback");
    check_url(&loopback, "http://10.0.0.1/", "refused 10.0.0.1 Private");
    check_url(&loopback, "http://user:pw@127.0.0.1/", "userinfo");

    let private = policy_allowing(&["10.0.0.0/8"]);
    check_url(&private, "http://10.0.0.1/", "ok http://10.0.0.1/");
    check_url(&private, "http://localhost/", "local name localhost");
}
