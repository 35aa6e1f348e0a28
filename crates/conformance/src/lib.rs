//! Conformance suites: the contracts every store, every mount strategy and every catalog
//! must keep, one named rule each, so that a failure names the broken rule and an operator
//! sees which rules their store, strategy or catalog passes. Add this crate (and `tokio` with
//! the `macros` and `rt-multi-thread` features) to `dev-dependencies`.
//!
//! [`store_suite!`](crate::store_suite) generates one `#[tokio::test]` per store rule, for a
//! subject built by an async setup function; the rules a store's optional abilities need run
//! only for the abilities it declares, and the suite checks that it offers exactly those
//! ([`store::capabilities_are_the_declared_ones`]):
//!
//! ```text
//! mod my_store {
//!     async fn subject() -> ferry_conformance::StoreSubject {
//!         StoreSubject::new(Arc::new(MyStore::open(...)))
//!     }
//!     ferry_conformance::store_suite!(setup: subject, declares: [list_tags]);
//! }
//! ```
//!
//! ```text
//! test my_store::missing_blob_is_absent_and_not_found ... ok
//! test my_store::mismatched_push_commits_nothing ... ok
//! test my_store::push_tagged_stores_and_tags_in_one_call ... ok
//! test my_store::list_tags_lists_every_tag ... ok
//! …
//! ```
//!
//! [`strategy_suite!`](crate::strategy_suite) does the same for a mount strategy between a
//! source and a destination, with the outcome the setup should give and the behaviours the
//! strategy declares (`probes_destination`, `prepares_uploads`).
//!
//! [`catalog_suite!`](crate::catalog_suite) does the same for a [`ferry_core::Catalog`] (the
//! repositories of a registry, a directory of layouts), on a catalog that holds no store yet:
//! listing under a prefix names each store written once, a written store opens with its
//! content, opening a missing store without creating it creates nothing, and `store_info`
//! names the store the catalog opens; with what the catalog declares (`implicit_stores`,
//! `confined_names`, `pages`):
//!
//! ```text
//! mod my_catalog {
//!     async fn subject() -> ferry_conformance::CatalogSubject {
//!         let registry = start_a_registry_listing_two_repositories_a_page();
//!         CatalogSubject::new(Arc::new(MyCatalog::new(&registry)))
//!             .with_page_size(2)
//!             .keeping(registry)
//!     }
//!     ferry_conformance::catalog_suite!(
//!         setup: subject,
//!         declares: [implicit_stores, confined_names, pages]
//!     );
//! }
//! ```
//!
//! A rule that cannot fail for a kind of subject (a prepared upload where no registry opens
//! one, a refused `..` where there is nothing to escape) says so in its documentation and is
//! run only for the subjects that declare what it checks. Every rule can fail: this crate's
//! own tests run each on a store, strategy or catalog broken on purpose and see it fail with
//! its own message. The rules are plain async functions in [`store`], [`strategy`] and
//! [`catalog`], for a harness of one's own.
//!
//! Declarations a store suite accepts: `list_tags`, `delete_tag`, `peek`, `fetch_from_address` (the
//! subject needs a [`Publish`] to publish test content at an address),
//! `registry_repository` (the subject needs a sibling repository of the same registry),
//! `prepared_uploads` (the registry answers a mount of an unknown blob with an upload
//! session), `local_blobs`, `known_absent`.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use oci_spec::image::Descriptor;

use ferry_core::store::ReadStore;
use ferry_core::verify::sha256;

pub mod catalog;
mod counting;
pub mod fixtures;
pub mod store;
pub mod strategy;

pub use catalog::CatalogSubject;
pub use counting::Counting;
pub use store::{Publish, StoreSubject};
pub use strategy::{Case, Seen};

/// Media type used for the kits' test blobs.
pub const TEST_BLOB_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// `len` pseudo-random bytes, different on every call.
pub fn random_bytes(len: usize) -> Bytes {
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = SEED.fetch_add(0x2545_F491_4F6C_DD1D, Ordering::Relaxed)
        ^ nanos
        ^ std::process::id() as u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A blob of `len` random bytes and its descriptor.
pub fn random_blob(len: usize) -> (Descriptor, Bytes) {
    let data = random_bytes(len);
    let desc = Descriptor::new(TEST_BLOB_TYPE.into(), len as u64, sha256(&data));
    (desc, data)
}

/// Every byte of `desc` as `store` serves it; panics, naming the store, when it cannot.
pub async fn read_all(store: &dyn ReadStore, desc: &Descriptor) -> Bytes {
    let mut s = store
        .fetch(desc)
        .await
        .unwrap_or_else(|e| panic!("{store}: fetch of `{}` failed: {e}", desc.digest()));
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap_or_else(|e| panic!("{store}: fetch stream failed: {e}")));
    }
    Bytes::from(out)
}

/// Generates one `#[tokio::test]` per rule of the store contract ([`store`]), each on a fresh
/// subject from `setup` (an async function returning a [`StoreSubject`]), and one per rule of
/// each ability the store declares. Invoke it in a module of its own, named after the subject.
///
/// ```text
/// ferry_conformance::store_suite!(setup: subject, declares: [list_tags, local_blobs]);
/// ```
///
/// The crate invoking it needs `tokio` (features `macros` and `rt-multi-thread`) among its
/// dev-dependencies.
#[macro_export]
macro_rules! store_suite {
    (setup: $setup:path $(, declares: [$($ability:ident),* $(,)?])? $(,)?) => {
        $crate::__conformance_rule!(store, $setup, missing_blob_is_absent_and_not_found);
        $crate::__conformance_rule!(store, $setup, push_round_trips_the_exact_bytes);
        $crate::__conformance_rule!(store, $setup, mismatched_push_commits_nothing);
        $crate::__conformance_rule!(store, $setup, pushing_twice_keeps_the_blob);
        $crate::__conformance_rule!(store, $setup, concurrent_pushes_of_one_blob_both_succeed);
        $crate::__conformance_rule!(store, $setup, tags_resolve_by_tag_and_digest_and_move);
        $crate::__conformance_rule!(store, $setup, push_tagged_stores_and_tags_in_one_call);
        $crate::__conformance_rule!(store, $setup, referrers_list_the_manifests_naming_a_subject);

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn capabilities_are_the_declared_ones() {
            let subject = $setup().await;
            $crate::store::capabilities_are_the_declared_ones(
                &subject,
                &[$($(stringify!($ability)),*)?],
            );
        }

        $($($crate::__store_ability_rules!($setup, $ability);)*)?
    };
}

/// Generates the tests of a mount strategy's contract ([`strategy`]), each on a fresh
/// [`Case`] from `setup`: `expect` is the [`Seen`] outcome the setup should give for a blob
/// the source holds, and `declares` lists what the strategy does besides mounting:
/// `probes_destination` (its attempts tell whether the destination holds the blob, so the
/// engine skips its own check) and `prepares_uploads` (it declines a blob the source lacks
/// with a prepared upload).
///
/// ```text
/// ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
/// ```
#[macro_export]
macro_rules! strategy_suite {
    (
        setup: $setup:path,
        expect: $expect:ident
        $(, declares: [$($behaviour:ident),* $(,)?])?
        $(,)?
    ) => {
        $crate::__conformance_rule!(strategy, $setup, a_blob_the_source_lacks_is_never_mounted);
        $crate::__conformance_rule!(strategy, $setup, a_dropped_attempt_leaves_no_partial_blob);

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_outcome_is_honest_and_as_declared() {
            let case = $setup().await;
            $crate::strategy::the_outcome_is_honest_and_as_declared(
                &case,
                $crate::Seen::$expect,
            )
            .await;
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_plan_writes_nothing() {
            let case = $setup().await;
            $crate::strategy::a_plan_writes_nothing(
                &case,
                $crate::Seen::$expect,
            )
            .await;
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn it_works_through_store_wrappers() {
            let case = $setup().await;
            $crate::strategy::it_works_through_store_wrappers(
                &case,
                $crate::Seen::$expect,
            )
            .await;
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn probes_destination_is_honest() {
            let case = $setup().await;
            let declared: &[&str] = &[$($(stringify!($behaviour)),*)?];
            $crate::strategy::probes_destination_is_honest(
                &case,
                declared.contains(&"probes_destination"),
            )
            .await;
        }

        $($($crate::__strategy_behaviour_rules!($setup, $behaviour);)*)?
    };
}

/// Generates one `#[tokio::test]` per rule of the catalog contract ([`catalog`]), each on a
/// fresh [`CatalogSubject`] from `setup` (an async function returning one whose catalog holds
/// no store yet), and the rules of what the catalog declares:
///
/// - `implicit_stores`: its stores exist without being created (a registry's repositories),
///   so `open_write(name, false)` of a missing one gives a store rather than `None`;
/// - `confined_names`: its names map onto something a name could escape (a directory, a
///   registry's URL paths), and it refuses names that would
///   ([`catalog::names_that_escape_the_catalog_are_refused`]);
/// - `pages`: it lists page by page, at most [`CatalogSubject::page_size`] names a page
///   ([`catalog::every_page_is_listed_each_name_once`]).
///
/// ```text
/// ferry_conformance::catalog_suite!(setup: subject, declares: [implicit_stores, pages]);
/// ```
#[macro_export]
macro_rules! catalog_suite {
    (setup: $setup:path $(, declares: [$($declared:ident),* $(,)?])? $(,)?) => {
        $crate::__conformance_rule!(catalog, $setup, listing_names_each_written_store_once);
        $crate::__conformance_rule!(catalog, $setup, a_written_store_opens_with_its_content);
        $crate::__conformance_rule!(catalog, $setup, store_info_names_the_store_opened);

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn opening_a_missing_store_creates_nothing() {
            let subject = $setup().await;
            let declared: &[&str] = &[$($(stringify!($declared)),*)?];
            $crate::catalog::opening_a_missing_store_creates_nothing(
                &subject,
                declared.contains(&"implicit_stores"),
            )
            .await;
        }

        $($($crate::__catalog_declared_rules!($setup, $declared);)*)?
    };
}

/// The rules of one thing a catalog declares.
#[doc(hidden)]
#[macro_export]
macro_rules! __catalog_declared_rules {
    ($setup:path, implicit_stores) => {};
    ($setup:path, confined_names) => {
        $crate::__conformance_rule!(catalog, $setup, names_that_escape_the_catalog_are_refused);
    };
    ($setup:path, pages) => {
        $crate::__conformance_rule!(catalog, $setup, every_page_is_listed_each_name_once);
    };
}

/// One test running one rule of `store`, `strategy` or `catalog` on a fresh subject.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_rule {
    ($kit:ident, $setup:path, $rule:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rule() {
            let subject = $setup().await;
            $crate::$kit::$rule(&subject).await;
        }
    };
}

/// The rules of one declared store ability.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_ability_rules {
    ($setup:path, list_tags) => {
        $crate::__conformance_rule!(store, $setup, list_tags_lists_every_tag);
    };
    ($setup:path, delete_tag) => {
        $crate::__conformance_rule!(store, $setup, delete_tag_removes_only_that_tag);
    };
    ($setup:path, peek) => {
        $crate::__conformance_rule!(store, $setup, peek_names_what_resolve_names);
    };
    ($setup:path, fetch_from_address) => {
        $crate::__conformance_rule!(
            store,
            $setup,
            fetch_from_address_commits_only_matching_content
        );
    };
    ($setup:path, registry_repository) => {
        $crate::__conformance_rule!(store, $setup, registry_repository_mounts_from_a_sibling);
    };
    ($setup:path, prepared_uploads) => {
        $crate::__conformance_rule!(store, $setup, prepared_upload_commits_only_matching_content);
        $crate::__conformance_rule!(store, $setup, cancelling_a_prepared_upload_leaves_nothing);
    };
    ($setup:path, known_absent) => {
        $crate::__conformance_rule!(store, $setup, known_absent_never_names_held_content);
    };
    ($setup:path, local_blobs) => {
        $crate::__conformance_rule!(
            store,
            $setup,
            local_blob_files_hold_exactly_the_committed_bytes
        );
    };
}

/// The rules of one declared strategy behaviour.
#[doc(hidden)]
#[macro_export]
macro_rules! __strategy_behaviour_rules {
    ($setup:path, probes_destination) => {};
    ($setup:path, prepares_uploads) => {
        $crate::__conformance_rule!(
            strategy,
            $setup,
            a_prepared_upload_commits_only_matching_content
        );
        $crate::__conformance_rule!(
            strategy,
            $setup,
            cancelling_a_prepared_upload_leaves_nothing
        );
    };
}
