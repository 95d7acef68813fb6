//! [`VecMap`]: an ordered map kept as a sorted `Vec` of pairs.
//!
//! Look-ups are binary searches; inserts and removes shift the tail (`O(n)` moves), which for
//! the maps it replaces (per-domain counters, transactions, a bus's children, a few hundred
//! entries at most) is cheaper than a B-tree's node juggling and a tenth of its code. Iteration
//! is in key order, like `BTreeMap`, so reports and listings do not change.

use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::ops::{Bound, RangeBounds};

/// An ordered map on a sorted `Vec<(K, V)>`, with the `BTreeMap` methods dom0 uses.
#[derive(Clone, PartialEq, Eq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

/// Iterator over `(&K, &V)` in key order.
pub type Iter<'a, K, V> =
    core::iter::Map<core::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K, V> VecMap<K, V> {
    /// An empty map (no allocation).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Entries in key order, values mutable.
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Values in key order, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Where `key` is (`Ok`) or would go (`Err`).
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value for `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value for `key`, mutable.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// The entry for `key`, to read or fill in place.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let at = self.find(&key);
        Entry { map: self, key, at }
    }

    /// Entries whose keys are in `range`, in order (empty when the range is).
    pub fn range<Q: Ord + ?Sized, R: RangeBounds<Q>>(&self, range: R) -> Iter<'_, K, V>
    where
        K: Borrow<Q>,
    {
        let point = |b: Bound<&Q>, after_equal: bool| match b {
            Bound::Unbounded if after_equal => self.entries.len(),
            Bound::Unbounded => 0,
            Bound::Included(q) if after_equal => {
                self.entries.partition_point(|(k, _)| k.borrow() <= q)
            }
            Bound::Included(q) => self.entries.partition_point(|(k, _)| k.borrow() < q),
            Bound::Excluded(q) if after_equal => {
                self.entries.partition_point(|(k, _)| k.borrow() < q)
            }
            Bound::Excluded(q) => self.entries.partition_point(|(k, _)| k.borrow() <= q),
        };
        let lo = point(range.start_bound(), false);
        let hi = point(range.end_bound(), true).max(lo);
        self.entries[lo..hi].iter().map(|(k, v)| (k, v))
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> core::ops::Index<&Q> for VecMap<K, V> {
    type Output = V;

    /// The value for `key`; panics if there is none (like `BTreeMap`'s index).
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key")
    }
}

/// A key's place in a [`VecMap`] (`BTreeMap::entry`'s counterpart).
#[derive(Debug)]
pub struct Entry<'a, K, V> {
    map: &'a mut VecMap<K, V>,
    key: K,
    at: Result<usize, usize>,
}

impl<'a, K, V> Entry<'a, K, V> {
    /// The value, inserting `make()` first if the key had none.
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        let i = match self.at {
            Ok(i) => i,
            Err(i) => {
                self.map.entries.insert(i, (self.key, make()));
                i
            }
        };
        &mut self.map.entries[i].1
    }

    /// The value, inserting `value` first if the key had none.
    pub fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }

    /// The value, inserting `V::default()` first if the key had none.
    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = alloc::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Ord, V> Extend<(K, V)> for VecMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, items: I) {
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = Self::new();
        map.extend(items);
        map
    }
}

/// An ordered set on a sorted `Vec` ([`VecMap`] without values; `BTreeSet`'s counterpart).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct VecSet<T> {
    map: VecMap<T, ()>,
}

impl<T: fmt::Debug> fmt::Debug for VecSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T> VecSet<T> {
    /// An empty set (no allocation).
    pub const fn new() -> Self {
        Self { map: VecMap::new() }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Elements in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.map.entries.iter().map(|(k, _)| k)
    }
}

impl<T: Ord> VecSet<T> {
    /// Adds `value`; false if it was already there.
    pub fn insert(&mut self, value: T) -> bool {
        self.map.insert(value, ()).is_none()
    }

    /// Removes `value`; false if it was not there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.map.remove(value).is_some()
    }

    /// Whether `value` is in the set.
    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.map.contains_key(value)
    }
}

impl<'a, T> IntoIterator for &'a VecSet<T> {
    type Item = &'a T;
    type IntoIter = core::iter::Map<core::slice::Iter<'a, (T, ())>, fn(&'a (T, ())) -> &'a T>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.entries.iter().map(|(k, _)| k)
    }
}

impl<T: Ord> FromIterator<T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut set = Self::new();
        for v in items {
            set.insert(v);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::String;

    /// Applies the same operations to a `VecMap` and a `BTreeMap` and compares them.
    #[test]
    fn behaves_like_btreemap() {
        let mut ours: VecMap<u32, u64> = VecMap::new();
        let mut theirs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..5000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 97) as u32;
            match x % 7 {
                0..=2 => assert_eq!(ours.insert(key, step), theirs.insert(key, step)),
                3 => assert_eq!(ours.remove(&key), theirs.remove(&key)),
                4 => {
                    *ours.entry(key).or_insert(1) += step;
                    *theirs.entry(key).or_insert(1) += step;
                }
                5 => {
                    let (lo, hi) = (key.min(50), key.max(50));
                    let a: Vec<_> = ours.range(lo..=hi).collect();
                    let b: Vec<_> = theirs.range(lo..=hi).collect();
                    assert_eq!(a, b);
                    let a: Vec<_> = ours.range(lo..hi).rev().collect();
                    let b: Vec<_> = theirs.range(lo..hi).rev().collect();
                    assert_eq!(a, b);
                    let a: Vec<_> = ours.range(key..).collect();
                    let b: Vec<_> = theirs.range(key..).collect();
                    assert_eq!(a, b);
                }
                _ => {
                    ours.retain(|k, _| k % 11 != key % 11);
                    theirs.retain(|k, _| k % 11 != key % 11);
                }
            }
            assert_eq!(ours.get(&key), theirs.get(&key));
            assert_eq!(ours.contains_key(&key), theirs.contains_key(&key));
            assert_eq!(ours.len(), theirs.len());
        }
        assert!(ours.iter().eq(theirs.iter()));
        assert!(ours.keys().eq(theirs.keys()));
        assert!(ours.values().eq(theirs.values()));
    }

    #[test]
    fn borrowed_keys_entries_and_empty_ranges() {
        let mut m: VecMap<String, u32> = VecMap::new();
        *m.entry("b".into()).or_default() += 2;
        *m.entry("a".into()).or_default() += 1;
        *m.entry("b".into()).or_default() += 2;
        assert_eq!(m.get("b"), Some(&4));
        assert_eq!(m.get_mut("a").map(|v| core::mem::replace(v, 9)), Some(1));
        assert_eq!(format!("{m:?}"), r#"{"a": 9, "b": 4}"#);
        // A reversed range is empty here (BTreeMap would panic).
        assert_eq!(
            m.range::<str, _>((Bound::Included("b"), Bound::Excluded("a")))
                .count(),
            0
        );
        let pairs: Vec<(String, u32)> = m.clone().into_iter().collect();
        assert_eq!(pairs, [("a".into(), 9), ("b".into(), 4)]);
        let back: VecMap<String, u32> = pairs.into_iter().rev().collect();
        assert_eq!(back, m);
        for v in m.values_mut() {
            *v = 0;
        }
        assert!(m.iter_mut().all(|(_, v)| *v == 0));
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn set_inserts_once_in_order() {
        let mut s: VecSet<String> = ["c", "a"].iter().map(|s| String::from(*s)).collect();
        assert!(s.insert("b".into()));
        assert!(!s.insert("a".into()));
        assert!(s.contains("c"));
        assert!(s.remove("c"));
        assert!(!s.remove("c"));
        assert_eq!(s.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(format!("{s:?}"), r#"{"a", "b"}"#);
    }
}
