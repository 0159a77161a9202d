//! Query parameters: strict parsing (unknown or repeated names are a 400), integers
//! within JavaScript's safe range, and the listing parameters every log listing shares
//! (aggregate logs now, the global stream next).

use domain::store::Direction;

use crate::error::{ApiError, ApiResult};

/// Default and maximum page sizes of listings.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// Parsed `?after=&before=&limit=&direction=` of an event listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingParams {
    pub direction: Direction,
    pub after: u64,
    pub before: Option<u64>,
    pub limit: usize,
}

/// Query parameters as name/value pairs (from `Url::query_pairs`).
pub type Query = Vec<(String, String)>;

pub fn query_pairs(url: &url::Url) -> Query {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Rejects any parameter not in `allowed` and any repeated parameter: a typo must not
/// silently change what a client reads.
pub fn check_params(query: &Query, allowed: &[&str]) -> ApiResult<()> {
    for (i, (name, _)) in query.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{name}`; allowed: {}",
                allowed.join(", ")
            )));
        }
        if query[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is repeated"
            )));
        }
    }
    Ok(())
}

pub fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A non-negative integer parameter.
pub fn u64_param(query: &Query, name: &str) -> ApiResult<Option<u64>> {
    param(query, name)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_SAFE_INTEGER)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{name}` must be a non-negative integer, got `{v}`"
                    ))
                })
        })
        .transpose()
}

/// A `limit` parameter of 1 to `max` (`default` when absent); `max_name` names where the
/// ceiling comes from in the error (e.g. a var), if anywhere.
pub fn limit_param(
    query: &Query,
    default: usize,
    max: usize,
    max_name: Option<&str>,
) -> ApiResult<usize> {
    match u64_param(query, "limit")? {
        None => Ok(default.min(max)),
        Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
        Some(n) => Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {max}{}, got {n}",
            max_name.map(|m| format!(" ({m})")).unwrap_or_default()
        ))),
    }
}

/// Largest integer JavaScript (and so SQLite through the runtime) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub fn listing_params(query: &Query) -> ApiResult<ListingParams> {
    check_params(query, &["after", "before", "limit", "direction"])?;
    let direction = match param(query, "direction") {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`direction` must be `forward` or `backward`, got `{other}`"
            )));
        }
    };
    let after = u64_param(query, "after")?;
    let before = u64_param(query, "before")?;
    match (direction, after, before) {
        (Direction::Forward, _, Some(_)) => {
            return Err(ApiError::bad_request(
                "`before` goes with `direction=backward`",
            ));
        }
        (Direction::Backward, Some(_), _) => {
            return Err(ApiError::bad_request(
                "`after` goes with `direction=forward`",
            ));
        }
        _ => {}
    }
    let limit = match u64_param(query, "limit")? {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        // Compare as u64: on wasm32 `usize` is 32 bits, and a cast first would wrap 2^32 to 0.
        Some(n) if n > MAX_LIMIT as u64 => {
            return Err(ApiError::bad_request(format!(
                "`limit` must be at most {MAX_LIMIT}, got {n}"
            )));
        }
        Some(n) => n as usize, // at most MAX_LIMIT here
    };
    Ok(ListingParams {
        direction,
        after: after.unwrap_or(0),
        before,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn listing_defaults_and_bounds() {
        let p = listing_params(&q(&[])).unwrap();
        assert_eq!(
            (p.direction, p.after, p.before, p.limit),
            (Direction::Forward, 0, None, 100)
        );
        assert!(listing_params(&q(&[("limit", "10000")])).is_ok());
        assert_eq!(
            listing_params(&q(&[("limit", "10001")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("limit", "0")])).unwrap_err().status,
            400
        );
        // 2^32 would wrap to 0 on wasm32 if cast before the comparison.
        assert_eq!(
            listing_params(&q(&[("limit", "4294967296")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "-1")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "1e3")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("direction", "sideways")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("before", "3")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "1"), ("after", "2")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("afterr", "1")])).unwrap_err().status,
            400
        );
        let b = listing_params(&q(&[("direction", "backward"), ("before", "7")])).unwrap();
        assert_eq!((b.direction, b.before), (Direction::Backward, Some(7)));
    }
}
