//! The claim's pure helpers: its column lists.

use super::*;

#[test]
fn columns_are_prefixed() {
    assert_eq!(prefixed("a, b,c", "t."), "t.a, t.b, t.c");
}
