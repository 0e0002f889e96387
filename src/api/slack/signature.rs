//! Slack's request signature (<https://api.slack.com/authentication/verifying-requests-from-slack>):
//! `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{X-Slack-Request-Timestamp}:{raw body}">`
//! keyed with the app's signing secret. The raw body is checked before anything parses it,
//! the digests are compared in constant time, and a timestamp more than five minutes away
//! from now is refused (a captured request cannot be replayed later).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The signature header.
pub const SIGNATURE: &str = "x-slack-signature";
/// The timestamp header (seconds since the epoch).
pub const TIMESTAMP: &str = "x-slack-request-timestamp";
/// How far a request's timestamp may be from now, either way, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// Why a request is not Slack's (each answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing or not text.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The timestamp is not a whole number of seconds.
    #[error("{TIMESTAMP} is not a number of seconds: {0:?}")]
    BadTimestamp(String),
    /// The timestamp is too far from now: a replay, or a clock far off.
    #[error(
        "{TIMESTAMP} is {0} s from now (at most {MAX_SKEW_SECONDS} s allowed): a replayed or delayed request"
    )]
    Stale(i64),
    /// The signature does not match the body.
    #[error("{SIGNATURE} does not match the body signed with the signing secret")]
    Mismatch,
}

impl SignatureError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) | SignatureError::BadTimestamp(_) => "unsigned",
            SignatureError::Stale(_) => "stale",
            SignatureError::Mismatch => "bad_signature",
        }
    }
}

/// `v0=<hex>`: the signature of `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail for it
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 2 * digest.len());
    out.push_str("v0=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Checks a request's headers against its raw `body` at `now` (seconds since the epoch).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE))?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(crate::text::cap(timestamp, 32)))?;
    let skew = now.saturating_sub(sent);
    if skew.saturating_abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale(skew));
    }
    let expected = sign(secret, timestamp, body);
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return Err(SignatureError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const BODY: &[u8] = b"payload=%7B%22type%22%3A%22block_actions%22%7D";

    #[test]
    fn slack_documented_example_verifies() {
        // the example of Slack's "Verifying requests from Slack" page
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(SECRET, "1531420618", body), signature);
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(signature),
                body,
                1531420618 + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn a_fresh_signed_body_passes_and_any_change_fails() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let good = sign(SECRET, &ts, BODY);
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), BODY, now), Ok(()));
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&good), &body, now),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"another secret", &ts, BODY);
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&other), BODY, now),
            Err(SignatureError::Mismatch)
        );
        // a signature for another timestamp does not carry over
        let later = (now + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&later), Some(&good), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some("v0=short"), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(""), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn timestamps_beyond_five_minutes_either_way_are_refused() {
        let now = 1_700_000_000;
        for (age, ok) in [
            (300, true),
            (301, false),
            (360, false),
            (-300, true),
            (-301, false),
        ] {
            let ts = (now - age).to_string();
            let sig = sign(SECRET, &ts, BODY);
            let got = verify(SECRET, Some(&ts), Some(&sig), BODY, now);
            assert_eq!(got.is_ok(), ok, "age {age}: {got:?}");
            if !ok {
                assert_eq!(got, Err(SignatureError::Stale(age)));
            }
        }
    }

    #[test]
    fn missing_or_garbled_headers_are_named() {
        let now = 1_700_000_000;
        assert_eq!(
            verify(SECRET, None, Some("v0=x"), BODY, now),
            Err(SignatureError::Missing(TIMESTAMP))
        );
        assert_eq!(
            verify(SECRET, Some("1"), None, BODY, now),
            Err(SignatureError::Missing(SIGNATURE))
        );
        let err = verify(SECRET, Some("soon"), Some("v0=x"), BODY, now).unwrap_err();
        assert_eq!(err, SignatureError::BadTimestamp("soon".into()));
        assert!(err.to_string().contains(TIMESTAMP), "{err}");
    }
}
