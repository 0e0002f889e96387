//! LIST chunking as the API server does it: `?limit=N` returns at most N items in key
//! order and, when more remain, an opaque `metadata.continue` token (base64 of the list's
//! resourceVersion and the last key served); `?continue=TOKEN` returns the next chunk with
//! the first chunk's resourceVersion. kubectl asks for chunks of 500 and kube-rs watchers
//! list in pages of 500, so without this a 10,000-pod namespace arrives as one response.
//!
//! Unlike etcd, later chunks are read from the current state, not the first chunk's
//! snapshot; an object changed in between is served as it is now, and a watch started at
//! the list's resourceVersion replays the change.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::status::ApiError;

/// Where a chunked LIST goes on: the first chunk's resourceVersion and the last key served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The resourceVersion of the first chunk (every chunk reports it).
    pub rv: u64,
    /// Namespace of the last object served ("" for cluster-scoped ones).
    pub namespace: String,
    /// Name of the last object served.
    pub name: String,
}

/// The token's JSON, shaped like the API server's (`v`, `rv`, `start`).
#[derive(Serialize, Deserialize)]
struct Token {
    v: String,
    rv: u64,
    start: String,
}

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

impl Cursor {
    /// The opaque `continue` token.
    pub fn token(&self) -> String {
        let t = Token {
            v: TOKEN_VERSION.into(),
            rv: self.rv,
            // the key after the resource prefix, with a NUL so the next key sorts after it
            start: format!("{}/{}\u{0}", self.namespace, self.name),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
    }

    /// Reads a `continue` token (400 with the API server's words when it is not one).
    pub fn parse(token: &str) -> Result<Cursor, ApiError> {
        let invalid =
            |why: String| ApiError::BadRequest(format!("continue key is not valid: {why}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| invalid(e.to_string()))?;
        let t: Token = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if t.v != TOKEN_VERSION {
            return Err(invalid(format!(
                "incorrect encoded start resourceVersion (version {})",
                t.v
            )));
        }
        let start = t
            .start
            .strip_suffix('\u{0}')
            .ok_or_else(|| invalid("the start key is not terminated".into()))?;
        let (namespace, name) = start
            .split_once('/')
            .ok_or_else(|| invalid("the start key names no object".into()))?;
        Ok(Cursor {
            rv: t.rv,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// Which chunk of a LIST a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// At most this many items (`None`: all of them).
    pub limit: Option<usize>,
    /// Start after this object (a `continue` token).
    pub after: Option<Cursor>,
    /// Only each object's metadata is wanted (a `PartialObjectMetadataList`): the items
    /// carry just that, so a metadata LIST does not copy whole objects, as the API server
    /// serves it from its watch cache.
    pub metadata_only: bool,
}

impl Chunk {
    /// Reads `limit` and `continue` from a LIST's query. A `limit` of 0 or below means no
    /// limit; `continue` with an explicit resourceVersion is refused, as the API server does.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Chunk, ApiError> {
        let limit = match query.get("limit").map(String::as_str) {
            None | Some("") => None,
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| {
                    ApiError::BadRequest(format!("limit: invalid value {s:?}: not an integer"))
                })?;
                usize::try_from(n).ok().filter(|n| *n > 0)
            }
        };
        let after = match query.get("continue").map(String::as_str) {
            None | Some("") => None,
            Some(token) => {
                if query
                    .get("resourceVersion")
                    .is_some_and(|rv| !rv.is_empty())
                {
                    return Err(ApiError::BadRequest(
                        "specifying resource version is not allowed when using continue".into(),
                    ));
                }
                Some(Cursor::parse(token)?)
            }
        };
        Ok(Chunk {
            limit,
            after,
            metadata_only: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_token_round_trips() {
        let c = Cursor {
            rv: 42,
            namespace: "prod".into(),
            name: "web-7d9f".into(),
        };
        assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
        let cluster_scoped = Cursor {
            rv: 7,
            namespace: String::new(),
            name: "node-1".into(),
        };
        assert_eq!(
            Cursor::parse(&cluster_scoped.token()).unwrap(),
            cluster_scoped
        );
    }

    #[test]
    fn limits_and_bad_tokens() {
        assert_eq!(Chunk::from_query(&query(&[])).unwrap(), Chunk::default());
        assert_eq!(
            Chunk::from_query(&query(&[("limit", "500")]))
                .unwrap()
                .limit,
            Some(500)
        );
        assert_eq!(
            Chunk::from_query(&query(&[("limit", "0")])).unwrap().limit,
            None
        );
        assert_eq!(
            Chunk::from_query(&query(&[("limit", "-3")])).unwrap().limit,
            None
        );
        let bad = |q: &[(&str, &str)]| match Chunk::from_query(&query(q)) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{q:?}: {other:?}"),
        };
        assert!(bad(&[("limit", "ten")]).contains("limit"));
        assert!(bad(&[("continue", "!!")]).starts_with("continue key is not valid"));
        let token = Cursor {
            rv: 1,
            namespace: "ns".into(),
            name: "a".into(),
        }
        .token();
        assert!(
            bad(&[("continue", &token), ("resourceVersion", "5")])
                .contains("not allowed when using continue")
        );
    }
}
