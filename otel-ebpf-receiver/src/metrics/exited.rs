//! Exited processes whose metric series are exported once more, then forgotten.
//!
//! Stage: metrics (shared by the HTTP/RPC duration metrics and the kernel metrics). Input: the
//! pid of each `ProcessExit` event ([`ExitedProcesses::mark`]). Output: on
//! [`ExitedProcesses::take`] (right after a collection), the pids whose series the caller drops.
//! A pid is returned by the two collections that follow its exit: the first forgets what was
//! recorded before the exit (its final values went out in that collection), the second what
//! arrived late (a span released after the exit, e.g. after waiting for trace pairing, or a
//! kernel sample of the exit itself) and was exported once in between. So nothing of an exited
//! process (series, interned strings, resource) stays. Limits: one entry per process that
//! exited during the last two collection intervals (pid 0, the host's own series, is never
//! marked). Pure code, no IO.

use std::collections::HashSet;

/// Pids that exited during the last two collection intervals.
#[derive(Debug, Default)]
pub struct ExitedProcesses {
    /// Exited since the last collection.
    fresh: HashSet<u32>,
    /// Exited during the interval before: returned once more.
    late: HashSet<u32>,
}

impl ExitedProcesses {
    /// Marks `pid` as exited (ignored for pid 0).
    pub fn mark(&mut self, pid: u32) {
        if pid != 0 {
            self.fresh.insert(pid);
        }
    }

    /// The pids to forget now: those marked since the previous call and those marked before
    /// it (their second time). The first are kept for the next call.
    pub fn take(&mut self) -> HashSet<u32> {
        let fresh = std::mem::take(&mut self.fresh);
        let mut out = std::mem::replace(&mut self.late, fresh.clone());
        out.extend(fresh);
        out
    }

    /// Pids waiting to be forgotten (once or twice more).
    pub fn len(&self) -> usize {
        self.fresh.union(&self.late).count()
    }

    /// No pid waiting.
    pub fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.late.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_taken_by_the_two_collections_after_its_exit_and_pid_zero_never() {
        let mut e = ExitedProcesses::default();
        e.mark(0);
        e.mark(7);
        e.mark(7);
        assert_eq!(e.len(), 1);
        assert_eq!(e.take(), HashSet::from([7]));
        e.mark(8);
        assert_eq!(e.take(), HashSet::from([7, 8]));
        assert_eq!(e.take(), HashSet::from([8]));
        assert!(e.is_empty());
        assert_eq!(e.take(), HashSet::new());
    }
}
