//! Integration tests of ferry-http.

mod client_certs;
mod errors;
mod proxy;
