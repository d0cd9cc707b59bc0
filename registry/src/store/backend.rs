//! The SQLite and PostgreSQL implementations of [`Store`](super::Store).
