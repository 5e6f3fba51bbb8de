//! The blocking-hook contract (Authgear's): reading a hook's answer and applying its mutations.
//!
//! A hook answers `{"is_allowed": true, "mutations": {...}}` or
//! `{"is_allowed": false, "title": "...", "reason": "..."}`. Hooks run in a chain, each seeing the
//! payload as the previous one left it, so the chain runner calls [`parse_hook_response`] and then
//! [`apply_mutations`] once per hook. Only the members Authgear documents as mutable may change,
//! and each mutated member replaces the original whole: a hook that returns `roles: ["a"]` means
//! exactly those roles, not those added to the old ones.

use serde_json::{Map, Value};

/// The blocking user event types whose `payload.user` may be mutated.
pub const USER_MUTABLE_EVENT_TYPES: [&str; 4] = [
    "user.pre_create",
    "user.profile.pre_update",
    "user.pre_schedule_deletion",
    "user.pre_schedule_anonymization",
];

/// The blocking event type whose `payload.jwt.payload` may be mutated.
pub const JWT_MUTABLE_EVENT_TYPE: &str = "oidc.jwt.pre_create";

/// The members of `mutations.user` a hook may set, with their required shapes.
const USER_MUTABLE_MEMBERS: [(&str, MemberKind); 4] = [
    ("standard_attributes", MemberKind::Object),
    ("custom_attributes", MemberKind::Object),
    ("roles", MemberKind::StringArray),
    ("groups", MemberKind::StringArray),
];

/// The members of `mutations.jwt` a hook may set.
const JWT_MUTABLE_MEMBERS: [(&str, MemberKind); 1] = [("payload", MemberKind::Object)];

/// What a hook decided.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAnswer {
    /// Go ahead, with the payload changed by `mutations` (a JSON object) if present.
    Allow { mutations: Option<Value> },
    /// Stop the operation; `title` and `reason` are shown to the user.
    Deny {
        title: Option<String>,
        reason: Option<String>,
    },
}

/// Why a hook's response body was not a valid answer. The chain treats this like a failed hook
/// (its failure policy decides).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookResponseError {
    #[error("the hook response is not JSON: {0}")]
    InvalidJson(String),
    #[error("the hook response is not a JSON object")]
    NotAnObject,
    #[error("the hook response has no `is_allowed`")]
    MissingIsAllowed,
    #[error("`is_allowed` in the hook response is not a boolean")]
    IsAllowedNotBoolean,
    #[error("`mutations` in the hook response is not an object")]
    MutationsNotAnObject,
    #[error("the hook denied the operation but also returned `mutations`")]
    DenialWithMutations,
    #[error("`{member}` in the hook response is not a string")]
    MemberNotString { member: &'static str },
}

/// Why a hook's mutations were refused. `pointer` is the JSON Pointer (RFC 6901) of the offending
/// member within the `mutations` object, or within the payload for
/// [`MutationError::PayloadMemberMissing`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    #[error("`mutations` is not a JSON object")]
    NotAnObject,
    #[error("events of type `{event_type}` cannot be mutated")]
    EventTypeNotMutable { event_type: String },
    #[error("`{pointer}` may not be mutated")]
    Forbidden { pointer: String },
    #[error("`{pointer}` must be {expected}")]
    WrongType {
        pointer: String,
        expected: &'static str,
    },
    #[error("the payload has no object at `{pointer}` to apply the mutations to")]
    PayloadMemberMissing { pointer: String },
}

/// Reads a hook's response body.
///
/// Unknown top-level members are ignored so hooks may send more than the contract asks for.
/// `mutations: null` or `{}` count as no mutations. A denial must not carry mutations: it is
/// ambiguous whether the hook meant to refuse, so it is an error rather than a guess.
pub fn parse_hook_response(body: &[u8]) -> Result<HookAnswer, HookResponseError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|error| HookResponseError::InvalidJson(error.to_string()))?;
    interpret_hook_response(document)
}

/// [`parse_hook_response`] for an answer already parsed (by a stricter parser, for instance).
pub fn interpret_hook_response(document: Value) -> Result<HookAnswer, HookResponseError> {
    let Value::Object(members) = document else {
        return Err(HookResponseError::NotAnObject);
    };
    let is_allowed = match members.get("is_allowed") {
        None => return Err(HookResponseError::MissingIsAllowed),
        Some(Value::Bool(is_allowed)) => *is_allowed,
        Some(_) => return Err(HookResponseError::IsAllowedNotBoolean),
    };
    let mutations = match members.get("mutations") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mutation_members)) if mutation_members.is_empty() => None,
        Some(mutations @ Value::Object(_)) => Some(mutations.clone()),
        Some(_) => return Err(HookResponseError::MutationsNotAnObject),
    };
    if is_allowed {
        return Ok(HookAnswer::Allow { mutations });
    }
    if mutations.is_some() {
        return Err(HookResponseError::DenialWithMutations);
    }
    Ok(HookAnswer::Deny {
        title: optional_string(&members, "title")?,
        reason: optional_string(&members, "reason")?,
    })
}

fn optional_string(
    members: &Map<String, Value>,
    member: &'static str,
) -> Result<Option<String>, HookResponseError> {
    match members.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(HookResponseError::MemberNotString { member }),
    }
}

/// Applies a hook's `mutations` to an event's `payload`, returning the new payload.
///
/// For the user blocking types, `mutations.user` may hold `standard_attributes` and
/// `custom_attributes` (objects) and `roles` and `groups` (arrays of strings); for
/// `oidc.jwt.pre_create`, `mutations.jwt` may hold `payload` (an object). Each replaces the
/// payload's member of the same name whole. Anything else is refused with its JSON Pointer, and
/// nothing is applied unless everything is valid. The result still has to pass the event type's
/// schema, which is the catalog's job.
pub fn apply_mutations(
    event_type: &str,
    payload: &Value,
    mutations: &Value,
) -> Result<Value, MutationError> {
    let mutation_members = match mutations {
        Value::Null => return Ok(payload.clone()),
        Value::Object(mutation_members) => mutation_members,
        _ => return Err(MutationError::NotAnObject),
    };
    if mutation_members.is_empty() {
        return Ok(payload.clone());
    }
    let (container, mutable_members): (&str, &[(&str, MemberKind)]) =
        if USER_MUTABLE_EVENT_TYPES.contains(&event_type) {
            ("user", &USER_MUTABLE_MEMBERS)
        } else if event_type == JWT_MUTABLE_EVENT_TYPE {
            ("jwt", &JWT_MUTABLE_MEMBERS)
        } else {
            return Err(MutationError::EventTypeNotMutable {
                event_type: event_type.to_owned(),
            });
        };

    // Validate everything before touching the payload, so a refusal leaves no partial result.
    let mut replacements: Vec<(&str, &Value)> = Vec::new();
    for (member, value) in mutation_members {
        let member = member.as_str();
        if member != container {
            return Err(MutationError::Forbidden {
                pointer: json_pointer(&[member]),
            });
        }
        let Value::Object(container_members) = value else {
            return Err(MutationError::WrongType {
                pointer: json_pointer(&[member]),
                expected: "an object",
            });
        };
        for (inner_member, inner_value) in container_members {
            let inner_member = inner_member.as_str();
            let Some((mutable_member, kind)) = mutable_members
                .iter()
                .find(|(mutable_member, _)| *mutable_member == inner_member)
            else {
                return Err(MutationError::Forbidden {
                    pointer: json_pointer(&[member, inner_member]),
                });
            };
            kind.check(inner_value, &[member, inner_member])?;
            replacements.push((mutable_member, inner_value));
        }
    }

    let mut mutated_payload = payload.clone();
    let Some(target) = mutated_payload
        .get_mut(container)
        .and_then(Value::as_object_mut)
    else {
        return Err(MutationError::PayloadMemberMissing {
            pointer: json_pointer(&[container]),
        });
    };
    for (member, value) in replacements {
        target.insert(member.to_owned(), value.clone());
    }
    Ok(mutated_payload)
}

/// The shape a mutable member must have.
#[derive(Debug, Clone, Copy)]
enum MemberKind {
    Object,
    StringArray,
}

impl MemberKind {
    fn check(self, value: &Value, path: &[&str]) -> Result<(), MutationError> {
        match (self, value) {
            (Self::Object, Value::Object(_)) => Ok(()),
            (Self::Object, _) => Err(MutationError::WrongType {
                pointer: json_pointer(path),
                expected: "an object",
            }),
            (Self::StringArray, Value::Array(items)) => {
                match items.iter().position(|item| !item.is_string()) {
                    None => Ok(()),
                    Some(item_idx) => {
                        let item_idx = item_idx.to_string();
                        let mut item_path = path.to_vec();
                        item_path.push(&item_idx);
                        Err(MutationError::WrongType {
                            pointer: json_pointer(&item_path),
                            expected: "a string",
                        })
                    }
                }
            }
            (Self::StringArray, _) => Err(MutationError::WrongType {
                pointer: json_pointer(path),
                expected: "an array of strings",
            }),
        }
    }
}

/// A JSON Pointer (RFC 6901) from member names, escaping `~` and `/` as the RFC requires so a
/// member named `a/b` cannot be mistaken for a nested one.
fn json_pointer(path: &[&str]) -> String {
    let mut pointer = String::new();
    for member in path {
        pointer.push('/');
        pointer.push_str(&member.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn hook_responses_are_read_strictly() {
        fn check(body: &str, expected: Result<HookAnswer, HookResponseError>) {
            let got = parse_hook_response(body.as_bytes());
            match (&got, &expected) {
                // serde_json's message wording is not ours to pin.
                (
                    Err(HookResponseError::InvalidJson(_)),
                    Err(HookResponseError::InvalidJson(_)),
                ) => {}
                _ => assert_eq!(got, expected, "{body}"),
            }
        }
        let allow = |mutations: Option<Value>| Ok(HookAnswer::Allow { mutations });
        check(r#"{"is_allowed": true}"#, allow(None));
        check(r#"{"is_allowed": true, "mutations": null}"#, allow(None));
        check(r#"{"is_allowed": true, "mutations": {}}"#, allow(None));
        check(
            r#"{"is_allowed": true, "mutations": {"user": {"roles": ["a"]}}, "extra": 1}"#,
            allow(Some(json!({"user": {"roles": ["a"]}}))),
        );
        check(
            r#"{"is_allowed": false, "title": "Not allowed", "reason": "Blocked domain"}"#,
            Ok(HookAnswer::Deny {
                title: Some("Not allowed".to_owned()),
                reason: Some("Blocked domain".to_owned()),
            }),
        );
        check(
            r#"{"is_allowed": false, "title": null}"#,
            Ok(HookAnswer::Deny {
                title: None,
                reason: None,
            }),
        );
        check(
            r#"{"is_allowed": false, "mutations": null}"#,
            Ok(HookAnswer::Deny {
                title: None,
                reason: None,
            }),
        );
        check("", Err(HookResponseError::InvalidJson(String::new())));
        check(
            "{\"is_allowed\": true,}",
            Err(HookResponseError::InvalidJson(String::new())),
        );
        check("[]", Err(HookResponseError::NotAnObject));
        check("true", Err(HookResponseError::NotAnObject));
        check("{}", Err(HookResponseError::MissingIsAllowed));
        check(
            r#"{"is_allowed": "true"}"#,
            Err(HookResponseError::IsAllowedNotBoolean),
        );
        check(
            r#"{"is_allowed": 1}"#,
            Err(HookResponseError::IsAllowedNotBoolean),
        );
        check(
            r#"{"is_allowed": null}"#,
            Err(HookResponseError::IsAllowedNotBoolean),
        );
        check(
            r#"{"is_allowed": true, "mutations": []}"#,
            Err(HookResponseError::MutationsNotAnObject),
        );
        check(
            r#"{"is_allowed": false, "mutations": {"user": {}}}"#,
            Err(HookResponseError::DenialWithMutations),
        );
        check(
            r#"{"is_allowed": false, "mutations": []}"#,
            Err(HookResponseError::MutationsNotAnObject),
        );
        check(
            r#"{"is_allowed": false, "reason": 42}"#,
            Err(HookResponseError::MemberNotString { member: "reason" }),
        );
    }

    fn user_payload() -> Value {
        json!({
            "user": {
                "id": "u1",
                "standard_attributes": {"email": "a@example.com", "name": "A"},
                "custom_attributes": {"tier": "gold"},
                "roles": ["reader"],
                "groups": ["staff"]
            },
            "identities": [{"type": "login_id"}]
        })
    }

    fn jwt_payload() -> Value {
        json!({
            "user": {"id": "u1"},
            "jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "u1"}}
        })
    }

    fn check(
        event_type: &str,
        payload: Value,
        mutations: Value,
        expected: Result<Value, MutationError>,
    ) {
        let got = apply_mutations(event_type, &payload, &mutations);
        assert_eq!(got, expected, "{event_type} {mutations}");
    }

    fn forbidden(pointer: &str) -> Result<Value, MutationError> {
        Err(MutationError::Forbidden {
            pointer: pointer.to_owned(),
        })
    }

    fn wrong_type(pointer: &str, expected: &'static str) -> Result<Value, MutationError> {
        Err(MutationError::WrongType {
            pointer: pointer.to_owned(),
            expected,
        })
    }

    #[test]
    fn allowed_mutations_replace_members_whole() {
        for event_type in USER_MUTABLE_EVENT_TYPES {
            check(event_type, user_payload(), json!(null), Ok(user_payload()));
            check(event_type, user_payload(), json!({}), Ok(user_payload()));
            check(
                event_type,
                user_payload(),
                json!({"user": {}}),
                Ok(user_payload()),
            );
            check(
                event_type,
                user_payload(),
                json!({"user": {
                    "standard_attributes": {"email": "b@example.com"},
                    "roles": [],
                    "groups": ["staff", "admins"]
                }}),
                Ok(json!({
                    "user": {
                        "id": "u1",
                        "standard_attributes": {"email": "b@example.com"},
                        "custom_attributes": {"tier": "gold"},
                        "roles": [],
                        "groups": ["staff", "admins"]
                    },
                    "identities": [{"type": "login_id"}]
                })),
            );
        }
        check(
            "user.pre_create",
            json!({"user": {"id": "u1"}}),
            json!({"user": {"custom_attributes": {"x": {"nested": true}}}}),
            Ok(json!({"user": {"id": "u1", "custom_attributes": {"x": {"nested": true}}}})),
        );
        check(
            JWT_MUTABLE_EVENT_TYPE,
            jwt_payload(),
            json!({"jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "u1", "tier": "gold"}}}),
            Ok(json!({
                "user": {"id": "u1"},
                "jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "u1", "tier": "gold"}}
            })),
        );
    }

    #[test]
    fn undocumented_mutations_are_refused_with_their_pointer() {
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"id": "u2"}}),
            forbidden("/user/id"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"roles": ["a"], "is_disabled": true}}),
            forbidden("/user/is_disabled"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"identities": []}),
            forbidden("/identities"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"jwt": {"payload": {}}}),
            forbidden("/jwt"),
        );
        check(
            "user.profile.pre_update",
            user_payload(),
            json!({"user": {"a/b~c": 1}}),
            forbidden("/user/a~1b~0c"),
        );
        check(
            JWT_MUTABLE_EVENT_TYPE,
            jwt_payload(),
            json!({"user": {"roles": []}}),
            forbidden("/user"),
        );
        check(
            JWT_MUTABLE_EVENT_TYPE,
            jwt_payload(),
            json!({"jwt": {"header": {"kid": "x"}}}),
            forbidden("/jwt/header"),
        );
        check(
            "user.created",
            user_payload(),
            json!({"user": {"roles": []}}),
            Err(MutationError::EventTypeNotMutable {
                event_type: "user.created".to_owned(),
            }),
        );
        // A non-mutable type with nothing to apply is fine: there is nothing to refuse.
        check(
            "user.created",
            user_payload(),
            json!({}),
            Ok(user_payload()),
        );
    }

    #[test]
    fn mistyped_mutations_are_refused_with_their_pointer() {
        check(
            "user.pre_create",
            user_payload(),
            json!([]),
            Err(MutationError::NotAnObject),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": null}),
            wrong_type("/user", "an object"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": []}),
            wrong_type("/user", "an object"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"standard_attributes": ["email"]}}),
            wrong_type("/user/standard_attributes", "an object"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"custom_attributes": null}}),
            wrong_type("/user/custom_attributes", "an object"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"roles": "admin"}}),
            wrong_type("/user/roles", "an array of strings"),
        );
        check(
            "user.pre_create",
            user_payload(),
            json!({"user": {"groups": ["a", 2, "c"]}}),
            wrong_type("/user/groups/1", "a string"),
        );
        check(
            JWT_MUTABLE_EVENT_TYPE,
            jwt_payload(),
            json!({"jwt": {"payload": "eyJ..."}}),
            wrong_type("/jwt/payload", "an object"),
        );
        check(
            "user.pre_create",
            json!({"identities": []}),
            json!({"user": {"roles": []}}),
            Err(MutationError::PayloadMemberMissing {
                pointer: "/user".to_owned(),
            }),
        );
        check(
            JWT_MUTABLE_EVENT_TYPE,
            json!({"user": {}, "jwt": "opaque"}),
            json!({"jwt": {"payload": {}}}),
            Err(MutationError::PayloadMemberMissing {
                pointer: "/jwt".to_owned(),
            }),
        );
    }

    /// A few shapes of arbitrary JSON for the property tests below.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z_/~]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{0,20}", inner, 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_hook_response_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_hook_response(&body);
        }

        #[test]
        fn parse_hook_response_never_panics_on_json(document in any_json()) {
            let _ = parse_hook_response(document.to_string().as_bytes());
        }

        #[test]
        fn mutations_touch_only_documented_members(mutations in any_json(), event_type_idx in 0_usize..6) {
            let event_types = [
                "user.pre_create", "user.profile.pre_update", "user.pre_schedule_deletion",
                "user.pre_schedule_anonymization", JWT_MUTABLE_EVENT_TYPE, "user.created",
            ];
            let event_type = event_types[event_type_idx];
            let payload = json!({
                "user": {"id": "u1", "roles": ["r"], "standard_attributes": {}},
                "identities": [],
                "jwt": {"payload": {"sub": "u1"}}
            });
            if let Ok(mutated) = apply_mutations(event_type, &payload, &mutations) {
                prop_assert_eq!(&mutated["identities"], &payload["identities"]);
                prop_assert_eq!(&mutated["user"]["id"], &payload["user"]["id"]);
                if event_type == JWT_MUTABLE_EVENT_TYPE {
                    prop_assert_eq!(&mutated["user"], &payload["user"]);
                } else {
                    prop_assert_eq!(&mutated["jwt"], &payload["jwt"]);
                }
            }
        }
    }
}
