//! Integration tests of ferry-cache.

mod locations;
