//! Integration tests of ferry-metrics.

mod exposition;
mod serve;
