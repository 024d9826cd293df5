//! Deterministic filler bytes for the frame vectors (names, bodies, public-key-shaped values).
//! Not a cryptographic generator and never used as one: it only makes the vectors reproducible.

/// SplitMix64: a tiny, well-known generator whose output is fixed by its seed.
#[derive(Debug, Clone)]
pub struct Filler(u64);

impl Filler {
    /// A generator fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `N` bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }

    /// `n` bytes, leaked so a borrowed message can point at them for the generator's lifetime.
    pub fn leaked(&mut self, n: usize) -> &'static [u8] {
        let v: Vec<u8> = (0..n).map(|_| self.next_u64() as u8).collect();
        Box::leak(v.into_boxed_slice())
    }
}
