//! The test site itself, seen from outside over real HTTP (placeholder).
