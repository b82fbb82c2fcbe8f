//! Exited processes whose metric series are exported once more, then forgotten.
//!
//! Stage: metrics (shared by the HTTP/RPC duration metrics and the kernel metrics). Input: the
//! pid of each `ProcessExit` event ([`ExitedProcesses::mark`]). Output: on
//! [`ExitedProcesses::take`] (right after a collection), the pids whose series the caller drops.
//! So a process's final cumulative values go out in exactly one more collection, and then
//! nothing of it (series, interned strings, resource) is kept. Limits: at most one entry per
//! process that exited since the last collection (pid 0, the host's own series, is never
//! marked). Pure code, no IO.

use std::collections::HashSet;

/// Pids that exited since the last collection.
#[derive(Debug, Default)]
pub struct ExitedProcesses {
    pids: HashSet<u32>,
}

impl ExitedProcesses {
    /// Marks `pid` as exited (ignored for pid 0).
    pub fn mark(&mut self, pid: u32) {
        if pid != 0 {
            self.pids.insert(pid);
        }
    }

    /// The pids marked since the previous call; the set is left empty.
    pub fn take(&mut self) -> HashSet<u32> {
        std::mem::take(&mut self.pids)
    }

    /// Pids waiting to be forgotten.
    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// No pid waiting.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_empties_and_pid_zero_is_never_marked() {
        let mut e = ExitedProcesses::default();
        e.mark(0);
        e.mark(7);
        e.mark(7);
        assert_eq!(e.len(), 1);
        assert_eq!(e.take(), HashSet::from([7]));
        assert!(e.is_empty());
    }
}
