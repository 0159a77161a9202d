//! The edge cache: answers that can never change, kept in Workers KV (`EDGE_CACHE`).
//!
//! Only immutable reads are cached — an aggregate's state at a version that exists (the
//! state at version N never changes once N is written), and archived stream segments
//! (sealed ranges never change). Nothing mutable is ever cached.
//!
//! Keys start with [`epoch`]: the shape version of what is cached plus the build that
//! wrote it (`EDGELOOP_BUILD_ID`, set by `scripts/build` from the commit and the diff), so
//! a new deploy or a new schema never reads an entry in an old shape. The var
//! `EDGE_CACHE_ENABLED=false` turns the cache off; a missing binding does too.

use worker::{Env, kv::KvStore};

use crate::config::Config;

/// Response header saying whether an answer came from the cache (`hit`) or was stored
/// in it (`miss`); absent when the cache was not involved or is off.
pub const CACHE_HEADER: &str = "x-edgeloop-cache";

/// The KV namespace binding.
pub const BINDING: &str = "EDGE_CACHE";

/// Bump when the shape of any cached value changes.
const SHAPE_VERSION: u32 = 1;

/// How long an entry lives (seconds). Entries are immutable; the TTL only bounds what
/// old builds leave behind.
const TTL_SECS: u64 = 7 * 24 * 3600;

/// The prefix of every key written by this build.
pub fn epoch() -> String {
    format!(
        "v{SHAPE_VERSION}/{}/{}",
        env!("CARGO_PKG_VERSION"),
        option_env!("EDGELOOP_BUILD_ID").unwrap_or("unversioned")
    )
}

/// A handle on the cache; every operation is a no-op when it is off.
pub struct EdgeCache {
    kv: Option<KvStore>,
}

impl EdgeCache {
    /// Whether the cache is on (enabled and bound).
    pub fn is_on(&self) -> bool {
        self.kv.is_some()
    }

    pub fn from_env(env: &Env, config: &Config) -> Self {
        Self {
            kv: config.edge_cache.then(|| env.kv(BINDING).ok()).flatten(),
        }
    }

    /// The full key of `parts` under this build's epoch. KV keys are at most 512 bytes;
    /// callers keep their parts short (tenants ≤ 64, ids ≤ 256 bytes).
    pub fn key(parts: &[&str]) -> String {
        let mut key = epoch();
        for part in parts {
            key.push('/');
            key.push_str(part);
        }
        key
    }

    /// A cached value; `None` on a miss, when off, or when KV fails (a cache never fails
    /// a read).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let kv = self.kv.as_ref()?;
        kv.get(key).bytes().await.ok().flatten()
    }

    /// Stores a value; failures are logged and otherwise ignored.
    pub async fn put(&self, key: &str, value: &[u8]) {
        let Some(kv) = self.kv.as_ref() else { return };
        let result = match kv.put_bytes(key, value) {
            Ok(put) => put.expiration_ttl(TTL_SECS).execute().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            worker::console_warn!("edge cache: storing {key} failed: {e}");
        }
    }
}
