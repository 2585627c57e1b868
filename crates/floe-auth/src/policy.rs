//! The policy compiled for decisions: each principal's grants, by securable path.
//!
//! A decision walks the target's path from the server down (a handful of steps) and looks each
//! prefix up in the principal's grants, so its cost depends on the depth of the target, not on the
//! number of grants or tables. Visibility ("may this principal see that this namespace exists?")
//! also needs the grants *below* a securable; every prefix of every grant's path is indexed for that.

use std::collections::{HashMap, HashSet};

use floe_store::{Policy, Securable};

use crate::Privilege;
use crate::securable::{Step, steps};

/// One principal's grants.
#[derive(Debug, Default)]
struct PrincipalGrants {
    /// Securable path → the privileges granted on it.
    on: HashMap<Vec<Step>, Vec<Privilege>>,
    /// Every proper prefix of a granted path: what the principal may see exists because something
    /// inside it is granted.
    above_grants: HashSet<Vec<Step>>,
}

/// The store's [`Policy`], ready for decisions.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    version: i64,
    principals: HashMap<String, PrincipalGrants>,
}

impl CompiledPolicy {
    pub fn compile(policy: &Policy) -> Self {
        let mut roles: HashMap<&str, Vec<(Vec<Step>, Privilege)>> = HashMap::new();
        for grant in &policy.grants {
            // A privilege this version does not know (written by a newer one) grants nothing.
            let Ok(privilege) = grant.privilege.parse::<Privilege>() else {
                tracing::warn!(
                    privilege = grant.privilege,
                    "ignoring a grant of an unknown privilege"
                );
                continue;
            };
            roles
                .entry(grant.role.as_str())
                .or_default()
                .push((steps(&grant.on), privilege));
        }
        let mut principals: HashMap<String, PrincipalGrants> = HashMap::new();
        for assignment in &policy.assignments {
            let grants = principals.entry(assignment.principal.clone()).or_default();
            for (path, privilege) in roles.get(assignment.role.as_str()).into_iter().flatten() {
                grants.on.entry(path.clone()).or_default().push(*privilege);
                for end in 0..path.len() {
                    grants.above_grants.insert(path[..end].to_vec());
                }
            }
        }
        Self {
            version: policy.version,
            principals,
        }
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// Whether `principal` holds `privilege` (or one implying it) on `target` or on anything
    /// containing it.
    pub fn allows(&self, principal: &str, privilege: Privilege, target: &Securable) -> bool {
        let Some(grants) = self.principals.get(principal) else {
            return false;
        };
        let path = steps(target);
        (0..=path.len()).any(|end| {
            grants
                .on
                .get(&path[..end])
                .is_some_and(|held| held.iter().any(|p| p.implies(privilege)))
        })
    }

    /// Whether `principal` may see that `target` exists: it holds something on it, on anything
    /// containing it, or on anything inside it.
    pub fn can_see(&self, principal: &str, target: &Securable) -> bool {
        let Some(grants) = self.principals.get(principal) else {
            return false;
        };
        let path = steps(target);
        grants.above_grants.contains(&path)
            || (0..=path.len()).any(|end| grants.on.contains_key(&path[..end]))
    }

    /// Whether `principal` holds anything at all (any grant through any role).
    pub fn has_any_grant(&self, principal: &str) -> bool {
        self.principals
            .get(principal)
            .is_some_and(|grants| !grants.on.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_securable;
    use floe_store::{GrantRecord, RoleAssignment};

    fn policy(grants: &[(&str, &str, &str)], assignments: &[(&str, &str)]) -> CompiledPolicy {
        CompiledPolicy::compile(&Policy {
            version: 7,
            roles: Vec::new(),
            grants: grants
                .iter()
                .map(|(role, privilege, on)| GrantRecord {
                    role: role.to_string(),
                    privilege: privilege.to_string(),
                    on: parse_securable(on).unwrap(),
                })
                .collect(),
            assignments: assignments
                .iter()
                .map(|(principal, role)| RoleAssignment {
                    principal: principal.to_string(),
                    role: role.to_string(),
                })
                .collect(),
        })
    }

    fn s(text: &str) -> Securable {
        parse_securable(text).unwrap()
    }

    #[test]
    fn grants_cover_what_their_securable_contains() {
        let policy = policy(
            &[
                ("sales", "write", "namespace:main:sales"),
                ("ops", "admin", "server"),
                ("one", "read", "table:main:hr.pay"),
            ],
            &[("alice", "sales"), ("root", "ops"), ("bob", "one")],
        );
        assert_eq!(policy.version(), 7);
        assert!(policy.allows("alice", Privilege::Write, &s("table:main:sales.orders")));
        assert!(policy.allows("alice", Privilege::Read, &s("table:main:sales.eu.orders")));
        assert!(policy.allows("alice", Privilege::Read, &s("namespace:main:sales.eu")));
        assert!(!policy.allows("alice", Privilege::Drop, &s("table:main:sales.orders")));
        assert!(!policy.allows("alice", Privilege::Read, &s("table:main:hr.pay")));
        assert!(!policy.allows("alice", Privilege::Read, &s("table:lake:sales.orders")));
        assert!(!policy.allows("alice", Privilege::Read, &s("warehouse:main")));
        assert!(policy.allows("root", Privilege::ManageGrants, &s("view:lake:x.v")));
        assert!(policy.allows("root", Privilege::Admin, &Securable::Server));
        assert!(policy.allows("bob", Privilege::Read, &s("table:main:hr.pay")));
        assert!(!policy.allows("bob", Privilege::Read, &s("view:main:hr.pay")));
        assert!(!policy.allows("bob", Privilege::Read, &s("namespace:main:hr.pay")));
        assert!(!policy.allows("nobody", Privilege::Read, &s("table:main:hr.pay")));
    }

    #[test]
    fn visibility_reaches_up_from_grants_but_not_sideways() {
        let policy = policy(
            &[("one", "read", "table:main:hr.eu.pay")],
            &[("bob", "one")],
        );
        for visible in [
            "warehouse:main",
            "namespace:main:hr",
            "namespace:main:hr.eu",
            "table:main:hr.eu.pay",
        ] {
            assert!(policy.can_see("bob", &s(visible)), "{visible}");
        }
        assert!(policy.can_see("bob", &Securable::Server));
        for hidden in [
            "namespace:main:sales",
            "table:main:hr.eu.bonus",
            "namespace:main:hr.us",
            "warehouse:lake",
        ] {
            assert!(!policy.can_see("bob", &s(hidden)), "{hidden}");
        }
        assert!(policy.has_any_grant("bob"));
        assert!(!policy.has_any_grant("eve"));
    }
}
