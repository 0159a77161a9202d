//! Durable Object names: the one typed place that says which object holds what.
//!
//! Every object lives under a tenant, so no route can fall into an untenanted namespace:
//!
//! | kind | name |
//! |---|---|
//! | aggregate | `"{tenant}/{type}:{id}"` |
//! | stream partition | `"{tenant}/partition/{n}"` |
//! | projector | `"{tenant}/projector/{projection}"` |
//! | consumer group | `"{tenant}/consumer_group/{group}"` |
//! | reactor | `"{tenant}/reactor/{policy}"` |
//!
//! Tenants (`[A-Za-z0-9_-]`, see `auth::Tenant`) and aggregate ids (below) never contain
//! `/`, so an aggregate's name has exactly one `/` and every other kind two: a name
//! parses back to one kind only. Aggregate names are the ones the first release used,
//! so existing data keeps its objects.
//!
//! An object learns its own name from the runtime (`state.id().name()`, which workerd
//! passes to objects addressed by name — in production and under Miniflare alike) and
//! parses it with [`ObjectName::parse`]; it never re-parses a request path.

use std::fmt;

/// Largest aggregate id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Aggregate ids are 1–256 bytes of printable ASCII without `/`, `:` or `%`, so that
/// object names stay unambiguous and ids survive URLs unescaped.
pub fn valid_aggregate_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'%')
}

/// The name of a Durable Object, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectName {
    /// One aggregate's log (`AggregateObject`).
    Aggregate {
        tenant: String,
        aggregate_type: String,
        aggregate_id: String,
    },
    /// One partition of a tenant's global stream (`StreamPartition`).
    Partition { tenant: String, partition: u32 },
    /// One projection's read models (`Projector`).
    Projector { tenant: String, projection: String },
    /// One consumer group's cursors and leases (`ConsumerGroup`).
    ConsumerGroup { tenant: String, group: String },
    /// One policy's timers (`Reactor`).
    Reactor { tenant: String, policy: String },
    /// `"{tenant}/ingest"`: the tenant's telemetry buffer, webhook intake and integration
    /// secrets (`crate::ingestion`).
    Ingestion { tenant: String },
}

impl ObjectName {
    pub fn aggregate(tenant: &str, aggregate_type: &str, aggregate_id: &str) -> Self {
        Self::Aggregate {
            tenant: tenant.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        }
    }

    pub fn partition(tenant: &str, partition: u32) -> Self {
        Self::Partition {
            tenant: tenant.to_owned(),
            partition,
        }
    }

    /// The tenant every object belongs to.
    pub fn tenant(&self) -> &str {
        match self {
            Self::Aggregate { tenant, .. }
            | Self::Partition { tenant, .. }
            | Self::Projector { tenant, .. }
            | Self::ConsumerGroup { tenant, .. }
            | Self::Reactor { tenant, .. }
            | Self::Ingestion { tenant } => tenant,
        }
    }

    /// Parses a name written by [`fmt::Display`]; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let (tenant, rest) = name.split_once('/')?;
        if tenant.is_empty() {
            return None;
        }
        let tenant = tenant.to_owned();
        if rest == "ingest" {
            return Some(Self::Ingestion { tenant });
        }
        match rest.split_once('/') {
            None => {
                let (aggregate_type, aggregate_id) = rest.split_once(':')?;
                (!aggregate_type.is_empty() && valid_aggregate_id(aggregate_id)).then(|| {
                    Self::Aggregate {
                        tenant,
                        aggregate_type: aggregate_type.to_owned(),
                        aggregate_id: aggregate_id.to_owned(),
                    }
                })
            }
            Some(("partition", n)) => Some(Self::Partition {
                tenant,
                partition: n.parse().ok().filter(|_| !n.starts_with('+'))?,
            }),
            Some(("projector", p)) if !p.is_empty() && !p.contains('/') => Some(Self::Projector {
                tenant,
                projection: p.to_owned(),
            }),
            Some(("consumer_group", g)) if !g.is_empty() && !g.contains('/') => {
                Some(Self::ConsumerGroup {
                    tenant,
                    group: g.to_owned(),
                })
            }
            Some(("reactor", p)) if !p.is_empty() && !p.contains('/') => Some(Self::Reactor {
                tenant,
                policy: p.to_owned(),
            }),
            Some(_) => None,
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aggregate {
                tenant,
                aggregate_type,
                aggregate_id,
            } => write!(f, "{tenant}/{aggregate_type}:{aggregate_id}"),
            Self::Partition { tenant, partition } => write!(f, "{tenant}/partition/{partition}"),
            Self::Projector { tenant, projection } => write!(f, "{tenant}/projector/{projection}"),
            Self::ConsumerGroup { tenant, group } => write!(f, "{tenant}/consumer_group/{group}"),
            Self::Reactor { tenant, policy } => write!(f, "{tenant}/reactor/{policy}"),
            Self::Ingestion { tenant } => write!(f, "{tenant}/ingest"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keep_the_first_release_format() {
        let names = [
            ObjectName::aggregate("acme", "board", "b-1"),
            ObjectName::partition("acme", 3),
            ObjectName::Ingestion {
                tenant: "acme".into(),
            },
            ObjectName::Projector {
                tenant: "acme".into(),
                projection: "board_summary".into(),
            },
            ObjectName::ConsumerGroup {
                tenant: "acme".into(),
                group: "triage".into(),
            },
            ObjectName::Reactor {
                tenant: "acme".into(),
                policy: "auto_archive".into(),
            },
        ];
        for name in names {
            assert_eq!(ObjectName::parse(&name.to_string()), Some(name.clone()));
            assert_eq!(name.tenant(), "acme");
        }
        assert_eq!(
            ObjectName::aggregate("acme", "board", "b-1").to_string(),
            "acme/board:b-1"
        );
    }

    #[test]
    fn an_aggregate_id_cannot_pose_as_another_kind() {
        // Ids never contain `/`, so `partition/3` cannot be an aggregate id.
        assert!(!valid_aggregate_id("x/partition/3"));
        assert_eq!(ObjectName::parse("acme/partition/x"), None);
        assert_eq!(ObjectName::parse("acme/partition/+3"), None);
        assert_eq!(ObjectName::parse("acme/other/3"), None);
        assert_eq!(ObjectName::parse("/board:b"), None);
        assert_eq!(ObjectName::parse("acme/board"), None);
        assert_eq!(ObjectName::parse("acme/board:"), None);
    }

    #[test]
    fn aggregate_ids() {
        assert!(valid_aggregate_id("b-1_x.y~z"));
        assert!(!valid_aggregate_id(""));
        assert!(!valid_aggregate_id("a:b"));
        assert!(!valid_aggregate_id("a%20"));
        assert!(!valid_aggregate_id("a b"));
        assert!(!valid_aggregate_id(&"x".repeat(MAX_ID_BYTES + 1)));
    }
}
