//! ferry-distribution: the OCI distribution registry client of ferry.
//!
//! This crate will hold the registry client built on hyper (references with docker's rules
//! for short names, authentication, retries), the `Repository` store implementing
//! ferry-core's store traits, and `CrossRepoMount`, the mount strategy that uses the OCI
//! cross-repository blob mount (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`).
