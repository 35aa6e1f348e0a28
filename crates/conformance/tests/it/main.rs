//! Tests of the conformance kits: each rule passes for a store or strategy that keeps it and
//! fails for a mutant that breaks it.

mod kit;
