//! The commands, one module each.

pub mod cp;
pub mod sync;
