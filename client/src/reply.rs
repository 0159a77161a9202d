//! [`Reply`]: an HTTP answer read whole, as the raw layer returns it.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::retry::parse_retry_after;

/// An HTTP answer, fully read: whatever the server said, with no interpretation.
///
/// The typed methods of [`crate::Client`] turn replies into values or [`Error`]s; the raw
/// layer ([`crate::Client::send`]) hands them over as they are, for requests the typed
/// layer does not make (malformed bodies, odd headers, other routes).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded from JSON into `T` (`serde_json::Value` for anything);
    /// [`Error::Decode`] when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Decode(format!(
                "{e} (HTTP {}, body: {})",
                self.status,
                crate::excerpt(&self.text())
            ))
        })
    }

    /// `Retry-After` as a wait from now (seconds or an HTTP-date), when the server sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// `Idempotent-Replayed: true`: a command's answer came from its idempotency record,
    /// not from running it (it had already been applied).
    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// `Ok(self)` for a 2xx answer, else the [`Error`] the answer stands for.
    pub fn error_for_status(self) -> Result<Reply, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::from_answer(self.status, &self.body))
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Reply {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn json_decodes_or_says_what_the_body_was() {
        let ok = reply(200, &[], r#"{"version": 3}"#);
        assert_eq!(ok.json::<serde_json::Value>().unwrap()["version"], 3);
        let error = reply(200, &[], "<html>")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(
            matches!(&error, Error::Decode(m) if m.contains("<html>")),
            "{error}"
        );
    }

    #[test]
    fn headers_retry_after_and_replayed() {
        let r = reply(
            429,
            &[("retry-after", "2"), ("idempotent-replayed", "true")],
            "",
        );
        assert_eq!(r.retry_after(), Some(Duration::from_secs(2)));
        assert!(r.replayed());
        assert_eq!(
            r.header("Retry-After"),
            Some("2"),
            "names are case-insensitive"
        );
        assert!(!reply(200, &[], "").replayed());
    }

    #[test]
    fn error_for_status_keeps_successes_and_parses_failures() {
        assert!(reply(204, &[], "").error_for_status().is_ok());
        let error = reply(
            404,
            &[],
            r#"{"error":{"code":"not_found","message":"none"}}"#,
        )
        .error_for_status()
        .unwrap_err();
        assert!(error.is_not_found());
    }
}
