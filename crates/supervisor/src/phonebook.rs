//! The phonebook (claims 17–22) as the supervisor runs it: the store holds the entries, an in-memory index
//! answers searches, and `Access` decides who may refer to and change which entry.
//!
//! Rules:
//! - Reading needs `read_phonebook` (anywhere). An entry is visible to its owner; to every client sharing a
//!   grouping with the owner when labelled `everyone`; to named clients; to members of named groupings.
//! - Personal entries (no labels) belong to their owner. Creating or changing a shared entry needs
//!   `edit_shared_phonebook` over every label it carries before and after the change.
//! - Writes go to the store first (with their audit entry, in one transaction), then to the index, under
//!   one lock so the two never disagree.

use crate::access::{Access, Caller};
use crate::competence::{Competence, Target};
use crate::error::Error;
use phonebook::{Entry, Index, Label};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use store::{NewAudit, Store};

#[derive(Debug)]
pub struct Phonebook {
    index: RwLock<Index>,
    /// Serializes writes so the store and the index change in the same order.
    write: tokio::sync::Mutex<()>,
}

impl Phonebook {
    pub async fn load(store: &Store) -> store::Result<Self> {
        let entries = store.phonebook_entries().await?;
        tracing::info!(entries = entries.len(), "phonebook loaded");
        Ok(Self {
            index: RwLock::new(Index::build(entries)),
            write: tokio::sync::Mutex::new(()),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds entries; `audit` records the change in its transaction (changes to personal entries record
    /// nothing).
    pub async fn insert(
        &self,
        store: &Store,
        entries: Vec<Entry>,
        audit: Option<NewAudit>,
    ) -> store::Result<()> {
        let _w = self.write.lock().await;
        let mut tx = store.begin().await?;
        tx.insert_phonebook_entries(&entries).await?;
        commit(tx, audit).await?;
        let mut index = self.index_mut();
        if entries.len() > 64 {
            index.extend(entries);
        } else {
            for e in entries {
                index.upsert(e);
            }
        }
        Ok(())
    }

    pub async fn replace(
        &self,
        store: &Store,
        entry: Entry,
        audit: Option<NewAudit>,
    ) -> store::Result<()> {
        let _w = self.write.lock().await;
        let mut tx = store.begin().await?;
        tx.replace_phonebook_entry(&entry).await?;
        commit(tx, audit).await?;
        self.index_mut().upsert(entry);
        Ok(())
    }

    pub async fn delete(
        &self,
        store: &Store,
        id: &str,
        audit: Option<NewAudit>,
    ) -> store::Result<bool> {
        let _w = self.write.lock().await;
        let mut tx = store.begin().await?;
        let gone = tx.delete_phonebook_entry(id).await?;
        commit(tx, audit).await?;
        self.index_mut().remove(id);
        Ok(gone)
    }

    /// The entry if the caller may refer to it.
    pub fn visible_entry(&self, access: &Access, caller: &Caller, id: &str) -> Option<Arc<Entry>> {
        self.read()
            .get(id)
            .filter(|e| visible(access, &caller.id, e))
    }
}

async fn commit(tx: store::Tx, audit: Option<NewAudit>) -> store::Result<()> {
    match audit {
        Some(entry) => tx.commit_audited(entry).await,
        None => tx.commit().await,
    }
}

/// Whether a client may refer to an entry (claims 18–22).
pub fn visible(access: &Access, client_id: &str, e: &Entry) -> bool {
    e.owner_id == client_id
        || e.labels.iter().any(|l| match l {
            Label::Everyone => access.clients_share_grouping(&e.owner_id, client_id),
            Label::Client(c) => c == client_id,
            Label::Grouping(g) => access.client_in_grouping(client_id, g),
        })
}

/// 403 unless the caller may read the phonebook at all.
pub fn require_reader(access: &Access, caller: &Caller) -> Result<(), Error> {
    access.authorize(caller, Competence::ReadPhonebook, Target::Anywhere)
}

/// Whether the caller may give an entry these labels (or take them away): personal entries need nothing
/// more; each label of a shared one needs `edit_shared_phonebook` over what it reaches.
pub fn may_label(
    access: &Access,
    caller: &Caller,
    owner_id: &str,
    labels: &[Label],
) -> Result<(), Error> {
    for l in labels {
        let target = match l {
            Label::Everyone => Target::Client(owner_id),
            Label::Client(c) => Target::Client(c),
            Label::Grouping(g) => Target::Grouping(g),
        };
        access.authorize(caller, Competence::EditSharedPhonebook, target)?;
    }
    Ok(())
}

/// Whether the caller may change or delete an existing entry it can see.
pub fn may_edit(access: &Access, caller: &Caller, e: &Entry) -> Result<(), Error> {
    if !e.is_shared() && e.owner_id != caller.id {
        // Another client's personal entry: only its owner sees it, so it reads as missing.
        return Err(Error::not_found("phonebook entry"));
    }
    if e.is_shared() {
        may_label(access, caller, &e.owner_id, &e.labels)?;
    }
    Ok(())
}

/// The fax numbers of entries named as recipients, checked like any read (claims 18–22 apply to sending).
pub fn recipient_numbers(
    app: &crate::AppState,
    caller: &Caller,
    ids: &[String],
) -> Result<Vec<String>, Error> {
    if !ids.is_empty() {
        require_reader(&app.access, caller)?;
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            app.phonebook
                .visible_entry(&app.access, caller, id)
                .map(|e| e.fields.fax_number.clone())
                .ok_or_else(|| {
                    Error::field(
                        &format!("recipient_entries[{i}]"),
                        format!("no phonebook entry {id}"),
                    )
                })
        })
        .collect()
}
