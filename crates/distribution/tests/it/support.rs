//! Shared helpers: clients and repositories for test registries.

use std::sync::Arc;

use ferry_core::{Action, CopyReport};
use ferry_distribution::{ClientOptions, Credentials, Reference, RegistryClient, Repository};

/// A plain-HTTP client without credentials.
pub fn client() -> RegistryClient {
    client_with(Credentials::anonymous())
}

/// A plain-HTTP client with `credentials`.
pub fn client_with(credentials: Credentials) -> RegistryClient {
    RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials,
        ..Default::default()
    })
    .expect("client")
}

/// Repository `name` of the registry at `addr` (`127.0.0.1:PORT`).
pub fn repo(client: &RegistryClient, addr: &str, name: &str) -> Arc<Repository> {
    client
        .repository(&Reference::parse(&format!("{addr}/{name}")).expect("reference"))
        .expect("repository")
}

/// How many nodes of the report had `action`.
pub fn count(report: &CopyReport, action: Action) -> usize {
    report.nodes.iter().filter(|n| n.action == action).count()
}

/// Starts a registry off the async runtime's worker (it polls readiness synchronously).
pub async fn start_registry(
    builder: ferry_test_support::RegistryBuilder,
) -> ferry_test_support::Registry {
    tokio::task::spawn_blocking(move || builder.start())
        .await
        .expect("join")
        .expect("docker-registry starts")
}
