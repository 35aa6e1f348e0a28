//! Integration tests of ferry-http.

mod errors;
mod proxy;
