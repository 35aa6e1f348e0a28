//! Tests of the examples: the operator's `AdminLinkMount` against real registries, and every
//! example binary run as a user would run it.

mod admin_link;
mod admin_server;
mod binaries;
mod link_api;
mod wrappers;
