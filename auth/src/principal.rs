//! Who is asking: the result of a successful [`crate::verify`].

use crate::{Forbidden, Scope, Scopes, Tenant};

/// An authenticated caller. Built only by [`crate::verify`] from a token whose signature, times
/// and claims all checked out, so its fields are valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: recorded as `actor` in the envelope of every event this request causes.
    pub actor: String,
    /// The tenant all of the request's aggregates, streams and read models live in.
    pub tenant: Tenant,
    /// What the caller may do.
    pub scopes: Scopes,
    /// The token's `exp` (Unix seconds). Long-lived connections — WebSockets — outlive the
    /// request that authenticated them; this tells them when to stop trusting it.
    pub expires_at: u64,
}

impl Principal {
    /// `Ok` if the caller holds `scope`; otherwise a 403 naming the missing scope.
    pub fn require(&self, scope: Scope) -> Result<(), Forbidden> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Forbidden { missing: scope })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_checks_exactly_the_granted_scopes() {
        let principal = Principal {
            actor: "alice".into(),
            tenant: Tenant::parse("acme").unwrap(),
            scopes: Scopes::parse("read admin").unwrap(),
            expires_at: 0,
        };
        assert_eq!(principal.require(Scope::Read), Ok(()));
        assert_eq!(principal.require(Scope::Admin), Ok(()));
        // `admin` is not a superset of the others.
        let err = principal.require(Scope::Commands).unwrap_err();
        assert_eq!(err.missing, Scope::Commands);
        assert_eq!(err.to_string(), "token lacks the `commands` scope");
        assert_eq!(Forbidden::STATUS, 403);
    }
}
