//! A document's bytes, owned or shared without a copy.

use std::sync::Arc;

/// The bytes of a document: a `Vec<u8>` given away, or anything else that holds bytes (a memory map)
/// shared with the caller. Cloning shares.
#[derive(Clone)]
pub struct SharedBytes(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl SharedBytes {
    /// Shares bytes held by `holder` for as long as any clone lives.
    pub fn new<T: AsRef<[u8]> + Send + Sync + 'static>(holder: T) -> Self {
        SharedBytes(Arc::new(holder))
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        SharedBytes::new(v)
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len())
    }
}
