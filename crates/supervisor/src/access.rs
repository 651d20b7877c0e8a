//! The one place that decides who may see and reach what (claims 13–14). Every face (REST, SSE, webhooks,
//! the fax server link, routing) asks here. Memberships are cached in memory and reloaded after each change.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use store::Store;

#[derive(Debug, Default)]
struct Memberships {
    groupings_of_client: HashMap<String, HashSet<String>>,
    groupings_of_server: HashMap<String, HashSet<String>>,
    clients_of_grouping: HashMap<String, HashSet<String>>,
}

#[derive(Debug, Default)]
pub struct Access {
    members: RwLock<Memberships>,
}

impl Access {
    pub async fn reload(&self, store: &Store) -> store::Result<()> {
        let mut m = Memberships::default();
        for (grouping, kind, member) in store.all_grouping_members().await? {
            match kind.as_str() {
                "client" => {
                    m.groupings_of_client.entry(member.clone()).or_default().insert(grouping.clone());
                    m.clients_of_grouping.entry(grouping).or_default().insert(member);
                }
                _ => {
                    m.groupings_of_server.entry(member).or_default().insert(grouping);
                }
            }
        }
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = m;
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Memberships) -> T) -> T {
        f(&self.members.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether data may pass between this client and this fax server: they share a grouping.
    pub fn shares_grouping(&self, client_id: &str, fax_server_id: &str) -> bool {
        self.read(|m| match (m.groupings_of_client.get(client_id), m.groupings_of_server.get(fax_server_id)) {
            (Some(a), Some(b)) => !a.is_disjoint(b),
            _ => false,
        })
    }

    pub fn client_in_grouping(&self, client_id: &str, grouping_id: &str) -> bool {
        self.read(|m| m.groupings_of_client.get(client_id).is_some_and(|g| g.contains(grouping_id)))
    }

    pub fn server_in_grouping(&self, fax_server_id: &str, grouping_id: &str) -> bool {
        self.read(|m| m.groupings_of_server.get(fax_server_id).is_some_and(|g| g.contains(grouping_id)))
    }

    pub fn groupings_of_server(&self, fax_server_id: &str) -> Vec<String> {
        self.read(|m| {
            let mut v: Vec<String> = m.groupings_of_server.get(fax_server_id).into_iter().flatten().cloned().collect();
            v.sort();
            v
        })
    }

    pub fn clients_of_grouping(&self, grouping_id: &str) -> Vec<String> {
        self.read(|m| m.clients_of_grouping.get(grouping_id).into_iter().flatten().cloned().collect())
    }

    /// Whether a grouping is visible to a client: it is a member (administrators see all).
    pub fn grouping_visible(&self, caller: &Caller, grouping_id: &str) -> bool {
        caller.is_admin || self.client_in_grouping(&caller.id, grouping_id)
    }

    /// Whether a fax server is visible to a client (administrators see all).
    pub fn fax_server_visible(&self, caller: &Caller, fax_server_id: &str) -> bool {
        caller.is_admin || self.shares_grouping(&caller.id, fax_server_id)
    }
}

/// The authenticated client of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
}

impl Caller {
    /// Administration (clients, groupings, fax servers, routing rules). Competences refine this later.
    pub fn require_admin(&self) -> Result<(), crate::error::ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden("this needs an administrator"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sharing_is_by_common_grouping() {
        let dir = std::env::temp_dir().join(store::new_id("access"));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::open(&dir.join("db")).await.expect("store");
        let a = store.create_grouping("a").await.expect("a");
        let b = store.create_grouping("b").await.expect("b");
        use store::MemberKind::*;
        store.add_grouping_member(&a.id, Client, "c1").await.expect("m");
        store.add_grouping_member(&b.id, Client, "c1").await.expect("m");
        store.add_grouping_member(&b.id, FaxServer, "f1").await.expect("m");
        store.add_grouping_member(&a.id, FaxServer, "f2").await.expect("m");
        store.add_grouping_member(&a.id, Client, "c2").await.expect("m");
        let access = Access::default();
        access.reload(&store).await.expect("reload");
        assert!(access.shares_grouping("c1", "f1"));
        assert!(access.shares_grouping("c1", "f2"));
        assert!(!access.shares_grouping("c2", "f1"));
        assert!(access.shares_grouping("c2", "f2"));
        assert!(!access.shares_grouping("nobody", "f2"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
