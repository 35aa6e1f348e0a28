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
