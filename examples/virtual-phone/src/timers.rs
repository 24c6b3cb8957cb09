//! A timer queue: items due at instants, popped in order of their deadline (ties in the order
//! they were scheduled).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

/// Items waiting for their instant.
#[derive(Debug)]
pub(crate) struct TimerQueue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    scheduled: u64,
}

#[derive(Debug)]
struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            scheduled: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    /// Schedules `item` for `at`.
    pub(crate) fn schedule(&mut self, at: Instant, item: T) {
        self.scheduled += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.scheduled,
            item,
        }));
    }

    /// The earliest deadline, if anything is scheduled.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// Takes the earliest item if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.at <= now => {
                self.heap.pop().map(|Reverse(entry)| entry.item)
            }
            _ => None,
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_come_out_by_deadline_then_by_scheduling_order() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        queue.schedule(start + Duration::from_millis(20), "late");
        queue.schedule(start + Duration::from_millis(10), "first");
        queue.schedule(start + Duration::from_millis(10), "second");
        assert_eq!(
            queue.next_deadline(),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(queue.pop_due(start), None);
        let later = start + Duration::from_millis(15);
        assert_eq!(queue.pop_due(later), Some("first"));
        assert_eq!(queue.pop_due(later), Some("second"));
        assert_eq!(queue.pop_due(later), None);
        queue.clear();
        assert_eq!(queue.next_deadline(), None);
    }
}
