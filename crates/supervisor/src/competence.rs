//! Competences (claims 11–12): what a client may administer, each held in a scope. Roles are named
//! bundles of competences; a client holds roles in scopes (grants). This module is the vocabulary and the
//! pure rules (which scope covers which object, who may grant what); `crate::access` applies them with the
//! current memberships, and every face asks `Access::authorize`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One thing a client may be allowed to do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Competence {
    SendFaxes,
    ReceiveFaxes,
    ReadPhonebook,
    EditSharedPhonebook,
    ReadFaxServerSettings,
    ChangeFaxServerSettings,
    ChangeSupervisorSettings,
    ManageClients,
    ManageGroupings,
    ManageInboundRules,
    ReadAuditLog,
    /// See and act on the jobs of the clients in scope (queue administration).
    ManageJobs,
}

impl Competence {
    pub const ALL: [Competence; 12] = [
        Competence::SendFaxes,
        Competence::ReceiveFaxes,
        Competence::ReadPhonebook,
        Competence::EditSharedPhonebook,
        Competence::ReadFaxServerSettings,
        Competence::ChangeFaxServerSettings,
        Competence::ChangeSupervisorSettings,
        Competence::ManageClients,
        Competence::ManageGroupings,
        Competence::ManageInboundRules,
        Competence::ReadAuditLog,
        Competence::ManageJobs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Competence::SendFaxes => "send_faxes",
            Competence::ReceiveFaxes => "receive_faxes",
            Competence::ReadPhonebook => "read_phonebook",
            Competence::EditSharedPhonebook => "edit_shared_phonebook",
            Competence::ReadFaxServerSettings => "read_fax_server_settings",
            Competence::ChangeFaxServerSettings => "change_fax_server_settings",
            Competence::ChangeSupervisorSettings => "change_supervisor_settings",
            Competence::ManageClients => "manage_clients",
            Competence::ManageGroupings => "manage_groupings",
            Competence::ManageInboundRules => "manage_inbound_rules",
            Competence::ReadAuditLog => "read_audit_log",
            Competence::ManageJobs => "manage_jobs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Competence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a competence applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything, including the supervisor itself.
    All,
    /// A grouping: the grouping, its fax servers and its clients.
    Grouping(String),
    /// One fax server.
    FaxServer(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Grouping(_) => "grouping",
            Scope::FaxServer(_) => "fax_server",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Scope::All => "",
            Scope::Grouping(id) | Scope::FaxServer(id) => id,
        }
    }

    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match (kind, id) {
            ("all", _) => Some(Scope::All),
            ("grouping", id) if !id.is_empty() => Some(Scope::Grouping(id.to_owned())),
            ("fax_server", id) if !id.is_empty() => Some(Scope::FaxServer(id.to_owned())),
            _ => None,
        }
    }
}

/// What an action is about, for the scope check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The supervisor as a whole (its settings, role definitions, objects in no grouping).
    System,
    Grouping(&'a str),
    FaxServer(&'a str),
    Client(&'a str),
    /// Wherever the competence is held: lists that the caller's scopes then filter item by item.
    Anywhere,
}

/// Membership facts the scope rules need; `crate::access` provides them.
pub trait Memberships {
    fn server_in_grouping(&self, fax_server: &str, grouping: &str) -> bool;
    fn client_in_grouping(&self, client: &str, grouping: &str) -> bool;
}

/// Whether a scope covers a target.
pub fn covers(m: &impl Memberships, scope: &Scope, target: Target<'_>) -> bool {
    match (scope, target) {
        (Scope::All, _) | (_, Target::Anywhere) => true,
        (Scope::Grouping(g), Target::Grouping(t)) => g == t,
        (Scope::Grouping(g), Target::FaxServer(f)) => m.server_in_grouping(f, g),
        (Scope::Grouping(g), Target::Client(c)) => m.client_in_grouping(c, g),
        (Scope::FaxServer(f), Target::FaxServer(t)) => f == t,
        _ => false,
    }
}

/// Whether holding `outer` implies holding everything `inner` reaches: the rule behind "nobody can grant
/// a scope they do not hold".
pub fn scope_includes(m: &impl Memberships, outer: &Scope, inner: &Scope) -> bool {
    match inner {
        Scope::All => *outer == Scope::All,
        Scope::Grouping(g) => covers(m, outer, Target::Grouping(g)),
        Scope::FaxServer(f) => covers(m, outer, Target::FaxServer(f)),
    }
}

/// The built-in roles, with fixed ids so migrations and tests can name them.
pub struct BuiltinRole {
    pub id: &'static str,
    pub name: &'static str,
    pub competences: &'static [Competence],
}

use Competence::*;

pub const ADMINISTRATOR: &str = "role_administrator";
pub const GROUPING_ADMINISTRATOR: &str = "role_grouping_administrator";
pub const OPERATOR: &str = "role_operator";
pub const USER: &str = "role_user";

pub const BUILTIN_ROLES: [BuiltinRole; 4] = [
    BuiltinRole {
        id: ADMINISTRATOR,
        name: "administrator",
        competences: &Competence::ALL,
    },
    BuiltinRole {
        id: GROUPING_ADMINISTRATOR,
        name: "grouping administrator",
        competences: &[
            SendFaxes,
            ReceiveFaxes,
            ReadPhonebook,
            EditSharedPhonebook,
            ReadFaxServerSettings,
            ChangeFaxServerSettings,
            ManageClients,
            ManageGroupings,
            ManageInboundRules,
            ReadAuditLog,
            ManageJobs,
        ],
    },
    BuiltinRole {
        id: OPERATOR,
        name: "operator",
        competences: &[
            SendFaxes,
            ReceiveFaxes,
            ReadPhonebook,
            EditSharedPhonebook,
            ReadFaxServerSettings,
            ChangeFaxServerSettings,
            ManageInboundRules,
            ManageJobs,
        ],
    },
    BuiltinRole {
        id: USER,
        name: "user",
        competences: &[SendFaxes, ReceiveFaxes, ReadPhonebook],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    struct M;
    impl Memberships for M {
        fn server_in_grouping(&self, f: &str, g: &str) -> bool {
            (f, g) == ("fs1", "g1")
        }
        fn client_in_grouping(&self, c: &str, g: &str) -> bool {
            (c, g) == ("c1", "g1")
        }
    }

    #[test]
    fn scopes_cover_what_they_contain() {
        let g1 = Scope::Grouping("g1".into());
        assert!(covers(&M, &Scope::All, Target::System));
        assert!(!covers(&M, &g1, Target::System));
        assert!(covers(&M, &g1, Target::Anywhere));
        assert!(covers(&M, &g1, Target::FaxServer("fs1")));
        assert!(!covers(&M, &g1, Target::FaxServer("fs2")));
        assert!(covers(&M, &g1, Target::Client("c1")));
        assert!(!covers(&M, &g1, Target::Client("c2")));
        assert!(covers(
            &M,
            &Scope::FaxServer("fs2".into()),
            Target::FaxServer("fs2")
        ));
        assert!(!covers(
            &M,
            &Scope::FaxServer("fs2".into()),
            Target::Grouping("g1")
        ));
        assert!(scope_includes(&M, &g1, &Scope::FaxServer("fs1".into())));
        assert!(!scope_includes(&M, &g1, &Scope::All));
        assert!(!scope_includes(&M, &Scope::FaxServer("fs1".into()), &g1));
    }

    #[test]
    fn names_round_trip() {
        for c in Competence::ALL {
            assert_eq!(Competence::parse(c.as_str()), Some(c));
        }
        assert_eq!(Competence::parse("fly"), None);
    }
}
