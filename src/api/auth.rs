//! Bearer tokens with roles for the API, and Alertmanager's `http_config` credentials
//! (bearer or basic) for the webhook; secrets compared in constant time. The
//! `Authorization` header is parsed by `axum-extra`'s typed headers (scheme, base64,
//! `user:password`); an unreadable one counts as missing (401).

use axum::http::HeaderMap;
use axum_extra::headers::HeaderMapExt as _;
use axum_extra::headers::authorization::{Authorization, Basic, Bearer};
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

/// The `Authorization: Bearer` credentials, when the header holds readable ones.
fn bearer(headers: &HeaderMap) -> Option<Bearer> {
    headers
        .typed_get::<Authorization<Bearer>>()
        .map(|Authorization(b)| b)
}

/// The `Authorization: Basic` credentials, when the header holds readable ones.
fn basic(headers: &HeaderMap) -> Option<Basic> {
    headers
        .typed_get::<Authorization<Basic>>()
        .map(|Authorization(b)| b)
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
            if eq(&t.secret, presented.token()) {
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
        if let (Some(expected), Some(got)) = (&w.bearer_token, bearer(headers)) {
            if eq(expected, got.token()) {
                return Ok(());
            }
            return Err(ApiError::Forbidden("invalid webhook bearer token".into()));
        }
        if let (Some((user, pass)), Some(got)) = (&w.basic, basic(headers)) {
            if eq(user, got.username()) & eq(pass, got.password()) {
                return Ok(());
            }
            return Err(ApiError::Forbidden(
                "invalid webhook basic credentials".into(),
            ));
        }
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    fn status(r: Result<impl std::fmt::Debug, ApiError>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |_| 200)
    }

    #[test]
    fn api_tokens_answer_401_without_a_readable_bearer_and_403_below_the_role() {
        let auth = Auth {
            tokens: vec![ApiToken {
                name: "grafana".into(),
                role: Role::Viewer,
                secret: "viewer-secret".into(),
            }],
            ..Auth::default()
        };
        let caller = |h: &HeaderMap, role| status(auth.caller(h, role));
        assert_eq!(caller(&HeaderMap::new(), Role::Viewer), 401);
        assert_eq!(caller(&with("Bearer nope"), Role::Viewer), 401);
        assert_eq!(
            caller(&with("Basic dmlld2VyLXNlY3JldA=="), Role::Viewer),
            401
        );
        assert_eq!(caller(&with("Bearer viewer-secret"), Role::Viewer), 200);
        // the scheme is case-insensitive (RFC 9110 §11.1)
        assert_eq!(caller(&with("bearer viewer-secret"), Role::Viewer), 200);
        assert_eq!(caller(&with("Bearer viewer-secret"), Role::Operator), 403);
        let who = auth.caller(&with("Bearer viewer-secret"), Role::Viewer);
        assert_eq!(who.unwrap().name, "grafana");
    }

    #[test]
    fn the_webhook_takes_its_bearer_or_basic_credentials() {
        let auth = Auth {
            webhook: WebhookAuth {
                bearer_token: Some("hook-token".into()),
                basic: Some(("am".into(), "pa:ss".into())),
                allow_unauthenticated: false,
            },
            ..Auth::default()
        };
        let hook = |h: &HeaderMap| status(auth.webhook(h));
        assert_eq!(hook(&HeaderMap::new()), 401);
        assert_eq!(hook(&with("Bearer hook-token")), 200);
        assert_eq!(hook(&with("Bearer other")), 403);
        // base64("am:pa:ss"): the password may hold a colon
        assert_eq!(hook(&with("Basic YW06cGE6c3M=")), 200);
        // base64("am:wrong")
        assert_eq!(hook(&with("Basic YW06d3Jvbmc=")), 403);
        assert_eq!(hook(&with("Basic !!!not base64")), 401);
        // base64("no-colon")
        assert_eq!(hook(&with("Basic bm8tY29sb24=")), 401);
        assert_eq!(hook(&with("Digest x")), 401);
    }
}
