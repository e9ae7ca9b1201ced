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
    /// Entries per generation.
    half: usize,
    current: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq + Clone, V: Clone> Kept<K, V> {
    /// Keeps at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            current: HashMap::new(),
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
        if self.current.len() >= self.half && !self.current.contains_key(&key) {
            self.old = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    pub fn remove(&mut self, key: &K) {
        self.current.remove(key);
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
}
