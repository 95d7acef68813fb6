//! A page shared with another domain, as the ring protocols of `xen/include/public/io/`
//! (`ring.h`, `xs_wire.h`, `console.h`) use it: the one trait every backend reads and writes its
//! rings through (xenstore, console, netif), so the protocol logic is host-tested on plain bytes.

/// Access to a ring page. On real shared memory `load_u32` must be an acquire load (ring bytes
/// are read after it) and `store_u32` a release store (ring bytes written before it are
/// visible first); the byte copies may be plain volatile copies.
pub trait RingPage {
    fn load_u32(&self, off: usize) -> u32;
    fn store_u32(&mut self, off: usize, v: u32);
    fn read_bytes(&self, off: usize, dst: &mut [u8]);
    fn write_bytes(&mut self, off: usize, src: &[u8]);
}

/// A page in ordinary memory (host tests, or a copy). Out-of-range accesses read zeros and
/// write nothing.
impl RingPage for [u8] {
    fn load_u32(&self, off: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = self.get(off..off + 4) {
            w.copy_from_slice(s);
        }
        u32::from_le_bytes(w)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(s) = self.get_mut(off..off + 4) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        match self.get(off..off + dst.len()) {
            Some(s) => dst.copy_from_slice(s),
            None => dst.fill(0),
        }
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        if let Some(s) = self.get_mut(off..off + src.len()) {
            s.copy_from_slice(src);
        }
    }
}

impl<const N: usize> RingPage for [u8; N] {
    fn load_u32(&self, off: usize) -> u32 {
        self[..].load_u32(off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self[..].store_u32(off, v);
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self[..].read_bytes(off, dst);
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        self[..].write_bytes(off, src);
    }
}
