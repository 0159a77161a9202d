//! Reads: an aggregate's state (now, at a version, as of a time) and its event log, page by
//! page or as one stream.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::EventEnvelope;
use futures_util::{Stream, TryStreamExt, stream};
use serde::Deserialize;
use serde_json::Value;

use crate::{Client, Error};

/// Which state to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum At {
    /// The current state.
    #[default]
    Latest,
    /// The state right after event `seq` = the version (`?at_version=N`; 404 when the
    /// aggregate has fewer events).
    Version(u64),
    /// The state as of a time: every event recorded at or before it (`?as_of=…`).
    Time(DateTime<Utc>),
}

/// An aggregate's state at a version: `{"aggregate_type","aggregate_id","version","state"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct State {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The `seq` of the last event folded into `state`.
    pub version: u64,
    /// The aggregate's state as JSON (its shape belongs to the aggregate type).
    pub state: Value,
}

/// One page of a forward listing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventPage {
    /// Oldest first, every `seq` above the requested `after`, densely.
    pub events: Vec<EventEnvelope>,
    /// Where the next page starts (`after=`), or `None` when the log has no more. A page can
    /// hold fewer events than asked for (the server stops after ~4 MiB of payload) and still
    /// have a next one: always page on from this cursor, never from the count.
    pub next_after: Option<u64>,
}

/// One page of a backward listing (newest first).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackwardPage {
    /// Newest first.
    pub events: Vec<EventEnvelope>,
    /// Where the next (older) page starts (`before=`), or `None` at the first event.
    pub next_before: Option<u64>,
}

/// The most events one listing request may ask for.
pub const MAX_PAGE: u32 = 10_000;

impl Client {
    /// `GET /v1/aggregates/{type}/{id}`: the state now, at a version, or as of a time.
    /// Retried like every read.
    ///
    /// Errors: [`Error::Api`] `not_found` 404 when the aggregate has no events (or not that
    /// many), `forbidden` 403 without the `read` scope; see [`Client::command`] for the rest.
    pub async fn state(&self, aggregate_type: &str, id: &str, at: At) -> Result<State, Error> {
        let query = match at {
            At::Latest => vec![],
            At::Version(version) => vec![("at_version", version.to_string())],
            At::Time(time) => vec![("as_of", time.to_rfc3339_opts(SecondsFormat::Millis, true))],
        };
        let url = self.endpoint(&["v1", "aggregates", aggregate_type, id], &query);
        self.call(None, || self.http().get(url.clone()))
            .await?
            .json()
    }

    /// `GET /v1/aggregates/{type}/{id}/events?after=N&limit=M`: the events with
    /// `seq > after`, oldest first, at most `limit` (server default 100, at most
    /// [`MAX_PAGE`]). Page on with [`EventPage::next_after`], or use
    /// [`Client::event_stream`].
    ///
    /// Errors: 404 `not_found` when the aggregate has no events; 400 for a `limit` over
    /// [`MAX_PAGE`] or of 0.
    pub async fn events(
        &self,
        aggregate_type: &str,
        id: &str,
        after: u64,
        limit: Option<u32>,
    ) -> Result<EventPage, Error> {
        let mut query = vec![("after", after.to_string())];
        query.extend(limit.map(|n| ("limit", n.to_string())));
        let url = self.endpoint(&["v1", "aggregates", aggregate_type, id, "events"], &query);
        let page: EventPage = self
            .call(None, || self.http().get(url.clone()))
            .await?
            .json()?;
        check_forward(after, &page)?;
        Ok(page)
    }

    /// `…/events?direction=backward&before=N&limit=M`: the newest events below `before`
    /// (all of the newest when `None`), newest first.
    pub async fn events_before(
        &self,
        aggregate_type: &str,
        id: &str,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<BackwardPage, Error> {
        let mut query = vec![("direction", "backward".to_owned())];
        query.extend(before.map(|n| ("before", n.to_string())));
        query.extend(limit.map(|n| ("limit", n.to_string())));
        let url = self.endpoint(&["v1", "aggregates", aggregate_type, id, "events"], &query);
        self.call(None, || self.http().get(url.clone()))
            .await?
            .json()
    }

    /// Every event with `seq > after`, oldest first, read a page of [`MAX_PAGE`] at a time
    /// as the stream is consumed (memory stays at one page however long the log). Ends
    /// after the last event; yields one error and ends if a page fails.
    pub fn event_stream<'a>(
        &'a self,
        aggregate_type: &'a str,
        id: &'a str,
        after: u64,
    ) -> impl Stream<Item = Result<EventEnvelope, Error>> + 'a {
        stream::try_unfold(Some(after), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let page = self
                .events(aggregate_type, id, after, Some(MAX_PAGE))
                .await?;
            let items = page.events.into_iter().map(Ok::<_, Error>);
            Ok(Some((stream::iter(items), page.next_after)))
        })
        .try_flatten()
    }

    /// Every event with `seq > after`, collected ([`Client::event_stream`] for long logs).
    pub async fn all_events(
        &self,
        aggregate_type: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<EventEnvelope>, Error> {
        self.event_stream(aggregate_type, id, after)
            .try_collect()
            .await
    }
}

/// A forward page must continue exactly where it was asked to: `after + 1`, `after + 2`, …
/// A hole would mean a caller paging with it silently misses events.
fn check_forward(after: u64, page: &EventPage) -> Result<(), Error> {
    for (i, event) in page.events.iter().enumerate() {
        let expected = after + 1 + i as u64;
        if event.seq != expected {
            return Err(Error::Protocol(format!(
                "a page after {after} holds seq {} where {expected} belongs",
                event.seq
            )));
        }
    }
    if let (Some(next), Some(last)) = (page.next_after, page.events.last())
        && next != last.seq
    {
        return Err(Error::Protocol(format!(
            "a page ending at seq {} names {next} as the next cursor",
            last.seq
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page(seqs: &[u64], next_after: Option<u64>) -> EventPage {
        let events = seqs
            .iter()
            .map(|seq| {
                serde_json::from_value(json!({
                    "aggregate_type": "board", "aggregate_id": "b", "seq": seq,
                    "event_id": "e", "type": "CardAdded", "schema_version": 1, "data": {},
                    "recorded_at": "2026-01-01T00:00:00.000Z", "command_id": null,
                    "correlation_id": null, "causation_id": null, "actor": null
                }))
                .unwrap()
            })
            .collect();
        EventPage { events, next_after }
    }

    #[test]
    fn a_dense_page_from_the_cursor_passes() {
        assert!(check_forward(3, &page(&[4, 5, 6], Some(6))).is_ok());
        assert!(check_forward(3, &page(&[4, 5], None)).is_ok());
        assert!(check_forward(9, &page(&[], None)).is_ok());
    }

    #[test]
    fn holes_and_wrong_cursors_are_protocol_errors() {
        for (after, bad) in [
            (3, page(&[5, 6], None)),
            (3, page(&[4, 6], None)),
            (3, page(&[4, 5], Some(7))),
        ] {
            assert!(matches!(
                check_forward(after, &bad),
                Err(Error::Protocol(_))
            ));
        }
    }
}
