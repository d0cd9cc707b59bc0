//! Harness for the end-to-end tests: starts real gateways and upstreams.
