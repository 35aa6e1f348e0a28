//! The conformance suites of ferry-core, one test per rule: the store contract on OCI layouts
//! (fresh, reopened, and behind a wrapper), and the strategy contract of `SharedStorageMount`
//! (verifying, trusting, on XFS with reflinks) and of `DistributionStorageMount` (filesystem
//! roots, S3 roots).

use std::sync::Arc;

use ferry_conformance::{Case, Counting, StoreSubject};
use ferry_fs_store::{OciLayout, SharedStorageMount};

use crate::support::{layout, tempdir};

mod oci_layout {
    use super::*;

    async fn subject() -> StoreSubject {
        let dir = tempdir();
        StoreSubject::new(layout(dir.path(), "store")).keeping(dir)
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, local_blobs]);
}

mod oci_layout_reopened {
    use super::*;

    async fn subject() -> StoreSubject {
        let dir = tempdir();
        layout(dir.path(), "store");
        let store = OciLayout::open(dir.path().join("store")).unwrap();
        StoreSubject::new(Arc::new(store)).keeping(dir)
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, local_blobs]);
}

mod oci_layout_wrapped {
    use super::*;

    async fn subject() -> StoreSubject {
        let dir = tempdir();
        StoreSubject::new(Counting::new(layout(dir.path(), "store"))).keeping(dir)
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, local_blobs]);
}

mod shared_storage {
    use super::*;

    async fn case() -> Case {
        let dir = tempdir();
        Case::new(
            Arc::new(SharedStorageMount::new()),
            layout(dir.path(), "src"),
            layout(dir.path(), "dst"),
        )
        .keeping(dir)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted);
}

mod shared_storage_trusting {
    use super::*;

    async fn case() -> Case {
        let dir = tempdir();
        Case::new(
            Arc::new(SharedStorageMount::trusting()),
            layout(dir.path(), "src"),
            layout(dir.path(), "dst"),
        )
        .keeping(dir)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted);
}

mod shared_storage_on_xfs {
    use super::*;
    use crate::shared::XfsMount;

    async fn case() -> Case {
        let xfs = XfsMount::new();
        Case::new(
            Arc::new(SharedStorageMount::new()),
            layout(&xfs.mountpoint, "src"),
            layout(&xfs.mountpoint, "dst"),
        )
        .keeping(xfs)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted);
}

#[cfg(feature = "s3")]
mod distribution_storage_on_filesystems {
    use super::*;
    use crate::distribution_storage::{client, file_root, repo, start_registry};
    use ferry_fs_store::DistributionStorageMount;
    use ferry_test_support::Registry;

    async fn case() -> Case {
        let dir = tempdir();
        let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
        let a = start_registry(Registry::builder().root(&root_a)).await;
        let b = start_registry(Registry::builder().root(&root_b)).await;
        let client = client();
        Case::new(
            Arc::new(
                DistributionStorageMount::new()
                    .with_registry(a.addr(), file_root(&root_a))
                    .with_registry(b.addr(), file_root(&root_b)),
            ),
            repo(&client, &a, "conformance/src"),
            repo(&client, &b, "conformance/dst"),
        )
        .keeping((a, b, dir))
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
}

#[cfg(feature = "s3")]
mod distribution_storage_on_s3 {
    use super::*;
    use crate::distribution_storage::{
        client, repo, s3_registry, s3_root, seaweed, start_registry,
    };
    use ferry_fs_store::DistributionStorageMount;

    async fn case() -> Case {
        let seaweed = seaweed(&["registries"]).await;
        let a = start_registry(s3_registry(&seaweed, "registries", "tenant-a")).await;
        let b = start_registry(s3_registry(&seaweed, "registries", "tenant-b")).await;
        let client = client();
        Case::new(
            Arc::new(
                DistributionStorageMount::new()
                    .with_registry(a.addr(), s3_root(&seaweed, "registries", "tenant-a"))
                    .with_registry(b.addr(), s3_root(&seaweed, "registries", "tenant-b")),
            ),
            repo(&client, &a, "conformance/src"),
            repo(&client, &b, "conformance/dst"),
        )
        .keeping((a, b, seaweed))
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
}
