//! Taxonomies: the families of event types, each with its own naming and envelope.

use std::fmt;
use std::str::FromStr;

/// A family of event types. Each taxonomy has its own native envelope on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Taxonomy {
    /// Asgardeo (WSO2): SET-like `{iss, jti, iat, rci, events: {<uri>: payload}}`.
    Asgardeo,
    /// OneWelcome (Thales): `{metadata: {...}, payload: {...}}`.
    Onewelcome,
    /// Authgear: `{id, seq, type, payload, context}`.
    Authgear,
    /// Herald's own operational events (`herald.endpoint.disabled`, ...).
    Herald,
    /// Types a tenant registers at run time with a JSON Schema.
    Custom,
}

impl Taxonomy {
    /// Every taxonomy, in a stable order.
    pub const ALL: [Taxonomy; 5] = [
        Taxonomy::Asgardeo,
        Taxonomy::Onewelcome,
        Taxonomy::Authgear,
        Taxonomy::Herald,
        Taxonomy::Custom,
    ];

    /// The lowercase name used in the API, the CLI and endpoint filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Taxonomy::Asgardeo => "asgardeo",
            Taxonomy::Onewelcome => "onewelcome",
            Taxonomy::Authgear => "authgear",
            Taxonomy::Herald => "herald",
            Taxonomy::Custom => "custom",
        }
    }
}

impl fmt::Display for Taxonomy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The name given is not one of [`Taxonomy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown taxonomy {0:?}: expected one of asgardeo, onewelcome, authgear, herald, custom")]
pub struct UnknownTaxonomy(pub String);

impl FromStr for Taxonomy {
    type Err = UnknownTaxonomy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Taxonomy::ALL
            .into_iter()
            .find(|taxonomy| taxonomy.as_str() == name)
            .ok_or_else(|| UnknownTaxonomy(name.to_owned()))
    }
}
