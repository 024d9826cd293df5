//! Fixed-capacity storage for the keys of messages that have not arrived yet.
//!
//! Keys are held oldest first, keyed by (chain id, message number): for a pairwise session the
//! chain id is the sender's ratchet public key, for a room the sender's identity. When the store
//! is full the oldest key is dropped to make room (as libsignal does), so its size never grows
//! past `N` entries and no session stays wedged by lost messages; the per-message limit on how
//! many keys one message may skip is checked by the callers before anything is derived.

use zeroize::Zeroize;

/// One stored key.
#[derive(Clone, Zeroize)]
pub(crate) struct SkippedEntry {
    pub(crate) chain: [u8; 32],
    pub(crate) n: u32,
    pub(crate) key: [u8; 32],
}

impl SkippedEntry {
    const EMPTY: Self = Self {
        chain: [0; 32],
        n: 0,
        key: [0; 32],
    };
}

/// Up to `N` skipped message keys, oldest first. Zeroized on drop.
///
/// A plain array and a length rather than `heapless::Deque`/`Vec`: those move a removed or
/// popped element out and leave its bytes in the vacated slot, and offer no way to wipe it, so
/// a used message key would stay in memory until overwritten. Here every vacated slot is
/// zeroized at once (`remove`, `clear`, and drop).
pub(crate) struct SkippedKeys<const N: usize> {
    entries: [SkippedEntry; N],
    len: usize,
}

impl<const N: usize> SkippedKeys<N> {
    /// Bytes of one entry in serialized state: chain (32) || n (u32 BE) || key (32).
    pub(crate) const ENTRY_LEN: usize = 32 + 4 + 32;

    pub(crate) const fn new() -> Self {
        Self {
            entries: [const { SkippedEntry::EMPTY }; N],
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn used(&self) -> &[SkippedEntry] {
        // `len <= N` always holds; `min` only keeps `split_at` panic-free.
        self.entries.split_at(self.len.min(N)).0
    }

    /// The position of the key for (`chain`, `n`), if stored.
    pub(crate) fn find(&self, chain: &[u8; 32], n: u32) -> Option<usize> {
        self.used()
            .iter()
            .position(|e| e.n == n && e.chain == *chain)
    }

    /// The key at `index`.
    pub(crate) fn key(&self, index: usize) -> Option<&[u8; 32]> {
        self.used().get(index).map(|e| &e.key)
    }

    /// Forget the key at `index`, keeping the others in order.
    pub(crate) fn remove(&mut self, index: usize) {
        if index >= self.len {
            return;
        }
        if let Some(tail) = self.entries.get_mut(index..self.len) {
            tail.rotate_left(1);
        }
        self.len -= 1;
        if let Some(last) = self.entries.get_mut(self.len) {
            last.zeroize();
        }
    }

    /// Store a key, dropping the oldest one if the store is full.
    pub(crate) fn push(&mut self, chain: &[u8; 32], n: u32, key: &[u8; 32]) {
        if N == 0 {
            return;
        }
        if self.len == N {
            self.remove(0);
        }
        if let Some(slot) = self.entries.get_mut(self.len) {
            slot.chain = *chain;
            slot.n = n;
            slot.key = *key;
            self.len += 1;
        }
    }

    /// Forget every key of `chain`.
    pub(crate) fn remove_chain(&mut self, chain: &[u8; 32]) {
        let mut i = 0;
        while i < self.len {
            if self.used().get(i).is_some_and(|e| e.chain == *chain) {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        self.entries.iter_mut().for_each(Zeroize::zeroize);
        self.len = 0;
    }

    /// Write `len` (u16 BE) then all `N` entries (unused ones as zeros).
    pub(crate) fn write(&self, out: &mut [u8]) -> Option<()> {
        let (count, rest) = out.split_first_chunk_mut::<2>()?;
        *count = u16::try_from(self.len).ok()?.to_be_bytes();
        for (entry, chunk) in self
            .entries
            .iter()
            .zip(rest.chunks_exact_mut(Self::ENTRY_LEN))
        {
            let (chain, rest) = chunk.split_first_chunk_mut::<32>()?;
            let (n, key) = rest.split_first_chunk_mut::<4>()?;
            *chain = entry.chain;
            *n = entry.n.to_be_bytes();
            key.copy_from_slice(&entry.key);
        }
        Some(())
    }

    /// Read what [`write`](Self::write) wrote (with any capacity ≥ the stored count).
    pub(crate) fn read(bytes: &[u8], stored_capacity: usize) -> Option<Self> {
        let (count, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*count));
        if len > N || len > stored_capacity {
            return None;
        }
        let mut out = Self::new();
        for chunk in rest.chunks_exact(Self::ENTRY_LEN).take(len) {
            let (chain, rest) = chunk.split_first_chunk::<32>()?;
            let (n, key) = rest.split_first_chunk::<4>()?;
            let key: &[u8; 32] = key.try_into().ok()?;
            out.push(chain, u32::from_be_bytes(*n), key);
        }
        (out.len == len).then_some(out)
    }
}

impl<const N: usize> Drop for SkippedKeys<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> zeroize::ZeroizeOnDrop for SkippedKeys<N> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_and_keeps_order() {
        let mut s = SkippedKeys::<3>::new();
        for n in 0..5u32 {
            s.push(&[1; 32], n, &[n as u8; 32]);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.find(&[1; 32], 0), None);
        assert_eq!(s.find(&[1; 32], 2), Some(0));
        s.remove(1);
        assert_eq!(s.find(&[1; 32], 4), Some(1));
        assert_eq!(s.key(1), Some(&[4; 32]));
        s.push(&[2; 32], 0, &[9; 32]);
        s.remove_chain(&[1; 32]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.find(&[2; 32], 0), Some(0));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut s = SkippedKeys::<0>::new();
        s.push(&[1; 32], 0, &[1; 32]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn write_read_round_trip() {
        let mut s = SkippedKeys::<4>::new();
        s.push(&[1; 32], 7, &[2; 32]);
        s.push(&[3; 32], 8, &[4; 32]);
        let mut buf = [0u8; 2 + 4 * 68];
        s.write(&mut buf).unwrap();
        let r = SkippedKeys::<4>::read(&buf, 4).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.find(&[3; 32], 8), Some(1));
        assert!(SkippedKeys::<1>::read(&buf, 4).is_none());
    }
}
