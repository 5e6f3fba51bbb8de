//! Unit tests of envelope parsing and rendering.
