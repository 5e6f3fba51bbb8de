//! The claim's pure helpers: its advisory lock keys and column lists.

use super::*;

#[test]
fn lock_keys_are_fnv_1a() {
    // Published FNV-1a test vectors: the key must never change between versions.
    assert_eq!(
        endpoint_lock_key(""),
        i32::from_ne_bytes(0x811c_9dc5u32.to_ne_bytes())
    );
    assert_eq!(
        endpoint_lock_key("a"),
        i32::from_ne_bytes(0xe40c_292cu32.to_ne_bytes())
    );
}

#[test]
fn columns_are_prefixed() {
    assert_eq!(prefixed("a, b,c", "t."), "t.a, t.b, t.c");
}
