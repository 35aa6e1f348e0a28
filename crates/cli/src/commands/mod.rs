//! The commands, one module each.

pub mod cp;
pub mod digest;
pub mod inspect;
pub mod login;
pub mod logout;
pub mod ls;
pub mod rm;
pub mod sync;
pub mod tag;
