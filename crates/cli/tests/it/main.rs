//! `ferry` as a user runs it.

mod layouts;
mod registries;
mod support;
