//! Runnable examples of the ferry library, built and run by the tests.
//!
//! - [`admin_link::AdminLinkMount`]: a vendor-specific mount strategy, written the way a
//!   registry operator would write it in their own crate, on nothing but `ferry-core`'s public
//!   API and an HTTP client. It asks a registry's admin endpoint to link a blob from one
//!   repository into another on the storage the registries share.
//!   `docs/writing-a-mount-strategy.md` walks through it.
//! - Binaries: `copy-between-layouts` (a mount chain built at run time between two OCI
//!   layouts) and `admin-link-copy` (a registry-to-registry copy with [`AdminLinkMount`] in a
//!   chain with the built-in strategies).
//!
//! [`AdminLinkMount`]: admin_link::AdminLinkMount

pub mod admin_link;
pub mod link_api;

use ferry_core::{Action, CopyReport};

/// Prints one line per node of `report` (how it got there) and a summary line.
pub fn print_report(report: &CopyReport) {
    for node in &report.nodes {
        let how = match node.action {
            Action::Mounted => format!(
                "by {} ({}) from {}",
                node.strategy.as_ref().map_or("?", |s| s.as_str()),
                node.method
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                node.from
                    .as_ref()
                    .map_or("?".to_string(), |f| f.to_string())
            ),
            _ => format!("{} bytes", node.bytes),
        };
        println!(
            "{:<7} {} {}",
            node.action.verb(),
            node.descriptor.digest(),
            how
        );
    }
    println!(
        "{} nodes, {} mounted, {} bytes streamed, root {}",
        report.nodes.len(),
        report.count(Action::Mounted),
        report.bytes,
        report.root.digest()
    );
}
