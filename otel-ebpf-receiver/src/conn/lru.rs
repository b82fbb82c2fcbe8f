//! A map that remembers use order, for bounding tracked connections.
//!
//! Stage: conn (inner helper). Input: keys and values. Output: lookups that mark the entry most
//! recently used, and the least recently used entry on demand. Limits: O(1) per operation; one
//! slot per entry, slots reused after removal; the capacity bound is the caller's.

use crate::hash::{HashMap, HashMapExt};
use std::hash::Hash;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<K, V> {
    entry: Option<(K, V)>,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// Hash map plus a doubly linked use order over slot indexes.
#[derive(Debug)]
pub struct Lru<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
}

impl<K, V> Default for Lru<K, V> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The entry for `key`, marked most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.unlink(i);
        self.link_newest(i);
        self.slots[i].entry.as_mut().map(|(_, v)| v)
    }

    /// Inserts (or replaces) `key` as the most recently used entry.
    pub fn insert(&mut self, key: K, value: V) -> &mut V {
        if let Some(&i) = self.index.get(&key) {
            self.unlink(i);
            self.link_newest(i);
            let slot = &mut self.slots[i];
            slot.entry = Some((key, value));
            return slot.entry.as_mut().map(|(_, v)| v).expect("just set");
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i].entry = Some((key, value));
                i
            }
            None => {
                self.slots.push(Slot {
                    entry: Some((key, value)),
                    newer: NIL,
                    older: NIL,
                });
                self.slots.len() - 1
            }
        };
        self.index.insert(key, i);
        self.link_newest(i);
        self.slots[i]
            .entry
            .as_mut()
            .map(|(_, v)| v)
            .expect("just set")
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        self.unlink(i);
        self.free.push(i);
        self.slots[i].entry.take().map(|(_, v)| v)
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let key = self.slots.get(self.oldest)?.entry.as_ref()?.0;
        self.remove(&key).map(|v| (key, v))
    }

    /// Every entry, in no particular order (use order unchanged).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_ref().map(|(k, v)| (k, v)))
    }

    /// Every entry, mutably, in no particular order (use order unchanged).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.entry.as_mut().map(|(k, v)| (&*k, v)))
    }

    fn unlink(&mut self, i: usize) {
        let (newer, older) = (self.slots[i].newer, self.slots[i].older);
        match newer {
            NIL => self.newest = older,
            n => self.slots[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o].newer = newer,
        }
        self.slots[i].newer = NIL;
        self.slots[i].older = NIL;
    }

    fn link_newest(&mut self, i: usize) {
        self.slots[i].older = self.newest;
        self.slots[i].newer = NIL;
        match self.newest {
            NIL => self.oldest = i,
            n => self.slots[n].newer = i,
        }
        self.newest = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_in_use_order() {
        let mut l = Lru::default();
        for k in 0..4u32 {
            l.insert(k, k * 10);
        }
        assert_eq!(l.get_mut(&0), Some(&mut 0)); // 0 becomes newest
        assert_eq!(l.pop_oldest(), Some((1, 10)));
        assert_eq!(l.remove(&2), Some(20));
        l.insert(5, 50); // reuses slot of 2 or 1
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_oldest(), Some((3, 30)));
        assert_eq!(l.pop_oldest(), Some((0, 0)));
        assert_eq!(l.pop_oldest(), Some((5, 50)));
        assert_eq!(l.pop_oldest(), None);
        assert!(l.is_empty());
    }

    #[test]
    fn replace_keeps_one_entry() {
        let mut l = Lru::default();
        l.insert(1u8, 'a');
        l.insert(2u8, 'b');
        l.insert(1u8, 'c');
        assert_eq!(l.len(), 2);
        assert_eq!((l.iter().count(), l.iter_mut().count()), (2, 2));
        assert_eq!(l.pop_oldest(), Some((2, 'b')));
        assert_eq!(l.pop_oldest(), Some((1, 'c')));
    }
}
