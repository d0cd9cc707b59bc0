//! The Gatehouse gateway library.
