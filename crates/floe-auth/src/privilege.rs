//! The privileges a grant can give.

use std::fmt;
use std::str::FromStr;

/// What a grant allows on its securable (and everything the securable contains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Privilege {
    /// List, load, scan.
    Read,
    /// Commit to tables and views; update namespace properties. Implies `read`.
    Write,
    /// Create namespaces, tables and views (register a table too).
    Create,
    /// Drop (and purge) namespaces, tables and views; rename away.
    Drop,
    /// Maintenance settings and jobs.
    Maintain,
    /// Grant and revoke privileges on the securable.
    ManageGrants,
    /// Everything; on the server, the management API (warehouses, principals, roles, audit) too.
    Admin,
}

impl Privilege {
    pub const ALL: [Privilege; 7] = [
        Privilege::Read,
        Privilege::Write,
        Privilege::Create,
        Privilege::Drop,
        Privilege::Maintain,
        Privilege::ManageGrants,
        Privilege::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Read => "read",
            Privilege::Write => "write",
            Privilege::Create => "create",
            Privilege::Drop => "drop",
            Privilege::Maintain => "maintain",
            Privilege::ManageGrants => "manage-grants",
            Privilege::Admin => "admin",
        }
    }

    /// Whether holding `self` is enough for an action that needs `wanted`.
    pub fn implies(self, wanted: Privilege) -> bool {
        self == wanted
            || self == Privilege::Admin
            || (self == Privilege::Write && wanted == Privilege::Read)
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Privilege {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Privilege::ALL
            .into_iter()
            .find(|privilege| privilege.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Privilege::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown privilege {s:?} (one of: {})", known.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_implications_hold() {
        for privilege in Privilege::ALL {
            assert_eq!(privilege.as_str().parse::<Privilege>(), Ok(privilege));
            assert!(Privilege::Admin.implies(privilege));
            assert!(privilege.implies(privilege));
        }
        assert!(Privilege::Write.implies(Privilege::Read));
        assert!(!Privilege::Read.implies(Privilege::Write));
        assert!(!Privilege::Create.implies(Privilege::Read));
        assert!(!Privilege::ManageGrants.implies(Privilege::Admin));
        assert!("owner".parse::<Privilege>().is_err());
    }
}
