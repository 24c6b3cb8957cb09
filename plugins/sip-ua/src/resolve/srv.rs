//! SRV records and their order (RFC 2782): by priority, and within a priority by a weighted
//! random draw.

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host.
    pub target: String,
}

/// Orders SRV records as RFC 2782 says: by priority, and within a priority by a weighted
/// random draw. `rand(n)` returns a number in `0..=n`; tests pass a fixed sequence.
pub fn order_srv(mut records: Vec<SrvRecord>, mut rand: impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    // A single "." target means "no service here" (RFC 2782).
    records.retain(|r| r.target != "." && !r.target.is_empty());
    records.sort_by_key(|r| (r.priority, r.weight));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let prio = records[0].priority;
        let mut group: Vec<SrvRecord> = Vec::new();
        let mut rest = Vec::new();
        for r in records.drain(..) {
            if r.priority == prio {
                group.push(r);
            } else {
                rest.push(r);
            }
        }
        records = rest;
        // Zero weights first, as the RFC suggests, so they have a small chance.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rand(total).min(total);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                running += u32::from(r.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn srv_orders_by_priority_then_weight() {
        let recs = vec![
            srv(20, 0, "c"),
            srv(10, 60, "a"),
            srv(10, 40, "b"),
            srv(5, 0, "."),
        ];
        // Draw 0 picks the first of the weight-sorted group each time: b (40) then a.
        let order: Vec<_> = order_srv(recs.clone(), |_| 0)
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
        // Draw the maximum: the last (a), then b.
        let order: Vec<_> = order_srv(recs, |n| n)
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }
}
