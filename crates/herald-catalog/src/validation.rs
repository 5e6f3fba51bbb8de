//! Validation problems: what is wrong with a document, and exactly where.

use std::fmt;

/// One thing wrong with a document: the JSON pointer (RFC 6901) of the offending value, relative
/// to the document that was submitted, and a sentence saying what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer of the value at fault; `""` is the document itself.
    pub path: String,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

/// The longest message a problem keeps, in bytes. Messages quote the value at fault (an unknown
/// type name, a value outside an enum), and a hostile body can make that value as long as the
/// body limit allows; the answer should stay a readable sentence, not an echo of the input.
pub const MAX_MESSAGE_LEN: usize = 1024;

impl Problem {
    /// A problem at `path`; a message longer than [`MAX_MESSAGE_LEN`] is cut short, with `…`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_LEN {
            let mut end = MAX_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Problem {
            path: path.into(),
            message,
        }
    }

    /// The same problem, seen from a document in which the validated value sits at `prefix`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}{}", self.path);
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(formatter, "{path}: {}", self.message)
    }
}

/// Escapes one reference token for use in a JSON pointer (RFC 6901 §3): `~` → `~0`, `/` → `~1`.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
