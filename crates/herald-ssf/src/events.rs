//! The event type URIs a Herald transmitter can send: CAEP 1.0 §3, RISC 1.0 §2 and SSF 1.0's own
//! stream events (verification, stream updated).

/// One SSF event type. The URI is the member name inside a SET's `events` claim (RFC 8417 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SsfEventType {
    CaepSessionRevoked,
    CaepTokenClaimsChange,
    CaepCredentialChange,
    CaepAssuranceLevelChange,
    CaepDeviceComplianceChange,
    CaepSessionEstablished,
    CaepSessionPresented,
    RiscAccountCredentialChangeRequired,
    RiscAccountPurged,
    RiscAccountDisabled,
    RiscAccountEnabled,
    RiscIdentifierChanged,
    RiscIdentifierRecycled,
    RiscCredentialCompromise,
    RiscSessionsRevoked,
    RiscRecoveryActivated,
    RiscRecoveryInformationChanged,
    SsfVerification,
    SsfStreamUpdated,
}

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const SSF: &str = "https://schemas.openid.net/secevent/ssf/event-type/";

impl SsfEventType {
    /// Every type, in a stable order (the order `events_supported` lists them).
    pub const ALL: [SsfEventType; 19] = [
        Self::CaepSessionRevoked,
        Self::CaepTokenClaimsChange,
        Self::CaepCredentialChange,
        Self::CaepAssuranceLevelChange,
        Self::CaepDeviceComplianceChange,
        Self::CaepSessionEstablished,
        Self::CaepSessionPresented,
        Self::RiscAccountCredentialChangeRequired,
        Self::RiscAccountPurged,
        Self::RiscAccountDisabled,
        Self::RiscAccountEnabled,
        Self::RiscIdentifierChanged,
        Self::RiscIdentifierRecycled,
        Self::RiscCredentialCompromise,
        Self::RiscSessionsRevoked,
        Self::RiscRecoveryActivated,
        Self::RiscRecoveryInformationChanged,
        Self::SsfVerification,
        Self::SsfStreamUpdated,
    ];

    fn parts(self) -> (&'static str, &'static str) {
        match self {
            Self::CaepSessionRevoked => (CAEP, "session-revoked"),
            Self::CaepTokenClaimsChange => (CAEP, "token-claims-change"),
            Self::CaepCredentialChange => (CAEP, "credential-change"),
            Self::CaepAssuranceLevelChange => (CAEP, "assurance-level-change"),
            Self::CaepDeviceComplianceChange => (CAEP, "device-compliance-change"),
            Self::CaepSessionEstablished => (CAEP, "session-established"),
            Self::CaepSessionPresented => (CAEP, "session-presented"),
            Self::RiscAccountCredentialChangeRequired => {
                (RISC, "account-credential-change-required")
            }
            Self::RiscAccountPurged => (RISC, "account-purged"),
            Self::RiscAccountDisabled => (RISC, "account-disabled"),
            Self::RiscAccountEnabled => (RISC, "account-enabled"),
            Self::RiscIdentifierChanged => (RISC, "identifier-changed"),
            Self::RiscIdentifierRecycled => (RISC, "identifier-recycled"),
            Self::RiscCredentialCompromise => (RISC, "credential-compromise"),
            Self::RiscSessionsRevoked => (RISC, "sessions-revoked"),
            Self::RiscRecoveryActivated => (RISC, "recovery-activated"),
            Self::RiscRecoveryInformationChanged => (RISC, "recovery-information-changed"),
            Self::SsfVerification => (SSF, "verification"),
            Self::SsfStreamUpdated => (SSF, "stream-updated"),
        }
    }

    /// The full event type URI.
    pub fn uri(self) -> String {
        let (prefix, name) = self.parts();
        format!("{prefix}{name}")
    }

    /// The family and name, such as `caep/session-revoked`: how the docs and the API list a type.
    pub fn short_name(self) -> String {
        let (prefix, name) = self.parts();
        let family = prefix
            .trim_end_matches("/event-type/")
            .rsplit('/')
            .next()
            .unwrap_or("");
        format!("{family}/{name}")
    }

    /// The type a URI names, if Herald knows it.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event_type| {
            let (prefix, name) = event_type.parts();
            uri.strip_prefix(prefix) == Some(name)
        })
    }

    /// Whether a receiver may ask for this type in `events_requested`: the stream-management events
    /// (verification, stream updated) are always sent and are not requested (SSF 1.0, stream
    /// configuration: `events_delivered` is the intersection of requested and supported).
    pub fn is_requestable(self) -> bool {
        !matches!(self, Self::SsfVerification | Self::SsfStreamUpdated)
    }
}

#[cfg(test)]
mod tests {
    use super::SsfEventType;

    #[test]
    fn every_uri_round_trips_and_is_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for event_type in SsfEventType::ALL {
            let uri = event_type.uri();
            assert_eq!(SsfEventType::from_uri(&uri), Some(event_type), "{uri}");
            assert!(seen.insert(uri));
        }
        assert_eq!(
            SsfEventType::CaepSessionRevoked.uri(),
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
        );
        assert_eq!(
            SsfEventType::RiscAccountDisabled.uri(),
            "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
        );
        assert_eq!(
            SsfEventType::CaepCredentialChange.short_name(),
            "caep/credential-change"
        );
        assert_eq!(
            SsfEventType::from_uri("https://schemas.openid.net/secevent/caep/event-type/"),
            None
        );
    }
}
