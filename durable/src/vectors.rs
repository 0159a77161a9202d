//! The knowledge base's vector side, on Cloudflare only: Workers AI embeds text and a
//! Vectorize index stores and queries the vectors. Both bindings exist only on Cloudflare
//! (Miniflare cannot provide them), so everything here is a thin call through the bindings;
//! what decides anything — the fusion of keyword and vector ranks — is pure
//! (`projections::knowledge::fuse`) and tested natively.
//!
//! Configured when the Worker has both an `AI` binding and a `VECTORIZE` binding (see the
//! README, "Hybrid search"); otherwise [`Vectors::from_env`] is `None` and search is keyword
//! only. The index must use the embedding model's dimensions ([`DIMENSIONS`], cosine) and a
//! metadata index on `tenant` (string), since one index serves every tenant and each query
//! is filtered to the caller's.
//!
//! Vector ids are at most 64 bytes in Vectorize, so a document's vector id is a hash of
//! `(tenant, doc_id)` ([`vector_id`]); the tenant and doc id travel as metadata and are
//! checked on the way back, so a hash collision can never show one tenant another's
//! documents. Indexing is best effort, after the projector's atomic step: a failed upsert is
//! logged and the document is embedded again when it next changes (the keyword index, which
//! is exact, is unaffected).

use js_sys::futures::JsFuture;
use js_sys::{Function, Promise, Reflect};
use serde::Deserialize;
use serde_json::{Value, json};
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use crate::error::{ApiError, ApiResult};

/// The Workers AI binding's name.
pub const AI_BINDING: &str = "AI";
/// The Vectorize binding's name.
pub const VECTORIZE_BINDING: &str = "VECTORIZE";
/// The embedding model (Workers AI), and the dimensions the index must have.
pub const EMBEDDING_MODEL: &str = "@cf/baai/bge-small-en-v1.5";
pub const DIMENSIONS: usize = 384;
/// Texts are cut to this many characters before embedding (the model reads ~512 tokens).
pub const MAX_EMBED_CHARS: usize = 2000;

/// Both bindings, when configured.
pub struct Vectors {
    ai: worker::Ai,
    index: JsValue,
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vectors")
    }
}

/// A document to index: its id, kind and text.
#[derive(Debug, Clone)]
pub struct ToIndex {
    pub doc_id: String,
    pub kind: String,
    pub text: String,
}

fn js_error(context: &str, e: impl std::fmt::Debug) -> ApiError {
    ApiError::internal(format!("{context}: {e:?}"))
}

/// A 32-hex-digit id for `(tenant, doc_id)`: two FNV-1a 64-bit hashes, of the tenant and of
/// the pair.
pub fn vector_id(tenant: &str, doc_id: &str) -> String {
    fn fnv1a(parts: &[&[u8]]) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for byte in *part {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
    format!(
        "{:016x}{:016x}",
        fnv1a(&[tenant.as_bytes()]),
        fnv1a(&[tenant.as_bytes(), doc_id.as_bytes()])
    )
}

impl Vectors {
    /// Both bindings, or `None` (keyword search only).
    pub fn from_env(env: &Env) -> Option<Self> {
        let ai = env.ai(AI_BINDING).ok()?;
        let index = Reflect::get(env, &JsValue::from_str(VECTORIZE_BINDING)).ok()?;
        (!index.is_undefined() && !index.is_null()).then_some(Self { ai, index })
    }

    /// One embedding per text.
    pub async fn embed(&self, texts: &[String]) -> ApiResult<Vec<Vec<f32>>> {
        #[derive(Deserialize)]
        struct Output {
            data: Vec<Vec<f32>>,
        }
        let texts: Vec<String> = texts
            .iter()
            .map(|t| t.chars().take(MAX_EMBED_CHARS).collect())
            .collect();
        let output: Output = self
            .ai
            .run(EMBEDDING_MODEL, json!({ "text": texts }))
            .await
            .map_err(|e| js_error("Workers AI embedding", e))?;
        Ok(output.data)
    }

    async fn call(&self, method: &str, args: &[Value]) -> ApiResult<Value> {
        let function: Function = Reflect::get(&self.index, &JsValue::from_str(method))
            .map_err(|e| js_error(method, e))?
            .dyn_into()
            .map_err(|e| js_error(method, e))?;
        let args: Vec<JsValue> = args
            .iter()
            .map(|a| js_sys::JSON::parse(&a.to_string()).map_err(|e| js_error(method, e)))
            .collect::<ApiResult<_>>()?;
        let returned = match args.as_slice() {
            [a] => function.call1(&self.index, a),
            [a, b] => function.call2(&self.index, a, b),
            _ => function.call0(&self.index),
        }
        .map_err(|e| js_error(method, e))?;
        let promise: Promise = returned.dyn_into().map_err(|e| js_error(method, e))?;
        let value = JsFuture::from(promise)
            .await
            .map_err(|e| js_error(method, e))?;
        let text = js_sys::JSON::stringify(&value)
            .map_err(|e| js_error(method, e))?
            .as_string()
            .unwrap_or_default();
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Embeds and upserts `docs` of `tenant`.
    pub async fn upsert(&self, tenant: &str, docs: &[ToIndex]) -> ApiResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
        let embeddings = self.embed(&texts).await?;
        let vectors: Vec<Value> = docs
            .iter()
            .zip(embeddings)
            .map(|(doc, values)| {
                json!({
                    "id": vector_id(tenant, &doc.doc_id),
                    "values": values,
                    "metadata": {"tenant": tenant, "doc_id": doc.doc_id, "kind": doc.kind},
                })
            })
            .collect();
        self.call("upsert", &[Value::Array(vectors)]).await?;
        Ok(())
    }

    /// Removes the vectors of `doc_ids` of `tenant`.
    pub async fn delete(&self, tenant: &str, doc_ids: &[String]) -> ApiResult<()> {
        if doc_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = doc_ids.iter().map(|d| vector_id(tenant, d)).collect();
        self.call("deleteByIds", &[json!(ids)]).await?;
        Ok(())
    }

    /// The doc ids nearest to `text` among `tenant`'s, best first.
    pub async fn query(&self, tenant: &str, text: &str, top_k: usize) -> ApiResult<Vec<String>> {
        let vector = self
            .embed(&[text.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("Workers AI returned no embedding"))?;
        let answer = self
            .call(
                "query",
                &[
                    json!(vector),
                    json!({"topK": top_k.min(100), "filter": {"tenant": tenant}, "returnMetadata": "all"}),
                ],
            )
            .await?;
        Ok(answer["matches"]
            .as_array()
            .map(|matches| {
                matches
                    .iter()
                    .filter(|m| m["metadata"]["tenant"] == tenant)
                    .filter_map(|m| m["metadata"]["doc_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_ids_fit_vectorize_and_differ_by_tenant_and_document() {
        let a = vector_id("acme", "card:b1:c1");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, vector_id("acme", "card:b1:c1"));
        assert_ne!(a, vector_id("globex", "card:b1:c1"));
        assert_ne!(a, vector_id("acme", "card:b1:c2"));
        // The pair is hashed with separators: moving bytes across the boundary changes it.
        assert_ne!(vector_id("ab", "c"), vector_id("a", "bc"));
    }
}
