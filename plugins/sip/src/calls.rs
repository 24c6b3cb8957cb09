//! The driver's table of live calls, with the count per line kept as calls come and go, so
//! `max_calls` is checked in constant time however many calls are in progress (a scan over the
//! table on every MakeCall made a backlog of thousands of calls quadratic).

use std::collections::HashMap;
use std::hash::Hash;

/// Live calls by id, and how many each line carries.
#[derive(Debug)]
pub(crate) struct Calls<K, L, V> {
    by_id: HashMap<K, (L, V)>,
    per_line: HashMap<L, usize>,
}

impl<K: Eq + Hash, L: Eq + Hash + Clone, V> Default for Calls<K, L, V> {
    fn default() -> Self {
        Calls {
            by_id: HashMap::new(),
            per_line: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, L: Eq + Hash + Clone, V> Calls<K, L, V> {
    /// Adds a call on `line`; `false` (and nothing changes) when the id is taken.
    pub(crate) fn insert(&mut self, id: K, line: L, value: V) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        *self.per_line.entry(line.clone()).or_insert(0) += 1;
        self.by_id.insert(id, (line, value));
        true
    }

    /// Removes a call; `None` when it was gone already.
    pub(crate) fn remove(&mut self, id: &K) -> Option<V> {
        let (line, value) = self.by_id.remove(id)?;
        if let Some(n) = self.per_line.get_mut(&line) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_line.remove(&line);
            }
        }
        Some(value)
    }

    /// Whether the id is a live call.
    pub(crate) fn contains(&self, id: &K) -> bool {
        self.by_id.contains_key(id)
    }

    /// A live call and its line.
    pub(crate) fn get(&self, id: &K) -> Option<(&L, &V)> {
        self.by_id.get(id).map(|(l, v)| (l, v))
    }

    /// How many live calls `line` carries.
    pub(crate) fn on_line(&self, line: &L) -> usize {
        self.per_line.get(line).copied().unwrap_or(0)
    }

    /// Every live call.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.by_id.values().map(|(_, v)| v)
    }

    /// Whether no call is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_line_follow_inserts_and_removals() {
        let mut calls: Calls<u32, &str, ()> = Calls::default();
        assert!(calls.insert(1, "a", ()));
        assert!(calls.insert(2, "a", ()));
        assert!(calls.insert(3, "b", ()));
        assert!(!calls.insert(3, "a", ()), "a taken id is refused");
        assert_eq!((calls.on_line(&"a"), calls.on_line(&"b")), (2, 1));
        assert!(calls.remove(&1).is_some());
        assert!(calls.remove(&1).is_none(), "removed once only");
        assert_eq!(calls.on_line(&"a"), 1);
        assert!(calls.remove(&2).is_some() && calls.remove(&3).is_some());
        assert_eq!((calls.on_line(&"a"), calls.on_line(&"b")), (0, 0));
        assert!(calls.is_empty() && calls.per_line.is_empty());
    }
}
