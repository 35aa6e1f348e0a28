//! Integration tests of ferry-distribution: the store and strategy contracts, copies and
//! authentication against the real CNCF distribution registry (docker-registry 2.8) on
//! loopback, and the cases a real registry cannot be made to show against an in-process fake.

mod auth;
mod catalog;
mod copy;
mod fake;
mod listing;
mod quota;
mod ratelimit;
mod reference;
mod store;
mod support;
