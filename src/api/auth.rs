//! Bearer tokens with roles for the API, and Alertmanager's `http_config` credentials
//! (bearer or basic) for the webhook; secrets compared in constant time.

use axum::http::HeaderMap;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::{ApiToken, Role, WebhookAuth};

/// Credentials the API accepts.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// API tokens; with none, GET works for anyone and changes are refused.
    pub tokens: Vec<ApiToken>,
    /// The Alertmanager webhook's credentials.
    pub webhook: WebhookAuth,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` when no tokens are configured; audit entries name it.
    pub name: String,
    /// The role of the token presented.
    pub role: Role,
}

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Auth {
    /// The caller of an API request with at least `role`: 401 without a valid token,
    /// 403 with a token of a lower role. With no tokens configured the API is read-only.
    pub fn caller(&self, headers: &HeaderMap, role: Role) -> Result<Caller, ApiError> {
        if self.tokens.is_empty() {
            return match role {
                Role::Viewer => Ok(Caller {
                    name: "anonymous".into(),
                    role: Role::Viewer,
                }),
                Role::Operator => Err(ApiError::Forbidden(
                    "no API tokens are configured: the API is read-only".into(),
                )),
            };
        }
        let presented = bearer(headers).ok_or(ApiError::Unauthorized)?;
        // compare with every token so timing does not reveal which one matched
        let mut found: Option<&ApiToken> = None;
        for t in &self.tokens {
            if eq(&t.secret, presented) {
                found = Some(t);
            }
        }
        let token = found.ok_or(ApiError::Unauthorized)?;
        if token.role < role {
            return Err(ApiError::Forbidden(format!(
                "token {:?} has role {:?}; this needs {:?}",
                token.name, token.role, role
            )));
        }
        Ok(Caller {
            name: token.name.clone(),
            role: token.role,
        })
    }

    /// Checks the webhook's credentials. With none configured it is open only when
    /// `allow_unauthenticated` says so; otherwise every request is refused (fail safe).
    pub fn webhook(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let w = &self.webhook;
        if !w.has_credentials() {
            return if w.allow_unauthenticated {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "no webhook credentials are configured in [webhook] and \
                     allow_unauthenticated is not set: alerts are refused"
                        .into(),
                ))
            };
        }
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        if let (Some(expected), Some(got)) = (&w.bearer_token, header.strip_prefix("Bearer ")) {
            if eq(expected, got.trim()) {
                return Ok(());
            }
            return Err(ApiError::Forbidden("invalid webhook bearer token".into()));
        }
        if let (Some((user, pass)), Some(encoded)) = (&w.basic, header.strip_prefix("Basic ")) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(ApiError::Unauthorized)?;
            let (u, p) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
            if eq(user, u) & eq(pass, p) {
                return Ok(());
            }
            return Err(ApiError::Forbidden(
                "invalid webhook basic credentials".into(),
            ));
        }
        Err(ApiError::Unauthorized)
    }
}
