//! A bounded map that keeps what was used lately: two generations, the
//! current one filling up and the one before it. When the current one is
//! full it becomes the old one (the old one is dropped); a hit in the old
//! generation moves the entry back into the current one. So an entry used
//! at least once per half of the capacity is never dropped, and a burst of
//! new entries (a bulk registration) cannot evict every hot one at once,
//! as clearing the whole map did.

use std::collections::HashMap;
use std::hash::Hash;

pub struct Kept<K, V> {
    /// Weight per generation.
    half: usize,
    /// What an entry weighs (1 unless told otherwise).
    weigh: fn(&V) -> usize,
    current: HashMap<K, V>,
    /// The weight of `current`.
    weight: usize,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq + Clone, V: Clone> Kept<K, V> {
    /// Keeps at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self::weighed(capacity, |_| 1)
    }

    /// Keeps entries weighing at most about `capacity` together, each
    /// weighing `weigh` of it (at least 1).
    pub fn weighed(capacity: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            weigh,
            current: HashMap::new(),
            weight: 0,
            old: HashMap::new(),
        }
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        if let Some(value) = self.current.get(key) {
            return Some(value.clone());
        }
        let value = self.old.remove(key)?;
        self.put(key.clone(), value.clone());
        Some(value)
    }

    pub fn put(&mut self, key: K, value: V) {
        self.old.remove(&key);
        let weight = (self.weigh)(&value).max(1);
        if let Some(replaced) = self.current.remove(&key) {
            self.weight -= (self.weigh)(&replaced).max(1);
        } else if self.weight + weight > self.half && !self.current.is_empty() {
            self.old = std::mem::take(&mut self.current);
            self.weight = 0;
        }
        self.weight += weight;
        self.current.insert(key, value);
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(removed) = self.current.remove(key) {
            self.weight -= (self.weigh)(&removed).max(1);
        }
        self.old.remove(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Kept;

    #[test]
    fn an_entry_used_lately_outlives_a_burst_of_new_ones() {
        let mut kept = Kept::new(100);
        kept.put("hot", 0);
        for i in 0..1_000 {
            kept.put(format!("new-{i}").leak() as &str, i);
            if i % 40 == 0 {
                assert_eq!(kept.get(&"hot"), Some(0), "dropped after {i} new entries");
            }
            assert!(kept.len() <= 100, "{} entries kept", kept.len());
        }
        assert_eq!(kept.get(&"hot"), Some(0));
        // One not used since is gone.
        assert_eq!(kept.get(&"new-0"), None);
    }

    #[test]
    fn a_removed_entry_is_gone_from_both_generations() {
        let mut kept = Kept::new(4);
        kept.put(1, "a");
        kept.put(2, "b");
        kept.put(3, "c"); // 1 and 2 are the old generation now
        kept.remove(&1);
        assert_eq!(kept.get(&1), None);
        assert_eq!(kept.get(&2), Some("b"));
        kept.put(3, "C");
        assert_eq!(kept.get(&3), Some("C"));
    }

    #[test]
    fn weighed_entries_are_kept_by_their_weight() {
        let mut kept: Kept<u32, Vec<u8>> = Kept::weighed(100, Vec::len);
        for i in 0..100 {
            kept.put(i, vec![0; 10]);
            let weight: usize = kept
                .current
                .values()
                .chain(kept.old.values())
                .map(Vec::len)
                .sum();
            assert!(weight <= 100, "{weight} kept after {i}");
        }
        // Two generations of at most 50 each: five entries apiece.
        assert_eq!(kept.len(), 10);
        assert!(kept.get(&99).is_some());
        assert!(kept.get(&89).is_none());
        // Replacing an entry counts its new weight only.
        kept.put(99, vec![0; 1]);
        kept.put(99, vec![0; 2]);
        assert_eq!(
            kept.weight,
            kept.current.values().map(Vec::len).sum::<usize>()
        );
    }
}
