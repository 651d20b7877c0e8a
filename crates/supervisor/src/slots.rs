//! Places counted per key, with a bound: connections per address, event streams per client. A place is
//! held as long as its [`Slot`] lives and given back when it drops; a key with no place held is forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Slots(Arc<Mutex<HashMap<String, usize>>>);

impl Slots {
    /// One more place under `key`, or `None` when `max` (at least one) are held already.
    pub fn enter(&self, key: &str, max: usize) -> Option<Slot> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key.to_owned()).or_default();
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(Slot {
            book: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Whether no place is held under any key (and so no key is remembered).
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// One place held under its key until it drops.
#[derive(Debug)]
pub struct Slot {
    book: Slots,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.book.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}
