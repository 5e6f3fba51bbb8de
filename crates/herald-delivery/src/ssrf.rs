//! The SSRF guard's policy: which addresses and URLs Herald may call out to.
//!
//! Everything here is pure. [`NetworkPolicy::check_ip`] decides on one address and is what the
//! HTTP client applies to every address a hostname resolves to, at connect time (that is what
//! defeats DNS rebinding: the name is checked on the address actually dialled, not on an earlier
//! lookup). [`NetworkPolicy::check_url`] runs when an endpoint or hook is created, so a user learns
//! at once that `http://169.254.169.254/` will never be called; it cannot judge hostnames, which
//! only the connect-time check can.
//!
//! The guard is on by default and refuses every address that is not public unicast: loopback,
//! private, shared (CGNAT), link-local and cloud metadata, multicast, documentation, benchmarking
//! and reserved ranges, and IPv6 forms that embed such an IPv4 address. An allowlist of CIDRs
//! opens ranges on purpose (tests and local development use `127.0.0.0/8`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Why a range is refused; each refusal names one, so logs and API errors say what matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecialRange {
    /// `0.0.0.0/8` and `::`: "this host"; connecting to it reaches the local machine.
    Unspecified,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598); also hosts some cloud metadata services.
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Cloud instance metadata services (`169.254.169.254`, `fd00:ec2::254`, Azure's
    /// `168.63.129.16`), which hand out credentials to whoever asks from inside the instance.
    CloudMetadata,
    /// `192.0.0.0/24` and `2001::/23`: IETF protocol assignments (Teredo among them).
    ProtocolAssignments,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` (RFC 2544).
    Benchmarking,
    /// 6to4: `192.88.99.0/24` relays and `2002::/16`, deprecated by RFC 7526.
    SixToFour,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4` and IPv6 space outside global unicast `2000::/3`.
    Reserved,
    /// `fc00::/7` (unique local addresses, the IPv6 private range).
    UniqueLocal,
    /// `fec0::/10`, deprecated but still routed inside some sites.
    SiteLocal,
    /// `::/96`, the deprecated IPv4-compatible form.
    Ipv4Compatible,
    /// `::ffff:0:0:0/96` (SIIT, RFC 6145).
    Ipv4Translated,
    /// `64:ff9b:1::/48`, NAT64 prefixes local to a network (RFC 8215).
    LocalNat64,
    /// `100::/64` (RFC 6666).
    DiscardOnly,
    /// `5f00::/16`, segment-routing identifiers (RFC 9602).
    SegmentRouting,
}

impl SpecialRange {
    /// A short human description, used in error messages.
    pub fn description(self) -> &'static str {
        match self {
            SpecialRange::Unspecified => "unspecified (this host)",
            SpecialRange::Loopback => "loopback",
            SpecialRange::Private => "private network",
            SpecialRange::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            SpecialRange::LinkLocal => "link-local",
            SpecialRange::CloudMetadata => "cloud metadata service",
            SpecialRange::ProtocolAssignments => "IETF protocol assignments",
            SpecialRange::Documentation => "documentation",
            SpecialRange::Benchmarking => "benchmarking",
            SpecialRange::SixToFour => "6to4 (deprecated)",
            SpecialRange::Multicast => "multicast",
            SpecialRange::Broadcast => "broadcast",
            SpecialRange::Reserved => "reserved",
            SpecialRange::UniqueLocal => "unique local (IPv6 private)",
            SpecialRange::SiteLocal => "site-local (deprecated)",
            SpecialRange::Ipv4Compatible => "IPv4-compatible IPv6 (deprecated)",
            SpecialRange::Ipv4Translated => "IPv4-translated IPv6",
            SpecialRange::LocalNat64 => "local-use NAT64",
            SpecialRange::DiscardOnly => "discard-only",
            SpecialRange::SegmentRouting => "segment-routing identifiers",
        }
    }
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.description())
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix_len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix_len)
}

const fn v6(segments: [u16; 8], prefix_len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix_len)
}

/// Refused IPv4 ranges. The first match names the refusal, so the specific entries (metadata,
/// broadcast) come before the ranges that contain them.
const IPV4_REFUSED: &[(Ipv4Net, SpecialRange)] = &[
    (v4(0, 0, 0, 0, 8), SpecialRange::Unspecified),
    (v4(10, 0, 0, 0, 8), SpecialRange::Private),
    (v4(100, 64, 0, 0, 10), SpecialRange::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), SpecialRange::Loopback),
    (v4(169, 254, 169, 254, 32), SpecialRange::CloudMetadata),
    (v4(169, 254, 0, 0, 16), SpecialRange::LinkLocal),
    // Azure's WireServer is a public-looking address that only answers from inside Azure.
    (v4(168, 63, 129, 16, 32), SpecialRange::CloudMetadata),
    (v4(172, 16, 0, 0, 12), SpecialRange::Private),
    (v4(192, 0, 0, 0, 24), SpecialRange::ProtocolAssignments),
    (v4(192, 0, 2, 0, 24), SpecialRange::Documentation),
    (v4(192, 88, 99, 0, 24), SpecialRange::SixToFour),
    (v4(192, 168, 0, 0, 16), SpecialRange::Private),
    (v4(198, 18, 0, 0, 15), SpecialRange::Benchmarking),
    (v4(198, 51, 100, 0, 24), SpecialRange::Documentation),
    (v4(203, 0, 113, 0, 24), SpecialRange::Documentation),
    (v4(224, 0, 0, 0, 4), SpecialRange::Multicast),
    (v4(255, 255, 255, 255, 32), SpecialRange::Broadcast),
    (v4(240, 0, 0, 0, 4), SpecialRange::Reserved),
];

/// Refused IPv6 ranges, after IPv4-mapped and NAT64 addresses have been unwrapped (their
/// embedded IPv4 address is judged instead). Anything outside `2000::/3` that is not listed is
/// refused as reserved: nothing else is globally routed today.
const IPV6_REFUSED: &[(Ipv6Net, SpecialRange)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), SpecialRange::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), SpecialRange::Loopback),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        SpecialRange::Ipv4Compatible,
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        SpecialRange::Ipv4Translated,
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        SpecialRange::LocalNat64,
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        SpecialRange::DiscardOnly,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        SpecialRange::ProtocolAssignments,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        SpecialRange::Documentation,
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        SpecialRange::SixToFour,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        SpecialRange::Documentation,
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        SpecialRange::SegmentRouting,
    ),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        SpecialRange::CloudMetadata,
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        SpecialRange::UniqueLocal,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        SpecialRange::LinkLocal,
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        SpecialRange::SiteLocal,
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        SpecialRange::Multicast,
    ),
];

/// Global unicast: the only IPv6 space that is routed on the internet.
const IPV6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// The NAT64 well-known prefix (RFC 6052): the last 32 bits are the IPv4 address a NAT64
/// gateway will connect to, so that address is what must be judged.
const NAT64_WELL_KNOWN: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// An address the guard refuses, and the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The address as it was given (or as the name resolved).
    pub address: IpAddr,
    /// For an IPv4-mapped or NAT64 address, the embedded IPv4 address that was judged.
    pub embedded: Option<Ipv4Addr>,
    /// The refused range that matched.
    pub range: IpNet,
    /// What that range is.
    pub kind: SpecialRange,
}

impl fmt::Display for Refused {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(embedded) => write!(
                formatter,
                "{} embeds {embedded}, which is in {} ({}); add an allowed network to open it",
                self.address, self.range, self.kind
            ),
            None => write!(
                formatter,
                "{} is in {} ({}); add an allowed network to open it",
                self.address, self.range, self.kind
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// The longest URL accepted, in bytes. Webhook URLs are short; a long one is stored, listed and
/// sent on every attempt, and most servers refuse request lines much longer than this anyway.
pub const MAX_URL_LEN: usize = 4096;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefused {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("the URL has {len} bytes; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("the URL scheme must be http or https, not {0:?}")]
    Scheme(String),
    #[error("the URL must not carry a user name or password")]
    UserInfo,
    #[error("the URL has no host")]
    MissingHost,
    #[error(
        "the host {host:?} is a local name; add an allowed network covering 127.0.0.1 to open it"
    )]
    LocalName { host: String },
    #[error(transparent)]
    Address(#[from] Refused),
    /// Found at connect time: the hostname resolved, but only to refused addresses.
    #[error("every address {host:?} resolves to is refused, e.g. {first}")]
    AllAddressesRefused { host: String, first: Refused },
}

/// A URL that passed [`NetworkPolicy::check_url`]: http or https, no user info, a host, and no
/// refused IP literal. A hostname in it is still checked again on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTarget {
    url: Url,
}

impl ParsedTarget {
    /// The normalised URL (an IP literal spelled `http://0x7f.1/` reads `http://127.0.0.1/`).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn into_url(self) -> Url {
        self.url
    }
}

/// Which addresses outbound requests may reach.
///
/// The default refuses every special range and allows nothing extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Networks opened on purpose; an address inside one is allowed whatever range it is in.
    pub allow: Vec<IpNet>,
}

impl NetworkPolicy {
    /// The guard with the given networks opened (`herald serve --allow-network CIDR`).
    pub fn with_allowed(cidrs: impl IntoIterator<Item = IpNet>) -> Self {
        NetworkPolicy {
            allow: cidrs.into_iter().collect(),
        }
    }

    /// Decides on one address: allowed if an allowed network contains it, refused if it lies in
    /// a special range, allowed otherwise.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow.iter().any(|network| network.contains(&ip)) {
            return Ok(());
        }
        match ip {
            IpAddr::V4(address) => refused_v4(address).map_or(Ok(()), |(range, kind)| {
                Err(Refused {
                    address: ip,
                    embedded: None,
                    range: IpNet::V4(range),
                    kind,
                })
            }),
            IpAddr::V6(address) => match embedded_ipv4(address) {
                // The packet would go to the embedded IPv4 address, so that address is judged,
                // allowlist included, and the refusal names both.
                Some(embedded) => self
                    .check_ip(IpAddr::V4(embedded))
                    .map_err(|refused| Refused {
                        address: ip,
                        embedded: Some(embedded),
                        ..refused
                    }),
                None => refused_v6(address).map_or(Ok(()), |(range, kind)| {
                    Err(Refused {
                        address: ip,
                        embedded: None,
                        range: IpNet::V6(range),
                        kind,
                    })
                }),
            },
        }
    }

    /// Checks a URL given by a user (an endpoint or hook URL) before it is stored.
    ///
    /// The URL is parsed with the same parser that sends requests, so every spelling of an
    /// IPv4 address it understands (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, percent
    /// escapes, full-width digits) is normalised to the address that would be dialled and
    /// judged as such. Hostnames other than `localhost` are accepted here: only the
    /// connect-time check sees the addresses they resolve to.
    pub fn check_url(&self, url: &str) -> Result<ParsedTarget, UrlRefused> {
        let url = self.check_url_except_names(url)?;
        if let Some(Host::Domain(name)) = url.host()
            && is_local_name(name)
            && !self.allows_loopback()
        {
            return Err(UrlRefused::LocalName {
                host: name.to_owned(),
            });
        }
        Ok(ParsedTarget { url })
    }

    /// The rules that need no name resolution: scheme, user info, host present, IP literal.
    /// The HTTP client applies these on every send, because IP-literal URLs never reach its
    /// resolver; names, `localhost` included, are left to the resolver, which judges the
    /// addresses they actually resolve to.
    pub(crate) fn check_url_except_names(&self, url: &str) -> Result<Url, UrlRefused> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlRefused::TooLong {
                len: url.len(),
                max: MAX_URL_LEN,
            });
        }
        let url = Url::parse(url).map_err(|error| UrlRefused::Invalid(error.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(UrlRefused::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::UserInfo);
        }
        match url.host() {
            None => return Err(UrlRefused::MissingHost),
            Some(Host::Ipv4(address)) => self.check_ip(IpAddr::V4(address))?,
            Some(Host::Ipv6(address)) => self.check_ip(IpAddr::V6(address))?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// `localhost` resolves to loopback without asking DNS (RFC 6761), so it is refused up
    /// front unless loopback is open.
    fn allows_loopback(&self) -> bool {
        self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_ok()
    }
}

/// `localhost`, `*.localhost`, with or without the trailing root dot. The URL parser has already
/// lowercased the name.
fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost" || name.ends_with(".localhost")
}

fn refused_v4(address: Ipv4Addr) -> Option<(Ipv4Net, SpecialRange)> {
    IPV4_REFUSED
        .iter()
        .find(|(range, _)| range.contains(&address))
        .copied()
}

fn refused_v6(address: Ipv6Addr) -> Option<(Ipv6Net, SpecialRange)> {
    if let Some(found) = IPV6_REFUSED
        .iter()
        .find(|(range, _)| range.contains(&address))
        .copied()
    {
        return Some(found);
    }
    if !IPV6_GLOBAL_UNICAST.contains(&address) {
        // Name the /3 block the address falls in, e.g. `4000::/3`.
        let block = Ipv6Net::new_assert(address, 3).trunc();
        return Some((block, SpecialRange::Reserved));
    }
    None
}

/// The IPv4 address an IPv6 address stands for, when the packet would really go to it:
/// IPv4-mapped (`::ffff:a.b.c.d`, how dual-stack sockets see IPv4) and NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Some(mapped);
    }
    if NAT64_WELL_KNOWN.contains(&address) {
        let [.., a, b, c, d] = address.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}
