//! Taxonomies: the families of event types, each with its own naming and envelope. A vendor's
//! taxonomy has its facts in its [`Vendor`] module; the enum is the stable name stored with
//! every event.

use std::fmt;
use std::str::FromStr;

use crate::vendor::{VENDORS, Vendor};

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

/// The taxonomies that are Herald's own rather than a vendor's.
const HERALD_OWN: [Taxonomy; 2] = [Taxonomy::Herald, Taxonomy::Custom];

impl Taxonomy {
    /// Every taxonomy in a stable order: the vendors' in registry order, then Herald's own.
    pub fn all() -> impl Iterator<Item = Taxonomy> {
        VENDORS
            .iter()
            .map(|vendor| vendor.taxonomy())
            .chain(HERALD_OWN)
    }

    /// The vendor whose types these are; `None` for Herald's own taxonomies.
    pub fn vendor(self) -> Option<&'static dyn Vendor> {
        crate::vendor::of(self)
    }

    /// The lowercase name used in the API, the CLI and endpoint filters, and stored with every
    /// event: it never changes once a taxonomy has events.
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

/// The name given is not one of [`Taxonomy::all`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown taxonomy {0:?}: expected one of {names}", names = known_names())]
pub struct UnknownTaxonomy(pub String);

fn known_names() -> String {
    Taxonomy::all()
        .map(Taxonomy::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Taxonomy {
    type Err = UnknownTaxonomy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Taxonomy::all()
            .find(|taxonomy| taxonomy.as_str() == name)
            .ok_or_else(|| UnknownTaxonomy(name.to_owned()))
    }
}
