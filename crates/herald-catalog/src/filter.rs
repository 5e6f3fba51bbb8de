//! Endpoint filters: which event types an endpoint subscribes to.
//!
//! A filter is an exact native type name (`user.created`), a prefix wildcard ending in `*`
//! (`user.*`, `https://schemas.identity.wso2.org/events/login/*`), a whole taxonomy
//! (`authgear`), or `*` for everything.

use crate::taxonomy::Taxonomy;

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("a filter cannot be empty")]
    Empty,
    #[error("filter {0:?}: '*' may only end a filter")]
    InnerWildcard(String),
    #[error("filter {0:?} is longer than 512 characters")]
    TooLong(String),
}

/// Checks one filter's spelling.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.len() > 512 {
        return Err(FilterError::TooLong(filter.to_owned()));
    }
    if filter[..filter.len() - 1].contains('*') {
        return Err(FilterError::InnerWildcard(filter.to_owned()));
    }
    Ok(())
}

/// Whether any of `filters` selects an event of `event_type` in `taxonomy`.
pub fn matches_any(filters: &[String], event_type: &str, taxonomy: Taxonomy) -> bool {
    filters
        .iter()
        .any(|filter| matches(filter, event_type, taxonomy))
}

/// Whether `filter` selects an event of `event_type` in `taxonomy`.
pub fn matches(filter: &str, event_type: &str, taxonomy: Taxonomy) -> bool {
    if filter == taxonomy.as_str() {
        return true;
    }
    match filter.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => filter == event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(filter: &str, event_type: &str, taxonomy: Taxonomy, expected: bool) {
        assert_eq!(
            matches(filter, event_type, taxonomy),
            expected,
            "{filter} vs {event_type}"
        );
    }

    #[test]
    fn filters_select_types() {
        use Taxonomy::*;
        check("user.created", "user.created", Authgear, true);
        check("user.created", "user.created.v2", Authgear, false);
        check("user.*", "user.profile.updated", Authgear, true);
        check("user.*", "identity.email.added", Authgear, false);
        check("*", "UserCreatedEvent", Onewelcome, true);
        check("authgear", "user.created", Authgear, true);
        check("authgear", "UserCreatedEvent", Onewelcome, false);
        check(
            "https://schemas.identity.wso2.org/events/login/*",
            "https://schemas.identity.wso2.org/events/login/event-type/loginFailed",
            Asgardeo,
            true,
        );
        check("herald.*", "herald.endpoint.disabled", Herald, true);
    }

    #[test]
    fn filter_spelling_is_checked() {
        assert_eq!(check_filter(""), Err(FilterError::Empty));
        assert_eq!(
            check_filter("us*er"),
            Err(FilterError::InnerWildcard("us*er".to_owned()))
        );
        assert_eq!(check_filter("user.*"), Ok(()));
        assert_eq!(check_filter("*"), Ok(()));
    }
}
