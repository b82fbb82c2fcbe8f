//! Which peer addresses the kernel metrics keep: a bound on `network.peer.address` values.
//!
//! Stage: kernel **metrics** (used by [`super::metrics::KernelMetrics`]). Input: each sample's
//! remote address and whether the sample shows a real exchange with that peer (data sent or
//! received, an accepted connection, a successful connect — a forged source address cannot
//! produce these). Output: the address to put on the series, or none (the sample is then
//! recorded without its peer, in a series marked `otel.metric.overflow=true`, and counted).
//! Limits: at most `max` distinct addresses held by live series; an address is released with
//! the last series carrying it (when its processes' series are pruned). Pure code, no IO.

use crate::hash::{HashMap, HashMapExt};
use std::net::IpAddr;

/// Default most distinct peer addresses on the live series.
pub const DEFAULT_MAX_PEERS: usize = 4_096;

/// Peer addresses kept on series, with the number of series carrying each.
#[derive(Debug)]
pub struct PeerBudget {
    held: HashMap<IpAddr, u32>,
    max: usize,
    overflowed: u64,
}

impl Default for PeerBudget {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PEERS)
    }
}

impl PeerBudget {
    /// At most `max` distinct addresses (0: never keep a peer).
    pub fn new(max: usize) -> Self {
        Self {
            held: HashMap::new(),
            max,
            overflowed: 0,
        }
    }

    /// The peer to record for a sample about `ip`: `(Some(ip), false)` when it is held, or new,
    /// `observed` and within the budget; `(None, true)` otherwise (counted); `(None, false)`
    /// when the sample has no address. A returned address is held only once a series takes it
    /// ([`PeerBudget::hold`]).
    pub fn admit(&mut self, ip: Option<IpAddr>, observed: bool) -> (Option<IpAddr>, bool) {
        let Some(ip) = ip else {
            return (None, false);
        };
        if self.held.contains_key(&ip) || (observed && self.held.len() < self.max) {
            (Some(ip), false)
        } else {
            self.overflowed += 1;
            (None, true)
        }
    }

    /// A new series carries `ip`.
    pub fn hold(&mut self, ip: IpAddr) {
        *self.held.entry(ip).or_insert(0) += 1;
    }

    /// A series carrying `ip` is gone; the address is forgotten with its last series.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.held.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&ip);
            }
        }
    }

    /// Distinct addresses held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// No address held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Samples recorded without their peer so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_observed_peers_within_the_budget_are_kept_until_their_last_series() {
        let ip = |i: u8| Some(IpAddr::from([10, 0, 0, i]));
        let mut b = PeerBudget::new(2);
        assert_eq!(b.admit(ip(1), false), (None, true), "never observed");
        assert_eq!(b.admit(ip(1), true), (ip(1), false));
        b.hold(ip(1).unwrap());
        b.hold(ip(1).unwrap());
        assert_eq!(b.admit(ip(1), false), (ip(1), false), "held: kept");
        assert_eq!(b.admit(ip(2), true), (ip(2), false));
        b.hold(ip(2).unwrap());
        assert_eq!(b.admit(ip(3), true), (None, true), "budget spent");
        assert_eq!(b.admit(None, true), (None, false));
        b.release(ip(1).unwrap());
        assert_eq!(b.len(), 2);
        b.release(ip(1).unwrap());
        assert_eq!(b.len(), 1);
        assert_eq!(b.admit(ip(3), true), (ip(3), false), "room again");
        assert_eq!(b.overflowed(), 2);
    }
}
