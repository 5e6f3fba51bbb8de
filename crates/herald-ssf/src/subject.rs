//! RFC 9493 subject identifiers, and SSF 1.0's complex subjects, parsed at the edge.
//!
//! A receiver names subjects in `add_subject`/`remove_subject` requests; a SET names its subject in
//! `sub_id`. Both go through [`SubjectIdentifier::parse`], so past this point a subject is always one
//! of the formats below with every required member present and a string.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A subject identifier: one of RFC 9493's formats (§3.2) or SSF's `complex` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectIdentifier {
    /// RFC 9493 §3.2.1 `account`: an `acct:` URI.
    Account { uri: String },
    /// RFC 9493 §3.2.2 `email`.
    Email { email: String },
    /// RFC 9493 §3.2.3 `iss_sub`: an issuer and a subject unique within it.
    IssSub { iss: String, sub: String },
    /// RFC 9493 §3.2.4 `opaque`: an identifier only the two parties understand.
    Opaque { id: String },
    /// RFC 9493 §3.2.5 `phone_number`, in E.164.
    PhoneNumber { phone_number: String },
    /// RFC 9493 §3.2.7 `uri`.
    Uri { uri: String },
    /// SSF 1.0 complex subject: named members (`user`, `device`, `session`, `application`, `tenant`,
    /// `org_unit`, `group`), each a simple subject identifier.
    Complex {
        members: BTreeMap<String, SubjectIdentifier>,
    },
}

/// Why a subject identifier was refused, with the JSON path of the offending member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SubjectError {
    pub path: String,
    pub message: String,
}

const COMPLEX_MEMBERS: [&str; 7] = [
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
];

fn error(path: &str, message: impl Into<String>) -> SubjectError {
    SubjectError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn required_string(
    object: &Map<String, Value>,
    path: &str,
    member: &str,
) -> Result<String, SubjectError> {
    let member_path = format!("{path}/{member}");
    match object.get(member) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(Value::String(_)) => Err(error(&member_path, "must not be empty")),
        Some(_) => Err(error(&member_path, "must be a string")),
        None => Err(error(&member_path, "is required")),
    }
}

impl SubjectIdentifier {
    /// Parse a subject identifier; `path` is the JSON pointer of `value` in the request, used in errors.
    pub fn parse(value: &Value, path: &str) -> Result<Self, SubjectError> {
        Self::parse_with_depth(value, path, true)
    }

    fn parse_with_depth(
        value: &Value,
        path: &str,
        complex_allowed: bool,
    ) -> Result<Self, SubjectError> {
        let Value::Object(object) = value else {
            return Err(error(path, "a subject identifier must be a JSON object"));
        };
        let format = required_string(object, path, "format")?;
        // RFC 9493 §3: each format names its REQUIRED members; a member of the wrong type is an error.
        let subject = match format.as_str() {
            "account" => {
                let uri = required_string(object, path, "uri")?;
                if !uri.starts_with("acct:") {
                    return Err(error(&format!("{path}/uri"), "must be an acct: URI"));
                }
                Self::Account { uri }
            }
            "email" => {
                let email = required_string(object, path, "email")?;
                if !email.contains('@') {
                    return Err(error(&format!("{path}/email"), "must be an email address"));
                }
                Self::Email { email }
            }
            "iss_sub" => Self::IssSub {
                iss: required_string(object, path, "iss")?,
                sub: required_string(object, path, "sub")?,
            },
            "opaque" => Self::Opaque {
                id: required_string(object, path, "id")?,
            },
            "phone_number" => {
                let phone_number = required_string(object, path, "phone_number")?;
                // RFC 9493 §3.2.5: the value MUST be in E.164 format.
                let digits = phone_number.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|byte| byte.is_ascii_digit())
                {
                    return Err(error(
                        &format!("{path}/phone_number"),
                        "must be an E.164 number such as +12065550100",
                    ));
                }
                Self::PhoneNumber { phone_number }
            }
            "uri" => Self::Uri {
                uri: required_string(object, path, "uri")?,
            },
            "complex" if complex_allowed => {
                let mut members = BTreeMap::new();
                for name in COMPLEX_MEMBERS {
                    if let Some(member) = object.get(name) {
                        let member_path = format!("{path}/{name}");
                        members.insert(
                            name.to_owned(),
                            Self::parse_with_depth(member, &member_path, false)?,
                        );
                    }
                }
                if members.is_empty() {
                    return Err(error(
                        path,
                        "a complex subject needs at least one of user, device, session, application, tenant, org_unit, group",
                    ));
                }
                Self::Complex { members }
            }
            "complex" => {
                return Err(error(
                    &format!("{path}/format"),
                    "a complex subject cannot nest another",
                ));
            }
            other => {
                return Err(error(
                    &format!("{path}/format"),
                    format!("unsupported subject format {other:?}"),
                ));
            }
        };
        Ok(subject)
    }

    /// The JSON form, as it appears in `sub_id` and in subject requests.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        let mut put = |name: &str, value: Value| {
            object.insert(name.to_owned(), value);
        };
        match self {
            Self::Account { uri } => {
                put("format", "account".into());
                put("uri", uri.as_str().into());
            }
            Self::Email { email } => {
                put("format", "email".into());
                put("email", email.as_str().into());
            }
            Self::IssSub { iss, sub } => {
                put("format", "iss_sub".into());
                put("iss", iss.as_str().into());
                put("sub", sub.as_str().into());
            }
            Self::Opaque { id } => {
                put("format", "opaque".into());
                put("id", id.as_str().into());
            }
            Self::PhoneNumber { phone_number } => {
                put("format", "phone_number".into());
                put("phone_number", phone_number.as_str().into());
            }
            Self::Uri { uri } => {
                put("format", "uri".into());
                put("uri", uri.as_str().into());
            }
            Self::Complex { members } => {
                put("format", "complex".into());
                for (name, member) in members {
                    put(name, member.to_json());
                }
            }
        }
        Value::Object(object)
    }

    /// A canonical string for storage and equality: the JSON form with emails' domains lowercased,
    /// since RFC 9493 §3.2.2 compares the domain part case-insensitively.
    pub fn canonical_key(&self) -> String {
        self.normalized().to_json().to_string()
    }

    fn normalized(&self) -> Self {
        match self {
            Self::Email { email } => {
                let normalized = match email.rsplit_once('@') {
                    Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
                    None => email.clone(),
                };
                Self::Email { email: normalized }
            }
            Self::Complex { members } => Self::Complex {
                members: members
                    .iter()
                    .map(|(name, member)| (name.clone(), member.normalized()))
                    .collect(),
            },
            other => other.clone(),
        }
    }

    /// Whether a stream that holds `self` as a subject wants an event about `event_subject`.
    ///
    /// A simple subject matches an equal simple subject, or a complex event subject that has it as
    /// one of its members. A complex stream subject matches when every one of its members is the
    /// same-named member of the event's complex subject (SSF 1.0, complex subjects: a receiver that
    /// names a user and a device wants events about that user on that device).
    pub fn matches(&self, event_subject: &SubjectIdentifier) -> bool {
        let stream_subject = self.normalized();
        let event_subject = event_subject.normalized();
        match (&stream_subject, &event_subject) {
            (Self::Complex { members: wanted }, Self::Complex { members: present }) => wanted
                .iter()
                .all(|(name, member)| present.get(name) == Some(member)),
            (Self::Complex { .. }, _) => false,
            (simple, Self::Complex { members }) => members.values().any(|member| member == simple),
            (simple, other) => simple == other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::SubjectIdentifier;

    fn check_parse(input: serde_json::Value, expected: Result<serde_json::Value, &str>) {
        let parsed = SubjectIdentifier::parse(&input, "/subject");
        match (parsed, expected) {
            (Ok(subject), Ok(expected_json)) => {
                assert_eq!(subject.to_json(), expected_json, "{input}")
            }
            (Err(error), Err(expected_path)) => {
                assert_eq!(error.path, expected_path, "{input}: {error}")
            }
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_every_supported_format_and_refuses_bad_ones_with_their_path() {
        let email = json!({"format": "email", "email": "ada@example.com"});
        check_parse(email.clone(), Ok(email));
        let iss_sub = json!({"format": "iss_sub", "iss": "https://idp.example", "sub": "u-1"});
        check_parse(iss_sub.clone(), Ok(iss_sub));
        let opaque = json!({"format": "opaque", "id": "abc"});
        check_parse(opaque.clone(), Ok(opaque));
        let phone = json!({"format": "phone_number", "phone_number": "+12065550100"});
        check_parse(phone.clone(), Ok(phone));
        let account = json!({"format": "account", "uri": "acct:ada@example.com"});
        check_parse(account.clone(), Ok(account));
        let complex = json!({"format": "complex", "user": {"format": "email", "email": "a@b.c"}, "device": {"format": "opaque", "id": "d"}});
        check_parse(complex.clone(), Ok(complex));

        check_parse(json!("ada@example.com"), Err("/subject"));
        check_parse(json!({"email": "a@b.c"}), Err("/subject/format"));
        check_parse(json!({"format": "email"}), Err("/subject/email"));
        check_parse(
            json!({"format": "email", "email": 7}),
            Err("/subject/email"),
        );
        check_parse(
            json!({"format": "email", "email": "no-at-sign"}),
            Err("/subject/email"),
        );
        check_parse(
            json!({"format": "iss_sub", "iss": "x"}),
            Err("/subject/sub"),
        );
        check_parse(
            json!({"format": "phone_number", "phone_number": "2065550100"}),
            Err("/subject/phone_number"),
        );
        check_parse(
            json!({"format": "account", "uri": "mailto:a@b.c"}),
            Err("/subject/uri"),
        );
        check_parse(json!({"format": "complex"}), Err("/subject"));
        check_parse(
            json!({"format": "complex", "user": {"format": "complex", "user": {"format": "opaque", "id": "x"}}}),
            Err("/subject/user/format"),
        );
        check_parse(json!({"format": "carrier_pigeon"}), Err("/subject/format"));
    }

    fn subject(value: serde_json::Value) -> SubjectIdentifier {
        SubjectIdentifier::parse(&value, "").expect("valid subject")
    }

    #[test]
    fn matching_follows_equality_domain_case_and_complex_membership() {
        let cases = [
            (
                json!({"format": "email", "email": "ada@Example.COM"}),
                json!({"format": "email", "email": "ada@example.com"}),
                true,
            ),
            (
                json!({"format": "email", "email": "Ada@example.com"}),
                json!({"format": "email", "email": "ada@example.com"}),
                false,
            ),
            (
                json!({"format": "iss_sub", "iss": "i", "sub": "1"}),
                json!({"format": "iss_sub", "iss": "i", "sub": "1"}),
                true,
            ),
            (
                json!({"format": "iss_sub", "iss": "i", "sub": "1"}),
                json!({"format": "iss_sub", "iss": "j", "sub": "1"}),
                false,
            ),
            (
                json!({"format": "opaque", "id": "1"}),
                json!({"format": "complex", "user": {"format": "opaque", "id": "1"}}),
                true,
            ),
            (
                json!({"format": "complex", "user": {"format": "opaque", "id": "1"}}),
                json!({"format": "opaque", "id": "1"}),
                false,
            ),
            (
                json!({"format": "complex", "user": {"format": "opaque", "id": "1"}}),
                json!({"format": "complex", "user": {"format": "opaque", "id": "1"}, "device": {"format": "opaque", "id": "d"}}),
                true,
            ),
        ];
        for (stream_subject, event_subject, expected) in cases {
            assert_eq!(
                subject(stream_subject.clone()).matches(&subject(event_subject.clone())),
                expected,
                "{stream_subject} vs {event_subject}"
            );
        }
    }
}
