//! `ferry` as a user runs it.

mod layouts;
mod support;
