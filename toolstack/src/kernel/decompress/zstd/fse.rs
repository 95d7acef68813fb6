//! FSE tables (RFC 8878 4.1.1): reading a table description and building the decoding table.

use super::bits::Fwd;
use super::{R, corrupt};

/// Largest alphabet of any FSE table here (match length codes: 0..=52).
pub const MAX_SYMBOLS: usize = 53;

/// Default distributions (RFC 8878 3.1.1.3.2.2.1 to .3), accuracy logs 6, 6 and 5.
pub const LL_DEFAULT: [i16; 36] = [
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
    -1, -1, -1, -1,
];
pub const ML_DEFAULT: [i16; 53] = [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
pub const OF_DEFAULT: [i16; 29] = [
    1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];

/// Reads a table description from the start of `d` into `norm` (probabilities, -1 for "less
/// than 1"); returns (accuracy log, number of symbols, bytes used).
pub fn read_counts(
    d: &[u8],
    max_log: u32,
    max_symbols: usize,
    norm: &mut [i16; MAX_SYMBOLS],
) -> R<(u32, usize, usize)> {
    let mut f = Fwd::new(d);
    let log = (f.peek() & 15) + 5;
    f.skip(4);
    if log > max_log {
        return Err(corrupt("FSE accuracy log too large"));
    }
    let mut remaining: i32 = (1 << log) + 1;
    let mut threshold: i32 = 1 << log;
    let mut nb = log + 1;
    let mut n = 0;
    while remaining > 1 {
        if n >= max_symbols.min(MAX_SYMBOLS) {
            return Err(corrupt("FSE table description has too many symbols"));
        }
        let v = f.peek() as i32;
        let max = 2 * threshold - 1 - remaining;
        let mut count;
        if v & (threshold - 1) < max {
            count = v & (threshold - 1);
            f.skip(nb - 1);
        } else {
            count = v & (2 * threshold - 1);
            if count >= threshold {
                count -= max;
            }
            f.skip(nb);
        }
        count -= 1;
        remaining -= count.abs();
        if let Some(slot) = norm.get_mut(n) {
            *slot = count as i16;
        }
        n += 1;
        if count == 0 {
            // Zero probabilities: 2-bit repeat counts, 3 meaning "3 more and another count".
            loop {
                let r = (f.peek() & 3) as usize;
                f.skip(2);
                for _ in 0..r {
                    let slot = norm
                        .get_mut(n)
                        .filter(|_| n < max_symbols)
                        .ok_or(corrupt("FSE table description has too many symbols"))?;
                    *slot = 0;
                    n += 1;
                }
                if r != 3 {
                    break;
                }
            }
        }
        if remaining < 1 {
            return Err(corrupt("FSE probabilities exceed the table"));
        }
        while remaining < threshold {
            nb -= 1;
            threshold >>= 1;
        }
    }
    let used = f.bytes_used();
    if used > d.len() {
        return Err(corrupt("FSE table description past its section"));
    }
    Ok((log, n, used))
}

/// Builds the decoding table of `norm` (accuracy `log`, whose probabilities sum to 2^log) into
/// `table[..1 << log]`; `make(symbol, bits, next state base)` makes an entry.
pub fn build<T: Copy>(
    norm: &[i16],
    log: u32,
    table: &mut [T],
    make: impl Fn(u8, u8, u16) -> T,
) -> R<()> {
    let size = 1usize << log;
    let mut syms = [0u8; 512];
    let syms = syms.get_mut(..size).ok_or(corrupt("FSE table too large"))?;
    let mut next = [0u16; MAX_SYMBOLS];
    let mut high = size;
    // "Less than 1" symbols take the last cells, one each.
    for (s, &c) in norm.iter().enumerate() {
        if c == -1 {
            high = high
                .checked_sub(1)
                .ok_or(corrupt("FSE probabilities exceed the table"))?;
            if let Some(slot) = syms.get_mut(high) {
                *slot = s as u8;
            }
            next[s] = 1;
        } else {
            next[s] = c.max(0) as u16;
        }
    }
    let step = (size >> 1) + (size >> 3) + 3;
    let mask = size - 1;
    let mut pos = 0;
    let mut placed = 0;
    for (s, &c) in norm.iter().enumerate() {
        for _ in 0..c.max(0) {
            if placed >= high {
                return Err(corrupt("FSE probabilities exceed the table"));
            }
            if let Some(slot) = syms.get_mut(pos) {
                *slot = s as u8;
            }
            placed += 1;
            pos = (pos + step) & mask;
            // Bounded: the step is odd, so it visits every cell within `size` steps.
            while pos >= high {
                pos = (pos + step) & mask;
            }
        }
    }
    if placed != high || pos != 0 {
        return Err(corrupt("FSE probabilities do not fill the table"));
    }
    for (i, &s) in syms.iter().enumerate() {
        let n = next.get_mut(usize::from(s)).ok_or(corrupt("FSE symbol"))?;
        let state = *n;
        *n = n.saturating_add(1);
        // state is in [count, 2 * count): 2^log <= state << bits < 2^(log + 1).
        let bits = log
            .checked_sub(15 - state.leading_zeros().min(15))
            .ok_or(corrupt("FSE probabilities exceed the table"))?;
        let base = (u32::from(state) << bits).saturating_sub(size as u32);
        if let Some(slot) = table.get_mut(i) {
            *slot = make(s, bits as u8, base as u16);
        }
    }
    Ok(())
}
