//! dom0's one sort.
//!
//! `core`'s sorts are fast but large: each call site monomorphises the whole driftsort or
//! ipnsort (3–5 KiB of code), and dom0 sorts in about twenty places (memory maps, BAR plans,
//! CPUID leaves, MTRR cuts, xenstore listings), which came to ~70 KiB of its 512 KiB budget.
//! Here the sorting itself is one non-generic heapsort over indices, driven through
//! `&mut dyn FnMut`; a call site only instantiates its key closure and the permutation step.
//!
//! The sort is stable (ties keep their order: the index breaks them) and `O(n log n)`
//! comparisons; it allocates one `Vec<usize>` of `n` entries. dom0's lists are small
//! (hundreds of entries at most), so this costs nothing measurable at boot.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// Sorts `v` by `key`, keeping equal elements in their order (like `slice::sort_by_key`).
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// Sorts `v` (like `slice::sort`; stable).
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// Sorts `v` with `cmp`, keeping equal elements in their order (like `slice::sort_by`).
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut perm: Vec<usize> = (0..v.len()).collect();
    {
        let v: &[T] = v;
        heapsort(&mut perm, &mut |a, b| {
            cmp(&v[a], &v[b]).then(a.cmp(&b)) == Ordering::Less
        });
    }
    permute(v, &mut perm);
}

/// Sorts and removes consecutive duplicates (`sort_unstable` + `dedup` on a `Vec`).
pub fn sort_dedup<T: Ord>(v: &mut Vec<T>) {
    sort(v);
    v.dedup();
}

/// Heapsort of `idx` by `less` (the one instance in the binary).
fn heapsort(idx: &mut [usize], less: &mut dyn FnMut(usize, usize) -> bool) {
    let n = idx.len();
    for start in (0..n / 2).rev() {
        sift_down(idx, start, n, less);
    }
    for end in (1..n).rev() {
        idx.swap(0, end);
        sift_down(idx, 0, end, less);
    }
}

fn sift_down(
    idx: &mut [usize],
    mut root: usize,
    end: usize,
    less: &mut dyn FnMut(usize, usize) -> bool,
) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(idx[child], idx[child + 1]) {
            child += 1;
        }
        if !less(idx[root], idx[child]) {
            return;
        }
        idx.swap(root, child);
        root = child;
    }
}

/// Rearranges `v` so that `v[i]` becomes the old `v[perm[i]]`, by following each cycle of
/// the permutation with swaps (`perm` is consumed: every entry ends as its own index).
fn permute<T>(v: &mut [T], perm: &mut [usize]) {
    for i in 0..v.len() {
        let mut j = i;
        loop {
            let k = perm[j];
            perm[j] = j;
            if k == i {
                break;
            }
            v.swap(j, k);
            j = k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the tests need no crate.
    fn numbers(seed: u64, n: usize, modulo: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % modulo
            })
            .collect()
    }

    #[test]
    fn sorts_like_core_and_keeps_ties_in_order() {
        for n in [0usize, 1, 2, 3, 7, 16, 100, 1000] {
            for modulo in [1u64, 2, 10, 1 << 40] {
                let keys = numbers(n as u64 * 31 + modulo, n, modulo);
                // Tag each element with its position: a stable sort keeps tags ascending
                // among equal keys, exactly as core's stable sort does.
                let mut ours: Vec<(u64, usize)> = keys.iter().copied().zip(0..).collect();
                let mut theirs = ours.clone();
                sort_by_key(&mut ours, |e| e.0);
                theirs.sort_by_key(|e| e.0);
                assert_eq!(ours, theirs, "n {n} modulo {modulo}");
            }
        }
    }

    #[test]
    fn sorted_reversed_and_equal_inputs() {
        let mut up: Vec<u32> = (0..500).collect();
        sort(&mut up);
        assert!(up.windows(2).all(|w| w[0] <= w[1]));
        let mut down: Vec<u32> = (0..500).rev().collect();
        sort(&mut down);
        assert_eq!(down, up);
        let mut same = alloc::vec![7u8; 300];
        sort(&mut same);
        assert_eq!(same, alloc::vec![7u8; 300]);
    }

    #[test]
    fn reverse_keys_and_strings() {
        let mut v = alloc::vec![3u64, 9, 1, 9, 4];
        sort_by_key(&mut v, |&x| core::cmp::Reverse(x));
        assert_eq!(v, [9, 9, 4, 3, 1]);
        let mut s: Vec<alloc::string::String> = ["b/c", "a", "b", "a/b"]
            .iter()
            .map(|s| (*s).into())
            .collect();
        sort(&mut s);
        assert_eq!(s, ["a", "a/b", "b", "b/c"]);
    }

    #[test]
    fn sort_dedup_removes_repeats() {
        let mut v = alloc::vec![5u32, 1, 5, 3, 1, 1];
        sort_dedup(&mut v);
        assert_eq!(v, [1, 3, 5]);
    }

    #[test]
    fn large_elements_move_whole() {
        let mut v: Vec<[u64; 8]> = numbers(99, 200, 50).into_iter().map(|k| [k; 8]).collect();
        sort_by_key(&mut v, |e| e[0]);
        assert!(v.windows(2).all(|w| w[0][0] <= w[1][0]));
        assert!(v.iter().all(|e| e.iter().all(|&x| x == e[0])));
    }
}
