//! A directory of OCI layouts keeps the catalog contract, one test per rule: the names of its
//! layouts are paths below it, which it keeps from escaping.

use std::sync::Arc;

use ferry_conformance::CatalogSubject;
use ferry_fs_store::OciDir;

use crate::support::tempdir;

mod oci_dir {
    use super::*;

    async fn subject() -> CatalogSubject {
        let dir = tempdir();
        let catalog = OciDir::open(dir.path()).expect("directory of layouts");
        CatalogSubject::new(Arc::new(catalog)).keeping(dir)
    }

    ferry_conformance::catalog_suite!(setup: subject, declares: [confined_names]);
}

/// An archive being written keeps the catalog contract too: each repository written into it
/// is listed once and serves what was written (its stores exist implicitly, as a registry's
/// repositories do), and its names are paths of the bundle, kept from escaping.
mod archive_writer {
    use super::*;
    use ferry_fs_store::archive::{ArchiveWriter, Target, WriterOptions};

    async fn subject() -> CatalogSubject {
        let dir = tempdir();
        let writer = ArchiveWriter::create(
            Target::File(dir.path().join("bundle.tar")),
            WriterOptions {
                manifest_limit: ferry_core::model::DEFAULT_MANIFEST_LIMIT,
                ..WriterOptions::default()
            },
        )
        .expect("archive");
        CatalogSubject::new(Arc::new(writer)).keeping(dir)
    }

    ferry_conformance::catalog_suite!(setup: subject, declares: [implicit_stores, confined_names]);
}
