//! The ranked search index. Four sorted key lists, one per rank tier; a search walks the tiers in rank
//! order, each from the first key with the query as prefix, and stops as soon as it has enough visible
//! hits, so its cost follows the size of the answer rather than of the phonebook.

use crate::model::{Entry, normalize_text};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How well an entry matched, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// The name starts with the query.
    Name = 0,
    /// A later word of the name starts with the query.
    NameWord = 1,
    /// A word of the company starts with the query.
    Company = 2,
    /// The fax or voice number starts with the query's digits.
    Number = 3,
}

const TIERS: usize = 4;
/// Separates a search term from the tie-breaking suffix in a key; sorts before every printable character
/// so that "smi" < "smi\u{1}…" < "smith…".
const SEP: char = '\u{1}';

#[derive(Debug, Clone)]
pub struct Hit {
    pub entry: Arc<Entry>,
    pub tier: Tier,
}

/// An entry with its name and company normalized once, for matching the words of a query.
#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    text: Box<str>,
}

#[derive(Debug, Default)]
pub struct Index {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_id: HashMap<String, u32>,
    keys: [Vec<(Box<str>, u32)>; TIERS],
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | '.' | '-' | '&' | '/' | '(' | ')' | '"' | '\'')
    })
    .filter(|w| !w.is_empty())
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The keys of one entry in each tier.
fn keys_of(e: &Entry) -> [Vec<String>; TIERS] {
    let name = normalize_text(&e.fields.name);
    let company = normalize_text(&e.fields.company);
    let name_key = format!("{name}{SEP}{}", e.id);
    let suffixed = |term: &str| format!("{term}{SEP}{name}");
    let name_words: Vec<String> = words(&name).skip(1).map(suffixed).collect();
    let company_words: Vec<String> = words(&company).map(suffixed).collect();
    let mut numbers = vec![suffixed(&digits(&e.fields.fax_number))];
    let voice = digits(&e.fields.voice_number);
    if !voice.is_empty() {
        numbers.push(suffixed(&voice));
    }
    [vec![name_key], name_words, company_words, numbers]
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an index from many entries at once (sorting once rather than inserting one by one).
    pub fn build(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut index = Self::new();
        for e in entries {
            let slot = index.take_slot(e);
            index.add_keys(slot, false);
        }
        for list in &mut index.keys {
            list.sort_unstable();
        }
        index
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.by_id.get(id).and_then(|s| self.slot(*s)).cloned()
    }

    fn slot(&self, slot: u32) -> Option<&Arc<Entry>> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|s| &s.entry)
    }

    fn take_slot(&mut self, e: Entry) -> u32 {
        let id = e.id.clone();
        let text = format!(
            "{} {}",
            normalize_text(&e.fields.name),
            normalize_text(&e.fields.company)
        )
        .into_boxed_str();
        let entry = Some(Slot {
            entry: Arc::new(e),
            text,
        });
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(place) = self.slots.get_mut(s as usize) {
                    *place = entry;
                }
                s
            }
            None => {
                self.slots.push(entry);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    fn add_keys(&mut self, slot: u32, keep_sorted: bool) {
        let Some(e) = self.slot(slot).cloned() else {
            return;
        };
        for (tier, keys) in keys_of(&e).into_iter().enumerate() {
            let list = &mut self.keys[tier];
            for k in keys {
                let item = (k.into_boxed_str(), slot);
                if keep_sorted {
                    let at = list.binary_search(&item).unwrap_or_else(|i| i);
                    list.insert(at, item);
                } else {
                    list.push(item);
                }
            }
        }
    }

    /// Adds many entries at once: keys appended, then each list sorted once (an import of thousands of
    /// rows would otherwise move the lists once per key).
    pub fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            self.remove(&e.id);
            let slot = self.take_slot(e);
            self.add_keys(slot, false);
        }
        for list in &mut self.keys {
            list.sort_unstable();
        }
    }

    /// Adds an entry, or replaces the one with the same id.
    pub fn upsert(&mut self, e: Entry) {
        self.remove(&e.id);
        let slot = self.take_slot(e);
        self.add_keys(slot, true);
    }

    pub fn remove(&mut self, id: &str) -> Option<Arc<Entry>> {
        let slot = self.by_id.remove(id)?;
        let e = self.slots.get_mut(slot as usize)?.take()?.entry;
        for (tier, keys) in keys_of(&e).into_iter().enumerate() {
            let list = &mut self.keys[tier];
            for k in keys {
                if let Ok(at) =
                    list.binary_search_by(|(key, s)| (&**key, *s).cmp(&(k.as_str(), slot)))
                {
                    list.remove(at);
                }
            }
        }
        self.free.push(slot);
        Some(e)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.slots.iter().flatten().map(|s| &s.entry)
    }

    /// How many keys of `tier` start with `prefix` (two binary searches).
    fn range_len(&self, tier: Tier, prefix: &str) -> usize {
        let list = &self.keys[tier as usize];
        let start = list.partition_point(|(k, _)| &**k < prefix);
        list[start..].partition_point(|(k, _)| k.starts_with(prefix))
    }

    /// Slots whose key in `tier` starts with `prefix`, in key order.
    fn scan<'a>(&'a self, tier: Tier, prefix: &'a str) -> impl Iterator<Item = u32> + 'a {
        let list = &self.keys[tier as usize];
        let start = list.partition_point(|(k, _)| &**k < prefix);
        list[start..]
            .iter()
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, s)| *s)
    }

    /// Entries visible to the caller, ranked: the name's first word, then a later name word, then a company word,
    /// then number prefix; within a tier by the matched word, then name. Every word of the query must
    /// start some word of the name or company. A query of digits (with `+`, spaces, dashes, brackets)
    /// searches numbers.
    pub fn search(&self, query: &str, limit: usize, visible: impl Fn(&Entry) -> bool) -> Vec<Hit> {
        let q = normalize_text(query);
        let mut out = Vec::new();
        if q.is_empty() || limit == 0 {
            return out;
        }
        let mut seen = HashSet::new();
        let mut take =
            |slot: u32, tier: Tier, accept: &dyn Fn(&Entry) -> bool, out: &mut Vec<Hit>| {
                if !seen.contains(&slot)
                    && let Some(e) = self.slot(slot)
                    && accept(e)
                    && visible(e)
                {
                    seen.insert(slot);
                    out.push(Hit {
                        entry: Arc::clone(e),
                        tier,
                    });
                }
                out.len() >= limit
            };
        let numeric = q
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            && q.chars().any(|c| c.is_ascii_digit());
        if numeric {
            let d = digits(&q);
            for slot in self.scan(Tier::Number, &d) {
                if take(slot, Tier::Number, &|_| true, &mut out) {
                    break;
                }
            }
            return out;
        }
        // Names that start with the whole query, as a phrase: one contiguous range.
        for slot in self.scan(Tier::Name, &q) {
            if take(slot, Tier::Name, &|_| true, &mut out) {
                return out;
            }
        }
        // Then entries where every word of the query starts a word of the name or company, found through
        // the query word with the fewest keys, so that a common first word does not make a rare
        // combination slow.
        let tokens: Vec<&str> = q.split(' ').collect();
        let all_tokens_match = |slot: u32| {
            self.slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| {
                    tokens
                        .iter()
                        .all(|t| words(&s.text).any(|w| w.starts_with(t)))
                })
        };
        let tiers = [Tier::Name, Tier::NameWord, Tier::Company];
        let rarest = tokens
            .iter()
            .copied()
            .min_by_key(|t| {
                tiers
                    .iter()
                    .map(|tier| self.range_len(*tier, t))
                    .sum::<usize>()
            })
            .unwrap_or_default();
        for tier in tiers {
            if tier == Tier::Name && tokens.len() == 1 {
                // The phrase scan above covered exactly this range.
                continue;
            }
            for slot in self.scan(tier, rarest) {
                if take(slot, tier, &|_| all_tokens_match(slot), &mut out) {
                    return out;
                }
            }
        }
        out
    }

    /// Visible entries in name order, after the entry with this (normalized name, id) cursor.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        visible: impl Fn(&Entry) -> bool,
    ) -> Vec<Arc<Entry>> {
        let list = &self.keys[Tier::Name as usize];
        let start = after.map_or(0, |a| list.partition_point(|(k, _)| &**k <= a));
        list[start..]
            .iter()
            .filter_map(|(_, s)| self.slot(*s))
            .filter(|e| visible(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The cursor that `list` continues after.
    pub fn cursor_of(e: &Entry) -> String {
        format!("{}{SEP}{}", normalize_text(&e.fields.name), e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryFields, Label};

    fn entry(id: &str, name: &str, company: &str, fax: &str, owner: &str) -> Entry {
        Entry {
            id: id.into(),
            owner_id: owner.into(),
            fields: EntryFields {
                name: name.into(),
                company: company.into(),
                fax_number: fax.into(),
                ..EntryFields::default()
            },
            labels: vec![Label::Everyone],
            created_at: 0,
            updated_at: 0,
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.entry.id.as_str()).collect()
    }

    fn sample() -> Index {
        Index::build([
            entry("1", "John Smith", "Acme Corp", "+15550100001", "a"),
            entry("2", "Smithers Waylon", "Nuclear Plant", "+15550100002", "a"),
            entry("3", "Anna Smith", "Smith & Sons", "+4930123456", "b"),
            entry("4", "Bob Jones", "Smithfield Foods", "+15550199999", "a"),
            entry("5", "Carla Diaz", "Acme Corp", "+34911222333", "b"),
        ])
    }

    #[test]
    fn ranks_name_prefix_then_name_word_then_company() {
        let idx = sample();
        let hits = idx.search("smith", 10, |_| true);
        assert_eq!(ids(&hits), ["2", "3", "1", "4"], "{hits:?}");
        assert_eq!(
            hits.iter().map(|h| h.tier).collect::<Vec<_>>(),
            [Tier::Name, Tier::NameWord, Tier::NameWord, Tier::Company]
        );
        assert_eq!(
            ids(&idx.search("acme", 10, |_| true)),
            ["5", "1"],
            "by name within a tier"
        );
        assert_eq!(
            ids(&idx.search("j smi", 10, |_| true)),
            ["1", "4"],
            "every word starts a word of name or company"
        );
        assert_eq!(ids(&idx.search("john smi", 10, |_| true)), ["1"]);
        assert_eq!(ids(&idx.search("SMITH", 2, |_| true)), ["2", "3"], "limit");
        assert!(idx.search("zzz", 10, |_| true).is_empty());
    }

    #[test]
    fn numbers_by_prefix_and_visibility_filters() {
        let idx = sample();
        assert_eq!(ids(&idx.search("+1 555 0100", 10, |_| true)), ["1", "2"]);
        assert_eq!(ids(&idx.search("49", 10, |_| true)), ["3"]);
        assert_eq!(ids(&idx.search("smith", 10, |e| e.owner_id == "b")), ["3"]);
    }

    #[test]
    fn upsert_and_remove_keep_keys_in_step() {
        let mut idx = sample();
        idx.upsert(entry("1", "Zed Smith", "", "+15550100001", "a"));
        assert_eq!(ids(&idx.search("john", 10, |_| true)), Vec::<&str>::new());
        assert_eq!(ids(&idx.search("zed", 10, |_| true)), ["1"]);
        assert!(idx.remove("2").is_some());
        assert!(idx.remove("2").is_none());
        assert_eq!(ids(&idx.search("smith", 10, |_| true)), ["3", "1", "4"]);
        idx.extend([
            entry("6", "Smith Adam", "", "+15550100006", "a"),
            entry("3", "Anna Smith", "", "+4930123456", "b"),
        ]);
        assert_eq!(ids(&idx.search("smith", 1, |_| true)), ["6"]);
        assert_eq!(idx.len(), 5);
        for list in &idx.keys {
            assert!(list.windows(2).all(|w| w[0] <= w[1]), "sorted");
        }
    }

    #[test]
    fn lists_in_name_order_with_a_cursor() {
        let idx = sample();
        let first = idx.list(None, 2, |_| true);
        assert_eq!(
            first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["3", "4"]
        );
        let cursor = Index::cursor_of(&first[1]);
        let next = idx.list(Some(&cursor), 10, |_| true);
        assert_eq!(
            next.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["5", "1", "2"]
        );
    }
}
