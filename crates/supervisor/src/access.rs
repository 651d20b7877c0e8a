//! The one place that decides who may see, reach and change what: groupings (claims 13–14) and
//! competences (claims 11–12). Every face (REST, SSE, webhooks, the fax server link, routing, and later the
//! console and the HylaFAX gateway) asks here; `Access::authorize` is the one authorization function.
//! Memberships and grants are cached in memory and reloaded after each change.

use crate::competence::{self, Competence, Scope, Target};
use crate::error::Error;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use store::Store;

/// A set of competences as bits (`1 << index in Competence::ALL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompetenceSet(u16);

impl CompetenceSet {
    pub fn of(competences: impl IntoIterator<Item = Competence>) -> Self {
        Self(competences.into_iter().fold(0, |acc, c| acc | Self::bit(c)))
    }

    fn bit(c: Competence) -> u16 {
        1 << Competence::ALL.iter().position(|x| *x == c).unwrap_or(0)
    }

    pub fn contains(self, c: Competence) -> bool {
        self.0 & Self::bit(c) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Competence> {
        Competence::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

#[derive(Debug, Default)]
struct Memberships {
    groupings_of_client: HashMap<String, HashSet<String>>,
    groupings_of_server: HashMap<String, HashSet<String>>,
    clients_of_grouping: HashMap<String, HashSet<String>>,
    /// What each client holds, and where.
    grants_of_client: HashMap<String, Vec<(CompetenceSet, Scope)>>,
    /// Disabled clients: nothing is sent for them or delivered to them.
    disabled: HashSet<String>,
}

impl competence::Memberships for Memberships {
    fn server_in_grouping(&self, fax_server: &str, grouping: &str) -> bool {
        self.groupings_of_server
            .get(fax_server)
            .is_some_and(|g| g.contains(grouping))
    }

    fn client_in_grouping(&self, client: &str, grouping: &str) -> bool {
        self.groupings_of_client
            .get(client)
            .is_some_and(|g| g.contains(grouping))
    }
}

impl Memberships {
    fn holds(&self, client: &str, c: Competence, target: Target<'_>) -> bool {
        self.grants_of_client.get(client).is_some_and(|grants| {
            grants
                .iter()
                .any(|(set, scope)| set.contains(c) && competence::covers(self, scope, target))
        })
    }

    /// The first competence of `set` that `granter` does not hold in a scope including `scope`.
    fn ungrantable(&self, granter: &str, set: CompetenceSet, scope: &Scope) -> Option<Competence> {
        let held = self
            .grants_of_client
            .get(granter)
            .map(Vec::as_slice)
            .unwrap_or_default();
        set.iter().find(|c| {
            !held
                .iter()
                .any(|(s, outer)| s.contains(*c) && competence::scope_includes(self, outer, scope))
        })
    }

    fn sorted(ids: Option<&HashSet<String>>) -> Vec<&str> {
        let mut v: Vec<&str> = ids.into_iter().flatten().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn shares_grouping(&self, client_id: &str, fax_server_id: &str) -> bool {
        match (
            self.groupings_of_client.get(client_id),
            self.groupings_of_server.get(fax_server_id),
        ) {
            (Some(a), Some(b)) => !a.is_disjoint(b),
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
pub struct Access {
    members: RwLock<Memberships>,
    /// Held from reading to installing, so that the last snapshot installed is the last one read: two
    /// overlapping reloads never put an older reading over a newer one (a revoked grant back in force).
    reloading: tokio::sync::Mutex<()>,
}

impl Access {
    /// Reads grants, roles and memberships anew and installs them.
    pub async fn reload(&self, store: &Store) -> store::Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut m = Memberships::default();
        let roles: HashMap<String, CompetenceSet> = store
            .roles()
            .await?
            .into_iter()
            .map(|r| {
                let set = CompetenceSet::of(
                    r.competence_names()
                        .iter()
                        .filter_map(|n| Competence::parse(n)),
                );
                (r.id, set)
            })
            .collect();
        for g in store.all_grants().await? {
            let (Some(set), Some(scope)) = (
                roles.get(&g.role_id),
                Scope::from_parts(&g.scope_kind, &g.scope_id),
            ) else {
                continue;
            };
            m.grants_of_client
                .entry(g.client_id)
                .or_default()
                .push((*set, scope));
        }
        m.disabled = store.disabled_clients().await?.into_iter().collect();
        for (grouping, kind, member) in store.all_grouping_members().await? {
            match kind.as_str() {
                "client" => {
                    m.groupings_of_client
                        .entry(member.clone())
                        .or_default()
                        .insert(grouping.clone());
                    m.clients_of_grouping
                        .entry(grouping)
                        .or_default()
                        .insert(member);
                }
                _ => {
                    m.groupings_of_server
                        .entry(member)
                        .or_default()
                        .insert(grouping);
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
        self.read(|m| m.shares_grouping(client_id, fax_server_id))
    }

    /// Whether two clients share a grouping.
    pub fn clients_share_grouping(&self, a: &str, b: &str) -> bool {
        self.read(
            |m| match (m.groupings_of_client.get(a), m.groupings_of_client.get(b)) {
                (Some(x), Some(y)) => !x.is_disjoint(y),
                _ => false,
            },
        )
    }

    /// Whether a client's fax may go out through this fax server: a shared grouping and the competence to
    /// send there. A disabled client's queued jobs wait until it is enabled (or their kill time).
    pub fn may_send(&self, client_id: &str, fax_server_id: &str) -> bool {
        self.read(|m| {
            !m.disabled.contains(client_id)
                && m.shares_grouping(client_id, fax_server_id)
                && m.holds(
                    client_id,
                    Competence::SendFaxes,
                    Target::FaxServer(fax_server_id),
                )
        })
    }

    /// Whether a fax this fax server received may be delivered to this client (not while it is disabled).
    pub fn may_receive(&self, client_id: &str, fax_server_id: &str) -> bool {
        self.read(|m| {
            !m.disabled.contains(client_id)
                && m.shares_grouping(client_id, fax_server_id)
                && m.holds(
                    client_id,
                    Competence::ReceiveFaxes,
                    Target::FaxServer(fax_server_id),
                )
        })
    }

    /// Whether a client holds a competence over a target.
    pub fn holds(&self, client_id: &str, c: Competence, target: Target<'_>) -> bool {
        self.read(|m| m.holds(client_id, c, target))
    }

    /// The one authorization function: Ok, or 403 naming the competence that is missing.
    pub fn authorize(
        &self,
        caller: &Caller,
        c: Competence,
        target: Target<'_>,
    ) -> Result<(), Error> {
        if self.holds(&caller.id, c, target) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this needs the competence {c}{}",
                describe(target)
            )))
        }
    }

    /// Whether the caller may act on (or as) another client: issue or revoke its tokens, set its password,
    /// change its grants or memberships, disable or delete it. Acting as a client reaches everything the
    /// client reaches, so the caller must administer all of it: `manage_clients` over every grouping the
    /// client is in (over the whole supervisor for a client in none), and every competence the client
    /// holds must be one the caller could grant where the client holds it.
    pub fn authorize_over_client(&self, caller: &Caller, client_id: &str) -> Result<(), Error> {
        self.read(|m| {
            let groupings = Memberships::sorted(m.groupings_of_client.get(client_id));
            if groupings.is_empty()
                && !m.holds(&caller.id, Competence::ManageClients, Target::System)
            {
                return Err(Error::forbidden(format!(
                    "client {client_id} is in no grouping; acting on it needs the competence \
                     manage_clients for the whole supervisor"
                )));
            }
            for g in groupings {
                if !m.holds(&caller.id, Competence::ManageClients, Target::Grouping(g)) {
                    return Err(Error::forbidden(format!(
                        "client {client_id} is also in grouping {g}, where you do not hold manage_clients"
                    )));
                }
            }
            for (set, scope) in m.grants_of_client.get(client_id).into_iter().flatten() {
                if let Some(c) = m.ungrantable(&caller.id, *set, scope) {
                    return Err(Error::forbidden(format!(
                        "client {client_id} holds {c} in scope {}, which you do not hold there",
                        scope_text(scope)
                    )));
                }
            }
            Ok(())
        })
    }

    /// Whether the caller may withdraw a fax server (revoke its credential, delete it): every grouping it
    /// serves loses it, so the caller needs `change_fax_server_settings` over the fax server and over each
    /// of them.
    pub fn authorize_over_fax_server(
        &self,
        caller: &Caller,
        fax_server_id: &str,
    ) -> Result<(), Error> {
        self.authorize_change_of_fax_server(
            caller,
            Competence::ChangeFaxServerSettings,
            fax_server_id,
        )
    }

    /// Whether the caller may change what a fax server does for everyone it serves (its settings, its
    /// routing, its inbound rules): a change reaches every grouping it serves, so the caller needs the
    /// competence over the fax server and over each of them. Reading stays per fax server.
    pub fn authorize_change_of_fax_server(
        &self,
        caller: &Caller,
        c: Competence,
        fax_server_id: &str,
    ) -> Result<(), Error> {
        self.authorize(caller, c, Target::FaxServer(fax_server_id))?;
        self.read(|m| {
            for g in Memberships::sorted(m.groupings_of_server.get(fax_server_id)) {
                if !m.holds(&caller.id, c, Target::Grouping(g)) {
                    return Err(Error::forbidden(format!(
                        "fax server {fax_server_id} also serves grouping {g}, where you do not hold {c}"
                    )));
                }
            }
            Ok(())
        })
    }

    /// Whether the caller may read a received fax delivered to `delivered_to`: 404 unless it went to the
    /// caller or to the shared inbox of a grouping the caller is in, and the caller still shares a grouping
    /// with the fax server that received it; 403 without `receive_faxes` over that fax server.
    pub fn authorize_inbound(
        &self,
        caller: &Caller,
        fax_server_id: &str,
        delivered_to: &[store::RuleTarget],
    ) -> Result<(), Error> {
        let addressed = self.read(|m| {
            m.shares_grouping(&caller.id, fax_server_id)
                && delivered_to.iter().any(|t| match t {
                    store::RuleTarget::Client(c) => *c == caller.id,
                    store::RuleTarget::Grouping(g) => {
                        competence::Memberships::client_in_grouping(m, &caller.id, g)
                    }
                })
        });
        if !addressed {
            return Err(Error::not_found("inbound fax"));
        }
        self.authorize(
            caller,
            Competence::ReceiveFaxes,
            Target::FaxServer(fax_server_id),
        )
    }

    /// Whether the caller may read or send a stored document: it uploaded it. (Received faxes are read
    /// through `authorize_inbound`, fax servers fetch what their attempts carry.)
    pub fn may_use_document(&self, caller: &Caller, owners: &[String]) -> bool {
        owners.contains(&caller.id)
    }

    /// The groupings a client is in.
    pub fn groupings_of_client(&self, client_id: &str) -> Vec<String> {
        self.read(|m| {
            Memberships::sorted(m.groupings_of_client.get(client_id))
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
    }

    /// The competences a client holds, with their scopes.
    pub fn grants_of(&self, client_id: &str) -> Vec<(CompetenceSet, Scope)> {
        self.read(|m| {
            m.grants_of_client
                .get(client_id)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Whether `caller` may hand out these competences in this scope: it holds each of them in a scope that
    /// includes it. Nobody can grant a competence or scope they do not hold.
    pub fn may_grant(
        &self,
        caller: &Caller,
        set: CompetenceSet,
        scope: &Scope,
    ) -> Result<(), Error> {
        match self.read(|m| m.ungrantable(&caller.id, set, scope)) {
            None => Ok(()),
            Some(c) => Err(Error::forbidden(format!(
                "you cannot grant {c} in scope {}: you do not hold it there",
                scope_text(scope)
            ))),
        }
    }

    /// Whether the caller administers a client's job queue: `manage_jobs` over the whole supervisor, or
    /// over a grouping the client is in (a client in no grouping: over the whole supervisor only).
    pub fn manages_jobs_of(&self, caller: &Caller, client_id: &str) -> bool {
        self.read(|m| {
            m.holds(&caller.id, Competence::ManageJobs, Target::System)
                || m.groupings_of_client
                    .get(client_id)
                    .into_iter()
                    .flatten()
                    .any(|g| m.holds(&caller.id, Competence::ManageJobs, Target::Grouping(g)))
        })
    }

    /// The clients whose job queues the caller administers, sorted; `None` for every client's
    /// (`manage_jobs` over the whole supervisor).
    pub fn managed_job_owners(&self, caller: &Caller) -> Option<Vec<String>> {
        self.read(|m| {
            if m.holds(&caller.id, Competence::ManageJobs, Target::System) {
                return None;
            }
            let mut owners: Vec<String> = m
                .clients_of_grouping
                .iter()
                .filter(|(g, _)| m.holds(&caller.id, Competence::ManageJobs, Target::Grouping(g)))
                .flat_map(|(_, clients)| clients.iter().cloned())
                .collect();
            owners.sort();
            owners.dedup();
            Some(owners)
        })
    }

    /// Clients holding a competence in scope `all` (the administrators of that competence).
    pub fn holders_everywhere(&self, c: Competence) -> Vec<String> {
        self.read(|m| {
            let mut v: Vec<String> = m
                .grants_of_client
                .iter()
                .filter(|(_, g)| {
                    g.iter()
                        .any(|(set, scope)| set.contains(c) && *scope == Scope::All)
                })
                .map(|(id, _)| id.clone())
                .collect();
            v.sort();
            v
        })
    }

    pub fn client_in_grouping(&self, client_id: &str, grouping_id: &str) -> bool {
        self.read(|m| {
            m.groupings_of_client
                .get(client_id)
                .is_some_and(|g| g.contains(grouping_id))
        })
    }

    pub fn server_in_grouping(&self, fax_server_id: &str, grouping_id: &str) -> bool {
        self.read(|m| {
            m.groupings_of_server
                .get(fax_server_id)
                .is_some_and(|g| g.contains(grouping_id))
        })
    }

    pub fn groupings_of_server(&self, fax_server_id: &str) -> Vec<String> {
        self.read(|m| {
            let mut v: Vec<String> = m
                .groupings_of_server
                .get(fax_server_id)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            v.sort();
            v
        })
    }

    pub fn clients_of_grouping(&self, grouping_id: &str) -> Vec<String> {
        self.read(|m| {
            m.clients_of_grouping
                .get(grouping_id)
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        })
    }

    /// Whether a grouping is visible to a client: it is a member, or administers it.
    pub fn grouping_visible(&self, caller: &Caller, grouping_id: &str) -> bool {
        self.read(|m| {
            competence::Memberships::client_in_grouping(m, &caller.id, grouping_id)
                || m.holds(
                    &caller.id,
                    Competence::ManageGroupings,
                    Target::Grouping(grouping_id),
                )
        })
    }

    /// Whether a fax server is visible to a client: they share a grouping, or the client may read its
    /// settings.
    pub fn fax_server_visible(&self, caller: &Caller, fax_server_id: &str) -> bool {
        self.read(|m| {
            m.shares_grouping(&caller.id, fax_server_id)
                || m.holds(
                    &caller.id,
                    Competence::ReadFaxServerSettings,
                    Target::FaxServer(fax_server_id),
                )
                || m.holds(
                    &caller.id,
                    Competence::ChangeFaxServerSettings,
                    Target::FaxServer(fax_server_id),
                )
        })
    }

    /// Whether another client is visible to the caller: itself, or one it manages.
    pub fn client_visible(&self, caller: &Caller, client_id: &str) -> bool {
        caller.id == client_id
            || self.holds(
                &caller.id,
                Competence::ManageClients,
                Target::Client(client_id),
            )
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".to_owned(),
        other => format!("{} {}", other.kind(), other.id()),
    }
}

fn describe(target: Target<'_>) -> String {
    match target {
        Target::Anywhere => String::new(),
        Target::System => " for the whole supervisor".to_owned(),
        Target::Grouping(id) => format!(" for grouping {id}"),
        Target::FaxServer(id) => format!(" for fax server {id}"),
        Target::Client(id) => format!(" for client {id}"),
    }
}

/// The authenticated client of a request, and the token it came with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub name: String,
    pub token_id: String,
    /// When the token stops working (Unix ms); long-lived responses (event streams) end then.
    pub token_expires_at: Option<i64>,
    /// The token came from a password sign-in.
    pub token_session: bool,
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
        store
            .add_grouping_member(&a.id, Client, "c1")
            .await
            .expect("m");
        store
            .add_grouping_member(&b.id, Client, "c1")
            .await
            .expect("m");
        store
            .add_grouping_member(&b.id, FaxServer, "f1")
            .await
            .expect("m");
        store
            .add_grouping_member(&a.id, FaxServer, "f2")
            .await
            .expect("m");
        store
            .add_grouping_member(&a.id, Client, "c2")
            .await
            .expect("m");
        let access = Access::default();
        access.reload(&store).await.expect("reload");
        assert!(access.shares_grouping("c1", "f1"));
        assert!(access.shares_grouping("c1", "f2"));
        assert!(!access.shares_grouping("c2", "f1"));
        assert!(access.shares_grouping("c2", "f2"));
        assert!(!access.shares_grouping("nobody", "f2"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_running_alongside_never_brings_back_a_removed_membership() {
        let dir = std::env::temp_dir().join(store::new_id("access"));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::open(&dir.join("db")).await.expect("store");
        let a = store.create_grouping("a").await.expect("a");
        use store::MemberKind::*;
        store
            .add_grouping_member(&a.id, FaxServer, "f")
            .await
            .expect("m");
        let access = std::sync::Arc::new(Access::default());
        for round in 0..150 {
            store
                .add_grouping_member(&a.id, Client, "c")
                .await
                .expect("m");
            access.reload(&store).await.expect("reload");
            assert!(access.shares_grouping("c", "f"));
            // An unrelated change's reload starts reading; the membership is removed and reloaded.
            let other = tokio::spawn({
                let (access, store) = (access.clone(), store.clone());
                async move { access.reload(&store).await }
            });
            store
                .remove_grouping_member(&a.id, Client, "c")
                .await
                .expect("remove");
            access.reload(&store).await.expect("reload");
            other.await.expect("join").expect("reload");
            assert!(
                !access.shares_grouping("c", "f"),
                "round {round}: an older reading was installed over the newer one"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn caller(id: &str) -> Caller {
        Caller {
            id: id.to_owned(),
            name: id.to_owned(),
            token_id: String::new(),
            token_expires_at: None,
            token_session: false,
        }
    }

    #[tokio::test]
    async fn acting_on_a_client_needs_authority_over_all_it_reaches() {
        let dir = std::env::temp_dir().join(store::new_id("access"));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::open(&dir.join("db")).await.expect("store");
        let a = store.create_grouping("a").await.expect("a").id;
        let b = store.create_grouping("b").await.expect("b").id;
        let client =
            |name: &'static str, groupings: Vec<String>, grants: Vec<(&'static str, String)>| {
                let store = store.clone();
                async move {
                    let rows: Vec<(&str, &str, &str)> = grants
                        .iter()
                        .map(|(role, scope)| {
                            let kind = if scope.is_empty() { "all" } else { "grouping" };
                            (*role, kind, scope.as_str())
                        })
                        .collect();
                    store
                        .create_client(store::NewClient {
                            groupings: &groupings,
                            grants: &rows,
                            ..store::NewClient::application(name)
                        })
                        .await
                        .expect("client")
                        .id
                }
            };
        use competence::{ADMINISTRATOR, GROUPING_ADMINISTRATOR, USER};
        let ga = client(
            "ga",
            vec![a.clone()],
            vec![(GROUPING_ADMINISTRATOR, a.clone())],
        )
        .await;
        let in_a = client("in-a", vec![a.clone()], vec![(USER, a.clone())]).await;
        let in_ab = client("in-ab", vec![a.clone(), b.clone()], vec![(USER, a.clone())]).await;
        let admin_in_a = client(
            "admin",
            vec![a.clone()],
            vec![(ADMINISTRATOR, String::new())],
        )
        .await;
        let loose = client("loose", vec![], vec![]).await;
        let root = client("root", vec![], vec![(ADMINISTRATOR, String::new())]).await;
        let access = Access::default();
        access.reload(&store).await.expect("reload");
        let ga = caller(&ga);
        assert!(access.authorize_over_client(&ga, &in_a).is_ok());
        let e = access
            .authorize_over_client(&ga, &in_ab)
            .expect_err("also in b");
        assert!(
            matches!(&e, crate::error::Error::Forbidden(m) if m.contains(&b)),
            "{e:?}"
        );
        let e = access
            .authorize_over_client(&ga, &admin_in_a)
            .expect_err("holds more");
        assert!(e.to_string().contains("in scope all"), "{e}");
        assert!(access.authorize_over_client(&ga, &loose).is_err());
        let root = caller(&root);
        for c in [&in_a, &in_ab, &admin_in_a, &loose] {
            assert!(access.authorize_over_client(&root, c).is_ok(), "{c}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
