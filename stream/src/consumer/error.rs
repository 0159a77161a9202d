//! [`ConsumerError`]: every way a consumer-group call can be refused.

use super::{Answer, LeaseId};

/// A refused consumer-group call. The `Display` text is the client-facing message; each
/// variant documents the HTTP status and error code it maps to ([`ConsumerError::status`],
/// [`ConsumerError::code`]). A refused call changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    /// 409 `lease_lost`: the lease is not this consumer's — released, replaced by a newer
    /// batch of its partition, held by another consumer, or never granted. (Which of these is
    /// not said: a consumer learns nothing about another's leases.)
    #[error("lease {lease} is not held by this consumer; poll for a new batch")]
    LeaseNotHeld { lease: LeaseId },
    /// 409 `lease_expired`: the lease ran out before this call; its unanswered events will be
    /// delivered again (to any consumer), counting another attempt.
    #[error(
        "lease {lease} expired at {expired_at_ms}; its unanswered events will be delivered again, so poll for a new batch"
    )]
    LeaseExpired { lease: LeaseId, expired_at_ms: u64 },
    /// 400 `bad_request`: the offset is not one of the lease's batch.
    #[error("offset {offset} was not delivered under lease {lease}")]
    NotInLease { lease: LeaseId, offset: u64 },
    /// 409 `already_answered`: the event was already answered otherwise under this lease
    /// (answering it the same way again is not an error).
    #[error("offset {offset} was already answered with `{answer}` under lease {lease}")]
    AlreadyAnswered {
        lease: LeaseId,
        offset: u64,
        answer: Answer,
    },
    /// 404 `not_found`: no parked event there (never parked, or already replayed).
    #[error("partition {partition} has no parked event at offset {offset}")]
    NotParked { partition: u32, offset: u64 },
    /// 404 `not_found`: the stream has no such partition.
    #[error("partition {partition} does not exist; the stream has {count} partitions")]
    UnknownPartition { partition: u32, count: u32 },
    /// 400 `bad_request`: a start offset past the partition's last event.
    #[error("cannot start partition {partition} after offset {after}: its head is {head}")]
    StartBeyondHead {
        partition: u32,
        after: u64,
        head: u64,
    },
    /// 400 `bad_request`: a [`super::GroupConfig`] outside its bounds.
    #[error("bad consumer group config: {0}")]
    BadConfig(&'static str),
    /// 400 `bad_request`: a nack's reason longer than [`super::MAX_REASON_CHARS`].
    #[error("a nack's reason must be at most {max} characters", max = super::MAX_REASON_CHARS)]
    ReasonTooLong,
}

impl ConsumerError {
    /// The HTTP status the error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Self::LeaseNotHeld { .. }
            | Self::LeaseExpired { .. }
            | Self::AlreadyAnswered { .. } => 409,
            Self::NotParked { .. } | Self::UnknownPartition { .. } => 404,
            Self::NotInLease { .. }
            | Self::StartBeyondHead { .. }
            | Self::BadConfig(_)
            | Self::ReasonTooLong => 400,
        }
    }

    /// The error code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LeaseNotHeld { .. } => "lease_lost",
            Self::LeaseExpired { .. } => "lease_expired",
            Self::AlreadyAnswered { .. } => "already_answered",
            Self::NotParked { .. } | Self::UnknownPartition { .. } => "not_found",
            Self::NotInLease { .. }
            | Self::StartBeyondHead { .. }
            | Self::BadConfig(_)
            | Self::ReasonTooLong => "bad_request",
        }
    }
}
