//! Checking credentials against a registry before they are stored, as `docker login` does.

use ferry_core::{Error, Result};
use http::{Method, StatusCode};

use crate::auth::Scopes;
use crate::error::status_error;
use crate::registry::{Registry, Retry};
use crate::transport::{Req, read_error_body};

/// How a registry took the credentials [`Registry::check_login`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginCheck {
    /// The registry accepted them as HTTP Basic.
    Basic,
    /// The registry's token service issued a token for them, which the registry accepted.
    Token,
    /// The registry asked for no credentials, so they could not be checked.
    NotAsked,
}

impl Registry {
    /// Checks the client's credentials for this registry: `GET /v2/`, whose challenge is
    /// answered with them (HTTP Basic, or a token asked of the registry's token service with
    /// no scope), and the registry must then answer `200`. A refusal is
    /// [`Error::Unauthenticated`], naming the registry or the token service that refused.
    pub async fn check_login(&self) -> Result<LoginCheck> {
        let req = Req::new(Method::GET, self.url("v2/"));
        let resp = self.send(req, &Scopes::default(), Retry::Yes).await?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(match self.auth.uses_token() {
                None => LoginCheck::NotAsked,
                Some(false) => LoginCheck::Basic,
                Some(true) => LoginCheck::Token,
            });
        }
        let body = read_error_body(resp).await;
        if status == StatusCode::UNAUTHORIZED {
            let message = if self.auth.has_credential().await {
                "the registry refused the credentials (HTTP 401 on `GET /v2/`); check the user \
                 name and password"
                    .to_string()
            } else {
                "the registry asks for credentials and none were given".to_string()
            };
            return Err(Error::Unauthenticated {
                store: self.name().to_string(),
                message,
            });
        }
        Err(status_error(self.name(), "GET /v2/", status, &body))
    }
}
