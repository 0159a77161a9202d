//! The knowledge base: [`Client::search_knowledge`] (`GET /v1/knowledge/search`), ranked
//! documents built from feedback, cards, error groups and development events.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Client, CommandResult, Error};

/// The most results one search may ask for (the server's `KNOWLEDGE_MAX_RESULTS` may be
/// lower; a `limit` above it is a 400).
pub const MAX_SEARCH_RESULTS: u32 = 50;

/// How to search: which kinds, how many, how the words combine, and after which write.
///
/// ```
/// use client::SearchOptions;
///
/// let options = SearchOptions::default()
///     .kinds(["card"])
///     .limit(5)
///     .match_any()
///     .consistency("board/triage@7");
/// assert_eq!(options.kinds, ["card"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchOptions {
    /// Only these kinds (`card`, `feedback`, `error_group`, `ci_run`, `push`,
    /// `pull_request`, `release`); empty: every kind.
    pub kinds: Vec<String>,
    /// At most this many results (1..=[`MAX_SEARCH_RESULTS`]); `None`: the server's
    /// default (10).
    pub limit: Option<u32>,
    /// `match=any`: a document matching any of the words, ranked by how many match
    /// (`false`, the default: `match=all`, every word).
    pub match_any: bool,
    /// A command's consistency token ([`CommandResult::consistency_token`]): the search
    /// waits until the knowledge base has folded that write (read-your-writes).
    pub consistency: Option<String>,
}

impl SearchOptions {
    pub fn kinds<S: Into<String>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn match_any(mut self) -> Self {
        self.match_any = true;
        self
    }

    pub fn consistency(mut self, token: impl Into<String>) -> Self {
        self.consistency = Some(token.into());
        self
    }

    /// The query string's pairs for the text `q`, in a fixed order.
    fn query(&self, q: &str) -> Vec<(&'static str, String)> {
        let mut query = vec![("q", q.to_owned())];
        if !self.kinds.is_empty() {
            query.push(("kinds", self.kinds.join(",")));
        }
        query.extend(self.limit.map(|n| ("limit", n.to_string())));
        if self.match_any {
            query.push(("match", "any".to_owned()));
        }
        query.extend(self.consistency.clone().map(|t| ("consistency", t)));
        query
    }
}

/// A search's answer: `{"projection":"knowledge","version":1,"mode","results":[…]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchAnswer {
    pub projection: String,
    pub version: u32,
    /// `keyword` (full-text only) or `hybrid` (keyword and vector ranks fused).
    pub mode: String,
    /// Best first.
    pub results: Vec<SearchHit>,
}

/// One ranked document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchHit {
    /// 1 for the best.
    pub rank: u32,
    /// `card:{board}:{card}`, `feedback:{id}`, `error_group:{fingerprint}`, …
    pub doc_id: String,
    pub kind: String,
    /// The ranking's own score (bm25, or fused ranks): comparable within one answer only,
    /// not normalized — do not threshold on it.
    pub score: f64,
    /// The title with the matched words in `<mark>…</mark>`.
    pub title: String,
    /// An excerpt of the text around the matches, marked the same way.
    pub snippet: String,
    /// The document itself.
    pub body: KnowledgeDocument,
}

/// A knowledge document (the `knowledge` projection's body). Fields the server leaves out
/// take their defaults, so a newer server's document still decodes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KnowledgeDocument {
    pub kind: String,
    pub title: String,
    pub text: String,
    /// The kind's own status: cards `open`/`archived`; error groups
    /// `open`/`ignored`/`resolved`/`regressed`; CI runs `failed`/`succeeded`; …
    pub status: String,
    /// The aggregate the document comes from.
    pub source: KnowledgeSource,
    /// `/v1/aggregates/{type}/{id}`.
    pub link: String,
    pub updated_at_ms: i64,
    /// The source aggregate's seq of the last event folded in.
    pub version: u64,
    /// The kind's own fields (cards: `board_id`, `card_id`, `column`, `labels`,
    /// `comments`; error groups: `count`, `error_type`, `last_seen_ms`, …; CI runs:
    /// `conclusion`, `workflow`, `branch`, `url`).
    pub attributes: Map<String, Value>,
}

/// Where a knowledge document comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KnowledgeSource {
    pub aggregate_type: String,
    pub aggregate_id: String,
}

impl CommandResult {
    /// The command's read-your-writes token, `{aggregate_type}/{aggregate_id}@{version}`
    /// (what the server answers as `consistency_token`): a projection read or a search
    /// given it waits until that write is folded in.
    pub fn consistency_token(&self) -> String {
        format!(
            "{}/{}@{}",
            self.aggregate_type, self.aggregate_id, self.version
        )
    }
}

impl Client {
    /// `GET /v1/knowledge/search?q=…`: the knowledge base's documents matching `q`, best
    /// first (needs the `read` scope). Retried like every read.
    ///
    /// `q` is 1..=500 characters of words; `options` narrows the kinds, caps the results,
    /// chooses `match=any` and waits for a write ([`SearchOptions`]).
    ///
    /// Errors: [`Error::Api`] `bad_request` 400 for an empty or punctuation-only `q`, an
    /// unknown kind or a `limit` out of range; `not_found` 404 from a Worker without the
    /// knowledge base; `overloaded` 503 when a consistency token did not catch up in time
    /// (retried under the client's policy first); see [`Client::command`] for the rest.
    pub async fn search_knowledge(
        &self,
        q: &str,
        options: &SearchOptions,
    ) -> Result<SearchAnswer, Error> {
        let url = self.endpoint(&["v1", "knowledge", "search"], &options.query(q));
        self.call(None, || self.http().get(url.clone()))
            .await?
            .json()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn url(q: &str, options: &SearchOptions) -> String {
        let client = Client::new("http://h:1/edge/").unwrap();
        client
            .endpoint(&["v1", "knowledge", "search"], &options.query(q))
            .to_string()
    }

    #[test]
    fn the_query_names_only_what_was_chosen() {
        assert_eq!(
            url("checkout", &SearchOptions::default()),
            "http://h:1/edge/v1/knowledge/search?q=checkout"
        );
        let options = SearchOptions::default()
            .kinds(["error_group", "ci_run"])
            .limit(5)
            .match_any()
            .consistency("board/triage@7");
        assert_eq!(
            url("checkout crashes", &options),
            "http://h:1/edge/v1/knowledge/search?q=checkout+crashes\
             &kinds=error_group%2Cci_run&limit=5&match=any&consistency=board%2Ftriage%407"
        );
    }

    #[test]
    fn the_text_is_escaped_so_it_cannot_add_parameters() {
        let options = SearchOptions::default();
        assert_eq!(
            url("a&kinds=feedback #1 100% é", &options),
            "http://h:1/edge/v1/knowledge/search?q=a%26kinds%3Dfeedback+%231+100%25+%C3%A9"
        );
    }

    #[test]
    fn an_answer_decodes_with_its_documents() {
        let answer: SearchAnswer = serde_json::from_value(json!({
            "projection": "knowledge", "version": 1, "mode": "keyword",
            "results": [{
                "rank": 1, "doc_id": "card:triage:fb-123", "kind": "card", "score": 7.3,
                "title": "<mark>checkout</mark> crashes", "snippet": "…",
                "body": {
                    "kind": "card", "title": "checkout crashes", "text": "checkout crashes\nbug",
                    "status": "open",
                    "source": {"aggregate_type": "board", "aggregate_id": "triage"},
                    "link": "/v1/aggregates/board/triage", "updated_at_ms": 1,
                    "version": 4,
                    "attributes": {"board_id": "triage", "card_id": "fb-123",
                                   "labels": ["bug"], "comments": 2},
                    "future_field": true
                }
            }]
        }))
        .unwrap();
        let hit = &answer.results[0];
        assert_eq!((hit.rank, hit.kind.as_str()), (1, "card"));
        assert_eq!(hit.body.source.aggregate_id, "triage");
        assert_eq!(hit.body.attributes["card_id"], "fb-123");
        // A sparse body still decodes.
        let sparse: KnowledgeDocument = serde_json::from_value(json!({"kind": "ci_run"})).unwrap();
        assert_eq!(
            (sparse.kind.as_str(), sparse.status.as_str()),
            ("ci_run", "")
        );
    }

    #[test]
    fn a_command_names_its_consistency_token() {
        let done: CommandResult = serde_json::from_value(json!({
            "aggregate_type": "board", "aggregate_id": "triage", "version": 7, "events": []
        }))
        .unwrap();
        assert_eq!(done.consistency_token(), "board/triage@7");
    }
}
