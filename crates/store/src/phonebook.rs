//! Phonebook entries and their visibility labels. The supervisor keeps a search index in memory; this is
//! the durable copy it is built from and written through.

use crate::{Error, Result, Store};
use phonebook::{Entry, EntryFields, Label};
use sqlx::{QueryBuilder, Sqlite};
use std::collections::HashMap;

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    owner_id: String,
    name: String,
    company: String,
    fax_number: String,
    voice_number: String,
    email: String,
    notes: String,
    tags: String,
    created_at: i64,
    updated_at: i64,
}

/// Rows per multi-row INSERT: far below SQLite's parameter limit.
const CHUNK: usize = 500;

async fn insert(conn: &mut sqlx::SqliteConnection, entries: &[Entry]) -> Result<()> {
    for chunk in entries.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO phonebook_entries (id, owner_id, name, company, fax_number, voice_number, email, notes, tags, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, e| {
            let f = &e.fields;
            b.push_bind(&e.id)
                .push_bind(&e.owner_id)
                .push_bind(&f.name)
                .push_bind(&f.company)
                .push_bind(&f.fax_number)
                .push_bind(&f.voice_number)
                .push_bind(&f.email)
                .push_bind(&f.notes)
                .push_bind(serde_json::to_string(&f.tags).unwrap_or_else(|_| "[]".into()))
                .push_bind(e.created_at)
                .push_bind(e.updated_at);
        });
        q.build().execute(&mut *conn).await?;
        let labels: Vec<(&str, &Label)> = chunk
            .iter()
            .flat_map(|e| e.labels.iter().map(move |l| (e.id.as_str(), l)))
            .collect();
        for part in labels.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO phonebook_labels (entry_id, kind, ref) ");
            q.push_values(part, |mut b, (id, l)| {
                b.push_bind(*id)
                    .push_bind(l.kind())
                    .push_bind(l.reference());
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *conn).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Every entry with its labels (the supervisor builds its index from this at start).
    pub async fn phonebook_entries(&self) -> Result<Vec<Entry>> {
        let rows: Vec<EntryRow> = sqlx::query_as("SELECT * FROM phonebook_entries")
            .fetch_all(&self.reader)
            .await?;
        let labels: Vec<(String, String, String)> =
            sqlx::query_as("SELECT entry_id, kind, ref FROM phonebook_labels")
                .fetch_all(&self.reader)
                .await?;
        let mut by_entry: HashMap<String, Vec<Label>> = HashMap::new();
        for (entry, kind, reference) in labels {
            let label = Label::from_parts(&kind, &reference)
                .ok_or_else(|| Error::Corrupt(format!("phonebook label {kind:?}")))?;
            by_entry.entry(entry).or_default().push(label);
        }
        rows.into_iter()
            .map(|r| {
                let tags = serde_json::from_str(&r.tags)
                    .map_err(|e| Error::Corrupt(format!("phonebook tags: {e}")))?;
                let mut labels = by_entry.remove(&r.id).unwrap_or_default();
                labels.sort();
                Ok(Entry {
                    fields: EntryFields {
                        name: r.name,
                        company: r.company,
                        fax_number: r.fax_number,
                        voice_number: r.voice_number,
                        email: r.email,
                        notes: r.notes,
                        tags,
                    },
                    id: r.id,
                    owner_id: r.owner_id,
                    labels,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                })
            })
            .collect()
    }
}

impl crate::Tx {
    /// Stores new entries, all or nothing.
    pub async fn insert_phonebook_entries(&mut self, entries: &[Entry]) -> Result<()> {
        insert(self.conn(), entries).await?;
        Ok(())
    }

    /// Replaces an entry's fields and labels.
    pub async fn replace_phonebook_entry(&mut self, e: &Entry) -> Result<()> {
        let gone = sqlx::query("DELETE FROM phonebook_entries WHERE id = $1")
            .bind(&e.id)
            .execute(self.conn())
            .await?;
        if gone.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "phonebook entry",
            });
        }
        insert(self.conn(), std::slice::from_ref(e)).await?;
        Ok(())
    }

    pub async fn delete_phonebook_entry(&mut self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM phonebook_entries WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

crate::own_transaction! {
    /// Stores new entries, all or nothing.
    fn insert_phonebook_entries(&self, entries: &[Entry]) -> ();
    /// Replaces an entry's fields and labels.
    fn replace_phonebook_entry(&self, e: &Entry) -> ();
    fn delete_phonebook_entry(&self, id: &str) -> bool;
}

#[cfg(test)]
mod tests {
    use crate::test_util::store;
    use phonebook::{Entry, EntryFields, Label};

    fn entry(id: &str, owner: &str, labels: Vec<Label>) -> Entry {
        Entry {
            id: id.into(),
            owner_id: owner.into(),
            fields: EntryFields {
                name: format!("n{id}"),
                fax_number: "+15550100001".into(),
                tags: vec!["t".into()],
                ..EntryFields::default()
            },
            labels,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[tokio::test]
    async fn entries_round_trip_with_labels() {
        let (s, _dir) = store().await;
        let owner = s
            .create_client(crate::NewClient::application("owner"))
            .await
            .expect("client");
        let many: Vec<Entry> = (0..1200)
            .map(|i| {
                entry(
                    &format!("e{i}"),
                    &owner.id,
                    vec![Label::Everyone, Label::Client(format!("c{i}"))],
                )
            })
            .collect();
        s.insert_phonebook_entries(&many).await.expect("insert");
        let mut back = s.phonebook_entries().await.expect("load");
        back.sort_by(|a, b| a.id.cmp(&b.id));
        let mut want = many.clone();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(back, want);
        let mut changed = many[0].clone();
        changed.fields.name = "renamed".into();
        changed.labels = vec![Label::Grouping("g".into())];
        s.replace_phonebook_entry(&changed).await.expect("replace");
        assert!(
            s.phonebook_entries()
                .await
                .expect("load")
                .contains(&changed)
        );
        assert!(s.delete_phonebook_entry("e1").await.expect("delete"));
        assert!(!s.delete_phonebook_entry("e1").await.expect("delete"));
        assert_eq!(s.phonebook_entries().await.expect("load").len(), 1199);
        let missing = entry("nope", &owner.id, vec![]);
        assert!(matches!(
            s.replace_phonebook_entry(&missing).await,
            Err(crate::Error::NotFound { .. })
        ));
        // A bad row in a batch stores nothing of it.
        let batch = vec![
            entry("x1", &owner.id, vec![]),
            entry("x1", &owner.id, vec![]),
        ];
        assert!(s.insert_phonebook_entries(&batch).await.is_err());
        assert!(
            !s.phonebook_entries()
                .await
                .expect("load")
                .iter()
                .any(|e| e.id == "x1")
        );
    }
}
