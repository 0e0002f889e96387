//! Identifiers: uids, generateName suffixes, timestamps and pod-template hashes.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// The alphabet Kubernetes uses for generated names (no vowels, no ambiguous digits).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn next_random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    splitmix(
        nanos
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x2545_F491_4F6C_DD1D),
    )
}

/// A random RFC 4122 version-4 style uid.
pub fn uid() -> String {
    let a = next_random();
    let b = next_random();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// Encodes a number with the safe alphabet, `len` characters long.
fn safe_encode(mut v: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(SAFE[(v % SAFE.len() as u64) as usize] as char);
        v /= SAFE.len() as u64;
    }
    s
}

/// A 5-character random suffix for `generateName`.
pub fn name_suffix() -> String {
    safe_encode(next_random(), 5)
}

/// A stable hash of a pod template (FNV-1a over its canonical JSON), safe-encoded.
pub fn template_hash(template: &serde_json::Value) -> String {
    let text = template.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    safe_encode(h, 10)
}

/// Now as an RFC 3339 timestamp with second precision (`2026-01-01T00:00:00Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
