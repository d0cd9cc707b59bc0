//! The Gatehouse registry.
